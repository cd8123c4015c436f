"""Tests of nnfunc.random: purity, independence, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import random


@given(st.integers(0, 2**63))
def test_same_key_same_numbers(seed: int) -> None:
    k = random.key(seed)
    np.testing.assert_array_equal(random.normal(k, (5,)), random.normal(k, (5,)))
    np.testing.assert_array_equal(random.split(k, 3), random.split(k, 3))


@given(st.integers(0, 2**32))
def test_split_and_fold_in_give_distinct_keys(seed: int) -> None:
    k = random.key(seed)
    ks = random.split(k, 4)
    derived = {tuple(x) for x in ks} | {tuple(random.fold_in(k, i)) for i in range(4)}
    assert len(derived) == 8
    assert tuple(k) not in derived


def test_split_keys_draw_uncorrelated_streams() -> None:
    k1, k2 = random.split(random.key(0))
    a = random.normal(k1, (20000,), np.float64)
    b = random.normal(k2, (20000,), np.float64)
    # |corr| of two independent N(0,1) samples of 20000 is < 4/sqrt(20000) with p > 0.9999
    assert abs(np.corrcoef(a, b)[0, 1]) < 4 / np.sqrt(20000)


def test_dtype_and_range() -> None:
    u = random.uniform(random.key(1), (1000,), np.float32, low=-2.0, high=3.0)
    assert u.dtype == np.float32
    assert u.min() >= -2.0
    assert u.max() < 3.0
    b = random.bernoulli(random.key(2), 0.25, (100000,))
    assert b.dtype == np.bool_
    assert abs(b.mean() - 0.25) < 0.01


def test_bad_key_is_type_error() -> None:
    with pytest.raises(TypeError, match=r"random.normal.*key must be a key.*array of shape \(3,\)"):
        random.normal(np.zeros(3), (2,))
    with pytest.raises(ValueError, match=r"random\.key: seed must be >= 0"):
        random.key(-1)
