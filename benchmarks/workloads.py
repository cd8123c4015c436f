"""The benchmark workloads: MLP classifiers (ReLU between dense layers, softmax
cross-entropy, Adam) and the bar nnfunc's step has to meet on each.

A workload is the layer widths (input first, classes last) and the batch
size. The bar is a ratio to the floor for the three larger workloads; on tiny
the step is dominated by Python overhead, so its bar is absolute: at most
``bar`` microseconds above the floor.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

BarKind = Literal["ratio", "over_us"]


class Workload(NamedTuple):
    """One MLP classifier and its batch.

    Attributes:
        name: ``tiny``, ``small``, ``medium`` or ``large``.
        sizes: layer widths, input features first and classes last, e.g.
            ``(784, 128, 10)`` is one hidden layer of 128.
        batch: rows per training step.
        bar: the largest acceptable nnfunc result (see ``bar_kind``).
        bar_kind: ``"ratio"`` — nnfunc / floor; ``"over_us"`` — nnfunc minus
            floor, in microseconds.
    """

    name: str
    sizes: tuple[int, ...]
    batch: int
    bar: float
    bar_kind: BarKind

    @property
    def hidden(self) -> tuple[int, ...]:
        """The hidden-layer widths (what scikit-learn calls ``hidden_layer_sizes``)."""
        return self.sizes[1:-1]

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """``(d_in, d_out)`` of each dense layer, input layer first."""
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def num_params(self) -> int:
        """Weights plus biases."""
        return sum(d_in * d_out + d_out for d_in, d_out in self.layer_shapes)

    def passes(self, ratio: float, over_us: float) -> bool:
        """Whether a contender's paired ratio / overhead meets this workload's bar."""
        return (ratio if self.bar_kind == "ratio" else over_us) <= self.bar


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("tiny", (64, 32, 10), 32, 120.0, "over_us"),
        Workload("small", (784, 128, 10), 128, 1.8, "ratio"),
        Workload("medium", (784, 512, 512, 10), 256, 1.4, "ratio"),
        Workload("large", (3072, 1024, 1024, 1024, 10), 512, 1.25, "ratio"),
    )
}


def make_batch(w: Workload, dtype: npt.DTypeLike,
               seed: int = 0) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
    """A fixed batch: standard-normal inputs ``(batch, sizes[0])`` in ``dtype``
    and int64 class labels ``(batch,)`` in ``[0, sizes[-1])``.

    Every contender trains on the same batch over and over: the step's cost does
    not depend on the values, and reusing one batch keeps data loading out of
    the measurement.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((w.batch, w.sizes[0])).astype(dtype)
    y = rng.integers(0, w.sizes[-1], size=w.batch, dtype=np.int64)
    return x, y


def parse_names(text: str) -> list[str]:
    """``"tiny,small"`` -> ``["tiny", "small"]``, in the order given.

    Raises:
        ValueError: for an unknown or repeated name, or an empty list.
    """
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    if not names or len(set(names)) != len(names):
        raise ValueError(f"give each workload once, at least one; got {text!r}")
    return names
