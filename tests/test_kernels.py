"""The compiled elementwise loops (``nnfunc/_elementwise.c`` through ``nnfunc._kernels``)
give NumPy's bits — NaN payloads and signs, infinities, signed zeros and subnormals
included — and decline, writing nothing, whatever they cannot take."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nnfunc import _kernels, activations, random, tree
from nnfunc.combinators import serial
from nnfunc.layer import vjp
from nnfunc.layers import dense

_dtypes = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])
_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=9)


def _loops() -> Any:
    c = _kernels.loops()
    assert c is not None, "nnfunc._elementwise was not built"
    return c


def _any_floats(dtype: np.dtype[Any], shape: Any) -> st.SearchStrategy[Any]:
    """Every float of the dtype: NaNs of any sign and payload, infinities, ±0, subnormals."""
    return hnp.arrays(dtype, shape, elements=st.floats(width=8 * dtype.itemsize))


def _bits(a: Any) -> Any:
    return np.ascontiguousarray(a).view(np.uint8)


@given(data=st.data(), dtype=_dtypes, shape=_shapes)
def test_relu_loop_gives_numpys_maximum_bit_for_bit(data: st.DataObject, dtype: Any,
                                                     shape: Any) -> None:
    x = data.draw(_any_floats(dtype, shape))
    out = np.full(shape, 7, dtype)
    assert _loops().relu(x, out) is None
    np.testing.assert_array_equal(_bits(out), _bits(np.maximum(x, np.zeros((), dtype))))


@given(data=st.data(), dtype=_dtypes, shape=_shapes)
def test_relu_backward_loop_gives_numpys_masked_product_bit_for_bit(
        data: st.DataObject, dtype: Any, shape: Any) -> None:
    y = data.draw(_any_floats(dtype, shape))
    dy = data.draw(_any_floats(dtype, shape))
    out = np.full(shape, 7, dtype)
    assert _loops().relu_backward(y, dy, out) is None
    with np.errstate(invalid="ignore"):  # inf * 0
        want = dy * (y > 0)
    np.testing.assert_array_equal(_bits(out), _bits(want))


@given(data=st.data(), dtype=_dtypes, shape=_shapes)
def test_add_row_loop_gives_numpys_broadcast_sum_bit_for_bit(
        data: st.DataObject, dtype: Any, shape: Any) -> None:
    y = data.draw(_any_floats(dtype, shape))
    b = data.draw(_any_floats(dtype, shape[-1:]))
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, overflow
        want = y + b
    if y.size and b.size:
        assert _loops().add_row(y, b) is None
        np.testing.assert_array_equal(_bits(y), _bits(want))
    else:  # no columns: nothing to add, declined (NumPy's `+=` is as good)
        assert _loops().add_row(y, b) in (None, NotImplemented)


def _declines(call: Any, out: Any) -> None:
    before = out.copy()
    assert call() is NotImplemented
    np.testing.assert_array_equal(_bits(out), _bits(before))


def test_the_loops_decline_what_they_cannot_take_and_write_nothing() -> None:
    c = _loops()
    x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(4, 6)
    out = np.full((4, 6), 9, np.float32)
    # not C-contiguous, other dtypes, mixed dtypes, other lengths
    _declines(lambda: c.relu(x.T, out), out)
    _declines(lambda: c.relu(x[:, ::2], out[:, :3].copy()), out)
    _declines(lambda: c.relu(x.astype(np.float16), out), out)
    _declines(lambda: c.relu(x.astype(np.int32), out), out)
    _declines(lambda: c.relu(x.astype(">f4"), out), out)
    _declines(lambda: c.relu(x.astype(np.float64), out), out)
    _declines(lambda: c.relu(x[:3], out), out)
    _declines(lambda: c.relu_backward(x, x[:3], out), out)
    _declines(lambda: c.relu_backward(x, x.astype(np.float64), out), out)
    # an output overlapping an input, or read-only
    _declines(lambda: c.relu(x, x), x)
    _declines(lambda: c.relu_backward(out, x, out), out)
    frozen = np.zeros((4, 6), np.float32)
    frozen.flags.writeable = False
    _declines(lambda: c.relu(x, frozen), frozen)
    # a bias of another length, rank or dtype, or inside y itself
    y = x.copy()
    _declines(lambda: c.add_row(y, np.ones(4, np.float32)), y)
    _declines(lambda: c.add_row(y, np.ones((1, 6), np.float32)), y)
    _declines(lambda: c.add_row(y, np.ones(6, np.float64)), y)
    _declines(lambda: c.add_row(y, y[0]), y)
    with pytest.raises(TypeError, match="relu takes 2 arguments, got 3"):
        c.relu(x, out, out)


def test_the_wrappers_fall_back_to_numpy_where_the_loop_declines() -> None:
    x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(4, 6)
    assert _kernels.relu(x.T, None) is None
    assert _kernels.relu(x.astype(np.float16), None) is None
    assert _kernels.relu_backward(x, x[:, :1], None) is None  # broadcast: NumPy's job
    y = x.copy().T  # not contiguous: NumPy's `+=`
    _kernels.add_bias(y, np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(y, x.T + np.arange(4, dtype=np.float32))
    fresh = _kernels.relu(x, None)
    assert fresh is not None
    assert fresh.dtype == x.dtype
    np.testing.assert_array_equal(fresh, np.maximum(x, 0))


@given(seed=st.integers(0, 2**16), rows=st.integers(1, 40), dtype=_dtypes)
def test_a_dense_relu_model_gives_the_same_bits_with_and_without_the_loops(
        seed: int, rows: int, dtype: Any) -> None:
    model = serial(dense(17), activations.relu, dense(3))
    params = tree.astype(model.init(random.key(seed), (5,))[1], dtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 5)).astype(dtype)
    dy = rng.standard_normal((rows, 3)).astype(dtype)

    def run() -> tuple[Any, Any]:
        y, pullback = vjp(model, params, x)
        grads, dx = pullback(dy)
        return y, (grads, dx)

    y, grads = run()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_kernels, "loops", lambda: None)
        y2, grads2 = run()
    np.testing.assert_array_equal(_bits(y), _bits(y2))
    for a, b in zip(tree.leaves(grads), tree.leaves(grads2), strict=True):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(_bits(a), _bits(b))


def test_nnfunc_compiled_0_turns_the_loops_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNFUNC_COMPILED", "0")
    _kernels.loops.cache_clear()
    try:
        assert _kernels.loops() is None
        x = np.array([-1.0, 2.0], np.float32)
        np.testing.assert_array_equal(activations.relu.apply((), x), [0.0, 2.0])
    finally:
        monkeypatch.delenv("NNFUNC_COMPILED")
        _kernels.loops.cache_clear()
    assert _kernels.loops() is not None
