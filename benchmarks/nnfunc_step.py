"""nnfunc's side: one full training step through the public API.

The model is ``serial(dense(h1), relu, ..., dense(classes))``, the loss
``softmax_cross_entropy`` on int64 labels, the optimizer ``optim.adam(1e-3)``.
A step is ``nnfunc.train.train_step`` — forward, backward, Adam update —
with the params and optimizer state carried from one step to the next, the
way a training loop uses it. (Should ``train_step`` be missing, the step is
assembled from ``value_and_grad`` and ``opt.update``, which is what it does.)

Everything is imported lazily, so ``--no-nnfunc``-style runs and the
floor-only memory child never import nnfunc.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from benchmarks.workloads import Workload, make_batch


class NnfuncStep(NamedTuple):
    """A ready-to-time nnfunc step and the objects behind it.

    ``run()`` performs one step and keeps the new params and state in
    ``carry`` (``[params, opt_state, last_loss]``); ``model`` and ``opt`` are
    the nnfunc layer and optimizer, ``x``/``y`` the batch.
    """

    run: Callable[[], None]
    carry: list[Any]
    model: Any
    opt: Any
    x: npt.NDArray[Any]
    y: npt.NDArray[np.int64]
    via: str


def make_nnfunc_step(w: Workload, dtype: npt.DTypeLike, lr: float = 1e-3) -> NnfuncStep:
    """Build workload ``w`` in nnfunc, its params in ``dtype``, ready to step."""
    from nnfunc import optim, random, tree
    from nnfunc import train as nn_train
    from nnfunc.activations import relu
    from nnfunc.combinators import serial
    from nnfunc.layers import dense
    from nnfunc.losses import softmax_cross_entropy

    layers: list[Any] = []
    for width in w.hidden:
        layers += [dense(width), relu]
    model = serial(*layers, dense(w.sizes[-1]))
    _, params = model.init(random.key(0), (w.sizes[0],))
    if np.dtype(dtype) != np.float32:
        params = tree.astype(params, dtype)
    opt = optim.adam(lr)
    x, y = make_batch(w, dtype)
    carry: list[Any] = [params, opt.init(params), None]

    if hasattr(nn_train, "train_step"):
        step = nn_train.train_step(model, softmax_cross_entropy, opt)
        via = "nnfunc.train.train_step"

        def run() -> None:
            carry[0], carry[1], carry[2] = step(carry[0], carry[1], x, y)
    else:  # the step as train_step composes it
        loss_and_grad = nn_train.value_and_grad(model, softmax_cross_entropy)
        via = "value_and_grad + opt.update"

        def run() -> None:
            carry[2], grads = loss_and_grad(carry[0], x, y)
            carry[1], carry[0] = opt.update(carry[1], grads)

    return NnfuncStep(run, carry, model, opt, x, y, via)
