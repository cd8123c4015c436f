"""Batched inference: :func:`predict` and :func:`evaluate`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nnfunc import tree
from nnfunc._validate import (
    describe,
    fail,
    positive_int,
    type_fail,
)
from nnfunc.layer import (
    Layer,
    apply_with_state,
    is_stateful,
)
from nnfunc.losses import Loss
from nnfunc.train._grad import Metric, _check_model_and_loss
from nnfunc.typing import Input, PyTree

# -- batched inference --------------------------------------------------------------------

def _num_samples(component: str, arg: str, x: Any) -> int:
    leaves = tree.leaves(x)
    if not leaves or not all(isinstance(a, np.ndarray) and a.ndim >= 1 for a in leaves):
        raise type_fail(component, arg, "must be an array (or tuple of arrays) with a batch "
                        "axis", describe(x))
    n = leaves[0].shape[0]
    if any(a.shape[0] != n for a in leaves):
        raise fail(component, arg, "arrays must all have the same number of samples",
                   [a.shape[0] for a in leaves])
    return int(n)


def _take(x: Any, idx: Any) -> Any:
    return tree.map(lambda a: a[idx], x)


def _model_state(component: str, model: Layer, model_state: Any) -> Any:
    """The state to thread: ``model_state`` for a stateful model (required), ``()`` else."""
    if is_stateful(model):
        if model_state is None:
            raise type_fail(component, "model_state", f"is required for the stateful model "
                            f"{model.name} (from model.init_with_state, or a FitResult)",
                            "None")
        return model_state
    if model_state is not None:
        raise type_fail(component, "model_state", f"must be None for the stateless model "
                        f"{model.name}", describe(model_state))
    return ()


def _infer(model: Layer, params: PyTree, x: Input, state: Any) -> Any:
    return apply_with_state(model, params, x, state, train=False)[0]


def predict(model: Layer, params: PyTree, x: Input, *, batch_size: int = 256,
            model_state: Any = None) -> Any:
    """``model.apply(params, x)`` in inference mode, ``batch_size`` rows at a time.

    Returns the outputs concatenated along the batch axis (a tuple of arrays
    for a multi-output model). A stateful model needs its ``model_state``
    (inference reads it and leaves it as it is).
    """
    n = _num_samples("predict", "x", x)
    bs = positive_int(batch_size, "predict", "batch_size")
    state = _model_state("predict", model, model_state)
    outs = [_infer(model, params, _take(x, slice(i, i + bs)), state)
            for i in range(0, n, bs)]
    if not outs:
        raise fail("predict", "x", "must hold at least one sample", "0 samples")
    return tree.map(lambda *parts: np.concatenate(parts, axis=0), outs[0], *outs[1:])


def _metric_name(metric: Metric) -> str:
    return str(getattr(metric, "name", None) or getattr(metric, "__name__", "metric"))


def _check_metrics(component: str, metrics: Any) -> None:
    if callable(metrics) or not isinstance(metrics, (list, tuple)):
        raise type_fail(component, "metrics", "must be a list of callables (e.g. "
                        "[nnfunc.metrics.accuracy])", describe(metrics))
    for i, m in enumerate(metrics):
        if not callable(m):
            raise type_fail(component, f"metrics[{i}]", "must be a callable (y_pred, y_true) -> "
                            "float such as nnfunc.metrics.accuracy", describe(m))


def evaluate(model: Layer, loss: Loss, params: PyTree, x: Input, y: Any, *,
             batch_size: int = 256, metrics: Sequence[Metric] = (),
             model_state: Any = None) -> dict[str, float]:
    """The loss (and each metric) of ``model`` over all of ``(x, y)``, in inference mode.

    The loss is the mean over all samples (exactly what one batch of all the
    data would give); metrics are computed on the concatenated predictions.
    Returns ``{"loss": ..., "<metric name>": ...}``. A stateful model needs
    its ``model_state``.
    """
    _check_model_and_loss("evaluate", model, loss)
    _model_state("evaluate", model, model_state)
    _check_metrics("evaluate", metrics)
    y_pred = predict(model, params, x, batch_size=batch_size, model_state=model_state)
    results = {"loss": float(loss.apply(y_pred, y))}
    for m in metrics:
        results[_metric_name(m)] = float(m(y_pred, y))
    return results
