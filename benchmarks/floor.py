"""The floor: the matrix products no training step of an MLP can avoid.

Per dense layer with input ``x`` (n, d_in), weights ``W`` (d_in, d_out) and
output gradient ``dy`` (n, d_out), a step must compute

* forward:   ``y  = x @ W``          (n, d_out)
* backward:  ``dW = xᵀ @ dy``        (d_in, d_out)
* backward:  ``dx = dy @ Wᵀ``        (n, d_in) — except for the input layer,
  whose ``dx`` nobody needs.

The floor runs exactly these products with ``np.matmul(..., out=...)`` into
arrays allocated once, so it pays for BLAS and nothing else: no allocation,
bias, activation, loss or optimizer. It runs in the same process as the
contenders, with NumPy's default BLAS threading, so a contender's ratio to
the floor is its overhead on top of the same BLAS on the same machine.

The values are irrelevant to the cost; inputs and weights are scaled so that
activations stay O(1) (no overflow, no subnormals).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from benchmarks.workloads import Workload

Array = npt.NDArray[Any]


class Floor(NamedTuple):
    """The floor of one workload: the buffers and the step that fills them.

    ``acts[i]`` is layer ``i``'s input (``acts[0]`` the batch, ``acts[-1]``
    the logits); ``dys[i]`` layer ``i``'s output gradient; ``dws[i]`` and
    ``dxs[i]`` receive ``acts[i]ᵀ @ dys[i]`` and ``dys[i] @ ws[i]ᵀ``
    (``dxs[0]`` is ``None``: the input layer has no ``dx``).
    """

    ws: list[Array]
    acts: list[Array]
    dys: list[Array]
    dws: list[Array]
    dxs: list[Array | None]

    def step(self) -> None:
        """One step's products: every forward product, then backward from the top."""
        self.forward()
        self.backward()

    def forward(self) -> None:
        """The forward products ``x @ W``, input layer first."""
        ws, acts = self.ws, self.acts
        for i, w in enumerate(ws):
            np.matmul(acts[i], w, out=acts[i + 1])

    def backward(self) -> None:
        """The backward products ``xᵀ @ dy`` and ``dy @ Wᵀ``, top layer first."""
        ws, acts, dys, dws, dxs = self
        for i in range(len(ws) - 1, -1, -1):
            np.matmul(acts[i].T, dys[i], out=dws[i])
            dx = dxs[i]
            if dx is not None:
                np.matmul(dys[i], ws[i].T, out=dx)

    @property
    def flops(self) -> int:
        """Floating-point operations per step (2 per multiply-add)."""
        total = 0
        for w, dx in zip(self.ws, self.dxs):
            n = self.acts[0].shape[0]
            d_in, d_out = w.shape
            total += 2 * n * d_in * d_out * (2 if dx is None else 3)
        return total


def make_floor(w: Workload, dtype: npt.DTypeLike, seed: int = 1) -> Floor:
    """Allocate the floor's buffers for workload ``w`` in ``dtype``."""
    rng = np.random.default_rng(seed)
    n = w.batch

    def normal(shape: tuple[int, ...], scale: float = 1.0) -> Array:
        return (rng.standard_normal(shape) * scale).astype(dtype)

    ws = [normal((d_in, d_out), d_in ** -0.5) for d_in, d_out in w.layer_shapes]
    acts = [normal((n, w.sizes[0]))] + [np.empty((n, d), dtype) for d in w.sizes[1:]]
    dys = [normal((n, d_out), 1.0 / n) for _, d_out in w.layer_shapes]
    dws = [np.empty_like(m) for m in ws]
    dxs: list[Array | None] = [None] + [np.empty((n, d_in), dtype)
                                        for d_in, _ in w.layer_shapes[1:]]
    return Floor(ws, acts, dys, dws, dxs)
