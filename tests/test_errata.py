"""Where the formula sheet is wrong, nnfunc follows the true derivative.

Each test names the ERRATA line it pins down and states the correct value
from first principles (not from nnfunc's output).
"""

from __future__ import annotations

import numpy as np
import pytest

from nnfunc import activations, losses, random
from nnfunc.combinators import serial
from nnfunc.layers import dense, dropout


def test_e2_dense_is_x_w_plus_b_for_a_batch_of_rows() -> None:
    layer = dense(2)
    _, params = layer.init(random.key(0), (3,))
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    expected = [sum(x[0, i] * params.w[i, j] for i in range(3)) + params.b[j] for j in range(2)]
    np.testing.assert_allclose(layer.apply(params, x)[0], expected, rtol=1e-6)


def test_e3_softmax_normalises_each_row_and_survives_huge_logits() -> None:
    z = np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]])
    y = activations.softmax.apply((), z)
    np.testing.assert_allclose(y, [[0.5, 0.5], [0.25, 0.75]], rtol=1e-12)


def test_e4_binary_crossentropy_is_the_mean_over_all_elements() -> None:
    p = np.array([[0.5, 0.25], [0.5, 0.5]])
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    terms = [-np.log(0.5), -np.log(0.75), -np.log(0.5), -np.log(0.5)]
    assert losses.binary_crossentropy.apply(p, y) == pytest.approx(np.mean(terms), rel=1e-12)


def test_e5_categorical_crossentropy_sums_classes_and_averages_samples() -> None:
    p = np.array([[0.2, 0.8], [0.6, 0.4]])
    y = np.array([[0.0, 1.0], [1.0, 0.0]])
    expected = (-np.log(0.8) - np.log(0.6)) / 2
    assert losses.categorical_crossentropy.apply(p, y) == pytest.approx(expected, rel=1e-12)


def test_e8_mae_gradient_has_the_sign_of_prediction_minus_target() -> None:
    y_pred = np.array([[2.0, -1.0, 0.5, 1.0]])
    y_true = np.array([[1.0, 0.0, 0.5, 3.0]])
    # sign(ŷ - y) / N with N = 4, and 0 where ŷ = y
    np.testing.assert_array_equal(losses.mae.grad(y_pred, y_true), [[0.25, -0.25, 0.0, -0.25]])


def test_e9_mse_gradient_is_plus_two_residual_over_n() -> None:
    y_pred = np.array([[2.0, -1.0]])
    y_true = np.array([[1.0, 1.0]])
    np.testing.assert_allclose(losses.mse.grad(y_pred, y_true), [[2 * 1.0 / 2, 2 * -2.0 / 2]])


def test_e10_softmax_cross_entropy_gradient_is_averaged_over_the_batch() -> None:
    z = np.zeros((4, 2))
    labels = np.array([0, 1, 0, 1])
    # softmax = 0.5 everywhere; (ŷ - y) / n with n = 4
    expected = (np.full((4, 2), 0.5) - np.eye(2)[labels]) / 4
    np.testing.assert_allclose(losses.softmax_cross_entropy.grad(z, labels), expected)


def test_e16_dropout_rate_is_the_drop_probability_and_kept_units_scale_up() -> None:
    rate = 0.25
    x = np.ones((400, 100), np.float64)
    y = dropout(rate).apply((), x, key=random.key(7), train=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / (1 - rate))
    # 40,000 Bernoulli(0.75) draws: the kept fraction is within 0.01 of 0.75 w.p. > 0.9999
    assert abs(kept.mean() - (1 - rate)) < 0.01
    # not training: identity
    np.testing.assert_array_equal(dropout(rate).apply((), x, train=False), x)


def test_e16_dropout_backward_uses_the_forward_mask() -> None:
    x = np.arange(1.0, 13.0).reshape(3, 4)
    k = random.key(3)
    layer = dropout(0.5)
    y = layer.apply((), x, key=k, train=True)
    _, dx = layer.grad((), x, np.ones_like(x), key=k, train=True)
    np.testing.assert_array_equal(dx, np.where(y != 0, 2.0, 0.0))


def test_e17_softmax_backward_is_the_vector_jacobian_product() -> None:
    z = np.array([[0.1, -0.3, 0.7]])
    s = np.exp(z) / np.exp(z).sum()
    jac = np.diag(s[0]) - np.outer(s[0], s[0])  # ∂s_i/∂z_j = s_i(δ_ij - s_j)
    dy = np.array([[1.0, 2.0, -1.0]])
    _, dx = activations.softmax.grad((), z, dy)
    np.testing.assert_allclose(dx[0], jac.T @ dy[0], rtol=1e-12)


def test_e1_every_layer_applies_its_own_activation() -> None:
    model = serial(dense(3), activations.relu, dense(2), activations.sigmoid)
    _, (p1, _, p2, _) = model.init(random.key(0), (4,))
    x = random.normal(random.key(1), (5, 4))
    expected = 1 / (1 + np.exp(-(np.maximum(x @ p1.w + p1.b, 0) @ p2.w + p2.b)))
    np.testing.assert_allclose(model.apply(model.init(random.key(0), (4,))[1], x), expected,
                               rtol=1e-6)
