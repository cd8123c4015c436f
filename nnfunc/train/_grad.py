"""Whole-model gradients and one training step: :func:`value_and_grad`, :func:`train_step`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from nnfunc import workspace
from nnfunc._validate import (
    describe,
    fail,
    flag,
    type_fail,
)
from nnfunc.layer import (
    Backward,
    Forward,
    Layer,
    forward_backward_of,
    is_stateful,
    output_like,
    vjp,
    vjp_with_state,
)
from nnfunc.losses import Loss
from nnfunc.optim.base import update_fn
from nnfunc.typing import Array, Input, Key, PyTree

ValueAndGrad = Callable[..., tuple[Any, ...]]
Metric = Callable[[Any, Any], float]


# -- gradients ----------------------------------------------------------------------------

def _weights(component: str, sample_weight: Any, n: int, dtype: Any) -> Array:
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise fail(component, "sample_weight", f"must have shape ({n},), one per sample",
                   f"shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise fail(component, "sample_weight", "must be finite, >= 0, with a positive sum",
                   f"min {w.min()}, sum {w.sum()}")
    return w.astype(dtype)


def loss_value_and_grad(loss: Loss, y_pred: Any, y_true: Any,
                        sample_weight: Any = None) -> tuple[Any, Any]:
    """The loss and ``dL/dy_pred``, fused when the loss allows, optionally weighted.

    With weights ``w`` (one per sample) the loss is ``Σ_i w_i ℓ_i / Σ_i w_i``
    over the per-sample losses ``ℓ_i``, and row ``i`` of the gradient is the
    unweighted one times ``n w_i / Σ w`` (each row's gradient depends only on
    its own sample).
    """
    if sample_weight is None:
        if loss.value_and_grad is not None:
            return loss.value_and_grad(y_pred, y_true)
        return loss.apply(y_pred, y_true), loss.grad(y_pred, y_true)
    if loss.per_sample is None:
        raise type_fail(loss.name, "sample_weight", "needs a loss with per_sample losses",
                        "a loss without per_sample")
    n = y_pred.shape[0]
    w = _weights(loss.name, sample_weight, n, y_pred.dtype)
    per = loss.per_sample(y_pred, y_true)
    total = w.sum()
    grad = loss.grad(y_pred, y_true)
    grad *= (w * (n / total)).reshape((n,) + (1,) * (grad.ndim - 1))
    return y_pred.dtype.type((w * per).sum() / total), grad


def value_and_grad(model: Layer, loss: Loss, *, train: bool = True) -> ValueAndGrad:
    """The loss of ``model`` on a batch and its gradient with respect to the params.

    Returns ``f(params, x, y, *, key=None, sample_weight=None) -> (value,
    grads)`` where ``value = loss(model.apply(params, x, key=key,
    train=train), y)`` and ``grads = ∂value/∂params``, with exactly the
    structure, shapes and dtypes of ``params``. One forward pass records each
    layer's pullback; one backward pass runs them in reverse (no forward runs
    twice for built-in layers), and the input layer computes no ``dx``.
    ``sample_weight`` (shape ``(n,)``) weights each sample's loss.

    For a stateful model the function is ``f(params, model_state, x, y, *,
    key=None, sample_weight=None) -> (value, grads, new_model_state)``: the
    forward pass runs with ``state=model_state`` and the state it returns
    (with ``train=True``, batch norm's updated running statistics) comes
    back as the third value; the gradient is taken at fixed state.

    Args:
        model: the network, e.g. ``serial(dense(128), relu, dense(10))``.
        loss: e.g. :data:`nnfunc.losses.softmax_cross_entropy`.
        train: passed to every layer (dropout is active when true; it then
            needs ``key``).

    Raises:
        TypeError: if ``model`` is not a layer or ``loss`` not a loss.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> from nnfunc.combinators import serial
    >>> from nnfunc.layers import dense
    >>> from nnfunc.activations import relu
    >>> from nnfunc.losses import softmax_cross_entropy
    >>> model = serial(dense(16), relu, dense(3))
    >>> _, params = model.init(random.key(0), (4,))
    >>> f = value_and_grad(model, softmax_cross_entropy)
    >>> loss, grads = f(params, np.ones((8, 4), np.float32), np.zeros(8, np.int64))
    >>> loss.dtype, grads[0].w.shape
    (dtype('float32'), (4, 16))
    """
    _check_model_and_loss("value_and_grad", model, loss)
    train = flag(train, "value_and_grad", "train")
    own = workspace.Workspace()  # this function's arrays, reused once nobody holds them
    if is_stateful(model):
        def f_state(params: PyTree, model_state: PyTree, x: Input, y: Any, *,
                    key: Key | None = None,
                    sample_weight: Any = None) -> tuple[Any, Any, Any]:
            token = workspace.enter(own)
            try:
                value, grads, _, new_state = _stateful_forward_backward(
                    model, loss, train, params, model_state, x, y, key, sample_weight)
            finally:
                workspace.leave(token)
            return value, grads, new_state

        return f_state

    def f(params: PyTree, x: Input, y: Any, *, key: Key | None = None,
          sample_weight: Any = None) -> tuple[Any, Any]:
        token = workspace.enter(own)
        try:
            value, grads, _ = _forward_backward(model, loss, train, params, x, y, key,
                                                sample_weight, parts)
        finally:
            workspace.leave(token)
        return value, grads

    parts = forward_backward_of(model)
    return f


def _check_model_and_loss(component: str, model: Any, loss: Any) -> None:
    if not isinstance(model, Layer):
        raise type_fail(component, "model", "must be an nnfunc Layer", describe(model))
    if not isinstance(loss, Loss):
        raise type_fail(component, "loss", "must be an nnfunc Loss", describe(loss))


def _forward_backward(model: Layer, loss: Loss, train: bool, params: PyTree, x: Input, y: Any,
                      key: Key | None, sample_weight: Any,
                      parts: tuple[Forward, Backward] | Literal[False] | None = False,
                      ) -> tuple[Any, Any, Any]:
    """``(value, grads, y_pred)``; ``parts`` is ``forward_backward_of(model)`` when the
    caller has it (looked up here otherwise)."""
    if parts is False:
        parts = forward_backward_of(model)
    if parts is not None and sample_weight is None and loss.value_and_grad is not None:
        # a built-in model (the usual case, every step): what vjp, loss_value_and_grad and
        # the pullback do, without their calls; the loss's dy checked as the pullback would
        y_pred, res = parts[0](params, x, key, train)
        value, dy = loss.value_and_grad(y_pred, y)
        output_like(model.name, dy, y_pred)
        grads, _ = parts[1](params, res, dy, False)
        return value, grads, y_pred
    y_pred, pullback = vjp(model, params, x, key=key, train=train)
    value, dy = loss_value_and_grad(loss, y_pred, y, sample_weight)
    grads, _ = pullback(dy, False)
    return value, grads, y_pred


def _stateful_forward_backward(model: Layer, loss: Loss, train: bool, params: PyTree,
                               state: PyTree, x: Input, y: Any, key: Key | None,
                               sample_weight: Any) -> tuple[Any, Any, Any, Any]:
    """``(value, grads, y_pred, new_state)`` of a stateful model: one forward, one backward."""
    y_pred, new_state, pullback = vjp_with_state(model, params, x, state, key=key, train=train)
    value, dy = loss_value_and_grad(loss, y_pred, y, sample_weight)
    grads, _ = pullback(dy, False)
    return value, grads, y_pred, new_state


Step = Callable[..., tuple[Any, ...]]


def _check_optimizer(component: str, optimizer: Any) -> None:
    if not (callable(getattr(optimizer, "init", None))
            and callable(getattr(optimizer, "update", None))):
        raise type_fail(component, "optimizer", "must have init(params) and update(state, "
                        "grads) (e.g. nnfunc.optim.adam(1e-3))", describe(optimizer))


def train_step(model: Layer, loss: Loss, optimizer: Any, *, donate: bool = False) -> Step:
    """One optimization step: gradients of the loss, then the optimizer's update.

    Returns ``step(params, opt_state, x, y, *, key=None, sample_weight=None)
    -> (params, opt_state, loss_value)``: ``loss_value`` is the loss at the
    old params; ``opt_state`` comes from ``optimizer.init(params)``. Pure:
    nothing passed in is modified.

    With ``donate=True`` the step may instead write the new params and
    state into the arrays of the ``params`` and ``opt_state`` it was given
    (through the optimizer's ``update_in_place``; Adam and AdamW have one),
    which saves a fresh copy of the whole state per step. Use it in a loop
    that replaces both with the step's results and keeps no other reference
    to them, as ``fit`` does; the results are the same as without it.

    For a stateful model the step is ``step(params, opt_state, model_state,
    x, y, *, key=None, sample_weight=None) -> (params, opt_state,
    model_state, loss_value)``, the new model state from the training-mode
    forward pass (never donated: it is a fresh tree each step).

    >>> import numpy as np
    >>> from nnfunc import random, optim
    >>> from nnfunc.layers import dense
    >>> from nnfunc.losses import mse
    >>> model, opt = dense(1), optim.sgd(0.1)
    >>> _, params = model.init(random.key(0), (2,))
    >>> step = train_step(model, mse, opt)
    >>> x, y = np.ones((4, 2), np.float32), np.ones((4, 1), np.float32)
    >>> params, state, first = step(params, opt.init(params), x, y)
    >>> params, state, second = step(params, state, x, y)
    >>> bool(second < first)
    True
    """
    _check_model_and_loss("train_step", model, loss)
    _check_optimizer("train_step", optimizer)
    update = update_fn(optimizer, flag(donate, "train_step", "donate"))
    own = workspace.Workspace()  # the step's arrays, reused once nobody holds them
    if is_stateful(model):
        def stateful_step(params: PyTree, opt_state: PyTree, model_state: PyTree, x: Input,
                          y: Any, *, key: Key | None = None,
                          sample_weight: Any = None) -> tuple[Any, Any, Any, Any]:
            token = workspace.enter(own)
            try:
                value, grads, _, model_state = _stateful_forward_backward(
                    model, loss, True, params, model_state, x, y, key, sample_weight)
                opt_state, params = update(opt_state, grads)
            finally:
                workspace.leave(token)
            return params, opt_state, model_state, value

        return stateful_step

    def step(params: PyTree, opt_state: PyTree, x: Input, y: Any, *, key: Key | None = None,
             sample_weight: Any = None) -> tuple[Any, Any, Any]:
        token = workspace.enter(own)
        try:
            value, grads, _ = _forward_backward(model, loss, True, params, x, y, key,
                                                sample_weight, parts)
            opt_state, params = update(opt_state, grads)
        finally:
            workspace.leave(token)
        return params, opt_state, value

    parts = forward_backward_of(model)
    return step
