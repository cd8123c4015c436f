"""Workspaces: a step's arrays, reused from one step to the next once nobody holds them.

A training step allocates the same arrays every time: each layer's output
and cotangent, the grads, the optimizer's results. For a model of a few
MiB each fresh block costs its page faults — the kernel maps and zeroes
every 4 KiB page the step then writes (about 7 µs a page on the benchmark's
VM: a medium MLP's pure step took ~800 of them, 5.6 ms, beside a 5 ms floor)
— unless the C allocator happens to keep freed memory (what
:func:`nnfunc.allocator.tune` forces, for the whole process).

A :class:`Workspace` keeps the arrays it handed out. A request for a shape
and dtype returns one of them that nothing outside the workspace
references any more, else a fresh one (which it keeps for next time, up to
:data:`KEEP` per shape and dtype). Whether anything still references an
array, CPython's reference count tells exactly: every array made from it —
a slice, a reshape, a transposed view, a ``memoryview`` — holds a reference
to it. So reuse is safe whatever the caller does with what it got: grads a
user kept, params held in an optimizer state, an output stored in a list
are never handed out again while they are held. (The check also counts
another thread's reference, and a lock makes finding a free array and
taking it one step, so two threads sharing a workspace never get the same
array.)

``train_step``, ``value_and_grad``, ``fit`` and the optimizers each own a
workspace and make it *active* for the length of a call (:func:`active`);
one already active (a ``train_step`` calling its optimizer) serves the
inner calls. A layer opts in by asking :func:`empty`, :func:`out` (an
``out=`` argument) or :func:`matmul` for its outputs: with no workspace
active they are ``np.empty``, NumPy's own allocation and ``@``,
so a layer that never asks, or a call outside a step, works as before.
Nothing is process-wide: a workspace's memory goes when the step that owns
it does (``fit`` returns, a ``train_step`` is dropped), except the arrays
still in use, which are ordinary arrays.

>>> import numpy as np
>>> ws = Workspace()
>>> with active(ws):
...     a = empty((256, 256), np.float32)
...     address = a.ctypes.data
...     b = empty((256, 256), np.float32)   # a is still held: other memory
...     del a
...     c = empty((256, 256), np.float32)   # nothing holds a any more: its memory
>>> b.ctypes.data != address, c.ctypes.data == address
(True, True)
"""

from __future__ import annotations

import contextvars
import math
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache, partial
from typing import Any

import numpy as np

from nnfunc.typing import Array

__all__ = ["ALIGN", "KEEP", "MIN_BYTES", "Workspace", "active", "column_sums", "empty", "matmul",
           "out"]

KEEP = 32
"""Arrays kept per shape and dtype. A pure Adam step of the large benchmark
MLP has 14 arrays of its (1024, 1024) weights' shape alive at once (grads,
two generations of params, ``m`` and ``v``) and 12 of its (512, 1024)
activations' (8 left it 1,370 page faults a step under glibc's fixed
thresholds; 32, none). Past this, requests get plain ``np.empty`` arrays, so
a caller that holds on to every step's results never makes the workspace
grow without bound."""


MIN_BYTES = 1 << 16
"""Smaller arrays are plain ``np.empty``: the C allocator serves them from its
free lists without a page fault, faster than the workspace's bookkeeping
(about 1 µs a request), which matters on a model of a few small layers."""


class Workspace:
    """Arrays handed out and kept for reuse, by shape and dtype.

    The only state is the kept arrays themselves; what a call computes does
    not depend on it (every array is written before it is read).
    """

    __slots__ = ("_groups", "_lock")

    def __init__(self) -> None:
        self._groups: dict[Any, list[list[Any]]] = {}  # key -> [group, its free counts]
        # finding a free group and taking a reference to it, as one step for threads
        self._lock = threading.Lock()

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Array:
        """An uninitialised C-contiguous array nothing else references."""
        if math.prod(shape) * dtype.itemsize < MIN_BYTES:
            return np.empty(shape, dtype)
        array: Array = self.reuse((shape, dtype), partial(_aligned, shape, dtype))[1]
        return array

    def reuse(self, key: Any, make: Callable[[], tuple[Any, ...]], *,
              keep: int = KEEP) -> list[Any]:
        """A kept group of objects, filed under ``key``, none of which anything
        outside the workspace references any more; else ``make()``'s new group
        (kept for next time, up to ``keep`` per key).

        What :meth:`empty` hands out is such a group (a byte buffer and the
        aligned array viewing it); so is an optimizer's arena with its flat
        and leaf views (which must have the arena as their ``base``). A group
        is free when each member's reference count is the one it had when
        the group was new and nobody else held it: e.g. a leaf view a caller
        still holds, or any array made from the buffer, keeps the whole
        group in use. Returns the members as a new list (made
        before another thread can find the group free).
        """
        with self._lock:
            kept = self._groups.get(key)
            if kept is None:
                kept = self._groups[key] = []
            for i, (group, counts) in enumerate(kept):
                if _is_free(group, counts):
                    kept.append(kept.pop(i))  # last in the search: the free ones stay first
                    return list(group)
            group = make()
            if len(kept) < keep:
                entry: list[Any] = [group, None]
                kept.append(entry)
                entry[1] = _counts(group)
            return list(group)

    def nbytes(self) -> int:
        """Bytes of memory kept (in use or free): of every kept array that owns its
        memory, alignment padding included."""
        return sum(int(m.nbytes) for kept in self._groups.values() for entry in kept
                   for m in entry[0] if isinstance(m, np.ndarray) and m.base is None)


ALIGN = 64
"""Bytes to which every workspace array is aligned: a cache line, and one
AVX-512 vector (NumPy aligns to 16; Adam's kernel ran 10-30% slower on
arrays 16 bytes off a cache line)."""


def _aligned(shape: tuple[int, ...], dtype: np.dtype[Any]) -> tuple[Array, Array]:
    """A fresh byte buffer and an array of ``shape`` in it starting on an
    :data:`ALIGN` boundary, a view which every array made from it also
    references (NumPy points ``base`` at the memory's owner)."""
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw, raw[start:start + nbytes].view(dtype).reshape(shape)


def _counts(group: tuple[Any, ...]) -> list[int]:
    """The reference counts of a group's members: what :meth:`Workspace.reuse` keeps
    for a new group and :func:`_is_free` compares (one way of counting for both, so
    each member carries the same temporary references)."""
    return list(map(sys.getrefcount, group))


def _is_free(group: tuple[Any, ...], counts: list[int]) -> bool:
    """Whether each member's reference count is back to ``counts``, counted by
    :func:`_counts` (all of them at C speed: 0.7 µs for an 18-member group, against
    1.1 µs for a Python loop that stops at the first one in use)."""
    return _counts(group) == counts


_ACTIVE: contextvars.ContextVar[Workspace | None] = contextvars.ContextVar(
    "nnfunc_workspace", default=None)


def current() -> Workspace | None:
    """The active workspace, if any."""
    return _ACTIVE.get()


def enter(ws: Workspace) -> contextvars.Token[Workspace | None] | None:
    """Make ``ws`` active unless one already is; pass the result to :func:`leave`."""
    if _ACTIVE.get() is not None:
        return None
    return _ACTIVE.set(ws)


def leave(token: contextvars.Token[Workspace | None] | None) -> None:
    """Undo :func:`enter`."""
    if token is not None:
        _ACTIVE.reset(token)


@contextmanager
def active(ws: Workspace) -> Iterator[Workspace]:
    """Serve :func:`empty` from ``ws`` (unless a workspace is already active) in the block."""
    token = enter(ws)
    try:
        yield ws
    finally:
        leave(token)


def empty(shape: tuple[int, ...], dtype: Any) -> Array:
    """A fresh-to-the-caller uninitialised array: from the active workspace, else ``np.empty``.

    What a layer's ``forward``/``backward`` asks for its outputs, to be
    filled with ``out=``. The caller owns it exactly as it would own
    ``np.empty(shape, dtype)``.
    """
    ws = _ACTIVE.get()
    if ws is None:
        return np.empty(shape, dtype)
    return ws.empty(shape, dtype if isinstance(dtype, np.dtype) else np.dtype(dtype))


def reuse(key: Any, make: Callable[[], tuple[Any, ...]], *, keep: int = KEEP) -> list[Any]:
    """:meth:`Workspace.reuse` of the active workspace, else ``make()``'s members."""
    ws = _ACTIVE.get()
    if ws is None:
        return list(make())
    return ws.reuse(key, make, keep=keep)


def out(like: Array, dtype: Any = None) -> Array | None:
    """An ``out=`` argument for a ufunc whose result is shaped like ``like``: an
    array from the active workspace, or ``None`` (NumPy then allocates, as
    without ``out=``) when none is active or ``like`` is under :data:`MIN_BYTES`.

    ``dtype`` defaults to ``like``'s. E.g. ``np.maximum(x, 0, out=out(x))``.
    """
    if like.nbytes < MIN_BYTES:
        return None
    ws = _ACTIVE.get()
    if ws is None:
        return None
    return ws.empty(like.shape, like.dtype if dtype is None else np.dtype(dtype))


def matmul(a: Array, b: Array) -> Array:
    """``a @ b`` for 2-D ``a`` and ``b``, written into workspace memory (same bits as ``@``).

    Products under :data:`MIN_BYTES`, mixed dtypes, other ranks and calls
    outside a workspace take plain ``@`` (and its errors).
    """
    if a.ndim == 2 and b.ndim == 2:
        rows, cols = a.shape[0], b.shape[1]
        if (rows * cols * a.itemsize >= MIN_BYTES and a.dtype is b.dtype
                and a.shape[1] == b.shape[0]):
            ws = _ACTIVE.get()
            if ws is not None:
                return np.matmul(a, b, out=ws.empty((rows, cols), a.dtype))
    return a @ b


@lru_cache(maxsize=32)
def _ones(n: int, dtype: np.dtype[Any]) -> Array:
    ones = np.ones(n, dtype)
    ones.flags.writeable = False
    return ones


def column_sums(a: Array) -> Array:
    """``Σ_i a[i, :]`` of a 2-D array: a bias's gradient from ``dy`` laid out as rows.

    For float32 and float64 it is the BLAS product ``1ᵀ a`` (``np.dot`` with a
    cached vector of ones), which ran 1.9× faster than
    ``np.add.reduce(a, axis=0)`` on a (32, 10) float32 array and 2.3× faster
    on a (256, 512) one: the reduction walks the rows one at a time. The same
    sum, rounded in another order. Other dtypes take ``np.add.reduce``.
    """
    sums: Array = (np.dot(_ones(a.shape[0], a.dtype), a) if a.dtype.char in "fd"
                   else np.add.reduce(a, axis=0))
    return sums

