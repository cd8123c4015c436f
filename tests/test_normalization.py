"""layer_norm and batch_norm against their formulas written out here, row by row."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnfunc import random
from nnfunc.layers import NormParams, layer_norm


def _naive_layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray,
                      eps: float) -> np.ndarray:
    rows = x.reshape(-1, x.shape[-1])
    out = np.empty_like(rows)
    for i, row in enumerate(rows):
        mean = sum(row) / len(row)
        var = sum((v - mean) ** 2 for v in row) / len(row)
        for j, v in enumerate(row):
            out[i, j] = scale[j] * (v - mean) / math.sqrt(var + eps) + bias[j]
    return out.reshape(x.shape)


@pytest.mark.parametrize("shape", [(1, 5), (3, 4), (2, 3, 2, 6)])
def test_layer_norm_matches_the_formula(shape: tuple[int, ...]) -> None:
    x = random.normal(random.key(1), shape, np.float64) * 3 + 1
    c = shape[-1]
    scale = random.normal(random.key(2), (c,), np.float64)
    bias = random.normal(random.key(3), (c,), np.float64)
    y = layer_norm().apply(NormParams(scale, bias), x)
    np.testing.assert_allclose(y, _naive_layer_norm(x, scale, bias, 1e-5), rtol=1e-12,
                               atol=1e-12)


def test_layer_norm_by_hand() -> None:
    # x = (0, 2): mean 1, biased variance 1, so x̂ = ±1/√(1 + ε)
    y = layer_norm(eps=0.25).apply(NormParams(np.array([2.0, 3.0]), np.array([0.5, -1.0])),
                                   np.array([[0.0, 2.0]]))
    r = 1 / math.sqrt(1.25)
    np.testing.assert_allclose(y, [[2 * -r + 0.5, 3 * r - 1.0]], rtol=1e-15)


def test_layer_norm_params_and_dtype() -> None:
    layer = layer_norm(use_bias=False)
    out, params = layer.init(random.key(0), (2, 3))
    assert out == (2, 3)
    assert params.bias is None
    assert params.scale is not None
    assert params.scale.dtype == np.float32
    assert params.scale.tolist() == [1.0, 1.0, 1.0]
    y = layer.apply(params, np.ones((4, 2, 3), np.float32))
    assert y.dtype == np.float32
    assert not np.isnan(y).any()
    # a plain tuple (as io.load gives without like=) is accepted, and gets a tuple back
    grads, _ = layer.grad(tuple(params), np.ones((4, 2, 3), np.float32),
                          np.ones((4, 2, 3), np.float32))
    assert type(grads) is tuple


def test_layer_norm_bad_inputs() -> None:
    layer = layer_norm()
    _, params = layer.init(random.key(0), (4,))
    with pytest.raises(ValueError, match=r"layer_norm: x must have 4 channels.*shape \(2, 3\)"):
        layer.apply(params, np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="layer_norm: x must have the params' dtype float32"):
        layer.apply(params, np.ones((2, 4)))
    with pytest.raises(ValueError, match="layer_norm: in_shape must have at least one axis"):
        layer.init(random.key(0), ())
    with pytest.raises(ValueError, match="layer_norm: eps must be finite"):
        layer_norm(eps=0.0)
    with pytest.raises(TypeError, match="layer_norm: params must be NormParams"):
        layer.apply((params.scale, None), np.ones((2, 4), np.float32))
