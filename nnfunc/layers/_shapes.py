"""Shape checks shared by the layer families."""

from __future__ import annotations

import numpy as np

from nnfunc._validate import describe, fail, type_fail
from nnfunc.typing import Shape, ShapeTree

__all__ = ["feature_shape"]


def feature_shape(component: str, in_shape: ShapeTree) -> Shape:
    """``in_shape`` as a tuple of positive ints, or a clear error naming ``component``."""
    if not isinstance(in_shape, tuple) or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in in_shape
    ):
        raise type_fail(component, "in_shape", "must be a tuple of ints (batch axis excluded)",
                        describe(in_shape))
    shape = tuple(int(s) for s in in_shape)
    if any(s <= 0 for s in shape):
        raise fail(component, "in_shape", "must have positive sizes", shape)
    return shape
