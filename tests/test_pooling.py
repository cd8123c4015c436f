"""Pooling against independently written loops: values, sizes, the first-max tie rule,
the padding count of averages, and errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnfunc as nf
from nnfunc import random


def _out_size(n: int, k: int, s: int, p0: int, p1: int) -> int:
    return (n + p0 + p1 - k) // s + 1


def _same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _windows(h: int, w: int, k: tuple[int, int], s: tuple[int, int],
             pads: tuple[tuple[int, int], tuple[int, int]]) -> list[Any]:
    """Per output (o, p): the list of real input cells (r, c) of its window, row-major."""
    oh = _out_size(h, k[0], s[0], *pads[0])
    ow = _out_size(w, k[1], s[1], *pads[1])
    out = []
    for o in range(oh):
        row = []
        for p in range(ow):
            cells = [(o * s[0] + i - pads[0][0], p * s[1] + j - pads[1][0])
                     for i in range(k[0]) for j in range(k[1])]
            row.append([(r, c) for r, c in cells if 0 <= r < h and 0 <= c < w])
        out.append(row)
    return out


def _naive(kind: str, x: Any, dy: Any, k: tuple[int, int], s: tuple[int, int],
           pads: tuple[tuple[int, int], tuple[int, int]]) -> tuple[Any, Any]:
    """``(y, dx)`` of max (first maximum gets the gradient) or avg (real cells only)."""
    n, h, w, c = x.shape
    wins = _windows(h, w, k, s, pads)
    y = np.zeros((n, len(wins), len(wins[0]), c))
    dx = np.zeros_like(x)
    for b in range(n):
        for ch in range(c):
            for o, row in enumerate(wins):
                for p, cells in enumerate(row):
                    vals = [x[b, r, cc, ch] for r, cc in cells]
                    if kind == "max":
                        first = 0
                        for idx, v in enumerate(vals):
                            if v > vals[first]:
                                first = idx
                        y[b, o, p, ch] = vals[first]
                        r, cc = cells[first]
                        dx[b, r, cc, ch] += dy[b, o, p, ch]
                    else:
                        y[b, o, p, ch] = sum(vals) / len(vals)
                        for r, cc in cells:
                            dx[b, r, cc, ch] += dy[b, o, p, ch] / len(vals)
    return y, dx


@st.composite
def pool_cases(draw: st.DrawFn) -> dict[str, Any]:
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.sampled_from([None, s]))
    s = k if stride is None else s
    kind = draw(st.sampled_from(["valid", "same", "int", "pairs"]))
    hw = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    padding: Any = kind
    if kind == "int":
        padding = draw(st.integers(0, min(k) - 1))
        pads = ((padding, padding), (padding, padding))
    elif kind == "pairs":
        padding = tuple((draw(st.integers(0, k[a] - 1)), draw(st.integers(0, k[a] - 1)))
                        for a in range(2))
        pads = padding
    elif kind == "same":
        pads = tuple(_same_pads(hw[a], k[a], s[a]) for a in range(2))
    else:
        pads = ((0, 0), (0, 0))
    hw = tuple(max(hw[a], k[a] - sum(pads[a])) for a in range(2))
    if kind == "same":
        pads = tuple(_same_pads(hw[a], k[a], s[a]) for a in range(2))
    return {"k": k, "stride": stride, "s": s, "padding": padding, "pads": pads, "hw": hw,
            "n": draw(st.integers(1, 2)), "c": draw(st.integers(1, 2)),
            "seed": draw(st.integers(0, 2**16)), "levels": draw(st.sampled_from([2, 3, 0]))}


def _data(case: dict[str, Any]) -> tuple[Any, Any]:
    rng = np.random.default_rng(case["seed"])
    shape = (case["n"], *case["hw"], case["c"])
    x = rng.standard_normal(shape)
    if case["levels"]:  # quantised, then ReLU: many ties, at 0 and elsewhere
        x = np.maximum(np.round(x * case["levels"]) / case["levels"], 0.0)
    return x, rng.standard_normal


@pytest.mark.parametrize("kind", ["max", "avg"])
@given(case=pool_cases())
def test_pool2d_matches_a_loop_with_ties(kind: str, case: dict[str, Any]) -> None:
    layer = (nf.max_pool2d if kind == "max" else nf.avg_pool2d)(
        case["k"], stride=case["stride"], padding=case["padding"])
    x, normal = _data(case)
    out_shape, params = layer.init(random.key(0), x.shape[1:])
    y = layer.apply(params, x)
    dy = normal(y.shape)
    y_ref, dx_ref = _naive(kind, x, dy, case["k"], case["s"], case["pads"])
    assert out_shape == y_ref.shape[1:]
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    _, dx = layer.grad(params, x, dy)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@given(k=st.integers(1, 3), s=st.integers(1, 3), padding=st.sampled_from(["valid", "same", 1]),
       t=st.integers(1, 8), seed=st.integers(0, 999))
def test_pool1d_is_pool2d_over_one_row(kind: str, k: int, s: int, padding: Any, t: int,
                                       seed: int) -> None:
    if padding == 1 and k == 1:
        padding = 0
    pads = _same_pads(t, k, s) if padding == "same" else (0, 0) if padding == "valid" else (
        padding, padding)
    t = max(t, k - sum(pads))
    pads = _same_pads(t, k, s) if padding == "same" else pads
    layer1 = (nf.max_pool1d if kind == "max" else nf.avg_pool1d)(k, stride=s, padding=padding)
    x = np.round(np.random.default_rng(seed).standard_normal((2, t, 2)) * 2) / 2
    dy_shape = layer1.init(random.key(0), (t, 2))[0]
    dy = np.random.default_rng(seed + 1).standard_normal((2, *dy_shape))
    y_ref, dx_ref = _naive(kind, x[:, None], dy[:, None], (1, k), (1, s), ((0, 0), pads))
    np.testing.assert_allclose(layer1.apply((), x), y_ref[:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer1.grad((), x, dy)[1], dx_ref[:, 0], rtol=1e-12, atol=1e-12)


def test_max_pool_ties_go_to_the_first_maximum_once() -> None:
    x = np.zeros((1, 2, 2, 1))  # a whole window of ties, as after ReLU
    _, dx = nf.max_pool2d(2).grad((), x, np.ones((1, 1, 1, 1)))
    assert dx[0, :, :, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    x = np.array([[1.0, 3.0], [3.0, 2.0]]).reshape(1, 2, 2, 1)
    _, dx = nf.max_pool2d(2).grad((), x, np.ones((1, 1, 1, 1)))
    assert dx[0, :, :, 0].tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_avg_pool_does_not_count_padding() -> None:
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y = nf.avg_pool2d(2, stride=1, padding=((1, 0), (1, 0))).apply((), x)[0, :, :, 0]
    # the corner window holds only x[0, 0] = 1; the top edge windows two cells
    assert y.tolist() == [[1.0, 1.5, 2.5], [2.5, 3.0, 4.0], [5.5, 6.0, 7.0]]


def test_max_pool_padding_is_minus_infinity() -> None:
    x = -np.ones((1, 3, 3, 1))
    y = nf.max_pool2d(2, stride=1, padding=1).apply((), x)
    assert (y == -1.0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pools_keep_the_dtype(dtype: Any) -> None:
    x = np.ones((2, 5, 4, 3), dtype)
    for layer in (nf.max_pool2d(2, padding="same"), nf.avg_pool2d(3, stride=2, padding=1),
                  nf.global_avg_pool, nf.global_max_pool):
        y = layer.apply((), x)
        _, dx = layer.grad((), x, np.ones_like(y))
        assert y.dtype == dx.dtype == dtype


@given(st.lists(st.integers(1, 4), min_size=2, max_size=3), st.integers(0, 999))
def test_global_pools_match_reductions(shape: list[int], seed: int) -> None:
    x = np.round(np.random.default_rng(seed).standard_normal((2, *shape)))  # with ties
    assert nf.global_avg_pool.init(random.key(0), tuple(shape))[0] == (shape[-1],)
    flat = x.reshape(2, -1, shape[-1])
    np.testing.assert_allclose(nf.global_avg_pool.apply((), x), flat.mean(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(nf.global_max_pool.apply((), x), flat.max(axis=1))
    dy = np.random.default_rng(seed + 1).standard_normal((2, shape[-1]))
    dx = nf.global_max_pool.grad((), x, dy)[1].reshape(flat.shape)
    expected = np.zeros_like(flat)
    for b in range(2):
        for c in range(shape[-1]):
            first = next(i for i in range(flat.shape[1]) if flat[b, i, c] == flat[b, :, c].max())
            expected[b, first, c] = dy[b, c]
    np.testing.assert_array_equal(dx, expected)
    dx = nf.global_avg_pool.grad((), x, dy)[1].reshape(flat.shape)
    np.testing.assert_allclose(dx, np.broadcast_to(dy[:, None] / flat.shape[1], flat.shape),
                               rtol=1e-12)


def test_pool_errors_name_the_layer() -> None:
    with pytest.raises(ValueError, match=r"max_pool2d: padding must be smaller than the window "
                                         r"\(2, 2\) on every side; got 2"):
        nf.max_pool2d(2, padding=2)
    with pytest.raises(ValueError, match=r"avg_pool2d\(3x3\): input is too small for the "
                                         r"window \(3, 3\).*\(2, 5\)"):
        nf.avg_pool2d(3).init(random.key(0), (2, 5, 1))
    with pytest.raises(ValueError, match=r"max_pool1d\(2\): in_shape must be \(T, C\).*"
                                         r"got \(4, 4, 1\)"):
        nf.max_pool1d(2).init(random.key(0), (4, 4, 1))
    with pytest.raises(ValueError, match=r"max_pool2d\(2x2\): x must have shape "
                                         r"\(batch, H, W, C\); got shape \(4, 4, 1\)"):
        nf.max_pool2d(2).apply((), np.ones((4, 4, 1)))
    with pytest.raises(ValueError, match=r"global_avg_pool: in_shape must be .* got \(8,\)"):
        nf.global_avg_pool.init(random.key(0), (8,))
    with pytest.raises(ValueError, match=r"global_max_pool: x must have shape"):
        nf.global_max_pool.apply((), np.ones((3, 8)))
    with pytest.raises(TypeError, match=r"avg_pool2d: stride must be an int or a tuple of 2"):
        nf.avg_pool2d(2, stride=(1, 1, 1))
