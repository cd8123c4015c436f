"""relu's forward meets cached, read-only zeros (NumPy's scalar-operand loop is
~3x slower): both of its paths must equal the definition, keep the dtype, and
never let a caller's writes reach the shared zeros."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nnfunc import activations
from nnfunc.activations import relu

_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6)
_floats = st.sampled_from([np.float32, np.float64])


def _reference(x: Any) -> Any:
    return np.where(x > 0, x, np.zeros((), x.dtype))


@pytest.mark.parametrize("max_bytes", [1 << 22, 0], ids=["full-shape zeros", "broadcast row"])
@given(data=st.data(), dtype=_floats)
def test_relu_equals_its_definition(max_bytes: int, data: st.DataObject, dtype: Any) -> None:
    x = data.draw(hnp.arrays(dtype, _shapes, elements=st.floats(-1e4, 1e4, width=32)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(activations, "_ZEROS_MAX_BYTES", max_bytes)
        y = relu.apply((), x)
    assert y.dtype == x.dtype
    assert y.shape == x.shape
    np.testing.assert_array_equal(y, _reference(x))


def test_relu_outputs_are_fresh_and_the_zeros_stay_zero() -> None:
    x = -np.ones((4, 3), np.float32)
    first = relu.apply((), x)
    first[...] = 7.0  # the caller owns the output
    np.testing.assert_array_equal(relu.apply((), x), np.zeros((4, 3), np.float32))
    zeros = activations._zeros((4, 3), np.dtype(np.float32))
    assert not zeros.flags.writeable
    assert not np.any(zeros)
