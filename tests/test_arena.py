"""Tests of nnfunc.optim._arena: flat buffers whose leaves an optimizer can recognise."""

from __future__ import annotations

import gc
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import tree, workspace
from nnfunc.optim import _arena


@given(sizes=st.lists(st.integers(0, 50), max_size=12), group_max=st.integers(1, 40))
def test_segments_tile_the_leaves_in_order(sizes: list[int], group_max: int) -> None:
    runs = _arena.segments(tuple(sizes), group_max)
    at = stop_at = 0
    for first, stop, lo, hi in runs:
        assert first == stop_at
        assert lo == at
        assert first < stop
        assert hi - lo == sum(sizes[first:stop])
        if stop - first > 1:  # only small leaves are grouped ...
            assert all(s < group_max for s in sizes[first:stop])
        at, stop_at = hi, stop
    assert stop_at == len(sizes)
    assert at == sum(sizes)
    # ... and a large leaf always stands alone
    assert all(stop - first == 1 for first, stop, _, _ in runs
               if any(s >= group_max for s in sizes[first:stop]))


@given(shapes=st.lists(st.lists(st.integers(0, 4), max_size=3).map(tuple), min_size=1,
                       max_size=6),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_allocate_lays_the_leaves_back_to_back(shapes: list[tuple[int, ...]],
                                               dtype: type) -> None:
    whole, leaves = _arena.allocate(shapes, np.dtype(dtype))
    assert type(whole) is np.ndarray
    assert whole.dtype == dtype
    if whole.size:  # the first leaf starts on a cache line (an empty one is nowhere)
        assert whole.ctypes.data % _arena.ALIGN == 0
    whole[:] = np.arange(whole.size)
    np.testing.assert_array_equal(_arena.flat(_arena.arena_of(leaves)), whole)
    assert [a.shape for a in leaves] == shapes
    assert all(type(a) is np.ndarray and a.flags.c_contiguous for a in leaves)
    np.testing.assert_array_equal(np.concatenate([a.ravel() for a in leaves]), whole)
    assert _arena.arena_of(leaves) is not None
    # plain views of the same places are not the arena's
    plain, at = [], 0
    for shape in shapes:
        size = math.prod(shape)
        plain.append(whole[at:at + size].reshape(shape))
        at += size
    assert all(np.shares_memory(a, b) for a, b in zip(plain, leaves) if a.size)
    assert _arena.arena_of(plain) is None


F32 = np.dtype(np.float32)
SHAPES = [(64, 32), (32,), (32, 10), (10,)]


def test_in_a_workspace_a_dropped_arena_comes_back_views_and_all() -> None:
    ws = workspace.Workspace()
    with workspace.active(ws):
        whole, leaves = _arena.allocate(SHAPES, F32)
        at, ids = whole.ctypes.data, [id(a) for a in leaves]
        held, held_leaves = _arena.allocate(SHAPES, F32)  # the first is still held
        assert held.ctypes.data != at
        del whole, leaves
        again, again_leaves = _arena.allocate(SHAPES, F32)
    assert again.ctypes.data == at
    assert [id(a) for a in again_leaves] == ids  # the very views: nothing rebuilt
    assert _arena.arena_of(again_leaves) is not None
    assert _arena.arena_of(held_leaves) is not None
    assert _arena.arena_of(again_leaves) is not _arena.arena_of(held_leaves)


@pytest.mark.parametrize("hold", ["leaf", "flat", "slice of a leaf", "tree", "memoryview"])
def test_an_arena_anything_of_which_is_held_is_never_handed_out_again(hold: str) -> None:
    ws = workspace.Workspace()
    with workspace.active(ws):
        whole, leaves = _arena.allocate(SHAPES, F32)
        whole[:] = 1.0
        keep: Any = {"leaf": leaves[2], "flat": whole, "slice of a leaf": leaves[0][3:],
                     "tree": ((leaves[0], leaves[1]), (leaves[2], leaves[3])),
                     "memoryview": memoryview(leaves[3])}[hold]
        del whole, leaves
        others = [_arena.allocate(SHAPES, F32) for _ in range(3)]
    for other, _ in others:
        other[:] = 2.0
    for a in tree.leaves(keep) if hold == "tree" else [np.asarray(keep)]:
        assert np.all(a == 1.0)


def test_arena_of_knows_exactly_its_own_views() -> None:
    _, leaves = _arena.allocate([(3, 2), (4,), (2,)], np.dtype(np.float32))
    arena = _arena.arena_of(leaves)
    assert arena is not None
    assert _arena.arena_of(list(leaves)) is arena
    others = [
        leaves[:2],  # not all of them
        [leaves[1], leaves[0], leaves[2]],  # out of order
        [leaves[0], leaves[1].copy(), leaves[2]],  # a copy in its place
        [leaves[0], leaves[1][:], leaves[2]],  # another view of the same memory
        [leaves[0], leaves[1], leaves[1]],  # one twice
        [np.zeros((3, 2), np.float32), leaves[1], leaves[2]],
        [],
    ]
    for other in others:
        assert _arena.arena_of(other) is None
    leaves[2].flags.writeable = False  # a read-only leaf may not be overwritten
    assert _arena.arena_of(leaves) is None


def test_an_arena_lives_as_long_as_its_views() -> None:
    _, leaves = _arena.allocate([(2,), (3,)], np.dtype(np.float64))
    first = leaves[0]
    del leaves, _
    gc.collect()
    assert first.base is not None
    assert len(first.base.views) == 2
    assert first.base.views[1]() is None  # the dropped view is gone, and with it the match
    assert _arena.arena_of([first]) is None


def test_zeros_like_groups_by_dtype_and_keeps_shapes() -> None:
    leaves = [np.ones((2, 2), np.float32), np.ones(3), np.ones(1, np.float32)]
    zeros = _arena.zeros_like(leaves)
    assert [(z.shape, z.dtype) for z in zeros] == [(a.shape, a.dtype) for a in leaves]
    assert all(not z.any() for z in zeros)
    assert _arena.arena_of([zeros[0], zeros[2]]) is not None  # the float32 pair
    assert _arena.arena_of([zeros[1]]) is not None


@given(n=st.one_of(st.integers(0, 300), st.integers(16_000, 70_000)),
       dtype=st.sampled_from([np.float16, np.float32, np.float64]))
def test_empty_is_the_size_asked_and_aligned_when_kept(n: int, dtype: type) -> None:
    with workspace.active(workspace.Workspace()):
        a = _arena.empty(n, np.dtype(dtype))
    assert a.shape == (n,)
    assert a.dtype == dtype
    assert a.flags.c_contiguous
    assert a.flags.writeable
    if a.nbytes >= workspace.MIN_BYTES:
        assert a.ctypes.data % _arena.ALIGN == 0


@pytest.mark.parametrize("hold", [None, 0, 1, 2])
def test_arenas_allocated_together_come_back_together(hold: int | None) -> None:
    # a pure update's params, m and v: one workspace group, free only once nothing
    # of any of the three is held
    ws = workspace.Workspace()
    with workspace.active(ws):
        first = _arena.allocate_together(SHAPES, F32, 3)
        starts = [whole.ctypes.data for whole, _ in first]
        assert len(set(starts)) == 3
        assert all(_arena.arena_of(leaves) is not None for _, leaves in first)
        assert all([a.shape for a in leaves] == SHAPES for _, leaves in first)
        keep = None if hold is None else first[hold][1][1]  # one leaf of one arena
        del first
        again = _arena.allocate_together(SHAPES, F32, 3)
    assert ([whole.ctypes.data for whole, _ in again] == starts) == (hold is None)
    if keep is not None:  # never overwritten by the group handed out instead
        keep[...] = 7.0
        for whole, _ in again:
            whole[:] = 0.0
        assert np.all(keep == 7.0)


def test_groups_of_arenas_are_kept_up_to_keep_over_count() -> None:
    ws = workspace.Workspace()
    with workspace.active(ws):
        held = [_arena.allocate_together(SHAPES, F32, 3) for _ in range(workspace.KEEP)]
    arena_bytes = sum(int(np.prod(s)) for s in SHAPES) * 4 + _arena.ALIGN  # with its padding
    assert len(held) == workspace.KEEP
    assert ws.nbytes() == (workspace.KEEP // 3) * 3 * arena_bytes
