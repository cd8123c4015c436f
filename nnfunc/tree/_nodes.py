"""Pytree nodes: structures (:class:`TreeDef`), paths, flattening and mapping."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from nnfunc.typing import Array, PyTree


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
