"""The calibration contender: a careful hand-written NumPy training step.

The same MLP step as nnfunc's (dense + ReLU layers, softmax cross-entropy on
integer labels, Adam with the default hyperparameters), written the way an
expert writes a one-off NumPy script that only has to train this one model:

* every weight and bias is a view into one flat parameter vector, and every
  gradient a view into one flat gradient vector, so Adam runs as a dozen
  in-place ufunc calls over three flat arrays, whatever the number of layers
  (each starting on a cache line);
* activations, masks and the logits' gradient live in buffers allocated
  once, filled with ``out=``;
* nothing is checked, nothing is returned, everything is overwritten.

It is what the benchmark issue calls "a careful hand-written NumPy step with
preallocated buffers and a flat in-place Adam". It is not a library (no
purity, no validation, no composition), so it is the practical bound for a
NumPy toolkit: the table shows it beside nnfunc so that a reader can tell a
slow machine (both far from the floor) from a slow nnfunc (only nnfunc far).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from benchmarks.workloads import Workload, make_batch

Array = npt.NDArray[Any]


class Handwritten(NamedTuple):
    """The step and the buffers it overwrites (exposed for the tests).

    ``run()`` performs one step in place; ``phases`` are its four parts
    (forward, loss gradient, backward, Adam), which ``run`` calls in that
    order, for timing each inside the step; ``params[i]`` and ``grads[i]``
    are the ``(w, b)`` views of layer ``i`` into the flat parameter and
    gradient vectors; ``x``/``y`` the batch.
    """

    run: Callable[[], None]
    params: list[tuple[Array, Array]]
    grads: list[tuple[Array, Array]]
    x: Array
    y: Array
    phases: tuple[Callable[[], None], Callable[[], None], Callable[[], None],
                  Callable[[], None]]


def _cache_line_aligned(n: int, dt: np.dtype[Any]) -> Array:
    """``n`` elements starting on a 64-byte boundary (NumPy only promises 16), as
    nnfunc's Adam buffers do: elementwise passes over misaligned arrays ran 10-30%
    slower on the benchmark machine."""
    raw = np.empty(n + 64 // dt.itemsize, dt)
    start = (-raw.ctypes.data % 64) // dt.itemsize
    return raw[start:start + n]


def make_handwritten_step(w: Workload, dtype: npt.DTypeLike, lr: float = 1e-3,
                          seed: int = 2) -> Handwritten:
    """One in-place step of workload ``w``'s classifier in ``dtype`` (He-normal
    weights from ``seed``, zero biases)."""
    dt = np.dtype(dtype)
    shapes = w.layer_shapes
    total = w.num_params
    rng = np.random.default_rng(seed)
    flat_p, flat_g, m, v, tmp = (_cache_line_aligned(total, dt) for _ in range(5))
    m[...] = 0
    v[...] = 0
    ws: list[Array] = []
    bs: list[Array] = []
    dws: list[Array] = []
    dbs: list[Array] = []
    at = 0
    for d_in, d_out in shapes:
        ws.append(flat_p[at:at + d_in * d_out].reshape(d_in, d_out))
        dws.append(flat_g[at:at + d_in * d_out].reshape(d_in, d_out))
        ws[-1][...] = rng.standard_normal((d_in, d_out)) * math.sqrt(2.0 / d_in)
        at += d_in * d_out
        bs.append(flat_p[at:at + d_out])
        dbs.append(flat_g[at:at + d_out])
        bs[-1][...] = 0
        at += d_out
    x, y = make_batch(w, dt)
    n = w.batch
    acts = [x] + [np.empty((n, d), dt) for d in w.sizes[1:]]
    masks = [np.empty((n, d), bool) for d in w.hidden]
    dxs: list[Array | None] = [None] + [np.empty((n, d_in), dt) for d_in, _ in shapes[1:]]
    dz = np.empty((n, w.sizes[-1]), dt)
    rows = np.arange(n)
    b1, b2, eps = 0.9, 0.999, 1e-8
    scalar: Callable[[float], Any] = dt.type
    t = [0]
    last = len(shapes) - 1

    def forward() -> None:
        for i in range(len(shapes)):
            out = acts[i + 1]
            np.matmul(acts[i], ws[i], out=out)
            np.add(out, bs[i], out=out)
            if i < last:
                np.maximum(out, scalar(0), out=out)

    def loss() -> None:  # softmax cross-entropy gradient (ŷ - onehot) / n
        z = acts[-1]
        np.subtract(z, np.maximum.reduce(z, axis=1, keepdims=True), out=dz)
        np.exp(dz, out=dz)
        np.divide(dz, np.add.reduce(dz, axis=1, keepdims=True), out=dz)
        dz[rows, y] -= 1
        np.multiply(dz, scalar(1.0 / n), out=dz)

    def backward() -> None:
        d = dz
        for i in range(last, -1, -1):
            np.matmul(acts[i].T, d, out=dws[i])
            np.add.reduce(d, axis=0, out=dbs[i])
            dx = dxs[i]
            if dx is not None:
                np.matmul(d, ws[i].T, out=dx)
                np.greater(acts[i], 0, out=masks[i - 1])
                np.multiply(dx, masks[i - 1], out=dx)
                d = dx

    def adam() -> None:  # in place over the flat vectors
        t[0] += 1
        c2 = math.sqrt(1 - b2 ** t[0])
        np.multiply(m, scalar(b1), out=m)
        np.multiply(flat_g, scalar(1 - b1), out=tmp)
        np.add(m, tmp, out=m)
        np.multiply(v, scalar(b2), out=v)
        np.multiply(flat_g, flat_g, out=tmp)
        np.multiply(tmp, scalar(1 - b2), out=tmp)
        np.add(v, tmp, out=v)
        np.sqrt(v, out=tmp)
        np.add(tmp, scalar(eps * c2), out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, scalar(lr * c2 / (1 - b1 ** t[0])), out=tmp)
        np.subtract(flat_p, tmp, out=flat_p)

    def step() -> None:
        forward()
        loss()
        backward()
        adam()

    return Handwritten(step, list(zip(ws, bs)), list(zip(dws, dbs)), x, y,
                       (forward, loss, backward, adam))
