"""Leaf-wise arithmetic and reductions over pytrees."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nnfunc.tree._nodes import (
    Path,
    _describe_node,
    keystr,
    leaves,
    leaves_with_path,
    map,
    map_with_path,
)
from nnfunc.typing import Array, PyTree


def zeros_like(tree: PyTree) -> Any:
    """A tree of zero arrays with each leaf's shape and dtype."""
    return map(np.zeros_like, tree)


def _numeric(component: str, path: Path, x: Any, root: str = "tree") -> Any:
    """``x``, which must be a numeric (or bool) array or number, else a clear ``TypeError``."""
    if isinstance(x, (np.ndarray, np.generic)):
        ok = x.dtype.kind in "biufc"
    else:
        ok = isinstance(x, (bool, int, float, complex))
    if ok:
        return x
    raise TypeError(f"{component}: {keystr(path, root)} must be a numeric array or number; got "
                    f"{_describe_node(x)}")


def _elementwise(component: str, op: Callable[[Any, Any], Any], a: PyTree, b: PyTree) -> Any:
    """Leaf-wise ``op(a, b)`` of numeric leaves of equal shapes (never a broadcast)."""
    def f(path: Path, x: Any, y: Any) -> Any:
        _numeric(component, path, x, "a")
        _numeric(component, path, y, "b")
        if np.shape(x) != np.shape(y):
            raise ValueError(f"{component}: {keystr(path, 'b')} must have the shape of "
                             f"{keystr(path, 'a')}, {np.shape(x)} (no broadcasting); got "
                             f"{np.shape(y)}")
        return op(x, y)

    return map_with_path(f, a, b, names=("a", "b"))


def add(a: PyTree, b: PyTree) -> Any:
    """Leaf-wise ``a + b`` (equal structures and shapes)."""
    return _elementwise("tree.add", np.add, a, b)


def sub(a: PyTree, b: PyTree) -> Any:
    """Leaf-wise ``a - b`` (equal structures and shapes)."""
    return _elementwise("tree.sub", np.subtract, a, b)


def scale(tree: PyTree, factor: float) -> Any:
    """Leaf-wise ``factor * leaf``, keeping each leaf's dtype."""
    if isinstance(factor, (bool, np.bool_)) or not isinstance(
            factor, (int, float, np.integer, np.floating)):
        raise TypeError(f"tree.scale: factor must be a real number; got "
                        f"{type(factor).__name__} {factor!r}")
    return map_with_path(lambda p, x: np.multiply(_numeric("tree.scale", p, x), np.asarray(
        factor, dtype=np.result_type(x))), tree)


def astype(tree: PyTree, dtype: Any) -> Any:
    """Cast every floating-point leaf to ``dtype`` (other leaves unchanged).

    Raises:
        TypeError: ``dtype`` is not a floating NumPy dtype.
    """
    try:
        target = np.dtype(dtype)
    except TypeError:
        target = None
    if target is None or target.kind != "f":
        raise TypeError(f"tree.astype: dtype must be a floating NumPy dtype such as "
                        f"np.float32; got {dtype!r}")

    def cast(x: Any) -> Any:
        arr = np.asarray(x)
        return arr.astype(target) if arr.dtype.kind == "f" else x

    return map(cast, tree)


def vdot(a: PyTree, b: PyTree) -> float:
    """The inner product ``Σ_leaves Σ_i a_i b_i`` (accumulated in float64)."""
    def f(path: Path, x: Any, y: Any) -> float:
        _numeric("tree.vdot", path, x, "a")
        _numeric("tree.vdot", path, y, "b")
        if np.shape(x) != np.shape(y):
            raise ValueError(f"tree.vdot: {keystr(path, 'b')} must have the shape of "
                             f"{keystr(path, 'a')}, {np.shape(x)}; got {np.shape(y)}")
        return float(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64)))

    return math.fsum(leaves(map_with_path(f, a, b, names=("a", "b"))))


def _scaled_squares(x: Any) -> tuple[float, float]:
    """``(m, s)`` with ``Σ x² = m² s`` and ``s`` near 1..size: no overflow, no underflow.

    One BLAS pass in ``x``'s own precision when its sum of squares is a normal
    finite number (the common case); otherwise (float32 grads of 1e19, whose
    squares overflow, or of 1e-25, whose squares underflow) the entries are
    first divided by their largest magnitude ``m``.
    """
    if not (type(x) is np.ndarray and x.dtype.kind == "f"):
        x = _float_leaf(x)
    s = float(np.vdot(x, x))
    if math.isfinite(s) and s >= _LOW[x.dtype.itemsize]:
        return math.sqrt(s), 1.0
    m = float(np.max(np.abs(x))) if x.size else 0.0
    if m == 0.0 or not math.isfinite(m):  # zeros, or an inf or NaN entry
        return m, (1.0 if m else 0.0)
    y = x / x.dtype.type(m)
    return m, float(np.vdot(y, y))


_LOW = {2: float(np.finfo(np.float16).tiny / np.finfo(np.float16).eps),
        4: float(np.finfo(np.float32).tiny / np.finfo(np.float32).eps),
        8: float(np.finfo(np.float64).tiny / np.finfo(np.float64).eps)}
"""Below this sum of squares some squares were subnormal, so precision was lost."""


def _float_leaf(x: Any) -> Array:
    arr = np.asarray(x)
    if arr.dtype.kind in "biu":
        return np.ravel(arr).astype(np.float64)
    if arr.dtype.kind == "c":
        return np.ravel(np.abs(arr))
    if arr.dtype.kind == "f":
        return np.ravel(arr) if arr.dtype.itemsize in _LOW else np.ravel(arr).astype(np.float64)
    raise TypeError(f"tree.global_norm: leaves must be numeric; got {_describe_node(x)} of "
                    f"dtype {arr.dtype}")


def leaves_norm(xs: Sequence[Any]) -> float:
    """``sqrt(Σ_leaves Σ x²)`` of a list of leaves, safe from overflow and underflow."""
    parts = [_scaled_squares(x) for x in xs]
    top = max((m for m, _ in parts), default=0.0)
    if top == 0.0 or not math.isfinite(top):
        return math.nan if any(math.isnan(m) for m, _ in parts) else top
    return top * math.sqrt(math.fsum((m / top) ** 2 * s for m, s in parts))


def global_norm(tree: PyTree) -> float:
    """The Euclidean norm of all leaves taken together, ``sqrt(Σ x²)``.

    Accumulated safely: each leaf's sum of squares is rescaled by its largest
    magnitude when it would overflow or underflow, so float32 leaves of 1e19
    or 1e-25 give their true norm (as a Python float), not ``inf`` or 0.
    """
    return leaves_norm(leaves(tree))


def size(tree: PyTree) -> int:
    """The total number of elements over all leaves."""
    return sum(int(np.size(leaf)) for leaf in leaves(tree))


def all_finite(tree: PyTree) -> bool:
    """Whether no leaf holds a NaN or an infinity (every leaf must be numeric)."""
    return all(bool(np.isfinite(_numeric("tree.all_finite", path, leaf)).all())
               for path, leaf in leaves_with_path(tree))


def mask(tree: PyTree, where: str | Callable[[Path, Any], bool]) -> Any:
    """A tree of ``bool`` leaves marking which leaves ``where`` selects.

    Args:
        tree: any pytree.
        where: a glob pattern matched against each leaf's own name (the last
            entry of its path: ``"w"``, ``"b"``, ``"kernel*"``, ``"0"``), or a
            predicate ``where(path, leaf) -> bool``.

    >>> import numpy as np
    >>> mask([{"w": np.ones(2), "b": np.zeros(1)}], "w")
    [{'b': False, 'w': True}]
    """
    if isinstance(where, str):
        pattern = where

        def pick(path: Path, _leaf: Any) -> bool:
            return bool(path) and fnmatch.fnmatchcase(str(path[-1]), pattern)

        return map_with_path(pick, tree)
    if not callable(where):
        raise TypeError(f"tree.mask: where must be a glob string or a callable; got {where!r}")
    return map_with_path(lambda p, x: bool(where(p, x)), tree)


def where(condition: PyTree, a: PyTree, b: PyTree) -> Any:
    """Leaf-wise choice: ``a``'s leaf where ``condition``'s leaf is true, else ``b``'s."""
    def pick(path: Path, c: Any, x: Any, y: Any) -> Any:
        if not isinstance(c, (bool, np.bool_)):
            raise TypeError(f"tree.where: {keystr(path, 'condition')} must be a bool (as "
                            f"tree.mask gives); got {_describe_node(c)}")
        return x if c else y

    return map_with_path(pick, condition, a, b, names=("condition", "a", "b"))
