"""The bundled digits and the synthetic generators."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import datasets, random


def test_digits_counts_split_and_range() -> None:
    d = datasets.load_digits()
    assert d.x_train.shape == (1438, 64)
    assert d.x_test.shape == (359, 64)
    assert d.x_train.dtype == np.float32
    assert d.y_train.dtype == np.int64
    assert d.x_train.min() >= 0.0
    assert d.x_train.max() <= 1.0
    assert d.x_train.max() == 1.0  # raw 16 scales to exactly 1
    counts = np.bincount(np.concatenate([d.y_train, d.y_test]), minlength=10)
    assert counts.sum() == 1797
    # stratified: each class gives round(20%) of its images to the test set
    np.testing.assert_array_equal(np.bincount(d.y_test, minlength=10), np.round(0.2 * counts))
    again = datasets.load_digits()
    np.testing.assert_array_equal(d.x_test, again.x_test)
    assert datasets.load_digits(flat=False).x_train.shape == (1438, 8, 8)
    assert datasets.load_digits(dtype=np.float64).x_test.dtype == np.float64


GENERATORS = [datasets.two_spirals, datasets.two_moons, datasets.xor, datasets.noisy_sine]


@pytest.mark.parametrize("gen", GENERATORS, ids=lambda g: g.__name__)
@given(n=st.integers(2, 300), seed=st.integers(0, 2**32 - 1))
def test_generators_shapes_dtypes_and_keys(gen: object, n: int, seed: int) -> None:
    x, y = gen(random.key(seed), n)  # type: ignore[operator]
    assert x.dtype == np.float32
    assert x.shape[0] == n
    assert y.shape[0] == n
    x2, y2 = gen(random.key(seed), n)  # type: ignore[operator]
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _ = gen(random.key(seed + 1), n)  # type: ignore[operator]
    assert not np.array_equal(x, x3)


@pytest.mark.parametrize("gen", [datasets.two_spirals, datasets.two_moons],
                         ids=lambda g: g.__name__)
def test_two_class_generators_are_balanced(gen: object) -> None:
    _, y = gen(random.key(0), 101)  # type: ignore[operator]
    assert y.dtype == np.int64
    assert np.bincount(y).tolist() == [50, 51]


def test_xor_and_sine_follow_their_rules_without_noise() -> None:
    x, y = datasets.xor(random.key(1), 500)
    np.testing.assert_array_equal(y, (x[:, 0] > 0) ^ (x[:, 1] > 0))
    assert 0.4 < y.mean() < 0.6
    x, y = datasets.noisy_sine(random.key(2), 50, noise=0.0)
    np.testing.assert_allclose(y, np.sin(x), atol=1e-6)
    assert x.min() >= -np.pi
    assert x.max() <= np.pi


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="two_spirals: n must be at least 2; got 1"):
        datasets.two_spirals(random.key(0), 1)
    with pytest.raises(ValueError, match=r"two_moons: noise must be finite and in \[0.0, inf\]"):
        datasets.two_moons(random.key(0), 10, noise=-1.0)
    with pytest.raises(ValueError, match="xor: n must be > 0; got 0"):
        datasets.xor(random.key(0), 0)
    with pytest.raises(TypeError, match="noisy_sine: key must be a key"):
        datasets.noisy_sine(3, 10)  # type: ignore[arg-type]
