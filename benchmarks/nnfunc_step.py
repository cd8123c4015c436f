"""nnfunc's side: one full training step through the public API.

The model is ``serial(dense(h1), relu, ..., dense(classes))``, the loss
``softmax_cross_entropy`` on int64 labels, the optimizer ``optim.adam(1e-3)``.
A step is ``nnfunc.train.train_step`` — forward, backward, Adam update —
with the params and optimizer state carried from one step to the next, the
way a training loop uses it: donated, as ``fit`` does (Adam writes the new
state into the old arrays), and, as a second contender, pure.

nnfunc is imported inside :func:`make_nnfunc_step`, so importing this module
(as the benchmark's entry point does) loads nothing of nnfunc.
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


def make_nnfunc_step(w: Workload, dtype: npt.DTypeLike, lr: float = 1e-3, *,
                     donate: bool = True) -> NnfuncStep:
    """Build workload ``w`` in nnfunc, its params in ``dtype``, ready to step.

    ``donate`` (the default, and what ``fit`` does within an epoch) lets
    Adam write the new state into the old one's arrays; ``donate=False``
    times the pure step, which leaves its inputs untouched.
    """
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

    step = nn_train.train_step(model, softmax_cross_entropy, opt, donate=donate)
    via = f"nnfunc.train.train_step(donate={donate})"

    def run() -> None:
        carry[0], carry[1], carry[2] = step(carry[0], carry[1], x, y)

    return NnfuncStep(run, carry, model, opt, x, y, via)
