"""Property tests over the registry of every layer, activation and combinator."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import random, tree
from nnfunc.layer import apply_with_state, is_stateful, uses_key, vjp_with_state
from nnfunc.testing import check_grad
from nnfunc.testing.strategies import LayerCase, layer_inputs

from registry import LAYERS, Entry

ids = [e.id for e in LAYERS]


def _case(entry: Entry, dtype: Any = np.float64) -> st.SearchStrategy[LayerCase]:
    cases = layer_inputs(entry.layer, in_shapes=entry.in_shapes, dtype=dtype,
                         kinks=entry.kinks, train=entry.train, ids=entry.ids)
    x_map = entry.x_map
    return cases if x_map is None else cases.map(lambda c: c._replace(x=x_map(c.x)))


def _state(entry: Entry, case: LayerCase) -> Any:
    """The case's model state, ``()`` for a stateless layer (as apply_with_state takes)."""
    return case.state if is_stateful(entry.layer) else ()


def _apply(entry: Entry, case: LayerCase) -> tuple[Any, Any]:
    """``(y, new_state)`` for either kind of layer."""
    return apply_with_state(entry.layer, case.params, case.x, _state(entry, case),
                            key=case.key, train=case.train)


def _grad(entry: Entry, case: LayerCase) -> tuple[Any, Any]:
    extra = {"state": case.state} if is_stateful(entry.layer) else {}
    return entry.layer.grad(case.params, case.x, case.dy, key=case.key, train=case.train,
                            **extra)


def _shape_tree(x: Any) -> Any:
    return tree.map(np.shape, x) if isinstance(x, tuple) else np.shape(x)


def _batched(shape: Any, batch: int) -> Any:
    if all(isinstance(d, int) for d in shape):
        return (batch, *shape)
    return tuple(_batched(s, batch) for s in shape)


def _copy(t: Any) -> Any:
    return tree.map(lambda a: np.array(a, copy=True), t)


def _assert_tree_equal(a: Any, b: Any) -> None:
    tree.map(lambda x, y: np.testing.assert_array_equal(x, y), a, b)


@pytest.mark.parametrize("entry", LAYERS, ids=ids)
@given(data=st.data())
def test_grad_matches_finite_differences(entry: Entry, data: st.DataObject) -> None:
    case = data.draw(_case(entry))
    extra = {"state": case.state} if is_stateful(entry.layer) else {}
    report = check_grad(entry.layer, case.params, case.x, dy=case.dy, key=case.key,
                        train=case.train, **extra)
    assert report.max_error <= 1e-6
    assert report.transpose_error <= 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("entry", LAYERS, ids=ids)
@given(data=st.data())
def test_shapes_and_dtype_are_kept(entry: Entry, dtype: Any, data: st.DataObject) -> None:
    case = data.draw(_case(entry, dtype))
    y, new_state = _apply(entry, case)
    batch = tree.leaves(case.x)[0].shape[0]
    assert _shape_tree(y) == _batched(case.out_shape, batch)
    dparams, dx = _grad(entry, case)
    for leaf in [*tree.leaves(y), *tree.leaves(dparams), *tree.leaves(dx),
                 *tree.leaves(new_state)]:
        assert leaf.dtype == dtype
        assert np.isfinite(leaf).all()  # finite inputs give finite results
    tree.assert_same_structure(case.params, dparams, shapes=True)
    tree.assert_same_structure(_state(entry, case), new_state, shapes=True)
    if entry.ids is None:
        assert _shape_tree(dx) == _shape_tree(case.x)
    else:  # integer ids get no gradient
        assert dx is None


@pytest.mark.parametrize("entry", LAYERS, ids=ids)
@given(data=st.data())
def test_inputs_are_not_mutated(entry: Entry, data: st.DataObject) -> None:
    case = data.draw(_case(entry))
    before = _copy((case.params, case.x, case.dy, case.key, case.state))
    _apply(entry, case)
    _grad(entry, case)
    _, _, pullback = vjp_with_state(entry.layer, case.params, case.x, _state(entry, case),
                                    key=case.key, train=case.train)
    pullback(case.dy)
    _assert_tree_equal(before, (case.params, case.x, case.dy, case.key, case.state))


@pytest.mark.parametrize("entry", LAYERS, ids=ids)
@given(data=st.data())
def test_vjp_agrees_with_apply_and_grad(entry: Entry, data: st.DataObject) -> None:
    case = data.draw(_case(entry))
    y, new_state, pullback = vjp_with_state(entry.layer, case.params, case.x,
                                            _state(entry, case), key=case.key,
                                            train=case.train)
    _assert_tree_equal((y, new_state), _apply(entry, case))
    _assert_tree_equal(pullback(case.dy), _grad(entry, case))


@pytest.mark.parametrize("entry", LAYERS, ids=ids)
@given(data=st.data())
def test_deterministic_by_key(entry: Entry, data: st.DataObject) -> None:
    case = data.draw(_case(entry))
    _assert_tree_equal(_apply(entry, case), _apply(entry, case))
    seed = data.draw(st.integers(0, 2**32 - 1))
    _, p1 = entry.layer.init(random.key(seed), case.in_shape)
    _, p2 = entry.layer.init(random.key(seed), case.in_shape)
    _assert_tree_equal(p1, p2)
    if entry.layer.init_with_state is not None:  # the same params as init, and a state
        _, p3, s3 = entry.layer.init_with_state(random.key(seed), case.in_shape)
        _, _, s4 = entry.layer.init_with_state(random.key(seed), case.in_shape)
        _assert_tree_equal(p1, p3)
        _assert_tree_equal(s3, s4)


@pytest.mark.parametrize("entry", [e for e in LAYERS if not uses_key(e.layer)],
                         ids=lambda e: e.id)
@given(data=st.data())
def test_a_keyless_layer_gives_the_same_results_with_any_key_or_none(
        entry: Entry, data: st.DataObject) -> None:
    # uses_key false is a promise (combinators and fit then derive no keys for the
    # layer): hold it to it, through apply and grad
    case = data.draw(_case(entry))
    other = case._replace(key=random.key(data.draw(st.integers(0, 2**32 - 1))))
    for variant in (case._replace(key=None), other):
        _assert_tree_equal(_apply(entry, case), _apply(entry, variant))
        _assert_tree_equal(_grad(entry, case), _grad(entry, variant))


def test_only_layers_with_dropout_use_their_key() -> None:
    keyed = sorted(e.id for e in LAYERS if uses_key(e.layer))
    assert keyed == sorted(e.id for e in LAYERS if "dropout" in e.id)
    assert {e.id for e in LAYERS if e.random} <= set(keyed)


def test_a_layer_put_together_from_a_keyless_ones_parts_uses_its_key() -> None:
    from nnfunc.layer import Layer
    from nnfunc.layers import dense, dropout

    d = dense(3)
    assert not uses_key(d._replace(name="renamed"))
    assert uses_key(Layer(d.init, d.apply, d.grad))  # nnfunc.vjp would call this grad
    assert uses_key(Layer(d.init, d.apply, d.grad, dropout(0.5).vjp))


@pytest.mark.parametrize("value", [0, "no", None])
def test_uses_key_must_be_a_bool(value: Any) -> None:
    from nnfunc.layer import from_forward_backward, stateful_from_forward_backward

    parts = (lambda k, s: (s, ()), lambda p, x, k, t: (x, None), lambda p, r, dy, n: ((), dy))
    with pytest.raises(TypeError, match=r"from_forward_backward: uses_key must be a bool"):
        from_forward_backward("l", *parts, uses_key=value)
    with pytest.raises(TypeError, match=r"stateful_from_forward_backward: uses_key must be a bool"):
        stateful_from_forward_backward("l", lambda k, s: (s, (), ()), lambda p, st, x, k, t:
                                       (x, st, None), parts[2], uses_key=value)


@pytest.mark.parametrize("entry", [e for e in LAYERS if e.random], ids=lambda e: e.id)
def test_different_keys_give_different_masks(entry: Entry) -> None:
    x = random.normal(random.key(2), (64, 6), np.float32)
    state: Any = ()
    if entry.layer.init_with_state is not None:
        _, params, state = entry.layer.init_with_state(random.key(0), (6,))
    else:
        _, params = entry.layer.init(random.key(0), (6,))
    k1, k2 = random.split(random.key(1))
    a, _ = apply_with_state(entry.layer, params, x, state, key=k1, train=True)
    b, _ = apply_with_state(entry.layer, params, x, state, key=k2, train=True)
    assert not np.array_equal(a, b)
