"""Metrics against reference computations written here."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import metrics


@given(st.integers(1, 30), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_accuracy_counts_argmax_hits(n: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, c))
    labels = rng.integers(0, c, n)
    hits = sum(int(np.argmax(scores[i]) == labels[i]) for i in range(n))
    assert metrics.accuracy(scores, labels) == hits / n
    assert metrics.accuracy(scores, np.eye(c)[labels]) == hits / n
    probs = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    assert metrics.accuracy(probs, labels) == hits / n


@given(st.integers(2, 40), st.integers(0, 2**32 - 1))
def test_regression_metrics(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, 2))
    p = y + rng.normal(size=(n, 2)) * 0.3
    assert metrics.mae(p, y) == pytest.approx(sum(abs(p - y).ravel()) / (2 * n))
    assert metrics.mse(p, y) == pytest.approx(sum(((p - y) ** 2).ravel()) / (2 * n))
    r2_cols = [1 - ((p[:, j] - y[:, j]) ** 2).sum() / ((y[:, j] - y[:, j].mean()) ** 2).sum()
               for j in range(2)]
    assert metrics.r2(p, y) == pytest.approx(np.mean(r2_cols))
    assert metrics.r2(y, y) == 1.0


def test_binary_accuracy_probabilities_and_logits() -> None:
    y = np.array([[1.0], [0.0], [1.0], [0.0]])
    probs = np.array([[0.9], [0.4], [0.3], [0.6]])
    assert metrics.binary_accuracy(probs, y) == 0.5
    logits = np.array([[2.0], [-1.0], [0.5], [-3.0]])
    assert metrics.binary_accuracy_from_logits(logits, y) == 1.0


def test_metric_names_are_history_keys() -> None:
    assert [m.__name__ for m in (metrics.accuracy, metrics.mae, metrics.r2)] == \
        ["accuracy", "mae", "r2"]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"accuracy: y_true labels must be in \[0, 3\)"):
        metrics.accuracy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"accuracy: y_true integer labels must have shape"):
        metrics.accuracy(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"mse: y_true must have y_pred's shape \(4, 1\)"):
        metrics.mse(np.zeros((4, 1)), np.zeros(4))
    with pytest.raises(ValueError, match="r2: y_true must vary in every output column"):
        metrics.r2(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="binary_accuracy: y_true must hold 0/1 targets"):
        metrics.binary_accuracy(np.zeros(2), np.array([0.0, 0.5]))
