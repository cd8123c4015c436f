"""Structures compiled once: building a tree from its leaves, reading its leaves back."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from nnfunc.tree._nodes import TreeDef, _namedtuple_fields, flatten
from nnfunc.typing import Array


@functools.lru_cache(maxsize=512)
def _count(treedef: TreeDef) -> int:
    if treedef.kind == "leaf":
        return 1
    return sum(_count(c) for c in treedef.children)


def _build(td: TreeDef, it: Iterator[Any]) -> Any:
    kind = td.kind
    if kind == "leaf":
        return next(it)
    if kind == "none":
        return None
    kids = [_build(c, it) for c in td.children]
    if kind is tuple:
        return tuple(kids)
    if kind is list:
        return kids
    if kind is dict:
        return dict(zip(td.keys, kids))
    return kind(*kids)


_BUILDER_MAX_DEPTH = 40
"""Deeper structures are built by :func:`_build` (Python's parser limits an
expression's nesting)."""


def _depth(td: TreeDef) -> int:
    return 1 + max((_depth(c) for c in td.children), default=0)


def _stock_namedtuple(kind: Any) -> bool:
    """Whether ``kind`` is a NamedTuple class whose ``__new__`` is the one
    ``collections.namedtuple`` generates (``tuple.__new__(kind, fields)``,
    through one more Python frame), not a subclass's own.

    Building such a node with ``tuple.__new__`` gives the very object its
    constructor would, 0.2 µs faster (a ``DenseParams`` took 0.40 µs through
    its constructor, 0.18 µs this way), which counts on a small model whose
    optimizer rebuilds three trees a step.
    """
    if _namedtuple_fields(kind) is None:
        return False
    for cls in kind.__mro__:
        if "__new__" in vars(cls):
            own = vars(cls)
            return "_fields" in own and "_make" in own
    return False


def _check_treedef(component: str, treedef: Any) -> None:
    if not isinstance(treedef, TreeDef):
        raise TypeError(f"{component}: treedef must be a TreeDef (from tree.flatten or "
                        f"tree.structure); got {type(treedef).__name__} {treedef!r}")


def builder(treedef: TreeDef) -> Callable[[Sequence[Any]], Any]:
    """A function building a tree of structure ``treedef`` from its leaves in one
    call (what :func:`unflatten` calls, without its count check: the leaves must
    number as ``treedef`` has), compiled once per structure (see :func:`_builder`).

    Raises:
        TypeError: ``treedef`` is not a :class:`TreeDef`.
    """
    _check_treedef("tree.builder", treedef)
    return _builder(treedef)


@functools.lru_cache(maxsize=512)
def _builder(td: TreeDef) -> Callable[[Sequence[Any]], Any]:
    """:func:`builder`, memoized per structure.

    An optimizer rebuilds its params' tree every step; walking the
    :class:`TreeDef` for that cost more than the small model's arithmetic.
    So each structure is compiled once into one expression, e.g.
    ``lambda l: (T(K0, (l[0], l[1], )), (), T(K0, (l[2], l[3], )), )`` for two
    dense layers around an activation (``K0`` the ``DenseParams`` class, ``T``
    ``tuple.__new__``: see :func:`_stock_namedtuple`; other node classes are
    called, ``K1(...)``): the result is what :func:`_build` returns, node for node.
    """
    if _depth(td) > _BUILDER_MAX_DEPTH:
        return lambda leaves: _build(td, iter(leaves))
    kinds: dict[str, Any] = {}
    at = 0

    def expr(node: TreeDef) -> str:
        nonlocal at
        if node.kind == "leaf":
            at += 1
            return f"l[{at - 1}]"
        if node.kind == "none":
            return "None"
        kids = [expr(c) for c in node.children]
        if node.kind is tuple:
            return "(" + "".join(k + ", " for k in kids) + ")"
        if node.kind is list:
            return "[" + ", ".join(kids) + "]"
        if node.kind is dict:
            return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(node.keys, kids)) + "}"
        name = f"K{len(kinds)}"  # a NamedTuple or registered node class, called on its children
        kinds[name] = node.kind
        if _stock_namedtuple(node.kind):  # its __new__ is tuple.__new__ with one more frame
            return f"T({name}, (" + "".join(k + ", " for k in kids) + "))"
        return f"{name}({', '.join(kids)})"

    body = expr(td)
    built: Callable[[Sequence[Any]], Any] = eval(f"lambda l: {body}", {"T": tuple.__new__, **kinds})
    return built


def reader(treedef: TreeDef) -> Callable[[Any], list[Array] | None]:
    """A function returning the leaves of a tree of structure ``treedef`` whose
    leaves are all NumPy arrays, and ``None`` for any other tree, compiled once per
    structure (see :func:`_reader`).

    ``reader(structure(t))(t)`` is ``leaves(t)`` for such a tree; a tree of
    another structure, or with a leaf that is not an ``np.ndarray``, gives
    ``None``. It is the per-step check that grads have the params' structure,
    once the params' structure is known. Structures of nodes other than
    tuples, lists, NamedTuples, str-keyed dicts and ``None`` are compared
    through :func:`flatten`.

    Raises:
        TypeError: ``treedef`` is not a :class:`TreeDef`.
    """
    _check_treedef("tree.reader", treedef)
    return _reader(treedef)


def _read_by_flattening(td: TreeDef, t: Any) -> list[Array] | None:
    got, got_def = flatten(t)
    return got if got_def == td and all(type(a) is np.ndarray for a in got) else None


@functools.lru_cache(maxsize=512)
def _reader(td: TreeDef) -> Callable[[Any], list[Array] | None]:
    """:func:`reader`, memoized per structure: one expression, e.g.
    ``lambda t: [t[0][0], t[0][1]] if (type(t) is tuple and len(t) == 2 and
    type(t[0]) is K0 and type(t[0][0]) is A and … and t[1] == ()) else None``
    (``K0`` the ``DenseParams`` class, ``A`` ``np.ndarray``); each test guards
    the indexing after it."""
    plain = (tuple, list, dict, "leaf", "none")

    def simple(node: TreeDef) -> bool:
        return (node.kind in plain or _namedtuple_fields(node.kind) is not None) and all(
            simple(c) for c in node.children)

    if _depth(td) > _BUILDER_MAX_DEPTH or not simple(td):
        return functools.partial(_read_by_flattening, td)
    kinds: dict[str, Any] = {"A": np.ndarray}
    tests: list[str] = []
    found: list[str] = []

    def walk(node: TreeDef, at: str) -> None:
        if node.kind == "leaf":
            tests.append(f"type({at}) is A")
            found.append(at)
            return
        if node.kind == "none":
            tests.append(f"{at} is None")
            return
        if node.kind is dict:
            tests.append(f"type({at}) is dict and len({at}) == {len(node.keys)}")
            tests.extend(f"{k!r} in {at}" for k in node.keys)
            for k, c in zip(node.keys, node.children):
                walk(c, f"{at}[{k!r}]")
            return
        if node.kind is tuple or node.kind is list:
            tests.append(f"type({at}) is {node.kind.__name__} and len({at}) == "
                         f"{len(node.children)}")
        else:  # a NamedTuple: its class fixes its length
            name = f"K{len(kinds)}"
            kinds[name] = node.kind
            tests.append(f"type({at}) is {name}")
        for i, c in enumerate(node.children):
            walk(c, f"{at}[{i}]")

    walk(td, "t")
    source = f"lambda t: [{', '.join(found)}] if ({' and '.join(tests)}) else None"
    read: Callable[[Any], list[Array] | None] = eval(source, kinds)
    return read


def immutable(treedef: TreeDef) -> bool:
    """Whether trees of this structure are built only of tuples, NamedTuples and
    ``None`` around the leaves (no list, dict or other node), so cannot change
    structure in place.

    Raises:
        TypeError: ``treedef`` is not a :class:`TreeDef`.
    """
    _check_treedef("tree.immutable", treedef)
    return _immutable(treedef)


@functools.lru_cache(maxsize=512)
def _immutable(td: TreeDef) -> bool:
    kind = td.kind
    if kind in ("leaf", "none"):
        return True
    if not (isinstance(kind, type) and issubclass(kind, tuple)):
        return False
    return all(_immutable(c) for c in td.children)


def unflatten(treedef: TreeDef, leaves: Sequence[Any]) -> Any:
    """Rebuild a tree of structure ``treedef`` from ``leaves`` (traversal order)."""
    _check_treedef("tree.unflatten", treedef)
    expected = _count(treedef)
    if len(leaves) != expected:
        raise ValueError(
            f"tree.unflatten: leaves must number {expected} for structure {treedef!r}; "
            f"got {len(leaves)}"
        )
    return _builder(treedef)(leaves)
