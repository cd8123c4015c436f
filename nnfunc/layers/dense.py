"""The fully connected layer ``dense``: ``y = x W + b``."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from nnfunc import random
from nnfunc._validate import describe, fail, positive_int, type_fail
from nnfunc.initializers import Initializer, check_initializer, glorot_uniform, zeros
from nnfunc.layer import Layer, batch_array, from_forward_backward
from nnfunc.layers._shapes import feature_shape
from nnfunc.typing import Array, FloatArray, Key, Shape, ShapeTree

__all__ = ["DenseParams", "dense"]


class DenseParams(NamedTuple):
    """Parameters of :func:`dense`: kernel ``w`` ``(d_in, d_out)``, bias ``b`` ``(d_out,)``."""

    w: FloatArray
    b: FloatArray | None


def _dense_params(name: str, params: Any, use_bias: bool) -> DenseParams:
    """``params`` as :class:`DenseParams`: accepts a plain ``(w, b)`` tuple (as
    ``nnfunc.io.load`` returns without ``like=``); anything else is a clear
    ``TypeError``."""
    if type(params) is tuple and len(params) == 2:
        w, b = params
        if isinstance(w, np.ndarray) and w.ndim == 2 and (
                (use_bias and isinstance(b, np.ndarray) and b.shape == w.shape[1:])
                or (not use_bias and b is None)):
            return DenseParams(w, b)
    expected = "(w (d_in, d_out), b (d_out,))" if use_bias else "(w (d_in, d_out), None)"
    raise type_fail(name, "params", f"must be DenseParams{expected} as init returns",
                    describe(params))


def dense(d_out: int, *, use_bias: bool = True, w_init: Initializer = glorot_uniform,
          b_init: Initializer = zeros, dtype: Any = np.float32) -> Layer:
    """Fully connected layer, the affine map ``y = x W + b``.

    Shapes: ``x (n, d_in) -> y (n, d_out)``; ``W (d_in, d_out)``; ``b (d_out,)``.
    Forward:  ``y_nj = Σ_i x_ni W_ij + b_j``.
    Backward: ``dW = xᵀ dy``, ``db = Σ_n dy_n``, ``dx = dy Wᵀ``.

    (The formula sheet writes ``z = W·x + b``, which does not type-check for a
    batch of rows; see the README's math section.)

    Args:
        d_out: number of output features.
        use_bias: whether to add ``b``; without it ``params.b`` is ``None``.
        w_init, b_init: initializers for ``W`` and ``b``.
        dtype: dtype of the params made by ``init`` (float32 by default).

    Raises:
        ValueError: ``init`` with a non-1-D ``in_shape`` (put :func:`flatten`
            first); ``apply``/``grad`` with ``x`` of the wrong width.
        TypeError: ``x`` not a float array of the params' dtype.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> layer = dense(3)
    >>> out_shape, params = layer.init(random.key(0), (4,))
    >>> out_shape, layer.apply(params, np.ones((2, 4), np.float32)).shape
    ((3,), (2, 3))
    """
    d_out = positive_int(d_out, "dense", "d_out")
    check_initializer(w_init, "dense", "w_init")
    check_initializer(b_init, "dense", "b_init")
    name = f"dense({d_out})"

    def init(key: Key, in_shape: ShapeTree) -> tuple[Shape, DenseParams]:
        shape = feature_shape(name, in_shape)
        if len(shape) != 1:
            raise fail(name, "in_shape", "must be 1-D (d_in,); put flatten() before dense",
                       shape)
        k_w, k_b = random.split(random.check_key(key, name))
        w = w_init(k_w, (shape[0], d_out), dtype)
        b = b_init(k_b, (d_out,), dtype) if use_bias else None
        return (d_out,), DenseParams(w, b)

    def forward(params: DenseParams, x: Any, key: Key | None, train: bool) -> tuple[Array, Array]:
        if type(params) is not DenseParams:
            params = _dense_params(name, params, use_bias)
        w = params.w
        if not (type(x) is np.ndarray and x.dtype is w.dtype and x.dtype.kind == "f"
                and x.ndim == 2 and x.shape[1] == w.shape[0]):  # the common case, inline
            x = batch_array(name, x, (w.shape[0],), w.dtype)
        y = x @ w
        if params.b is not None:
            y += params.b
        return y, x

    def backward(params: DenseParams, x: Array, dy: Array,
                 need_dx: bool) -> tuple[DenseParams, Array | None]:
        plain = type(params) is not DenseParams  # a (w, b) tuple gets a tuple back
        w, b = params
        db = np.add.reduce(dy, axis=0) if b is not None else None
        dx = dy @ w.T if need_dx else None
        dw = x.T @ dy
        return ((dw, db) if plain else DenseParams(dw, db)), dx  # type: ignore[return-value]

    return from_forward_backward(name, init, forward, backward)
