"""Activations: layers with params ``()`` that act elementwise (or row-wise).

Every activation maps ``x (n, ...) -> y (n, ...)`` and its ``grad`` is the
vector–Jacobian product ``dx = dy ⊙ σ'(x)`` (row-wise for softmax). Each is
stable for inputs up to ±1e4 in float32: no overflow warning, no NaN.

Parameter-free activations are :class:`~nnfunc.layer.Layer` values
(``relu``); those with a hyperparameter are factories (``leaky_relu(0.1)``).

>>> import numpy as np
>>> relu.apply((), np.array([[-1.0, 2.0]]))
array([[0., 2.]])
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from nnfunc import _kernels, workspace
from nnfunc._validate import finite_float
from nnfunc.layer import Layer, batch_array, from_forward_backward, no_params
from nnfunc.typing import Array, Key, ShapeTree

__all__ = ["elu", "gelu", "leaky_relu", "linear", "log_softmax", "relu", "sigmoid",
           "softmax", "softplus", "tanh"]


def _elementwise(name: str, fwd: Callable[[Array], tuple[Array, Any]],
                 bwd: Callable[[Any, Array], Array]) -> Layer:
    """A parameter-free layer from ``fwd(x) -> (y, res)`` and ``bwd(res, dy) -> dx``."""

    def init(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, tuple[()]]:
        return in_shape, ()

    def forward(params: tuple[()], x: Any, key: Key | None, train: bool) -> tuple[Array, Any]:
        if not (type(params) is tuple and not params):
            raise no_params(name, params)
        if not (type(x) is np.ndarray and x.dtype.kind == "f" and x.ndim):  # inline: per step
            x = batch_array(name, x)
        return fwd(x)

    def backward(params: tuple[()], res: Any, dy: Array,
                 need_dx: bool) -> tuple[tuple[()], Array | None]:
        return (), (bwd(res, dy) if need_dx else None)

    return from_forward_backward(name, init, forward, backward, uses_key=False)


def _zero(x: Array) -> Any:
    return x.dtype.type(0)


# -- linear ---------------------------------------------------------------------------

linear: Layer = _elementwise("linear", lambda x: (x, None), lambda _, dy: dy)
"""Identity activation ``σ(x) = x``; backward ``dx = dy``."""


# -- sigmoid --------------------------------------------------------------------------

def _sigmoid(x: Array) -> Array:
    """``1 / (1 + e^{-x})`` computed from ``e^{-|x|}``, which never overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


sigmoid: Layer = _elementwise(
    "sigmoid", lambda x: (y := _sigmoid(x), y), lambda y, dy: dy * y * (1 - y)
)
"""Logistic sigmoid ``σ(x) = 1 / (1 + e^{-x})``; backward ``dx = dy ⊙ σ(x)(1 - σ(x))``.

Computed as ``1/(1+e^{-|x|})`` or ``e^{-|x|}/(1+e^{-|x|})`` by sign, so ``exp``
never overflows.
"""


# -- relu -----------------------------------------------------------------------------

_ZEROS_MAX_BYTES = 1 << 22


@functools.lru_cache(maxsize=8)
def _zeros(shape: tuple[int, ...], dtype: np.dtype[Any]) -> Array:
    """A read-only array of zeros (shared: nothing can write to it)."""
    z = np.zeros(shape, dtype)
    z.flags.writeable = False
    return z


def _relu_fwd(x: Array) -> tuple[Array, Array]:
    out = workspace.out(x)
    y = _kernels.relu(x, out)  # one compiled pass, NumPy's bits
    if y is None:
        # np.maximum(x, 0.0) takes NumPy's loop for a scalar operand, about 3x slower
        # than its SIMD loop for two arrays (94 vs 33 µs on a (256, 512) float32
        # batch), so x meets cached zeros of its dtype: of its shape up to 4 MiB,
        # else one broadcast row (38 µs on that batch)
        shape = x.shape if x.nbytes <= _ZEROS_MAX_BYTES else x.shape[-1:]
        y = np.maximum(x, _zeros(shape, x.dtype), out=out)
    return y, y


def _relu_bwd(y: Array, dy: Array) -> Array:
    same = type(dy) is np.ndarray and dy.shape == y.shape
    out = workspace.out(dy) if same else None
    dx = _kernels.relu_backward(y, dy, out)  # one compiled pass, NumPy's bits
    if dx is not None:
        return dx
    # dy * (y > 0), not np.where: a data-dependent select mispredicts on every
    # other element of a random mask and runs ~10x slower than the multiply
    if out is not None:
        mask = np.greater(y, 0, out=workspace.out(y, np.bool_))
        return np.multiply(dy, mask, out=out)
    return dy * (y > 0)


relu: Layer = _elementwise("relu", _relu_fwd, _relu_bwd)
"""Rectifier ``σ(x) = max(0, x)``; backward ``dx = dy ⊙ [x > 0]`` (ReLU′(0) = 0)."""


# -- tanh -----------------------------------------------------------------------------

tanh: Layer = _elementwise("tanh", lambda x: (y := np.tanh(x), y),
                           lambda y, dy: dy * (1 - y * y))
"""Hyperbolic tangent ``σ(x) = tanh x``; backward ``dx = dy ⊙ (1 - tanh² x)``."""


# -- leaky relu -----------------------------------------------------------------------

def leaky_relu(alpha: float = 0.01) -> Layer:
    """Leaky rectifier ``σ(x) = x`` for ``x > 0``, else ``αx``.

    Backward: ``dx = dy`` where ``x > 0``, else ``α dy`` (the slope at 0 is α).

    Raises:
        ValueError: if ``alpha`` is not finite.

    >>> import numpy as np
    >>> leaky_relu(0.1).apply((), np.array([[-2.0, 3.0]]))
    array([[-0.2,  3. ]])
    """
    a = finite_float(alpha, "leaky_relu", "alpha")

    def fwd(x: Array) -> tuple[Array, Array]:
        pos = x > 0
        return np.where(pos, x, x * x.dtype.type(a)), pos

    def bwd(pos: Array, dy: Array) -> Array:
        return np.where(pos, dy, dy * dy.dtype.type(a))

    return _elementwise(f"leaky_relu({a:g})", fwd, bwd)


# -- elu ------------------------------------------------------------------------------

def elu(alpha: float = 1.0) -> Layer:
    """Exponential linear unit ``σ(x) = x`` for ``x > 0``, else ``α(e^x - 1)``.

    Backward: ``dx = dy`` where ``x > 0``, else ``dy ⊙ (σ(x) + α)``.
    ``expm1`` is taken of ``min(x, 0)`` so large inputs never overflow.
    Reference: Clevert et al. (2016).

    Raises:
        ValueError: if ``alpha`` is not finite.

    >>> import numpy as np
    >>> elu().apply((), np.array([[0.0, 1.0]]))
    array([[0., 1.]])
    """
    a = finite_float(alpha, "elu", "alpha")

    def fwd(x: Array) -> tuple[Array, tuple[Array, Array]]:
        pos = x > 0
        neg = x.dtype.type(a) * np.expm1(np.minimum(x, _zero(x)))
        return np.where(pos, x, neg), (pos, neg)

    def bwd(res: tuple[Array, Array], dy: Array) -> Array:
        pos, neg = res
        return np.where(pos, dy, dy * (neg + dy.dtype.type(a)))

    return _elementwise(f"elu({a:g})", fwd, bwd)


# -- gelu -----------------------------------------------------------------------------

_GELU_C = float(np.sqrt(2.0 / np.pi))
_GELU_K = 0.044715


# Both passes work in place on fresh arrays: on a transformer's (2048, 512) MLP
# activations that cuts gelu's forward and backward from ~30 to ~21 ms of CPU
# (two temporaries each instead of eight to eleven).
def _gelu_fwd(x: Array) -> tuple[Array, tuple[Array, Array]]:
    f = x.dtype.type
    t = np.multiply(x, x)
    t *= f(_GELU_K)
    t += 1
    t *= x
    t *= f(_GELU_C)
    np.tanh(t, out=t)  # t = tanh(c (x + k x³))
    y = t + 1
    y *= x
    y *= f(0.5)
    return y, (x, t)


def _gelu_bwd(res: tuple[Array, Array], dy: Array) -> Array:
    x, t = res
    f = x.dtype.type
    g = np.multiply(x, x)
    g *= f(3 * _GELU_K)
    g += 1
    g *= x
    g *= f(_GELU_C)  # c x (1 + 3k x²)
    s = np.multiply(t, t)
    np.subtract(1, s, out=s)
    g *= s
    g += t
    g += 1
    g *= f(0.5)  # ½(1 + t) + ½ x (1 - t²) c (1 + 3k x²)
    g *= dy
    return g


gelu: Layer = _elementwise("gelu", _gelu_fwd, _gelu_bwd)
"""Gaussian error linear unit, tanh form (Hendrycks & Gimpel, 2016).

``σ(x) = ½ x (1 + t)``, ``t = tanh(c (x + 0.044715 x³))``, ``c = √(2/π)``.
Backward: ``dx = dy ⊙ (½(1 + t) + ½ x (1 - t²) c (1 + 3·0.044715 x²))``.
NumPy has no vectorised ``erf``, so nnfunc uses the tanh form throughout; it
differs from the erf form by less than 1e-3.
"""


# -- softplus -------------------------------------------------------------------------

def _softplus_fwd(x: Array) -> tuple[Array, Array]:
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, _zero(x)), x


softplus: Layer = _elementwise("softplus", _softplus_fwd, lambda x, dy: dy * _sigmoid(x))
"""Softplus ``σ(x) = log(1 + e^x)``; backward ``dx = dy ⊙ sigmoid(x)``.

Computed as ``log1p(e^{-|x|}) + max(x, 0)``, which never overflows.
"""


# -- softmax and log-softmax ------------------------------------------------------------

def _log_softmax(x: Array) -> Array:
    """``x - logsumexp(x)`` over the last axis, shifted by the row max first."""
    shifted: Array = x - x.max(axis=-1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return shifted


def _softmax(x: Array) -> Array:
    """``e^{x - max x} / Σ e^{x - max x}`` over the last axis."""
    e: Array = np.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


softmax: Layer = _elementwise(
    "softmax", lambda x: (y := _softmax(x), y),
    lambda y, dy: y * (dy - (dy * y).sum(axis=-1, keepdims=True)),
)
"""Softmax over the last axis: ``σ(x)_i = e^{x_i} / Σ_j e^{x_j}``.

Backward (row-wise VJP): ``dx = y ⊙ (dy - Σ_j dy_j y_j)``. Computed from
``x - max x`` so ``exp`` never overflows (the sheet's denominator ``Σ_j
e^{z_ij}`` is a typo, ERRATA 3). For training, prefer a final linear layer
with :func:`nnfunc.losses.softmax_cross_entropy`, which never takes ``log 0``.
"""

log_softmax: Layer = _elementwise(
    "log_softmax", lambda x: (y := _log_softmax(x), y),
    lambda y, dy: dy - np.exp(y) * dy.sum(axis=-1, keepdims=True),
)
"""Log-softmax over the last axis: ``σ(x)_i = x_i - log Σ_j e^{x_j}``.

Backward: ``dx = dy - softmax(x) Σ_j dy_j``. Computed with the max shift.
"""
