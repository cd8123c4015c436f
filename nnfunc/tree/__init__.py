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

from nnfunc.tree._compiled import builder, immutable, reader, unflatten
from nnfunc.tree._math import (
    add,
    all_finite,
    astype,
    global_norm,
    leaves_norm,
    mask,
    scale,
    size,
    sub,
    vdot,
    where,
    zeros_like,
)
from nnfunc.tree._nodes import (
    Field,
    Path,
    TreeDef,
    assert_same_structure,
    flatten,
    keystr,
    leaves,
    leaves_with_path,
    map,
    map_with_path,
    num_leaves,
    paired_leaves,
    structure,
)

__all__ = [
    "Field", "Path", "TreeDef", "add", "all_finite", "assert_same_structure", "astype",
    "builder", "flatten", "global_norm", "immutable", "keystr", "leaves", "leaves_norm",
    "leaves_with_path", "map", "map_with_path", "mask", "num_leaves", "paired_leaves", "reader",
    "scale", "size", "structure", "sub", "unflatten", "vdot", "where", "zeros_like",
]
