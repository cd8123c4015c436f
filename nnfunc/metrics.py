"""Metrics: pure functions ``(y_pred, y_true) -> float`` for ``fit`` and ``evaluate``.

Each function's ``__name__`` is its key in ``fit``'s history.

* ``accuracy`` — ``mean[argmax ŷ = label]``; logits or probabilities ``(n, c)``,
  integer ``(n,)`` or one-hot ``(n, c)`` labels; or sequences ``(n, T, c)`` with
  labels ``(n, T)``, over all positions.
* ``binary_accuracy`` — ``mean[(ŷ > 0.5) = y]`` for probabilities;
  ``binary_accuracy_from_logits`` uses threshold 0.
* ``mae``, ``mse`` — ``mean |ŷ - y|``, ``mean (ŷ - y)²``; equal shapes.
* ``r2`` — ``1 - Σ(ŷ - y)² / Σ(y - ȳ)²``, per output column, averaged.

>>> import numpy as np
>>> accuracy(np.array([[2.0, 1.0], [0.0, 3.0]]), np.array([0, 0]))
0.5
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnfunc._validate import describe, fail, finite_float, type_fail
from nnfunc.typing import Array

__all__ = ["accuracy", "binary_accuracy", "binary_accuracy_from_logits", "mae", "mse", "r2"]


def _pred(component: str, y_pred: Any) -> Array:
    p = np.asarray(y_pred)
    if p.dtype.kind not in "fiu":
        raise type_fail(component, "y_pred", "must be a real numeric array", describe(y_pred))
    if p.size == 0:
        raise fail(component, "y_pred", "must not be empty", f"shape {p.shape}")
    return p


def _labels(component: str, y_pred: Array, y_true: Any) -> Array:
    """Integer labels from integer ``(n, …)`` or one-hot ``(n, …, c)`` targets."""
    y = np.asarray(y_true)
    if y_pred.ndim < 2:
        raise fail(component, "y_pred", "must have shape (n, classes) or (n, …, classes), one "
                   "score per class (for one probability per sample use binary_accuracy)",
                   f"shape {y_pred.shape}")
    if y.dtype.kind not in "iufb":
        raise type_fail(component, "y_true", "must be integer labels or one-hot targets",
                        describe(y_true))
    c = y_pred.shape[-1]
    if y.dtype.kind in "iu":
        if y.shape != y_pred.shape[:-1]:
            raise fail(component, "y_true", f"integer labels must have shape {y_pred.shape[:-1]}",
                       f"shape {y.shape}")
        if (y < 0).any() or (y >= c).any():
            raise fail(component, "y_true", f"labels must be in [0, {c})",
                       f"labels from {y.min()} to {y.max()}")
        return y
    if y.shape != y_pred.shape:
        raise fail(component, "y_true", f"one-hot targets must have shape {y_pred.shape} (or "
                   f"integer labels of shape {y_pred.shape[:-1]})", f"shape {y.shape}")
    labels: Array = y.argmax(axis=-1)
    return labels


def accuracy(y_pred: Any, y_true: Any) -> float:
    """The fraction of rows whose largest score is at the true class.

    Works on logits and on probabilities alike (argmax is the same). For
    sequences, ``y_pred (n, T, c)`` and labels ``(n, T)``, it is the fraction
    of all ``n·T`` positions.
    """
    p = _pred("accuracy", y_pred)
    labels = _labels("accuracy", p, y_true)
    return float((p.argmax(axis=-1) == labels).mean())


def _binary(component: str, y_pred: Any, y_true: Any, threshold: float) -> float:
    p = _pred(component, y_pred)
    threshold = finite_float(threshold, component, "threshold")
    y = np.asarray(y_true)
    if y.dtype.kind not in "iufb":
        raise type_fail(component, "y_true", "must hold 0/1 targets", describe(y_true))
    if y.shape != p.shape:
        raise fail(component, "y_true", f"must have y_pred's shape {p.shape}", f"shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise fail(component, "y_true", "must hold 0/1 targets", "other values")
    return float(((p > threshold) == (y == 1)).mean())


def binary_accuracy(y_pred: Any, y_true: Any, threshold: float = 0.5) -> float:
    """The fraction of entries where ``ŷ > threshold`` matches a 0/1 target.

    ``threshold=0.5`` suits probabilities; for logits use
    :func:`binary_accuracy_from_logits` (threshold 0).
    """
    return _binary("binary_accuracy", y_pred, y_true, threshold)


def binary_accuracy_from_logits(y_pred: Any, y_true: Any) -> float:
    """:func:`binary_accuracy` of logits: ``σ(z) > ½`` exactly when ``z > 0``."""
    return _binary("binary_accuracy_from_logits", y_pred, y_true, 0.0)


def _pair(component: str, y_pred: Any, y_true: Any) -> tuple[Array, Array]:
    p = _pred(component, y_pred).astype(np.float64)
    y = np.asarray(y_true)
    if y.dtype.kind not in "iufb":
        raise type_fail(component, "y_true", "must be a real numeric array", describe(y_true))
    y = y.astype(np.float64)
    if y.shape != p.shape:
        raise fail(component, "y_true", f"must have y_pred's shape {p.shape} (no broadcasting)",
                   f"shape {y.shape}")
    return p, y


def mae(y_pred: Any, y_true: Any) -> float:
    """Mean absolute error ``mean |ŷ - y|``."""
    p, y = _pair("mae", y_pred, y_true)
    return float(np.abs(p - y).mean())


def mse(y_pred: Any, y_true: Any) -> float:
    """Mean squared error ``mean (ŷ - y)²``."""
    p, y = _pair("mse", y_pred, y_true)
    return float(((p - y) ** 2).mean())


def r2(y_pred: Any, y_true: Any) -> float:
    """Coefficient of determination ``1 - Σ(ŷ - y)² / Σ(y - ȳ)²``.

    Per output column for 2-D targets, then averaged (as scikit-learn's
    ``r2_score`` with uniform weights).

    Raises:
        ValueError: fewer than two samples, or a target column with no variance.
    """
    p, y = _pair("r2", y_pred, y_true)
    if y.shape[0] < 2:
        raise fail("r2", "y_true", "must hold at least 2 samples", y.shape[0])
    p2, y2 = p.reshape(len(p), -1), y.reshape(len(y), -1)
    total = ((y2 - y2.mean(axis=0)) ** 2).sum(axis=0)
    if (total == 0).any():
        raise fail("r2", "y_true", "must vary in every output column", "a constant column")
    return float((1 - ((p2 - y2) ** 2).sum(axis=0) / total).mean())
