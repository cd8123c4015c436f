"""Pytrees: nested containers of arrays, and the functions that walk them.

A pytree is a leaf (a NumPy array or a scalar) or a container of pytrees:
``dict`` with ``str`` keys (visited in sorted key order), ``list``, ``tuple``
or ``NamedTuple``. ``None`` is an empty container: it holds no leaves.
These are plain Python containers, so ``jax.tree_util`` and ``optree`` walk
nnfunc's params in the same order.

A leaf's *path* is the tuple of keys that lead to it: ``str`` for a dict key,
:class:`Field` for a ``NamedTuple`` field and ``int`` for a list or tuple
index. :func:`keystr` renders it as ``[1]['w']`` or ``[0].w``.

Two trees that should match but do not raise a ``ValueError`` naming the first
path where they differ.

>>> import numpy as np
>>> from nnfunc import tree
>>> params = {"b": np.zeros(2), "w": np.ones((2, 2))}
>>> tree.global_norm(params)
2.0
>>> [tree.keystr(p) for p, _ in tree.leaves_with_path(params)]
["['b']", "['w']"]
"""

from __future__ import annotations

import fnmatch
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from nnfunc.typing import Array, PyTree

__all__ = [
    "Field", "Path", "TreeDef", "add", "all_finite", "assert_same_structure", "astype",
    "builder", "flatten", "global_norm", "immutable", "keystr", "leaves", "leaves_norm",
    "leaves_with_path", "map", "map_with_path", "mask", "num_leaves", "paired_leaves", "reader",
    "scale", "size", "structure", "sub", "unflatten", "vdot", "where", "zeros_like",
]


class Field(str):
    """A ``NamedTuple`` field name inside a :data:`Path` (renders as ``.name``)."""

    __slots__ = ()


PathEntry = str | int
Path = tuple[PathEntry, ...]


class TreeDef(NamedTuple):
    """The structure of a pytree without its leaves.

    ``kind`` is ``"leaf"``, ``"none"``, ``dict``, ``list``, ``tuple`` or a
    ``NamedTuple`` class; ``keys`` are the dict keys (sorted) or field names;
    ``children`` are the children's ``TreeDef``. Two trees have the same
    structure exactly when their ``TreeDef`` compare equal.
    """

    kind: Any
    keys: tuple[str, ...]
    children: tuple[TreeDef, ...]

    def __repr__(self) -> str:
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        if self.kind is dict:
            inner = ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.keys, self.children))
            return "{" + inner + "}"
        inner = ", ".join(repr(c) for c in self.children)
        if self.kind is list:
            return f"[{inner}]"
        if self.kind is tuple:
            return f"({inner}{',' if len(self.children) == 1 else ''})"
        return f"{self.kind.__name__}({inner})"


_LEAF = TreeDef("leaf", (), ())
_NONE = TreeDef("none", (), ())


_FIELDS: dict[Any, tuple[Field, ...] | None] = {}


def _namedtuple_fields(kind: Any) -> tuple[Field, ...] | None:
    """The fields of a ``NamedTuple`` class (``None`` for other classes).

    Memoized per class: a fact about the class, computed once, not state.
    """
    try:
        return _FIELDS[kind]
    except KeyError:
        fields = (tuple(Field(f) for f in kind._fields)
                  if issubclass(kind, tuple) and hasattr(kind, "_fields") else None)
        _FIELDS[kind] = fields
        return fields


def _children(node: Any) -> tuple[Any, tuple[PathEntry, ...], list[Any]] | None:
    """``(kind, entries, children)`` of a container, or ``None`` for a leaf."""
    if node is None:
        return "none", (), []
    if isinstance(node, dict):
        keys = list(node)
        for k in keys:
            if not isinstance(k, str):
                raise TypeError(
                    f"tree: dict keys must be str; got {type(k).__name__} key {k!r}"
                )
        keys.sort()
        return dict, tuple(keys), [node[k] for k in keys]
    if isinstance(node, tuple):
        fields = _namedtuple_fields(type(node))
        if fields is not None:
            return type(node), fields, list(node)
        return tuple, tuple(range(len(node))), list(node)
    if isinstance(node, list):
        return list, tuple(range(len(node))), list(node)
    return None


def _rebuild(kind: Any, entries: Sequence[PathEntry], children: list[Any]) -> Any:
    if kind == "none":
        return None
    if kind is dict:
        return dict(zip(entries, children))
    if kind is list:
        return children
    if kind is tuple:
        return tuple(children)
    return kind(*children)


def keystr(path: Path, root: str = "") -> str:
    """Render a path as Python-like indexing, e.g. ``params[1]['w']``."""
    parts = [root]
    for entry in path:
        if isinstance(entry, Field):
            parts.append(f".{entry}")
        elif isinstance(entry, str):
            parts.append(f"[{entry!r}]")
        else:
            parts.append(f"[{entry}]")
    return "".join(parts) or "<root>"


def _kind_name(kind: Any) -> str:
    if kind == "none":
        return "None"
    if kind == "leaf":
        return "a leaf"
    return str(kind.__name__)


def _describe_node(node: Any) -> str:
    got = _children(node)
    if got is None:
        shape = getattr(node, "shape", None)
        return f"a leaf of shape {shape}" if shape is not None else f"a leaf {node!r}"
    kind, entries, _ = got
    if kind is dict:
        return f"dict with keys {list(entries)}"
    if kind == "none":
        return "None"
    return f"{_kind_name(kind)} of length {len(entries)}"


def _mismatch(path: Path, names: Sequence[str], first: Any, other: Any, index: int) -> ValueError:
    where = keystr(path, names[0])
    return ValueError(
        f"tree: {names[0]} and {names[index]} differ in structure at {where}: "
        f"{names[0]} has {_describe_node(first)}, {names[index]} has {_describe_node(other)}"
    )


def _walk(
    f: Callable[..., Any], path: Path, nodes: list[Any], names: Sequence[str], with_path: bool
) -> Any:
    head = nodes[0]
    got = _children(head)
    if got is None:
        for i, other in enumerate(nodes[1:], start=1):
            if _children(other) is not None:
                raise _mismatch(path, names, head, other, i)
        return f(path, *nodes) if with_path else f(*nodes)
    kind, entries, kids = got
    columns = [kids]
    for i, other in enumerate(nodes[1:], start=1):
        other_got = _children(other)
        if other_got is None or other_got[0] != kind or other_got[1] != entries:
            raise _mismatch(path, names, head, other, i)
        columns.append(other_got[2])
    out = [
        _walk(f, (*path, entry), [col[j] for col in columns], names, with_path)
        for j, entry in enumerate(entries)
    ]
    return _rebuild(kind, entries, out)


def _names(count: int, names: Sequence[str] | None) -> Sequence[str]:
    if names is not None:
        return names
    return ["tree"] + [f"tree{i}" for i in range(1, count)]


def map(f: Callable[..., Any], tree: PyTree, *rest: PyTree,
        names: Sequence[str] | None = None) -> Any:
    """Apply ``f`` leaf-wise: ``f(leaf, *matching_leaves_of_rest)``.

    All trees must share ``tree``'s structure; otherwise a ``ValueError``
    names the first differing path (``names`` labels the trees in it).
    """
    return _walk(f, (), [tree, *rest], _names(1 + len(rest), names), False)


def map_with_path(f: Callable[..., Any], tree: PyTree, *rest: PyTree,
                  names: Sequence[str] | None = None) -> Any:
    """Like :func:`map`, with the leaf's path first: ``f(path, leaf, *others)``."""
    return _walk(f, (), [tree, *rest], _names(1 + len(rest), names), True)


def assert_same_structure(a: PyTree, b: PyTree, names: Sequence[str] = ("a", "b"),
                          *, shapes: bool = False) -> None:
    """Raise ``ValueError`` naming the first path where ``a`` and ``b`` differ.

    With ``shapes=True`` the leaves' shapes (and array-ness) must match too.
    """
    def check(path: Path, x: Any, y: Any) -> None:
        if shapes and np.shape(x) != np.shape(y):
            raise ValueError(
                f"tree: {names[0]} and {names[1]} differ at {keystr(path, names[0])}: "
                f"shape {np.shape(x)} vs {np.shape(y)}"
            )

    map_with_path(check, a, b, names=names)


def _flatten_into(node: Any, out: list[Any]) -> TreeDef:
    """Append ``node``'s leaves to ``out`` and return its structure (one pass).

    Exact types are tested first: this runs several times per training step.
    """
    kind = type(node)
    if kind is dict:
        keys = sorted(node) if all(type(k) is str for k in node) else _str_keys(node)
        return TreeDef(dict, tuple(keys), tuple(_flatten_into(node[k], out) for k in keys))
    if kind is tuple:
        return TreeDef(tuple, (), tuple([_flatten_into(c, out) for c in node]))
    if kind is list:
        return TreeDef(list, (), tuple([_flatten_into(c, out) for c in node]))
    if node is None:
        return _NONE
    if kind is np.ndarray:
        out.append(node)
        return _LEAF
    fields = _namedtuple_fields(kind) if isinstance(node, tuple) else None
    if fields is not None:
        return TreeDef(kind, fields, tuple([_flatten_into(c, out) for c in node]))
    got = _children(node)
    if got is None:
        out.append(node)
        return _LEAF
    kind, entries, kids = got
    names: tuple[str, ...] = () if kind in (list, tuple) else tuple(str(e) for e in entries)
    return TreeDef(kind, names, tuple(_flatten_into(k, out) for k in kids))


def _str_keys(node: dict[Any, Any]) -> list[str]:
    got = _children(node)  # raises the TypeError naming the bad key
    assert got is not None
    return [str(k) for k in got[1]]


def _leaves_into(node: Any, out: list[Any]) -> None:
    kind = type(node)
    if kind is np.ndarray:
        out.append(node)
    elif kind is tuple or kind is list or (  # the memo read inline: this runs per node
            isinstance(node, tuple)
            and (_FIELDS[kind] if kind in _FIELDS else _namedtuple_fields(kind)) is not None):
        for c in node:  # array children inline: most nodes are leaves, and this runs per step
            if type(c) is np.ndarray:
                out.append(c)
            else:
                _leaves_into(c, out)
    elif kind is dict and all(type(k) is str for k in node):
        for k in sorted(node):
            _leaves_into(node[k], out)
    elif node is None:
        return
    else:
        got = _children(node)
        if got is None:
            out.append(node)
        else:
            for c in got[2]:
                _leaves_into(c, out)


def _iter_leaves(node: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    got = _children(node)
    if got is None:
        yield path, node
        return
    _, entries, kids = got
    for entry, kid in zip(entries, kids):
        yield from _iter_leaves(kid, (*path, entry))


def leaves_with_path(tree: PyTree) -> list[tuple[Path, Any]]:
    """``[(path, leaf), ...]`` in traversal order (dict keys sorted)."""
    return list(_iter_leaves(tree, ()))


def leaves(tree: PyTree) -> list[Any]:
    """The leaves in traversal order."""
    out: list[Any] = []
    _leaves_into(tree, out)
    return out


def paired_leaves(a: PyTree, b: PyTree) -> tuple[list[Array], list[Array]] | None:
    """The leaves of two trees of one structure whose leaves are all arrays, in one walk.

    Returns ``(leaves(a), leaves(b))`` when ``a`` and ``b`` are built of the
    same lists, tuples, NamedTuples, str-keyed dicts and ``None`` with
    ``np.ndarray`` leaves at the same places; ``None`` otherwise (including
    trees of other node types, which :func:`flatten` handles), so a caller can
    take its general path, which also words the error. This is the fast check
    an optimizer makes every step; it builds no :class:`TreeDef`.
    """
    la: list[Array] = []
    lb: list[Array] = []
    return (la, lb) if _pair_into(a, b, la, lb) else None


def _pair_into(a: Any, b: Any, la: list[Array], lb: list[Array]) -> bool:
    kind = type(a)
    if kind is np.ndarray:
        if type(b) is not np.ndarray:
            return False
        la.append(a)
        lb.append(b)
        return True
    if type(b) is not kind:
        return False
    if kind is tuple or kind is list or (  # the memo read inline: this runs per node
            isinstance(a, tuple)
            and (_FIELDS[kind] if kind in _FIELDS else _namedtuple_fields(kind)) is not None):
        if len(a) != len(b):
            return False
        for x, y in zip(a, b):  # a loop, array pairs inline: this runs every step
            if type(x) is np.ndarray and type(y) is np.ndarray:
                la.append(x)
                lb.append(y)
            elif not _pair_into(x, y, la, lb):
                return False
        return True
    if kind is dict:
        keys = sorted(a) if all(type(k) is str for k in a) else None
        if keys is None or keys != sorted(b):
            return False
        for k in keys:  # noqa: SIM110
            if not _pair_into(a[k], b[k], la, lb):
                return False
        return True
    return a is None


def num_leaves(tree: PyTree) -> int:
    """How many leaves ``tree`` has."""
    return len(leaves(tree))


def structure(tree: PyTree) -> TreeDef:
    """The :class:`TreeDef` of ``tree``."""
    return _flatten_into(tree, [])


def flatten(tree: PyTree) -> tuple[list[Any], TreeDef]:
    """``(leaves, treedef)`` in one pass; :func:`unflatten` inverts it."""
    out: list[Any] = []
    treedef = _flatten_into(tree, out)
    return out, treedef


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
    ``lambda l: (K0(l[0], l[1]), (), K0(l[2], l[3]))`` for two dense layers
    around an activation (``K0`` the ``DenseParams`` class): the result is
    what :func:`_build` returns, node for node.
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
        return f"{name}({', '.join(kids)})"

    built: Callable[[Sequence[Any]], Any] = eval(f"lambda l: {expr(td)}", kinds)
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
