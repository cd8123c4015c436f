"""Normalisation layers: ``layer_norm`` (over the last axis) and ``batch_norm``.

Both standardise ``x`` over a set of axes ``A`` and then apply a learned
per-channel affine map (channels are the last axis, ``C``)::

    μ = mean_A(x),  σ² = mean_A((x − μ)²),  r = 1/√(σ² + ε)
    x̂ = (x − μ)·r,  y = γ ⊙ x̂ + β

with the biased (divide-by-count) variance computed in two passes (the mean
first, then the mean of squared deviations: no cancellation). The backward
pass of the standardisation, with ``g = dy ⊙ γ`` and ``m`` the number of
elements averaged over, is::

    dx = r ⊙ (g − mean_A(g) − x̂ ⊙ mean_A(g ⊙ x̂))

and ``dγ = Σ dy ⊙ x̂``, ``dβ = Σ dy`` over every axis but the last. Params
are :class:`NormParams` ``(scale γ (C,), bias β (C,))``, either ``None``
when unused. ``batch_norm`` also keeps a model state (:class:`BatchNormState`,
running mean and variance; see :mod:`nnfunc.layer`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from nnfunc import _kernels
from nnfunc._validate import describe, fail, finite_float, type_fail
from nnfunc.layer import (
    Layer,
    batch_array,
    from_forward_backward,
    stateful_from_forward_backward,
)
from nnfunc.layers._shapes import feature_shape
from nnfunc.typing import Array, FloatArray, Key, Shape, ShapeTree

__all__ = ["BatchNormState", "NormParams", "batch_norm", "layer_norm"]


class NormParams(NamedTuple):
    """Params of a normalisation layer: ``scale`` γ ``(C,)`` and ``bias`` β ``(C,)``."""

    scale: FloatArray | None
    bias: FloatArray | None


def _norm_params(name: str, params: Any, use_scale: bool, use_bias: bool) -> NormParams:
    """``params`` as :class:`NormParams` (a plain 2-tuple, as ``io.load`` gives, is accepted)."""
    if isinstance(params, tuple) and len(params) == 2:
        scale, bias = params
        if ((scale is None) != use_scale and (bias is None) != use_bias
                and all(p is None or (isinstance(p, np.ndarray) and p.ndim == 1)
                        for p in (scale, bias))):
            return params if type(params) is NormParams else NormParams(scale, bias)
    want = (f"({'scale (C,)' if use_scale else 'None'}, {'bias (C,)' if use_bias else 'None'})")
    raise type_fail(name, "params", f"must be NormParams{want} as init returns",
                    describe(params))


def _affine_params(name: str, in_shape: ShapeTree, use_scale: bool, use_bias: bool,
                   dtype: Any) -> tuple[Shape, NormParams]:
    shape = feature_shape(name, in_shape)
    if not shape:
        raise fail(name, "in_shape", "must have at least one axis (the channels)", shape)
    c = shape[-1]
    return shape, NormParams(np.ones(c, dtype) if use_scale else None,
                             np.zeros(c, dtype) if use_bias else None)


def _norm_input(name: str, params: NormParams, x: Any, min_ndim: int) -> Array:
    """``x`` checked: a float batch with ``C`` channels last, of the params' dtype."""
    ref = params.scale if params.scale is not None else params.bias
    arr = batch_array(name, x, dtype=None if ref is None else ref.dtype)
    if arr.ndim < min_ndim:
        raise fail(name, "x", f"must have at least {min_ndim} axes (batch, …, channels)",
                   f"shape {arr.shape}")
    if ref is not None and arr.shape[-1] != ref.shape[0]:
        raise fail(name, "x", f"must have {ref.shape[0]} channels on its last axis (the "
                   f"params' C)", f"shape {arr.shape}")
    return arr


def _standardize(x: Array, axes: tuple[int, ...],
                 eps: float) -> tuple[Array, Array, Array, Array]:
    """``(x̂, r, μ, σ²)``: ``x`` standardised over ``axes``, ``r = 1/√(σ² + ε)`` (kept dims)."""
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    var = np.mean(np.square(centred), axis=axes, keepdims=True)
    r = 1.0 / np.sqrt(var + x.dtype.type(eps))
    centred *= r
    return centred, r, mean, var


def _standardize_backward(g: Array, x_hat: Array, r: Array, axes: tuple[int, ...]) -> Array:
    """``dx`` of ``x̂`` given ``g = ∂/∂x̂``: ``r ⊙ (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂))``."""
    dx: Array = g - g.mean(axis=axes, keepdims=True)
    dx -= x_hat * np.mean(g * x_hat, axis=axes, keepdims=True)
    dx *= r
    return dx


def _scale_shift(params: NormParams, x_hat: Array) -> Array:
    """``y = γ ⊙ x̂ + β`` (each term only when present)."""
    y = x_hat * params.scale if params.scale is not None else x_hat.copy()
    if params.bias is not None:
        _kernels.add_bias(y, params.bias)
    return y


def _affine_grads(params: NormParams, x_hat: Array, dy: Array) -> tuple[NormParams, Array]:
    """``(dγ, dβ)`` summed over every axis but the last, and ``g = dy ⊙ γ``."""
    axes = tuple(range(dy.ndim - 1))
    dscale = np.sum(dy * x_hat, axis=axes) if params.scale is not None else None
    dbias = np.sum(dy, axis=axes) if params.bias is not None else None
    g = dy * params.scale if params.scale is not None else dy
    return NormParams(dscale, dbias), g


def _check_flags(name: str, eps: float, use_scale: Any, use_bias: Any) -> float:
    for arg, flag in (("use_scale", use_scale), ("use_bias", use_bias)):
        if not isinstance(flag, bool):
            raise type_fail(name, arg, "must be a bool", describe(flag))
    return finite_float(eps, name, "eps", lo=0.0, lo_open=True)


def layer_norm(*, eps: float = 1e-5, use_scale: bool = True, use_bias: bool = True,
               dtype: Any = np.float32) -> Layer:
    """Layer normalisation over the last axis (Ba, Kiros & Hinton, 2016).

    Each position is standardised over its own ``C`` channels::

        μ = mean_c(x),  σ² = mean_c((x − μ)²)   (biased),  x̂ = (x − μ)/√(σ² + ε)
        y = γ ⊙ x̂ + β

    Backward (``g = dy ⊙ γ``, means over the last axis):
    ``dx = (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)) / √(σ² + ε)``,
    ``dγ = Σ dy ⊙ x̂``, ``dβ = Σ dy`` (sums over every axis but the last).

    Shapes: ``x (n, …, C) -> y (n, …, C)`` for any rank; params
    :class:`NormParams` ``(scale (C,), bias (C,))``, initialised to ones and
    zeros, ``None`` when unused. Stateless: the same in training and inference.

    Args:
        eps: added to the variance inside the square root (> 0).
        use_scale, use_bias: learn γ and β.
        dtype: dtype of the params made by ``init``.

    Raises:
        ValueError: ``x`` whose last axis is not ``C``; ``eps`` not > 0.
        TypeError: ``x`` not a float array of the params' dtype.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> layer = layer_norm()
    >>> _, params = layer.init(random.key(0), (4,))
    >>> y = layer.apply(params, np.array([[1.0, 2.0, 3.0, 4.0]], np.float32))
    >>> np.round(y.astype(np.float64), 3).tolist()
    [[-1.342, -0.447, 0.447, 1.342]]
    """
    name = "layer_norm"
    eps = _check_flags(name, eps, use_scale, use_bias)

    def init(key: Key, in_shape: ShapeTree) -> tuple[Shape, NormParams]:
        return _affine_params(name, in_shape, use_scale, use_bias, dtype)

    def forward(params: Any, x: Any, key: Key | None,
                train: bool) -> tuple[Array, tuple[Array, Array]]:
        params = _norm_params(name, params, use_scale, use_bias)
        x = _norm_input(name, params, x, 2)
        x_hat, r, _, _ = _standardize(x, (-1,), eps)
        return _scale_shift(params, x_hat), (x_hat, r)

    def backward(params: Any, res: tuple[Array, Array], dy: Array,
                 need_dx: bool) -> tuple[Any, Array | None]:
        x_hat, r = res
        plain = type(params) is not NormParams
        grads, g = _affine_grads(_norm_params(name, params, use_scale, use_bias), x_hat, dy)
        dx = _standardize_backward(g, x_hat, r, (-1,)) if need_dx else None
        return (tuple(grads) if plain else grads), dx

    return from_forward_backward(name, init, forward, backward, uses_key=False)


class BatchNormState(NamedTuple):
    """The model state of :func:`batch_norm`: running ``mean`` and ``var``, each ``(C,)``."""

    mean: FloatArray
    var: FloatArray


def _bn_state(name: str, state: Any, c: int, dtype: Any) -> BatchNormState:
    """``state`` as :class:`BatchNormState` (a plain 2-tuple, as ``io.load`` gives, is accepted)."""
    if isinstance(state, tuple) and len(state) == 2 and all(
            isinstance(a, np.ndarray) and a.shape == (c,) and a.dtype == dtype for a in state):
        return state if type(state) is BatchNormState else BatchNormState(*state)
    raise type_fail(name, "state", f"must be BatchNormState(mean ({c},), var ({c},)) of dtype "
                    f"{np.dtype(dtype)}, as init_with_state returns", describe(state))


def batch_norm(*, momentum: float = 0.9, eps: float = 1e-5, use_scale: bool = True,
               use_bias: bool = True, dtype: Any = np.float32) -> Layer:
    """Batch normalisation over every axis but the last (Ioffe & Szegedy, 2015). Stateful.

    Training (``train=True``), with means over the batch and every spatial axis
    (all but the channels ``C``)::

        μ = mean(x),  σ² = mean((x − μ)²)   (biased, two-pass)
        y = γ ⊙ (x − μ)/√(σ² + ε) + β
        new state: mean ← momentum·mean + (1 − momentum)·μ,
                   var  ← momentum·var  + (1 − momentum)·σ²

    Backward (``g = dy ⊙ γ``, ``x̂ = (x − μ)/√(σ² + ε)``, means as above):
    ``dx = (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)) / √(σ² + ε)``.

    Inference (``train=False``), the affine map of the state, which it returns
    unchanged: ``y = γ ⊙ (x − mean)/√(var + ε) + β``; ``dx = g/√(var + ε)``.

    In both modes ``dγ = Σ dy ⊙ x̂`` and ``dβ = Σ dy`` over every axis but the
    last, and the state gets no gradient.

    Shapes: ``x (n, …, C) -> y (n, …, C)``; params :class:`NormParams`
    ``(scale (C,), bias (C,))`` (ones and zeros); state :class:`BatchNormState`
    ``(mean (C,), var (C,))`` starting at zeros and ones (so an untrained
    model's inference is ``γ ⊙ x/√(1 + ε) + β``), in the params' dtype.

    Args:
        momentum: the running averages' decay, in ``[0, 1)``.
        eps: added to the variance inside the square root (> 0).
        use_scale, use_bias: learn γ and β.
        dtype: dtype of the params and state made by ``init_with_state``.

    Raises:
        TypeError: ``apply``/``grad`` without ``state=``; a malformed state.
        ValueError: ``x`` whose last axis is not ``C``; bad ``momentum``/``eps``.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> layer = batch_norm()
    >>> _, params, state = layer.init_with_state(random.key(0), (3,))
    >>> x = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 6.0]], np.float32)
    >>> y, state = layer.apply(params, x, state=state, train=True)
    >>> np.round(y.astype(np.float64), 3).tolist()
    [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]
    >>> [[round(float(v), 3) for v in s] for s in state]
    [[0.1, 0.2, 0.4], [1.0, 1.0, 1.3]]
    """
    name = "batch_norm"
    eps = _check_flags(name, eps, use_scale, use_bias)
    momentum = finite_float(momentum, name, "momentum", lo=0.0, hi=1.0, hi_open=True)

    def init_with_state(key: Key, in_shape: ShapeTree) -> tuple[Shape, NormParams,
                                                                 BatchNormState]:
        shape, params = _affine_params(name, in_shape, use_scale, use_bias, dtype)
        c = shape[-1]
        return shape, params, BatchNormState(np.zeros(c, dtype), np.ones(c, dtype))

    def forward(params: Any, state: Any, x: Any, key: Key | None,
                train: bool) -> tuple[Array, BatchNormState, tuple[Array, Array, bool]]:
        params = _norm_params(name, params, use_scale, use_bias)
        x = _norm_input(name, params, x, 2)
        state = _bn_state(name, state, x.shape[-1], x.dtype)
        if train:
            x_hat, r, mean, var = _standardize(x, tuple(range(x.ndim - 1)), eps)
            m = x.dtype.type(momentum)
            new_state = BatchNormState(m * state.mean + (1 - m) * mean.reshape(-1),
                                       m * state.var + (1 - m) * var.reshape(-1))
        else:
            r = 1.0 / np.sqrt(state.var + x.dtype.type(eps))
            x_hat = (x - state.mean) * r
            new_state = state
        return _scale_shift(params, x_hat), new_state, (x_hat, r, train)

    def backward(params: Any, res: tuple[Array, Array, bool], dy: Array,
                 need_dx: bool) -> tuple[Any, Array | None]:
        x_hat, r, train = res
        plain = type(params) is not NormParams
        grads, g = _affine_grads(_norm_params(name, params, use_scale, use_bias), x_hat, dy)
        dx = None
        if need_dx:
            dx = (_standardize_backward(g, x_hat, r, tuple(range(dy.ndim - 1))) if train
                  else g * r)
        return (tuple(grads) if plain else grads), dx

    return stateful_from_forward_backward(name, init_with_state, forward, backward,
                                          uses_key=False)
