"""Inverted dropout."""

from __future__ import annotations

from typing import Any

from nnfunc import random
from nnfunc._validate import fail, finite_float
from nnfunc.layer import Layer, batch_array, from_forward_backward, no_params
from nnfunc.layers._shapes import feature_shape
from nnfunc.typing import Array, Key, Shape, ShapeTree

__all__ = ["dropout"]


def dropout(rate: float) -> Layer:
    """Inverted dropout: drop each unit with probability ``rate`` while training.

    Forward (``train=True``): ``m ~ Bernoulli(1 - rate)`` elementwise,
    ``y = x ⊙ m / (1 - rate)``; otherwise ``y = x``.
    Backward: ``dx = dy ⊙ m / (1 - rate)`` with the same mask, drawn again
    from the same ``key``.

    ``rate`` is the *drop* probability (the formula sheet calls ``p`` both the
    probability of success and the fraction dropped; see ERRATA 16). Kept
    units are scaled by ``1/(1-rate)`` so the expected output equals ``x``.
    Shapes: ``x (n, ...) -> y (n, ...)``; params ``()``.

    Raises:
        ValueError: ``rate`` outside ``[0, 1)``; ``train=True`` without a key.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> layer = dropout(0.5)
    >>> y = layer.apply((), np.ones((1, 4), np.float32), key=random.key(0), train=True)
    >>> sorted(set(y.ravel().tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True
    """
    rate = finite_float(rate, "dropout", "rate", lo=0.0, hi=1.0, hi_open=True)
    name = f"dropout({rate:g})"
    scale = 1.0 / (1.0 - rate)

    def init(key: Key, in_shape: ShapeTree) -> tuple[Shape, tuple[()]]:
        return feature_shape(name, in_shape), ()

    def forward(params: tuple[()], x: Any, key: Key | None,
                train: bool) -> tuple[Array, Array | None]:
        if not (type(params) is tuple and not params):
            raise no_params(name, params)
        x = batch_array(name, x)
        if not train or rate == 0.0:
            return x, None
        if key is None:
            raise fail(name, "key", "is required when train=True (pass key=...)", None)
        keep = random.bernoulli(random.check_key(key, name), 1.0 - rate, x.shape)
        factor = keep * x.dtype.type(scale)
        return x * factor, factor

    def backward(params: tuple[()], factor: Array | None, dy: Array,
                 need_dx: bool) -> tuple[tuple[()], Array | None]:
        if not need_dx:
            return (), None
        return (), (dy if factor is None else dy * factor)

    return from_forward_backward(name, init, forward, backward)
