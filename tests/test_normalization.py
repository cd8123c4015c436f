"""layer_norm and batch_norm against their formulas written out here, row by row."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnfunc import random
from nnfunc.combinators import residual, serial
from nnfunc.layer import is_stateful, vjp
from nnfunc.layers import BatchNormState, NormParams, batch_norm, conv2d, dense, layer_norm


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


def _naive_batch_norm_train(x: np.ndarray, scale: np.ndarray, bias: np.ndarray,
                            eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per channel: the mean and biased variance over every other position."""
    c = x.shape[-1]
    cols = x.reshape(-1, c)
    y = np.empty_like(cols)
    means, variances = np.empty(c), np.empty(c)
    for j in range(c):
        col = [float(v) for v in cols[:, j]]
        mean = sum(col) / len(col)
        var = sum((v - mean) ** 2 for v in col) / len(col)
        means[j], variances[j] = mean, var
        for i, v in enumerate(col):
            y[i, j] = scale[j] * (v - mean) / math.sqrt(var + eps) + bias[j]
    return y.reshape(x.shape), means, variances


@pytest.mark.parametrize("shape", [(1, 3), (5, 2), (2, 3, 4, 3)])
def test_batch_norm_matches_the_formula_in_both_modes(shape: tuple[int, ...]) -> None:
    momentum, eps = 0.8, 1e-5
    layer = batch_norm(momentum=momentum, eps=eps, dtype=np.float64)
    c = shape[-1]
    _, _, state = layer.init_with_state(random.key(0), shape[1:])
    np.testing.assert_array_equal(state.mean, np.zeros(c))  # documented start: mean 0, var 1
    np.testing.assert_array_equal(state.var, np.ones(c))
    params = NormParams(random.normal(random.key(2), (c,), np.float64),
                        random.normal(random.key(3), (c,), np.float64))
    x = random.normal(random.key(1), shape, np.float64) * 2 + 3
    y, new = layer.apply(params, x, state=state, train=True)
    want, means, variances = _naive_batch_norm_train(x, params.scale, params.bias, eps)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new.mean, [momentum * 0 + (1 - momentum) * m for m in means],
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(new.var, [momentum * 1 + (1 - momentum) * v for v in variances],
                               rtol=1e-12)
    # a second step averages again, from the first step's state
    y2, newer = layer.apply(params, x, state=new, train=True)
    np.testing.assert_allclose(newer.mean, momentum * new.mean + (1 - momentum) * means,
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(y2, y)
    # inference: the affine map of the state, which comes back unchanged
    y_eval, same = layer.apply(params, x, state=newer, train=False)
    cols = x.reshape(-1, c)
    want_eval = np.array([[params.scale[j] * (row[j] - newer.mean[j])
                           / math.sqrt(newer.var[j] + eps) + params.bias[j] for j in range(c)]
                          for row in cols]).reshape(shape)
    np.testing.assert_allclose(y_eval, want_eval, rtol=1e-12, atol=1e-12)
    assert same is newer


def test_batch_norm_float32_state_and_outputs_stay_float32() -> None:
    layer = batch_norm()
    _, params, state = layer.init_with_state(random.key(0), (4, 4, 2))
    x = random.normal(random.key(1), (3, 4, 4, 2), np.float32)
    y, new = layer.apply(params, x, state=state, train=True)
    assert y.dtype == np.float32
    assert [a.dtype for a in new] == [np.float32, np.float32]
    (dscale, dbias), dx = layer.grad(params, x, np.ones_like(y), state=state, train=True)
    assert dscale.dtype == dbias.dtype == dx.dtype == np.float32


def test_missing_state_is_a_type_error_naming_the_layer() -> None:
    layer = batch_norm()
    _, params, _state = layer.init_with_state(random.key(0), (3,))
    x = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match="batch_norm: state is required"):
        layer.apply(params, x, train=True)
    with pytest.raises(TypeError, match="batch_norm: state is required"):
        layer.grad(params, x, x)
    model = serial(dense(3), batch_norm())
    _, mparams, mstate = model.init_with_state(random.key(0), (3,))
    with pytest.raises(TypeError, match="serial: state is required"):
        model.apply(mparams, x)
    with pytest.raises(TypeError, match="serial: state is required"):
        vjp(model, mparams, x)
    with pytest.raises(TypeError, match="batch_norm: state must be BatchNormState"):
        layer.apply(params, x, state=(np.zeros(2, np.float32), np.ones(2, np.float32)))
    with pytest.raises(ValueError, match=r"serial: state must be a tuple of 2 children's states"):
        model.apply(mparams, x, state=mstate[:1])


def test_stateful_combinators() -> None:
    assert is_stateful(batch_norm())
    assert not is_stateful(layer_norm())
    model = serial(dense(4), residual(serial(batch_norm(), dense(4))), dense(2))
    assert is_stateful(model)
    assert not is_stateful(serial(dense(4), layer_norm()))
    shape, params, state = model.init_with_state(random.key(0), (3,))
    assert shape == (2,)
    assert len(params) == len(state) == 3
    assert state[0] == ()
    assert state[2] == ()
    assert isinstance(state[1][0][0], BatchNormState)
    _, params_plain = model.init(random.key(0), (3,))
    np.testing.assert_array_equal(params[0].w, params_plain[0].w)


def test_bad_shapes_at_init_name_the_layer_and_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"serial: layer 0 \(batch_norm\) cannot take input "
                       r"shape \(\).*in_shape must have at least one axis"):
        serial(batch_norm(), dense(2)).init_with_state(random.key(0), ())
    # (dense takes any rank now; a 2-D convolution needs (H, W, C))
    with pytest.raises(ValueError, match=r"serial: layer 1 \(conv2d.*\) cannot take input "
                       r"shape \(4, 3\)"):
        serial(batch_norm(), conv2d(2, 3)).init_with_state(random.key(0), (4, 3))
    with pytest.raises(ValueError, match=r"serial: layer 1 \(residual\(dense\(2\)\)\) cannot "
                       r"take input shape \(3,\).*must equal its input shape \(3,\)"):
        serial(batch_norm(), residual(dense(2))).init_with_state(random.key(0), (3,))
    layer = batch_norm()
    _, params, state = layer.init_with_state(random.key(0), (3,))
    with pytest.raises(ValueError, match=r"batch_norm: x must have 3 channels.*shape \(2, 4\)"):
        layer.apply(params, np.ones((2, 4), np.float32), state=state)
    with pytest.raises(ValueError, match="batch_norm: momentum must be finite and in"):
        batch_norm(momentum=1.0)
