"""``dense`` on inputs of any rank, against formulas written out with einsum."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import random
from nnfunc.layers import dense
from nnfunc.testing import strategies as nst


@given(shape=nst.feature_shapes(1, 3, 1, 4), d_out=st.integers(1, 5), n=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1), use_bias=st.booleans())
def test_any_rank_matches_einsum(shape: tuple[int, ...], d_out: int, n: int, seed: int,
                                 use_bias: bool) -> None:
    layer = dense(d_out, use_bias=use_bias, dtype=np.float64)
    k_init, k_x, k_dy = random.split(random.key(seed), 3)
    out_shape, params = layer.init(k_init, shape)
    assert out_shape == (*shape[:-1], d_out)
    x = random.normal(k_x, (n, *shape), np.float64)
    dy = random.normal(k_dy, (n, *shape[:-1], d_out), np.float64)
    b = params.b if use_bias else np.zeros(d_out)
    expected = np.einsum("...i,ij->...j", x, params.w) + b
    np.testing.assert_allclose(layer.apply(params, x), expected, rtol=1e-12, atol=1e-12)
    dparams, dx = layer.grad(params, x, dy)
    lead = "abc"[:len(shape)]  # every axis but the feature axis is summed over
    np.testing.assert_allclose(dparams.w, np.einsum(f"{lead}i,{lead}j->ij", x, dy),
                               rtol=1e-12, atol=1e-12)
    if use_bias:
        np.testing.assert_allclose(dparams.b, dy.reshape(-1, d_out).sum(axis=0),
                                   rtol=1e-12, atol=1e-12)
    else:
        assert dparams.b is None
    np.testing.assert_allclose(dx, np.einsum("...j,ij->...i", dy, params.w),
                               rtol=1e-12, atol=1e-12)
