"""Each optimizer trains a 2-layer MLP through value_and_grad on a fixed problem."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import nnfunc as nf
from nnfunc import optim, random

OPTIMIZERS: dict[str, Callable[[], optim.Optimizer]] = {
    "sgd": lambda: optim.sgd(0.5),
    "sgd_momentum": lambda: optim.sgd(0.1, momentum=0.9),
    "sgd_nesterov": lambda: optim.sgd(0.1, momentum=0.9, nesterov=True),
    "momentum": lambda: optim.momentum(0.5, gamma=0.9),
    "adagrad": lambda: optim.adagrad(0.1),
    "adadelta": lambda: optim.adadelta(),
    "rmsprop": lambda: optim.rmsprop(0.01),
    "adam": lambda: optim.adam(0.01),
    "adamw": lambda: optim.adamw(0.01, weight_decay=1e-3),
    "chain": lambda: optim.chain(optim.clip_by_global_norm(5.0), optim.l2(1e-4, where="w"),
                                 optim.adam(0.01)),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_mlp_training_loss_goes_down(name: str) -> None:
    k_x, k_w, k_init = random.split(random.key(42), 3)
    x = random.normal(k_x, (128, 6))
    y = np.argmax(np.tanh(x @ random.normal(k_w, (6, 3))), axis=1)
    model = nf.serial(nf.dense(16), nf.tanh, nf.dense(3))
    _, params = model.init(k_init, (6,))
    f = nf.value_and_grad(model, nf.softmax_cross_entropy)
    opt = OPTIMIZERS[name]()
    state = opt.init(params)
    first, _ = f(params, x, y)
    for _ in range(100):
        _, grads = f(params, x, y)
        state, params = opt.update(state, grads)
    last, _ = f(params, x, y)
    assert last < 0.7 * first, (name, float(first), float(last))
