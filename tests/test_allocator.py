"""nnfunc.allocator: applies on glibc, validates its arguments, changes no results."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from nnfunc import allocator


def test_tune_applies_on_glibc() -> None:
    applied = allocator.tune()
    assert applied is (platform.libc_ver()[0] == "glibc")


def test_tune_rejects_negative_thresholds() -> None:
    with pytest.raises(ValueError, match=r"allocator\.tune: thresholds must be >= 0"):
        allocator.tune(-1)


def test_arrays_behave_the_same_after_tuning() -> None:
    allocator.tune()
    a = np.arange(3_000_000, dtype=np.float32)
    b = a * 2
    del a
    c = np.ones(3_000_000, np.float32)
    assert float(b[-1]) == 5_999_998.0
    assert float(c.sum()) == 3_000_000.0
