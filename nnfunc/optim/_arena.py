"""Arenas: the leaves of a pytree laid back to back in one flat buffer.

An elementwise rule such as Adam's gives the same numbers whether it runs on
each leaf or once on all leaves laid end to end. For a model of many small
leaves the second is a dozen NumPy calls instead of a dozen per leaf, and for
any model it lets a donated update overwrite the old state in one pass.

An arena is a 1-D array that starts on a 64-byte boundary (see
:data:`ALIGN`) and remembers, by weak reference and in order, the leaf views
it handed out. :func:`arena_of` recognises a list of leaves that are exactly
those views (the same objects, still C-contiguous, writeable and of the
arena's dtype), so a caller can work on the flat buffer knowing it touches
those leaves and nothing else. Identity
makes the check exact and cheap (about 0.3 µs a leaf): a view's place in the
buffer never changes, and no other array can pass for one of the views.
Anything else — a user's own arrays, a tree rebuilt by ``tree.map``, a leaf
swapped for another — is simply not an arena, and the caller takes its
general path.

The arena holds only weak references, so it lives exactly as long as its
views do (each view's ``base`` is the arena).
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from nnfunc import workspace
from nnfunc.typing import Array

__all__ = ["ALIGN", "Dress", "Plan", "allocate", "allocate_together", "arena_of", "empty", "flat",
           "gather", "plan", "segments", "take", "zeros_like"]


class _Arena(np.ndarray):
    """A flat buffer and the views it handed out (never itself given to users).

    The leaves lie in ``[start, stop)`` (elements), which starts on an
    :data:`ALIGN` boundary; the few elements around it are padding.
    """

    views: tuple[weakref.ReferenceType[Array], ...]
    start: int
    stop: int


ALIGN = workspace.ALIGN
"""Bytes to which arenas (and kept workspace arrays) are aligned: a cache line,
and one AVX-512 vector. NumPy's own allocations are 16-byte aligned, and
Adam's kernel on arrays 16 bytes off a cache line ran 10-30% slower than on
aligned ones (measured on the benchmark's EPYC, 100k and 670k elements):
each wide load then straddles two lines."""


def _aligned_start(a: Array) -> int:
    """How many elements into ``a`` (fresh, contiguous) the first :data:`ALIGN`-byte
    boundary lies."""
    itemsize = a.dtype.itemsize
    if ALIGN % itemsize:
        return 0
    return (-a.ctypes.data % ALIGN) // itemsize


def empty(n: int, dtype: np.dtype[Any]) -> Array:
    """A 1-D scratch or result array of ``n`` elements from the active workspace
    (every optimizer update has one: see :mod:`nnfunc.workspace`), aligned to
    :data:`ALIGN` bytes when it is large enough to be kept."""
    if n * dtype.itemsize < workspace.MIN_BYTES:
        return np.empty(n, dtype)
    return workspace.empty((n,), dtype)


def allocate(shapes: Sequence[tuple[int, ...]], dtype: np.dtype[Any]) -> tuple[Array, list[Array]]:
    """An uninitialised arena for leaves of ``shapes``, aligned to :data:`ALIGN` bytes.

    Returns ``(flat, leaves)``: ``flat`` a plain 1-D view of the leaves laid
    end to end (the buffer without its alignment padding), ``leaves[i]`` a
    C-contiguous array of ``shapes[i]`` at its place in it. With a workspace
    active (every optimizer update has one) an arena of the same layout that
    nobody holds any more — no leaf, no view of its memory — comes back,
    views and all: a pure update's results of two steps ago, once the
    caller has replaced them (see :meth:`nnfunc.workspace.Workspace.reuse`).
    """
    return allocate_together(shapes, dtype, 1)[0]


def allocate_together(shapes: Sequence[tuple[int, ...]], dtype: np.dtype[Any],
                      count: int) -> list[tuple[Array, list[Array]]]:
    """``count`` arenas of one layout, as :func:`allocate` gives one, kept by the
    workspace as one group: they come back together, once nobody holds anything
    of any of them.

    A pure Adam update's new params, ``m`` and ``v``, which a training loop
    drops together (one search of the workspace instead of three). A caller
    who keeps only the params of a step keeps the other two from reuse with
    them (the workspace keeps at most ``KEEP // count`` such groups).
    """
    group = take(plan(shapes, dtype, count, None))
    return [(group[i], list(group[count + i])) for i in range(count)]


Dress = Callable[[list[tuple[Array, ...]]], tuple[Any, ...]]
"""What a dressed group (see :func:`plan`) makes once, when new, from its arenas' leaves."""


class Plan(NamedTuple):
    """How to take a group of arenas from the active workspace (see :func:`plan`)."""

    key: Any
    make: Callable[[], tuple[Any, ...]]
    keep: int
    shapes: tuple[tuple[int, ...], ...]
    dress: Dress | None


@functools.lru_cache(maxsize=64)
def _plan(layout: tuple[tuple[int, ...], ...], dtype: np.dtype[Any], count: int,
          dress: Dress | None) -> Plan:
    return Plan((_Arena, layout, dtype, count, dress),
                functools.partial(_new_group, layout, dtype, count, dress),
                max(1, workspace.KEEP // count), layout, dress)


def plan(shapes: Sequence[tuple[int, ...]], dtype: np.dtype[Any], count: int,
         dress: Dress | None) -> Plan:
    """The plan of a group of ``count`` arenas for leaves of ``shapes``, optionally
    *dressed*: with objects ``dress`` made from their leaves when the group was
    new, which come back with them (memoized per layout; keep it to skip even that).

    :func:`take` gives the group's members as one list: ``group[:count]`` the
    arenas' flat buffers, ``group[count:2 * count]`` their leaves, each arena's
    as one tuple (the same tuples each time the group comes back), then
    ``dress``'s objects, then the arenas and leaves themselves.

    The dressing is for a pure update's result trees, made once per group
    instead of once per step. Its objects are members of the workspace group,
    so holding any of them keeps the group in use; ``dress`` must return every
    object through which the leaves can be reached (each tree node, not only
    the roots), each unable to change (tuples), or a caller could keep a leaf,
    or see a change, through one the workspace does not watch. ``dress`` is
    part of the group's key: one function per kind of dressing, made once
    (e.g. memoized per tree structure).
    """
    return _plan(shapes if type(shapes) is tuple else tuple(shapes), dtype, count, dress)


def take(p: Plan) -> list[Any]:
    """A group of arenas laid out as :func:`plan` says (as a new list): a free one from
    the active workspace (see :meth:`nnfunc.workspace.Workspace.reuse`), else a new one."""
    return workspace.reuse(p.key, p.make, keep=p.keep)


def _new_group(shapes: tuple[tuple[int, ...], ...], dtype: np.dtype[Any], count: int,
               dress: Dress | None) -> tuple[Any, ...]:
    """``count`` fresh arenas laid out as :func:`plan` says."""
    arenas = [_new_arena(shapes, dtype) for _ in range(count)]
    lists = [a[2:] for a in arenas]  # tuples: handed out again and again, so unchangeable
    members: list[Any] = [a[1] for a in arenas]
    members.extend(lists)
    if dress is not None:
        members.extend(dress(lists))
    for a in arenas:
        members.append(a[0])
        members.extend(a[2:])
    return tuple(members)


def _new_arena(shapes: tuple[tuple[int, ...], ...], dtype: np.dtype[Any]) -> tuple[Any, ...]:
    """A fresh arena: ``(arena, flat, *leaves)``."""
    total, offsets = _layout(shapes, dtype.itemsize)
    arena = np.ndarray.__new__(_Arena, (total + ALIGN // dtype.itemsize,), dtype)
    arena.start = start = _aligned_start(arena)
    arena.stop = start + total
    skip = start * dtype.itemsize
    leaves = [np.ndarray(shape, dtype, buffer=arena, offset=skip + at)
              for shape, at in zip(shapes, offsets)]
    arena.views = tuple([weakref.ref(a) for a in leaves])
    return (arena, flat(arena), *leaves)


@functools.lru_cache(maxsize=256)
def _layout(shapes: tuple[tuple[int, ...], ...], itemsize: int) -> tuple[int, tuple[int, ...]]:
    """Total elements and each leaf's byte offset (memoized: a model's shapes repeat every step)."""
    offsets = []
    total = 0
    for shape in shapes:
        offsets.append(total * itemsize)
        total += math.prod(shape)
    return total, tuple(offsets)


def zeros_like(leaves: Sequence[Array]) -> list[Array]:
    """Zero arrays shaped like ``leaves``, as views of one arena per dtype."""
    out: list[Array] = list(leaves)
    for dtype in {a.dtype for a in leaves}:
        idx = [i for i, a in enumerate(leaves) if a.dtype == dtype]
        whole, views = allocate([leaves[i].shape for i in idx], dtype)
        whole.fill(0)
        for i, view in zip(idx, views):
            out[i] = view
    return out


def arena_of(leaves: Sequence[Array]) -> Any:
    """The arena whose views are exactly ``leaves``, in order, all writeable; else ``None``.

    Compare two results with ``is`` to tell arenas apart; ``flat(arena)``
    gives the buffer to compute on.
    """
    if not leaves:
        return None
    arena = leaves[0].base
    if type(arena) is not _Arena:
        return None
    views = arena.views
    if len(views) != len(leaves) or not arena.flags.writeable:
        return None
    dtype = arena.dtype
    for ref, leaf in zip(views, leaves):
        if ref() is not leaf or leaf.dtype != dtype:
            return None
        flags = leaf.flags
        if not (flags.writeable and flags.c_contiguous):
            return None
    return arena


def flat(arena: Any) -> Array:
    """A plain 1-D view of the leaves of an arena from :func:`arena_of`, laid end to end."""
    return arena[arena.start:arena.stop].view(np.ndarray)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=256)
def segments(sizes: tuple[int, ...], group_max: int) -> tuple[tuple[int, int, int, int], ...]:
    """Split leaves of ``sizes`` into runs ``(first, stop, lo, hi)`` for a flat kernel.

    Each leaf of at least ``group_max`` elements is a run of its own (it can
    be used where it lies); consecutive smaller leaves form one run (to be
    concatenated). ``lo:hi`` is the run's place in the leaves laid end to end.
    Memoized: a model's sizes give the same runs every step.
    """
    runs: list[tuple[int, int, int, int]] = []
    start = lo = offset = 0
    for i, size in enumerate(sizes):
        if size >= group_max:
            if start < i:
                runs.append((start, i, lo, offset))
            runs.append((i, i + 1, offset, offset + size))
            start, lo = i + 1, offset + size
        offset += size
    if start < len(sizes):
        runs.append((start, len(sizes), lo, offset))
    return tuple(runs)


def gather(leaves: Sequence[Array], run: tuple[int, int, int, int], whole: Array | None) -> Array:
    """Run ``run`` of ``leaves`` as one 1-D array: a slice of ``whole`` (their
    arena's flat buffer) when given, else the leaf itself (raveled) or a
    fresh concatenation."""
    first, stop, lo, hi = run
    if whole is not None:
        return whole[lo:hi]
    if stop == first + 1:
        return leaves[first].reshape(-1)
    return np.concatenate(leaves[first:stop], axis=None, out=empty(hi - lo, leaves[first].dtype))
