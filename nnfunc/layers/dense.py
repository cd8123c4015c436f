"""The fully connected layer ``dense``: ``y = x W + b``."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from nnfunc import _kernels, random, workspace
from nnfunc._validate import describe, fail, flag, positive_int, type_fail
from nnfunc.initializers import Initializer, check_initializer, glorot_uniform, zeros
from nnfunc.layer import Layer, batch_array, from_forward_backward
from nnfunc.layers._shapes import feature_shape
from nnfunc.typing import Array, FloatArray, Key, Shape, ShapeTree

__all__ = ["DenseParams", "dense"]


class DenseParams(NamedTuple):
    """Parameters of :func:`dense`: kernel ``w`` ``(d_in, d_out)``, bias ``b`` ``(d_out,)``."""

    w: FloatArray
    b: FloatArray | None


def _dense_params(name: str, params: Any, use_bias: bool, d_out: int) -> DenseParams:
    """``params`` as :class:`DenseParams`, checked: a kernel ``(d_in, d_out)`` of a
    floating dtype and a bias ``(d_out,)`` of the same dtype (or ``None`` without
    bias). Accepts a plain ``(w, b)`` tuple (as ``nnfunc.io.load`` returns without
    ``like=``); anything else is a clear error naming the field."""
    expected = "(w (d_in, d_out), b (d_out,))" if use_bias else "(w (d_in, d_out), None)"
    if not (isinstance(params, tuple) and len(params) == 2
            and (type(params) is tuple or type(params) is DenseParams)):
        raise type_fail(name, "params", f"must be DenseParams{expected} as init returns",
                        describe(params))
    w, b = params
    if not (isinstance(w, np.ndarray) and w.dtype.kind == "f"):
        raise type_fail(name, "params.w", "must be a floating-point array", describe(w))
    if w.ndim != 2 or w.shape[1] != d_out:
        raise fail(name, "params.w", f"must have shape (d_in, {d_out})", f"shape {w.shape}")
    if not use_bias:
        if b is not None:
            raise type_fail(name, "params.b", "must be None (the layer has use_bias=False)",
                            describe(b))
    elif not (isinstance(b, np.ndarray) and b.dtype == w.dtype):
        raise type_fail(name, "params.b", f"must be an array of the kernel's dtype {w.dtype}",
                        describe(b))
    elif b.shape != (d_out,):
        raise fail(name, "params.b", f"must have shape ({d_out},)", f"shape {b.shape}")
    return DenseParams(w, b)


def _rows_input(name: str, x: Any, w: FloatArray) -> Array:
    """``x`` checked as a float batch ``(n, …, d_in)`` of ``w``'s dtype."""
    checked = batch_array(name, x, None, w.dtype)
    if checked.ndim <= 2:
        return batch_array(name, checked, (w.shape[0],), w.dtype)
    if checked.shape[-1] != w.shape[0]:
        raise fail(name, "x", f"must have shape (batch, …, {w.shape[0]}) (the last axis is "
                   f"d_in)", f"shape {checked.shape}")
    return checked


def dense(d_out: int, *, use_bias: bool = True, w_init: Initializer = glorot_uniform,
          b_init: Initializer = zeros, dtype: Any = np.float32) -> Layer:
    """Fully connected layer, the affine map ``y = x W + b`` on the last axis.

    Shapes: ``x (n, …, d_in) -> y (n, …, d_out)``; ``W (d_in, d_out)``;
    ``b (d_out,)``. Any leading axes (a sequence's time axis, an image's
    height and width) are rows: with ``X`` the ``(m, d_in)`` view of ``x``
    (``m = n·…``) and ``dY`` the ``(m, d_out)`` view of ``dy``,
    Forward:  ``Y = X W + b``, i.e. ``y_{…j} = Σ_i x_{…i} W_ij + b_j``.
    Backward: ``dW = Xᵀ dY``, ``db = Σ_rows dY``, ``dx = dY Wᵀ`` (reshaped back),
    so the parameter gradients sum over every leading axis.

    (The formula sheet writes ``z = W·x + b``, which does not type-check for a
    batch of rows; see the README's math section.)

    Args:
        d_out: number of output features.
        use_bias: whether to add ``b``; without it ``params.b`` is ``None``.
        w_init, b_init: initializers for ``W`` and ``b``.
        dtype: dtype of the params made by ``init`` (float32 by default).

    Raises:
        ValueError: ``apply``/``grad`` with ``x`` whose last axis is not
            ``d_in``, or with no feature axis, or params of the wrong shapes.
        TypeError: ``x`` not a float array of the params' dtype; params that
            are not ``DenseParams`` of float arrays of one dtype.

    >>> import numpy as np
    >>> from nnfunc import random, workspace
    >>> layer = dense(3)
    >>> out_shape, params = layer.init(random.key(0), (4,))
    >>> out_shape, layer.apply(params, np.ones((2, 4), np.float32)).shape
    ((3,), (2, 3))
    >>> _, params = layer.init(random.key(0), (5, 4))  # e.g. (n, T, D) sequences
    >>> layer.apply(params, np.ones((2, 5, 4), np.float32)).shape
    (2, 5, 3)
    """
    d_out = positive_int(d_out, "dense", "d_out")
    use_bias = flag(use_bias, "dense", "use_bias")
    check_initializer(w_init, "dense", "w_init")
    check_initializer(b_init, "dense", "b_init")
    name = f"dense({d_out})"

    def init(key: Key, in_shape: ShapeTree) -> tuple[Shape, DenseParams]:
        shape = feature_shape(name, in_shape)
        if len(shape) == 0:
            raise fail(name, "in_shape", "must have a feature axis (…, d_in)", shape)
        k_w, k_b = random.split(random.check_key(key, name))
        w = w_init(k_w, (shape[-1], d_out), dtype)
        b = b_init(k_b, (d_out,), dtype) if use_bias else None
        return (*shape[:-1], d_out), DenseParams(w, b)

    def forward(params: DenseParams, x: Any, key: Key | None, train: bool) -> tuple[Array, Array]:
        w, b = params if type(params) is DenseParams else (None, None)
        if not (type(w) is np.ndarray and w.ndim == 2 and w.shape[1] == d_out  # inline: per step
                and w.dtype.kind == "f"
                and (type(b) is np.ndarray and b.dtype is w.dtype and b.ndim == 1
                     and b.shape[0] == d_out if use_bias else b is None)):
            params = _dense_params(name, params, use_bias, d_out)
            w = params.w
        if not (type(x) is np.ndarray and x.dtype is w.dtype and x.dtype.kind == "f"
                and x.ndim == 2 and x.shape[1] == w.shape[0]):  # the common case, inline
            x = _rows_input(name, x, w)
        if x.ndim == 2:
            y = workspace.matmul(x, w)
        else:  # leading axes are rows: one product over all of them
            y = workspace.matmul(x.reshape(-1, w.shape[0]), w).reshape((*x.shape[:-1],
                                                                         w.shape[1]))
        if params.b is not None:
            _kernels.add_bias(y, params.b)  # y += b, one compiled pass
        return y, x

    def backward(params: DenseParams, x: Array, dy: Array,
                 need_dx: bool) -> tuple[DenseParams, Array | None]:
        plain = type(params) is not DenseParams  # a (w, b) tuple gets a tuple back
        w, b = params
        x_shape = x.shape
        if x.ndim != 2:  # leading axes are rows, as in the forward pass
            x, dy = x.reshape(-1, w.shape[0]), dy.reshape(-1, w.shape[1])
        db = workspace.column_sums(dy) if b is not None else None
        dx = workspace.matmul(dy, w.T) if need_dx else None
        if dx is not None and len(x_shape) != 2:
            dx = dx.reshape(x_shape)
        dw = workspace.matmul(x.T, dy)
        return ((dw, db) if plain else DenseParams(dw, db)), dx  # type: ignore[return-value]

    return from_forward_backward(name, init, forward, backward, uses_key=False)
