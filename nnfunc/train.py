"""Training: whole-model gradients and the loop that drives them.

:func:`value_and_grad` turns a model (any :class:`~nnfunc.layer.Layer`) and
a :class:`~nnfunc.losses.Loss` into one pure function
``(params, x, y, *, key=None) -> (loss_value, grads)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nnfunc._validate import describe, type_fail
from nnfunc.layer import Layer, vjp
from nnfunc.losses import Loss
from nnfunc.typing import Input, Key, PyTree

__all__ = ["loss_value_and_grad", "value_and_grad"]

ValueAndGrad = Callable[..., tuple[Any, Any]]


def loss_value_and_grad(loss: Loss, y_pred: Any, y_true: Any) -> tuple[Any, Any]:
    """``(loss.apply(y_pred, y_true), loss.grad(y_pred, y_true))``, fused when possible."""
    if loss.value_and_grad is not None:
        return loss.value_and_grad(y_pred, y_true)
    return loss.apply(y_pred, y_true), loss.grad(y_pred, y_true)


def value_and_grad(model: Layer, loss: Loss, *, train: bool = True) -> ValueAndGrad:
    """The loss of ``model`` on a batch and its gradient with respect to the params.

    Returns ``f(params, x, y, *, key=None) -> (value, grads)`` where
    ``value = loss(model.apply(params, x, key=key, train=train), y)`` and
    ``grads = ∂value/∂params``, with exactly the structure, shapes and dtypes
    of ``params``. One forward pass records each layer's pullback; one
    backward pass runs them in reverse (no forward runs twice for built-in
    layers), and the input layer computes no ``dx``.

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
    if not isinstance(model, Layer):
        raise type_fail("value_and_grad", "model", "must be an nnfunc Layer", describe(model))
    if not isinstance(loss, Loss):
        raise type_fail("value_and_grad", "loss", "must be an nnfunc Loss", describe(loss))

    def f(params: PyTree, x: Input, y: Any, *, key: Key | None = None) -> tuple[Any, Any]:
        y_pred, pullback = vjp(model, params, x, key=key, train=train)
        value, dy = loss_value_and_grad(loss, y_pred, y)
        grads, _ = pullback(dy, False)
        return value, grads

    return f
