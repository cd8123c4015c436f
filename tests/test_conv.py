"""conv1d/conv2d against independently written definitions; settings drawn by hypothesis.

The reference is a nested loop over output positions, filters and kernel taps
(cross-correlation: the kernel is not flipped) on an input padded with
``np.pad``; output sizes and "same" padding are computed here from the
formulas, not by nnfunc.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnfunc as nf
from nnfunc import initializers, random
from nnfunc.testing import check_grad


def _out_size(n: int, k: int, s: int, d: int, p0: int, p1: int) -> int:
    return (n + p0 + p1 - d * (k - 1) - 1) // s + 1


def _same_pads(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    out = math.ceil(n / s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2  # the odd cell at the end


def _naive_conv2d(x: Any, w: Any, b: Any, stride: tuple[int, int], dil: tuple[int, int],
                  pads: tuple[tuple[int, int], tuple[int, int]]) -> Any:
    n, h, wd, c_in = x.shape
    kh, kw, _, c_out = w.shape
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    oh = _out_size(h, kh, stride[0], dil[0], *pads[0])
    ow = _out_size(wd, kw, stride[1], dil[1], *pads[1])
    y = np.zeros((n, oh, ow, c_out))
    for bi in range(n):
        for o in range(oh):
            for p in range(ow):
                for f in range(c_out):
                    acc = 0.0 if b is None else b[f]
                    for i in range(kh):
                        for j in range(kw):
                            for c in range(c_in):
                                acc += (xp[bi, o * stride[0] + i * dil[0],
                                           p * stride[1] + j * dil[1], c] * w[i, j, c, f])
                    y[bi, o, p, f] = acc
    return y


@st.composite
def conv2d_cases(draw: st.DrawFn) -> dict[str, Any]:
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kind = draw(st.sampled_from(["valid", "same", "int", "pairs"]))
    padding: Any = kind
    if kind == "int":
        padding = draw(st.integers(0, 2))
    elif kind == "pairs":
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    hw = []
    for axis in range(2):
        span = d[axis] * (k[axis] - 1) + 1
        lo = 1 if kind in ("same", "pairs", "int") else span
        hw.append(draw(st.integers(lo, 7)))
    if kind == "int":
        pads = ((padding, padding), (padding, padding))
    elif kind == "pairs":
        pads = padding
    elif kind == "same":
        pads = tuple(_same_pads(hw[a], k[a], s[a], d[a]) for a in range(2))
    else:
        pads = ((0, 0), (0, 0))
    # drop shapes the padded input cannot hold the dilated kernel in
    fits = all(hw[a] + sum(pads[a]) >= d[a] * (k[a] - 1) + 1 for a in range(2))
    if not fits:
        hw = [max(hw[a], d[a] * (k[a] - 1) + 1) for a in range(2)]
        if kind == "same":
            pads = tuple(_same_pads(hw[a], k[a], s[a], d[a]) for a in range(2))
    return {"k": k, "s": s, "d": d, "padding": padding, "pads": pads, "hw": tuple(hw),
            "c_in": draw(st.integers(1, 3)), "c_out": draw(st.integers(1, 3)),
            "n": draw(st.integers(1, 2)), "bias": draw(st.booleans()),
            "seed": draw(st.integers(0, 2**16))}


def _build(case: dict[str, Any]) -> tuple[nf.Layer, Any, Any, tuple[int, ...]]:
    layer = nf.conv2d(case["c_out"], case["k"], stride=case["s"], padding=case["padding"],
                      dilation=case["d"], use_bias=case["bias"])
    out_shape, params = layer.init(random.key(case["seed"]), (*case["hw"], case["c_in"]))
    params = nf.tree.astype(params, np.float64)
    if params.b is not None:
        params = params._replace(b=random.normal(random.key(1), params.b.shape, np.float64))
    x = np.random.default_rng(case["seed"]).standard_normal((case["n"], *case["hw"],
                                                             case["c_in"]))
    return layer, params, x, out_shape


@given(conv2d_cases())
def test_conv2d_is_cross_correlation_with_the_formula_sizes(case: dict[str, Any]) -> None:
    layer, params, x, out_shape = _build(case)
    expected = _naive_conv2d(x, params.w, params.b, case["s"], case["d"], case["pads"])
    assert out_shape == expected.shape[1:]
    y = layer.apply(params, x)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@given(conv2d_cases())
def test_conv2d_grad_over_drawn_settings(case: dict[str, Any]) -> None:
    layer, params, x, _ = _build(case)
    report = check_grad(layer, params, x, seed=case["seed"])
    assert report.max_error <= 1e-6
    assert report.transpose_error <= 1e-6


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 2),
       st.sampled_from(["valid", "same", 1, (2, 0)]), st.integers(1, 9), st.integers(0, 999))
def test_conv1d_matches_a_loop_and_finite_differences(k: int, s: int, d: int, padding: Any,
                                                      t: int, seed: int) -> None:
    if padding == "same":
        pads = _same_pads(t, k, s, d)
    elif padding == "valid":
        pads = (0, 0)
    else:
        pads = (padding, padding) if isinstance(padding, int) else padding
    span = d * (k - 1) + 1
    t = max(t, span - sum(pads))
    if padding == "same":
        pads = _same_pads(t, k, s, d)
    layer = nf.conv1d(2, k, stride=s, padding=padding, dilation=d)
    out_shape, params = layer.init(random.key(seed), (t, 3))
    params = nf.tree.astype(params, np.float64)
    x = np.random.default_rng(seed).standard_normal((2, t, 3))
    xp = np.pad(x, ((0, 0), pads, (0, 0)))
    ot = _out_size(t, k, s, d, *pads)
    expected = np.zeros((2, ot, 2))
    for o in range(ot):
        for i in range(k):
            expected[:, o] += xp[:, o * s + i * d] @ params.w[i]
    expected += params.b
    assert out_shape == (ot, 2)
    np.testing.assert_allclose(layer.apply(params, x), expected, rtol=1e-12, atol=1e-12)
    assert check_grad(layer, params, x, seed=seed).ok


def test_kernel_is_not_flipped() -> None:
    layer = nf.conv1d(1, 3, use_bias=False)
    w = np.array([1.0, 0.0, 0.0]).reshape(3, 1, 1)
    x = np.arange(6.0).reshape(1, 6, 1)
    # cross-correlation reads x[t + 0] with w[0]; a flipped kernel would give x[t + 2]
    assert layer.apply(nf.ConvParams(w, None), x)[0, :, 0].tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(("h", "k", "s", "top", "bottom"),
                         [(4, 2, 1, 0, 1), (5, 4, 1, 1, 2), (5, 3, 2, 1, 1), (6, 3, 2, 0, 1),
                          (4, 1, 3, 0, 0)])
def test_same_padding_puts_the_extra_cell_at_the_end(h: int, k: int, s: int, top: int,
                                                     bottom: int) -> None:
    layer = nf.conv2d(1, (k, 1), stride=(s, 1), padding="same", use_bias=False)
    out_shape, _ = layer.init(random.key(0), (h, 1, 1))
    assert out_shape == (math.ceil(h / s), 1, 1)
    # a kernel that picks its first tap: output o reads padded row o·s, i.e. x[o·s - top]
    w = np.zeros((k, 1, 1, 1))
    w[0] = 1.0
    x = np.arange(1.0, h + 1).reshape(1, h, 1, 1)
    y = layer.apply(nf.ConvParams(w, None), x)[0, :, 0, 0]
    rows = np.arange(math.ceil(h / s)) * s - top
    expected = np.where(rows >= 0, rows + 1.0, 0.0)
    np.testing.assert_array_equal(y, expected)
    # and its last tap reads x[o·s - top + k - 1], zero past the bottom padding
    w = np.zeros((k, 1, 1, 1))
    w[-1] = 1.0
    last = rows + k - 1
    expected = np.where(last < h, last + 1.0, 0.0)
    np.testing.assert_array_equal(layer.apply(nf.ConvParams(w, None), x)[0, :, 0, 0], expected)
    assert _out_size(h, k, s, 1, top, bottom) == math.ceil(h / s)


def test_input_layer_computes_no_dx() -> None:
    layer = nf.conv2d(2, 3, padding="same")
    _, params = layer.init(random.key(0), (5, 5, 2))
    x = np.ones((2, 5, 5, 2), np.float32)
    _, pullback = nf.vjp(layer, params, x)
    dparams, dx = pullback(np.ones((2, 5, 5, 2), np.float32), need_dx=False)
    assert dx is None
    np.testing.assert_array_equal(dparams.w, layer.grad(params, x, np.ones((2, 5, 5, 2),
                                                                          np.float32))[0].w)


def test_float32_stays_float32_and_params_are_hwio() -> None:
    layer = nf.conv2d(4, (3, 2))
    _, params = layer.init(random.key(0), (6, 5, 3))
    assert params.w.shape == (3, 2, 3, 4)
    assert params.b.shape == (4,)
    assert params.w.dtype == params.b.dtype == np.float32
    x = np.ones((2, 6, 5, 3), np.float32)
    y = layer.apply(params, x)
    dparams, dx = layer.grad(params, x, np.ones_like(y))
    assert y.dtype == dparams.w.dtype == dparams.b.dtype == dx.dtype == np.float32


def test_plain_tuple_params_as_loaded_without_like() -> None:
    layer = nf.conv2d(2, 2)
    _, params = layer.init(random.key(0), (3, 3, 1))
    x = np.ones((1, 3, 3, 1), np.float32)
    np.testing.assert_array_equal(layer.apply(tuple(params), x), layer.apply(params, x))
    dparams, _ = layer.grad(tuple(params), x, np.ones((1, 2, 2, 2), np.float32))
    assert type(dparams) is tuple


@pytest.mark.parametrize(("shape", "init", "fan_in", "fan_out"), [
    ((3, 3, 4, 8), initializers.he_normal, 36, 72),
    ((5, 2, 6), initializers.glorot_normal, 10, 30),
])
def test_initializers_use_the_receptive_field(shape: tuple[int, ...], init: Any, fan_in: int,
                                              fan_out: int) -> None:
    # many independent kernels, so the sample std is within ~1% of the true one
    w = np.stack([init(k, shape, np.float64) for k in random.split(random.key(0), 400)])
    expected = (math.sqrt(2.0 / fan_in) if init is initializers.he_normal
                else math.sqrt(2.0 / (fan_in + fan_out)))
    assert abs(w.std() / expected - 1) < 0.03


def test_glorot_uniform_limit_uses_the_receptive_field() -> None:
    w = initializers.glorot_uniform(random.key(0), (3, 3, 16, 32), np.float64)
    limit = math.sqrt(6.0 / (9 * 16 + 9 * 32))
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit
    w = initializers.he_uniform(random.key(0), (3, 3, 16, 32), np.float64)
    assert 0.99 * math.sqrt(6.0 / 144) < np.abs(w).max() <= math.sqrt(6.0 / 144)


# -- errors --------------------------------------------------------------------------

def test_rank_errors_name_the_layer_and_the_shape() -> None:
    with pytest.raises(ValueError, match=r"conv2d\(4, 3x3\): in_shape must be \(H, W, C\).*"
                                         r"got \(10,\)"):
        nf.conv2d(4, 3).init(random.key(0), (10,))
    with pytest.raises(ValueError, match=r"conv1d\(4, 3\): in_shape must be \(T, C\).*"
                                         r"got \(5, 5, 1\)"):
        nf.conv1d(4, 3).init(random.key(0), (5, 5, 1))
    with pytest.raises(ValueError, match=r"serial.*conv2d\(2, 3x3\).*\(7,\)"):
        nf.serial(nf.dense(7), nf.conv2d(2, 3)).init(random.key(0), (3,))


def test_too_small_input_names_the_kernel_and_the_size() -> None:
    with pytest.raises(ValueError, match=r"conv2d\(4, 3x3\): input is too small for the kernel "
                                         r"\(3, 3\) with dilation \(2, 1\).*\(4, 8\)"):
        nf.conv2d(4, 3, dilation=(2, 1)).init(random.key(0), (4, 8, 1))
    layer = nf.conv2d(1, 3)
    _, params = layer.init(random.key(0), (5, 5, 1))
    with pytest.raises(ValueError, match=r"too small.*\(2, 5\)"):
        layer.apply(params, np.ones((1, 2, 5, 1), np.float32))


def test_channel_mismatch_at_apply_names_both_shapes() -> None:
    layer = nf.conv2d(4, 3)
    _, params = layer.init(random.key(0), (5, 5, 3))
    with pytest.raises(ValueError, match=r"conv2d\(4, 3x3\): x must have shape \(batch, H, W, "
                                         r"3\).*kernel \(3, 3, 3, 4\).*got shape \(2, 5, 5, 1\)"):
        layer.apply(params, np.ones((2, 5, 5, 1), np.float32))
    with pytest.raises(ValueError, match=r"got shape \(5, 5, 3\)"):
        layer.apply(params, np.ones((5, 5, 3), np.float32))
    with pytest.raises(TypeError, match=r"conv2d\(4, 3x3\): x must have the params' dtype"):
        layer.apply(params, np.ones((2, 5, 5, 3)))


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"padding": "full"}, TypeError, r"conv2d: padding must be \"valid\", \"same\", an int"),
    ({"padding": -1}, ValueError, r"conv2d: padding must be >= 0; got -1"),
    ({"padding": ((1, 1),)}, TypeError, r"\(\(top, bottom\), \(left, right\)\)"),
    ({"padding": ((1, -1), (0, 0))}, ValueError, r"must not be negative"),
    ({"stride": 0}, ValueError, r"conv2d: stride must be >= 1; got 0"),
    ({"dilation": (1, 2, 3)}, TypeError, r"conv2d: dilation must be an int or a tuple of 2"),
    ({"kernel_size": 2.5}, TypeError, r"conv2d: kernel_size must be an int"),
    ({"c_out": 0}, ValueError, r"conv2d: c_out must be > 0"),
    ({"w_init": "he"}, TypeError, r"conv2d: w_init must be an initializer"),
])
def test_bad_settings(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    args = {"c_out": 2, "kernel_size": 3, **kwargs}
    with pytest.raises(error, match=match):
        nf.conv2d(args.pop("c_out"), args.pop("kernel_size"), **args)


def test_bad_params_are_a_type_error() -> None:
    layer = nf.conv2d(2, 3, use_bias=False)
    _, params = layer.init(random.key(0), (5, 5, 1))
    with pytest.raises(TypeError, match=r"conv2d\(2, 3x3\): params must be ConvParams"):
        layer.apply((params.w, np.zeros(2, np.float32)), np.ones((1, 5, 5, 1), np.float32))
