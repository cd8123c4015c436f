"""``multi_head_attention`` and ``position_embedding``: a naive reference, causality,
permutation equivariance, and bad input. Gradients are checked by the registry."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import random
from nnfunc.combinators import serial
from nnfunc.layers import (
    AttentionParams,
    dense,
    multi_head_attention,
    position_embedding,
)


def _naive_attention(params: AttentionParams, x: Any, h: int, causal: bool) -> Any:
    """One sequence, one head, one query at a time, straight from the formulas."""
    w_qkv, b_qkv, w_o, b_o = params
    n, t, width = x.shape
    d = w_o.shape[0] // h
    y = np.zeros((n, t, width))
    for s in range(n):
        qkv = x[s] @ w_qkv + (0.0 if b_qkv is None else b_qkv)
        heads = []
        for j in range(h):
            q = qkv[:, j * d:(j + 1) * d]
            k = qkv[:, h * d + j * d:h * d + (j + 1) * d]
            v = qkv[:, 2 * h * d + j * d:2 * h * d + (j + 1) * d]
            out = np.zeros((t, d))
            for i in range(t):
                keys = range(i + 1) if causal else range(t)
                scores = [float(q[i] @ k[u]) / math.sqrt(d) for u in keys]
                top = max(scores)
                weights = [math.exp(sc - top) for sc in scores]
                total = sum(weights)
                for u, wgt in zip(keys, weights, strict=True):
                    out[i] += wgt / total * v[u]
            heads.append(out)
        y[s] = np.concatenate(heads, axis=1) @ w_o + (0.0 if b_o is None else b_o)
    return y


def _random_biases(params: AttentionParams, seed: int) -> AttentionParams:
    """Nonzero biases (init makes them zero), so the test sees where they go."""
    if params.b_qkv is None:
        return params
    k1, k2 = random.split(random.key(seed))
    return params._replace(b_qkv=random.normal(k1, params.b_qkv.shape, np.float64),
                           b_o=random.normal(k2, params.b_o.shape, np.float64))


@given(n=st.integers(1, 3), t=st.integers(1, 5), h=st.integers(1, 3),
       d_head=st.none() | st.integers(1, 3), causal=st.booleans(), use_bias=st.booleans(),
       seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.3, 1.0, 4.0]))
def test_matches_a_naive_per_head_loop(n: int, t: int, h: int, d_head: int | None,
                                       causal: bool, use_bias: bool, seed: int,
                                       scale: float) -> None:
    width = h * 2 if d_head is None else 5
    layer = multi_head_attention(h, d_head=d_head, causal=causal, use_bias=use_bias,
                                 dtype=np.float64)
    k_init, k_x = random.split(random.key(seed))
    out_shape, params = layer.init(k_init, (t, width))
    params = _random_biases(params, seed)
    x = scale * random.normal(k_x, (n, t, width), np.float64)
    assert out_shape == (t, width)
    np.testing.assert_allclose(layer.apply(params, x), _naive_attention(params, x, h, causal),
                               rtol=1e-10, atol=1e-10)


@given(n=st.integers(1, 3), t=st.integers(2, 6), h=st.integers(1, 3), data=st.data(),
       seed=st.integers(0, 2**32 - 1))
def test_causal_output_ignores_the_future(n: int, t: int, h: int, data: st.DataObject,
                                          seed: int) -> None:
    layer = multi_head_attention(h, causal=True, dtype=np.float64)
    k_init, k_x, k_z = random.split(random.key(seed), 3)
    _, params = layer.init(k_init, (t, 2 * h))
    params = _random_biases(params, seed)
    x = random.normal(k_x, (n, t, 2 * h), np.float64)
    cut = data.draw(st.integers(0, t - 2))  # steps after cut change
    x2 = x.copy()
    x2[:, cut + 1:] = 5.0 * random.normal(k_z, x2[:, cut + 1:].shape, np.float64)
    y, y2 = layer.apply(params, x), layer.apply(params, x2)
    np.testing.assert_array_equal(y[:, :cut + 1], y2[:, :cut + 1])
    assert not np.allclose(y[:, cut + 1:], y2[:, cut + 1:])
    # backward: cotangents on the past's outputs reach no future input
    dy_past = np.zeros_like(y)
    dy_past[:, :cut + 1] = 1.0
    _, dx_past = layer.grad(params, x, dy_past)
    np.testing.assert_array_equal(dx_past[:, cut + 1:], 0.0)


@given(n=st.integers(1, 3), t=st.integers(2, 6), h=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1), use_bias=st.booleans())
def test_non_causal_attention_is_permutation_equivariant(n: int, t: int, h: int, seed: int,
                                                         use_bias: bool) -> None:
    layer = multi_head_attention(h, use_bias=use_bias, dtype=np.float64)
    k_init, k_x = random.split(random.key(seed))
    _, params = layer.init(k_init, (t, 3 * h))
    params = _random_biases(params, seed)
    x = random.normal(k_x, (n, t, 3 * h), np.float64)
    perm = np.random.default_rng(seed).permutation(t)
    np.testing.assert_allclose(layer.apply(params, x[:, perm]), layer.apply(params, x)[:, perm],
                               rtol=1e-12, atol=1e-12)
    dy = np.random.default_rng(seed + 1).normal(size=x.shape)
    g, dx = layer.grad(params, x, dy)
    g_perm, dx_perm = layer.grad(params, x[:, perm], dy[:, perm])
    np.testing.assert_allclose(dx_perm, dx[:, perm], rtol=1e-10, atol=1e-12)
    for a, b in zip(g, g_perm, strict=True):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_causal_scores_never_warn_and_large_inputs_stay_finite() -> None:
    layer = multi_head_attention(2, causal=True, dtype=np.float64)
    _, params = layer.init(random.key(0), (6, 4))
    x = 1e3 * random.normal(random.key(1), (2, 6, 4), np.float64)  # scores ~1e6
    y = layer.apply(params, x)  # RuntimeWarning is an error in the test run
    dparams, dx = layer.grad(params, x, np.ones_like(y))
    assert np.all(np.isfinite(y))
    assert np.all(np.isfinite(dx))
    assert all(np.all(np.isfinite(g)) for g in dparams if g is not None)
    # the first step attends to itself only: its output is its own value, projected
    w_qkv, b_qkv, w_o, b_o = params
    v0 = x[:, 0] @ w_qkv[:, 8:] + b_qkv[8:]
    np.testing.assert_allclose(y[:, 0], v0 @ w_o + b_o, rtol=1e-9)


def test_param_layout_and_dtype() -> None:
    _, params = multi_head_attention(3, d_head=2, use_bias=False).init(random.key(0), (4, 5))
    assert type(params) is AttentionParams
    assert params.w_qkv.shape == (5, 18)
    assert params.w_o.shape == (6, 5)
    assert params.b_qkv is None
    assert params.b_o is None
    assert params.w_qkv.dtype == np.float32
    layer = multi_head_attention(1, causal=True)
    _, p32 = layer.init(random.key(0), (3, 4))
    y = layer.apply(p32, np.ones((2, 3, 4), np.float32))
    assert y.dtype == np.float32


def test_plain_tuple_params_are_accepted() -> None:
    layer = multi_head_attention(2, dtype=np.float64)
    _, params = layer.init(random.key(0), (3, 4))
    x = random.normal(random.key(1), (2, 3, 4), np.float64)
    np.testing.assert_array_equal(layer.apply(tuple(params), x), layer.apply(params, x))
    grads, _ = layer.grad(tuple(params), x, np.ones_like(x))
    assert type(grads) is tuple
    assert len(grads) == 4


def test_bad_input_names_the_layer_and_both_shapes() -> None:
    layer = multi_head_attention(2)
    with pytest.raises(ValueError, match=r"multi_head_attention\(2\): in_shape must be \(T, D\).*"
                                         r"got \(4,\)"):
        layer.init(random.key(0), (4,))
    with pytest.raises(ValueError, match=r"in_shape must have a width D divisible by "
                                         r"num_heads=2.*got \(3, 5\)"):
        layer.init(random.key(0), (3, 5))
    _, params = layer.init(random.key(0), (3, 4))
    with pytest.raises(ValueError, match=r"multi_head_attention\(2\): x must have shape "
                                         r"\(batch, T, 4\); got shape \(2, 3, 5\)"):
        layer.apply(params, np.ones((2, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, T, 4\); got shape \(2, 4\)"):
        layer.apply(params, np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match=r"x must have the params' dtype float32"):
        layer.apply(params, np.ones((2, 3, 4)))
    with pytest.raises(TypeError, match=r"params must be AttentionParams"):
        layer.apply(params[:2], np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"num_heads must be > 0"):
        multi_head_attention(0)
    with pytest.raises(ValueError, match=r"serial: layer 1 \(multi_head_attention\(2, causal\)\) "
                                         r"cannot take input shape \(3,\)"):
        serial(dense(3), multi_head_attention(2, causal=True)).init(random.key(0), (4,))


@given(n=st.integers(1, 3), t=st.integers(1, 6), extra=st.integers(0, 3), width=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1))
def test_position_embedding_adds_its_first_rows(n: int, t: int, extra: int, width: int,
                                                seed: int) -> None:
    layer = position_embedding(t + extra, dtype=np.float64)
    k_init, k_x, k_dy = random.split(random.key(seed), 3)
    _, params = layer.init(k_init, (t, width))
    x = random.normal(k_x, (n, t, width), np.float64)
    y = layer.apply(params, x)
    for s in range(n):
        for step in range(t):
            np.testing.assert_array_equal(y[s, step], x[s, step] + params.w[step])
    dy = random.normal(k_dy, (n, t, width), np.float64)
    (dw,), dx = layer.grad(params, x, dy)
    np.testing.assert_array_equal(dx, dy)
    np.testing.assert_allclose(dw[:t], sum(dy[s] for s in range(n)), rtol=1e-12)
    np.testing.assert_array_equal(dw[t:], 0.0)


def test_position_embedding_rejects_sequences_longer_than_max_len() -> None:
    layer = position_embedding(4)
    with pytest.raises(ValueError, match=r"position_embedding\(4\): in_shape must have at most "
                                         r"max_len=4 steps.*got T = 5"):
        layer.init(random.key(0), (5, 3))
    _, params = layer.init(random.key(0), (4, 3))
    with pytest.raises(ValueError, match=r"position_embedding\(4\): x must have at most "
                                         r"max_len=4 steps.*got T = 6"):
        layer.apply(params, np.ones((1, 6, 3), np.float32))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, T, 3\); got shape "
                                         r"\(1, 2, 2\)"):
        layer.apply(params, np.ones((1, 2, 2), np.float32))
    assert layer.apply(params, np.ones((1, 2, 3), np.float32)).shape == (1, 2, 3)
