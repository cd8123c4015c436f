"""A deeper classifier on two spirals, built from combinators.

The model stacks residual blocks (``x + f(x)``) between a widening input
layer and a linear read-out, and uses a learning-rate warmup into cosine
decay, gradient clipping and L2 on the kernels only.

Run:  python examples/spirals.py
"""

from __future__ import annotations

import nnfunc as nf
from nnfunc import datasets, metrics, optim, random
from nnfunc.optim import schedules


def block(width: int) -> nf.Layer:
    """A residual block: ``x + W₂ tanh(W₁ x)``."""
    return nf.residual(nf.serial(nf.dense(width), nf.tanh, nf.dense(width)))


def main() -> None:
    k_data, k_test, k_init, k_fit = random.split(random.key(2), 4)
    x, y = datasets.two_spirals(k_data, 1000, noise=0.02)
    x_test, y_test = datasets.two_spirals(k_test, 500, noise=0.02)
    model = nf.serial(nf.dense(64), nf.tanh, block(64), nf.tanh, block(64), nf.tanh,
                      nf.dense(2))
    _, params = model.init(k_init, (2,))
    nf.summary(model, (2,))
    steps = 300 * 16
    lr = schedules.warmup(schedules.cosine_decay(1e-2, steps, alpha=0.01), 200)
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.l2(1e-5, where="w"),
                      optim.adam(lr))
    result = nf.train.fit(model, nf.softmax_cross_entropy, opt, params, (x, y), epochs=300,
                          batch_size=64, key=k_fit, metrics=[metrics.accuracy],
                          progress=False)
    test = nf.train.evaluate(model, nf.softmax_cross_entropy, result.params, x_test, y_test,
                             metrics=[metrics.accuracy])
    print(f"final learning rate: {optim.lr_of(result.opt_state):.2e}")
    print(f"train accuracy: {result.history['accuracy'][-1]:.3f}")
    print(f"test accuracy: {test['accuracy']:.3f}")


if __name__ == "__main__":
    main()
