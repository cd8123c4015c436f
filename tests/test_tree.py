"""Tests of nnfunc.tree."""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import tree


class Pair(NamedTuple):
    w: Any
    b: Any


def _sample() -> Any:
    return [Pair(np.ones((2, 3)), np.zeros(3)), (), {"z": np.arange(2.0), "a": None}]


def test_flatten_order_is_sorted_dict_keys_and_field_order() -> None:
    paths = [tree.keystr(p, "params") for p, _ in tree.leaves_with_path(_sample())]
    assert paths == ["params[0].w", "params[0].b", "params[2]['z']"]


def test_flatten_unflatten_roundtrip_keeps_namedtuple_type() -> None:
    leaves, treedef = tree.flatten(_sample())
    rebuilt = tree.unflatten(treedef, leaves)
    assert isinstance(rebuilt[0], Pair)
    assert tree.structure(rebuilt) == treedef
    assert rebuilt[2]["a"] is None


def test_unflatten_wrong_count_names_expected_and_actual() -> None:
    _, treedef = tree.flatten(_sample())
    with pytest.raises(ValueError, match=r"must number 3.*got 2"):
        tree.unflatten(treedef, [1, 2])


def test_mismatch_names_the_path() -> None:
    a = [Pair(np.ones(2), np.ones(2)), {"w": np.ones(1)}]
    b = [Pair(np.ones(2), np.ones(2)), {"v": np.ones(1)}]
    with pytest.raises(ValueError, match=r"params\[1\].*keys \['w'\].*keys \['v'\]"):
        tree.map(np.add, a, b, names=("params", "grads"))


def test_shape_mismatch_named() -> None:
    with pytest.raises(ValueError, match=r"a\[0\]\.w: shape \(2,\) vs \(3,\)"):
        tree.assert_same_structure([Pair(np.ones(2), 1.0)], [Pair(np.ones(3), 1.0)], shapes=True)


def test_non_string_dict_key_is_type_error() -> None:
    with pytest.raises(TypeError, match="dict keys must be str"):
        tree.leaves({1: np.ones(1)})


def test_mask_by_leaf_name() -> None:
    m = tree.mask(_sample(), "w")
    assert tree.leaves(m) == [True, False, False]
    m2 = tree.mask(_sample(), lambda path, leaf: np.ndim(leaf) == 1)
    assert tree.leaves(m2) == [False, True, True]


arrays = st.integers(1, 4).flatmap(
    lambda n: st.lists(st.floats(-10, 10), min_size=n, max_size=n).map(np.array)
)
trees = st.recursive(
    arrays,
    lambda kids: st.lists(kids, max_size=3)
    | st.tuples(kids, kids)
    | st.dictionaries(st.sampled_from("abcd"), kids, max_size=3),
    max_leaves=8,
)


@given(trees)
def test_arithmetic_matches_flat_numpy(t: Any) -> None:
    flat = np.concatenate([np.ravel(x) for x in tree.leaves(t)] + [np.zeros(0)])
    assert tree.global_norm(t) == pytest.approx(float(np.linalg.norm(flat)), rel=1e-12, abs=1e-12)
    assert tree.vdot(t, t) == pytest.approx(float(flat @ flat), rel=1e-12, abs=1e-12)
    doubled = tree.add(t, t)
    assert tree.structure(doubled) == tree.structure(t)
    for x, y in zip(tree.leaves(doubled), tree.leaves(tree.scale(t, 2.0))):
        np.testing.assert_array_equal(x, y)
    for z in tree.leaves(tree.sub(t, t)):
        assert not z.any()
    assert tree.size(t) == flat.size


@given(trees)
def test_structure_roundtrip(t: Any) -> None:
    leaves, td = tree.flatten(t)
    assert tree.structure(tree.unflatten(td, leaves)) == td
    assert tree.num_leaves(t) == len(leaves)


class _Pair(NamedTuple):
    w: Any
    b: Any


rich_trees = st.recursive(
    arrays | st.none(),
    lambda kids: st.lists(kids, max_size=3)
    | st.tuples(kids, kids)
    | st.builds(_Pair, kids, kids)
    | st.dictionaries(st.sampled_from(["a", "b'c", 'd"e', "f\\g"]), kids, max_size=3),
    max_leaves=10,
)


def _same_nodes(a: Any, b: Any) -> bool:
    """Node for node the same types, keys (dicts in any order) and (identical) leaves."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return sorted(a) == sorted(b) and all(_same_nodes(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_nodes(x, y) for x, y in zip(a, b))
    return a is b


@given(rich_trees)
def test_unflatten_rebuilds_every_node_from_the_very_leaves(t: Any) -> None:
    leaves, td = tree.flatten(t)
    rebuilt = tree.unflatten(td, leaves)
    assert _same_nodes(rebuilt, t) or (t is None and rebuilt is None)
    assert all(x is y for x, y in zip(tree.leaves(rebuilt), leaves))


class _Doubled(_Pair):
    """A NamedTuple subclass with its own ``__new__``: unflatten must call it."""

    def __new__(cls, w: Any, b: Any) -> _Doubled:
        return super().__new__(cls, 2 * w, b)


_Plain = collections.namedtuple("_Plain", "x y")


class _PlainChild(_Plain):
    pass


def test_unflatten_calls_a_namedtuple_subclass_own_constructor() -> None:
    # builders make stock NamedTuples with tuple.__new__; a class with its own __new__
    # must still be built through it
    doubled = tree.unflatten(tree.structure(_Doubled(1, None)), [3])
    assert type(doubled) is _Doubled
    assert doubled == (6, None)
    for kind in (_Pair, _Plain, _PlainChild):
        leaves = [np.ones(1), np.zeros(2)]
        built = tree.unflatten(tree.structure(kind(0, 0)), leaves)
        assert type(built) is kind
        assert built[0] is leaves[0]
        assert built[1] is leaves[1]


@pytest.mark.parametrize("depth", [1, 39, 41, 300])
def test_unflatten_of_deep_structures(depth: int) -> None:
    t: Any = np.ones(2)
    for i in range(depth):
        t = [t, np.full(1, float(i))] if i % 2 else _Pair(t, None)
    leaves, td = tree.flatten(t)
    rebuilt = tree.unflatten(td, leaves)
    assert _same_nodes(rebuilt, t)


@given(trees, trees)
def test_paired_leaves_agrees_with_flatten(a: Any, b: Any) -> None:
    # same structure: both leaf lists, exactly flatten's; otherwise None, never a wrong pairing
    for other in (b, tree.map(np.copy, a)):
        got = tree.paired_leaves(a, other)
        same = tree.structure(a) == tree.structure(other)
        assert (got is not None) == same
        if got is not None:
            assert [x is y for x, y in zip(got[0], tree.leaves(a))] == [True] * len(got[0])
            assert [x is y for x, y in zip(got[1], tree.leaves(other))] == [True] * len(got[1])
            assert len(got[0]) == tree.num_leaves(a)


def test_paired_leaves_namedtuples_and_other_nodes() -> None:
    a = _sample()
    got = tree.paired_leaves(a, tree.map(np.copy, a))
    assert got is not None
    assert len(got[0]) == len(got[1]) == 3
    assert tree.paired_leaves(a, [tuple(a[0]), (), a[2]]) is None  # a tuple is not a Pair
    assert tree.paired_leaves({1: np.ones(1)}, {1: np.ones(1)}) is None  # flatten's job
    assert tree.paired_leaves([np.ones(1)], [1.0]) is None  # a non-array leaf


@given(rich_trees, rich_trees)
def test_reader_gives_the_leaves_exactly_for_the_structure(a: Any, b: Any) -> None:
    read = tree.reader(tree.structure(a))
    got = read(a)
    assert got is not None
    assert len(got) == tree.num_leaves(a)
    assert all(x is y for x, y in zip(got, tree.leaves(a)))
    other = read(b)  # another tree: its leaves if (and only if) it has a's structure
    assert (other is not None) == (tree.structure(b) == tree.structure(a))
    if other is not None:
        assert all(x is y for x, y in zip(other, tree.leaves(b)))


def test_reader_refuses_near_misses() -> None:
    t = {"a": _Pair(np.ones(2), None), "b": [np.ones(1), ()]}
    read = tree.reader(tree.structure(t))
    assert read(t) is not None
    near = [
        {"a": _Pair(np.ones(2), None)},  # a key missing
        {"a": _Pair(np.ones(2), None), "c": [np.ones(1), ()]},  # another key, same count
        {"a": (np.ones(2), None), "b": [np.ones(1), ()]},  # a tuple is not a _Pair
        {"a": Pair(np.ones(2), None), "b": [np.ones(1), ()]},  # nor another NamedTuple
        {"a": _Pair(np.ones(2), np.ones(1)), "b": [np.ones(1), ()]},  # a leaf for None
        {"a": _Pair(np.ones(2), None), "b": [np.ones(1), (), ()]},  # a longer list
        {"a": _Pair(np.ones(2), None), "b": (np.ones(1), ())},  # a tuple for the list
        {"a": _Pair(1.0, None), "b": [np.ones(1), ()]},  # a leaf that is not an array
        {"a": _Pair([np.ones(2)], None), "b": [np.ones(1), ()]},  # a node for a leaf
    ]
    assert [read(x) for x in near] == [None] * len(near)


@pytest.mark.parametrize("depth", [1, 39, 41, 300])
def test_reader_of_deep_structures(depth: int) -> None:
    t: Any = np.ones(2)
    for i in range(depth):
        t = [t, np.full(1, float(i))] if i % 2 else _Pair(t, None)
    read = tree.reader(tree.structure(t))
    got = read(t)
    assert got is not None
    assert all(x is y for x, y in zip(got, tree.leaves(t)))
    assert read([t]) is None
    assert read(np.ones(2)) is None


@pytest.mark.parametrize("fn", [tree.builder, tree.immutable, tree.reader,
                                lambda td: tree.unflatten(td, [])])
@pytest.mark.parametrize("bad", [None, [1, 2], "(*, *)"])
def test_treedef_functions_refuse_what_is_not_a_treedef(fn: Any, bad: Any) -> None:
    with pytest.raises(TypeError, match=r"tree\.\w+: treedef must be a TreeDef .*got "):
        fn(bad)
