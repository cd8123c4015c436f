"""``gelu``'s forward against its tanh-form formula, element by element."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given

from nnfunc.activations import gelu
from nnfunc.testing import strategies as nst


@given(nst.arrays(nst.feature_shapes(2, 2, 1, 5), np.float64, scale=6.0))
def test_gelu_is_the_tanh_form(x: np.ndarray) -> None:
    expected = [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
                for v in x.ravel().tolist()]
    np.testing.assert_allclose(gelu.apply((), x).ravel(), expected, rtol=1e-13, atol=1e-15)
    y32 = gelu.apply((), x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32.ravel(), expected, rtol=1e-5, atol=1e-6)
