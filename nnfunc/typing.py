"""Type aliases shared across nnfunc.

``Array``/``FloatArray`` are NumPy arrays; a ``PyTree`` is a nested ``dict``
(string keys), ``list``, ``tuple``, ``NamedTuple`` or ``None`` with arrays or
scalars as leaves. Layers that take several inputs (after ``fanout`` or in
``parallel``) receive a tuple of arrays, so inputs, outputs and shapes are
trees too (``Input``, ``ShapeTree``).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

Array: TypeAlias = npt.NDArray[Any]
FloatArray: TypeAlias = npt.NDArray[np.floating[Any]]
Key: TypeAlias = npt.NDArray[np.uint64]
"""A random key: a ``(2,)`` ``uint64`` array made by :func:`nnfunc.random.key` (``(3,)`` when
it carries a row offset, see :func:`nnfunc.random.with_row_offset`)."""

Scalar: TypeAlias = float | int | bool | np.generic
PyTree: TypeAlias = (
    Array | Scalar | dict[str, "PyTree"] | list["PyTree"] | tuple["PyTree", ...] | None
)
"""Nested containers of arrays; ``NamedTuple`` instances count as tuples."""

Shape: TypeAlias = tuple[int, ...]
ShapeTree: TypeAlias = tuple[Any, ...]
"""The shape of one sample (batch axis excluded), or a tuple of such shapes.

Typed loosely because mypy cannot tell ``(3, 4)`` from ``((3,), (4,))``."""

Input: TypeAlias = Array | tuple["Input", ...]
"""What a layer takes and returns: a batch array, or a tuple of them."""

__all__ = ["Array", "FloatArray", "Input", "Key", "PyTree", "Scalar", "Shape", "ShapeTree"]
