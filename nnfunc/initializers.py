"""Weight initializers: ``init(key, shape, dtype) -> array``.

For a dense kernel of shape ``(d_in, d_out)``, ``fan_in = d_in`` and
``fan_out = d_out``. Normal initializers are plain (untruncated) Gaussians.

=================  =====================================  ==========================
name               distribution                           reference
=================  =====================================  ==========================
``glorot_uniform`` U(-a, a), a = sqrt(6 / (fan_in+fan_out))  Glorot & Bengio (2010)
``glorot_normal``  N(0, 2 / (fan_in + fan_out))           Glorot & Bengio (2010)
``he_uniform``     U(-a, a), a = sqrt(6 / fan_in)         He et al. (2015)
``he_normal``      N(0, 2 / fan_in)                       He et al. (2015)
``lecun_normal``   N(0, 1 / fan_in)                       LeCun et al. (1998)
``zeros``/``ones`` constant 0 / 1
``normal(std)``    N(0, std²)
``orthogonal``     Q of the QR of a Gaussian matrix        Saxe et al. (2014)
=================  =====================================  ==========================

``xavier_*`` and ``kaiming_*`` are aliases of ``glorot_*`` and ``he_*``.

>>> import numpy as np
>>> from nnfunc import random
>>> w = he_normal(random.key(0), (784, 128), np.float32)
>>> w.shape, w.dtype
((784, 128), dtype('float32'))
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from nnfunc import random
from nnfunc._validate import describe, finite_float, floating_dtype, type_fail
from nnfunc.typing import Array, Key, Shape

__all__ = ["Initializer", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
           "kaiming_normal", "kaiming_uniform", "lecun_normal", "normal", "ones", "orthogonal",
           "xavier_normal", "xavier_uniform", "zeros"]


class Initializer(Protocol):
    """``init(key, shape, dtype) -> array`` of that shape and dtype."""

    def __call__(self, key: Key, shape: Shape, dtype: Any = np.float32) -> Array: ...


def _checked(component: str, shape: Any, dtype: Any) -> tuple[Shape, np.dtype[Any]]:
    """``shape`` (a tuple of ints >= 0) and ``dtype`` (floating: params are trained)."""
    if not (isinstance(shape, tuple) and all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
            for d in shape)):
        raise type_fail(component, "shape", "must be a tuple of ints >= 0", describe(shape))
    return tuple(int(d) for d in shape), floating_dtype(component, dtype)


def _fans(shape: Shape) -> tuple[int, int]:
    """``(fan_in, fan_out)``, at least 1 each (an empty kernel draws nothing anyway)."""
    fan_in, fan_out = _raw_fans(shape)
    return fan_in or 1, fan_out or 1


def _raw_fans(shape: Shape) -> tuple[int, int]:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _uniform(key: Key, shape: Shape, dtype: Any, limit: float) -> Array:
    return random.uniform(key, shape, dtype, low=-limit, high=limit)


def glorot_uniform(key: Key, shape: Shape, dtype: Any = np.float32) -> Array:
    """Glorot/Xavier uniform: ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``."""
    shape, dtype = _checked("glorot_uniform", shape, dtype)
    fan_in, fan_out = _fans(shape)
    return _uniform(key, shape, dtype, math.sqrt(6.0 / (fan_in + fan_out)))


def glorot_normal(key: Key, shape: Shape, dtype: Any = np.float32) -> Array:
    """Glorot/Xavier normal: ``N(0, 2 / (fan_in + fan_out))``."""
    shape, dtype = _checked("glorot_normal", shape, dtype)
    fan_in, fan_out = _fans(shape)
    return random.normal(key, shape, dtype, std=math.sqrt(2.0 / (fan_in + fan_out)))


def he_uniform(key: Key, shape: Shape, dtype: Any = np.float32) -> Array:
    """He/Kaiming uniform (for ReLU): ``U(-a, a)``, ``a = sqrt(6 / fan_in)``."""
    shape, dtype = _checked("he_uniform", shape, dtype)
    return _uniform(key, shape, dtype, math.sqrt(6.0 / _fans(shape)[0]))


def he_normal(key: Key, shape: Shape, dtype: Any = np.float32) -> Array:
    """He/Kaiming normal (for ReLU): ``N(0, 2 / fan_in)``."""
    shape, dtype = _checked("he_normal", shape, dtype)
    return random.normal(key, shape, dtype, std=math.sqrt(2.0 / _fans(shape)[0]))


def lecun_normal(key: Key, shape: Shape, dtype: Any = np.float32) -> Array:
    """LeCun normal: ``N(0, 1 / fan_in)``."""
    shape, dtype = _checked("lecun_normal", shape, dtype)
    return random.normal(key, shape, dtype, std=math.sqrt(1.0 / _fans(shape)[0]))


def zeros(key: Key, shape: Shape, dtype: Any = np.float32) -> Array:
    """All zeros (the key is ignored)."""
    shape, dtype = _checked("zeros", shape, dtype)
    return np.zeros(shape, dtype)


def ones(key: Key, shape: Shape, dtype: Any = np.float32) -> Array:
    """All ones (the key is ignored)."""
    shape, dtype = _checked("ones", shape, dtype)
    return np.ones(shape, dtype)


def normal(std: float = 0.01) -> Initializer:
    """An initializer drawing ``N(0, std²)``.

    Raises:
        ValueError: if ``std`` is negative or not finite.

    >>> from nnfunc import random
    >>> normal(0.1)(random.key(0), (2,)).shape
    (2,)
    """
    s = finite_float(std, "initializers.normal", "std", lo=0.0)

    def init(key: Key, shape: Shape, dtype: Any = np.float32) -> Array:
        shape, dtype = _checked("initializers.normal", shape, dtype)
        return random.normal(key, shape, dtype, std=s)

    return init


def orthogonal(key: Key, shape: Shape, dtype: Any = np.float32) -> Array:
    """Orthogonal (Saxe et al., 2014): a matrix ``(rows, cols)`` with orthonormal rows
    (``rows <= cols``) or columns, ``rows`` the product of all axes but the last.

    The ``Q`` of the QR decomposition of a standard Gaussian matrix, its columns'
    signs set by ``R``'s diagonal so that ``Q`` is uniform over orthogonal
    matrices. Computed in float64, then cast. A recurrent kernel ``(H, k·H)`` gets
    orthonormal rows, so ``‖h W_h‖ = ‖h‖`` at the start of training.
    """
    shape, dtype = _checked("orthogonal", shape, dtype)
    if len(shape) < 2:
        raise ValueError(f"orthogonal: shape must have at least 2 axes; got {shape}")
    rows, cols = math.prod(shape[:-1]), shape[-1]
    a = random.normal(key, (max(rows, cols), min(rows, cols)), np.float64)
    q, r = np.linalg.qr(a)
    q *= np.where(np.diag(r) < 0, -1.0, 1.0)
    return (q.T if rows < cols else q).reshape(shape).astype(dtype)


xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
kaiming_uniform = he_uniform
kaiming_normal = he_normal


def check_initializer(init: Any, component: str, arg: str) -> Initializer:
    """Validate that ``init`` is callable (used by layer factories)."""
    if not callable(init):
        raise type_fail(component, arg, "must be an initializer function (key, shape, dtype)",
                        describe(init))
    return init  # type: ignore[no-any-return]
