"""Layers that only change each sample's shape: ``flatten`` and ``reshape``."""

from __future__ import annotations

import math
from typing import Any

from nnfunc._validate import describe, fail, type_fail
from nnfunc.layer import Layer, batch_array, from_forward_backward, no_params
from nnfunc.layers._shapes import feature_shape
from nnfunc.typing import Array, Key, Shape, ShapeTree

__all__ = ["flatten", "reshape"]


def _reshape_layer(name: str, target: Any) -> Layer:
    """A layer mapping ``(n, *in_shape)`` to ``(n, *target(in_shape))``."""

    def init(key: Key, in_shape: ShapeTree) -> tuple[Shape, tuple[()]]:
        return target(feature_shape(name, in_shape)), ()

    def forward(params: tuple[()], x: Any, key: Key | None,
                train: bool) -> tuple[Array, Shape]:
        if not (type(params) is tuple and not params):
            raise no_params(name, params)
        x = batch_array(name, x)
        out = target(x.shape[1:])
        return x.reshape((x.shape[0], *out)), x.shape

    def backward(params: tuple[()], in_shape: Shape, dy: Array,
                 need_dx: bool) -> tuple[tuple[()], Array | None]:
        return (), (dy.reshape(in_shape) if need_dx else None)

    return from_forward_backward(name, init, forward, backward, uses_key=False)


def _flat(shape: Shape) -> Shape:
    return (math.prod(shape),)


flatten: Layer = _reshape_layer("flatten", _flat)
"""Flatten each sample: ``x (n, d1, d2, ...) -> y (n, d1·d2·...)``; backward reshapes ``dy``."""


def reshape(shape: Shape) -> Layer:
    """Reshape each sample to ``shape``: ``x (n, *s) -> y (n, *shape)``.

    ``shape`` excludes the batch axis and must hold as many elements as the
    input sample; backward reshapes ``dy`` back.

    Raises:
        ValueError: at ``init`` or ``apply`` if the element counts differ.

    >>> import numpy as np
    >>> reshape((2, 2)).apply((), np.zeros((3, 4))).shape
    (3, 2, 2)
    """
    if not isinstance(shape, (tuple, list)):
        raise type_fail("reshape", "shape", "must be a tuple of ints (batch axis excluded)",
                        describe(shape))
    target = feature_shape("reshape", tuple(shape))
    name = f"reshape({target})"

    def to_target(in_shape: Shape) -> Shape:
        if math.prod(in_shape) != math.prod(target):
            raise fail(name, "input shape", f"must hold {math.prod(target)} elements per sample "
                       f"to reshape to {target}", f"{in_shape} ({math.prod(in_shape)} elements)")
        return target

    return _reshape_layer(name, to_target)
