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


words = st.integers(0, 2**64 - 1)


@given(k0=words, k1=words, tag=st.integers(0, 2), word=words, block=st.integers(0, 2**40),
       n=st.integers(1, 12))
def test_the_generators_are_numpys_philox_under_the_key(k0: int, k1: int, tag: int, word: int,
                                                         block: int, n: int) -> None:
    # built with the key handed over as a seed sequence, not Philox(key=...): the same stream
    from nnfunc.random import _philox

    k = np.array([k0, k1], np.uint64)
    want = np.random.Philox(key=k, counter=np.array([block, 0, word, tag], np.uint64))
    np.testing.assert_array_equal(_philox(k, tag, word, block).random_raw(n), want.random_raw(n))


def test_split_fold_in_and_draws_are_those_of_numpys_philox() -> None:
    k = random.key(7)
    def raw(tag: int, word: int, n: int) -> np.ndarray:
        counter = np.array([0, 0, word, tag], np.uint64)
        return np.asarray(np.random.Philox(key=k, counter=counter).random_raw(n), np.uint64)
    np.testing.assert_array_equal(random.split(k, 3), raw(1, 0, 6).reshape(3, 2))
    np.testing.assert_array_equal(random.fold_in(k, 5), raw(2, 5, 2))
    draw = np.random.Generator(np.random.Philox(key=k, counter=np.zeros(4, np.uint64)))
    np.testing.assert_array_equal(random.uniform(k, (4, 3)), draw.random((4, 3), np.float32))


def test_a_seed_asked_otherwise_than_philox_asks_is_a_clear_error() -> None:
    from nnfunc.random import _KeyWords

    with pytest.raises(RuntimeError, match="4 words of uint32"):
        _KeyWords(np.zeros(2, np.uint64)).generate_state(4, np.uint32)


def test_import_nnfunc_does_not_import_numpy_random() -> None:
    import subprocess
    import sys

    code = "import sys, nnfunc; print('numpy.random' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=120).stdout.strip()
    assert out == "False"


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


# -- row offsets: a shard of a batch draws exactly its rows of the batch's numbers -----------

@given(st.integers(0, 2**32), st.integers(1, 9), st.lists(st.integers(1, 5), max_size=2),
       st.data())
def test_row_offset_draws_are_rows_of_the_whole_draw(seed: int, n: int, features: list[int],
                                                     data: st.DataObject) -> None:
    k = random.key(seed)
    lo = data.draw(st.integers(0, n))
    hi = data.draw(st.integers(lo, n))
    shape, part = (n, *features), (hi - lo, *features)
    shard = random.with_row_offset(k, lo)
    for dtype in (np.float32, np.float64):
        np.testing.assert_array_equal(random.uniform(shard, part, dtype, low=-1.0, high=2.0),
                                      random.uniform(k, shape, dtype, low=-1.0, high=2.0)[lo:hi])
        np.testing.assert_array_equal(random.normal(shard, part, dtype),
                                      random.normal(k, shape, dtype)[lo:hi])
    np.testing.assert_array_equal(random.bernoulli(shard, 0.3, part),
                                  random.bernoulli(k, 0.3, shape)[lo:hi])
    # split and fold_in keep the offset, so a whole model's keys follow it
    (a, b), f = random.split(shard), random.fold_in(shard, 7)
    (a0, b0), f0 = random.split(k), random.fold_in(k, 7)
    for derived, plain in ((a, a0), (b, b0), (f, f0)):
        assert random.row_offset(derived) == lo
        np.testing.assert_array_equal(random.bernoulli(derived, 0.5, part),
                                      random.bernoulli(plain, 0.5, shape)[lo:hi])


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_row_offset_float32_words_on_either_byte_order(byteorder: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # little-endian reads the 32-bit halves from the words' memory; the other branch
    # splits them arithmetically (the same halves, whatever this machine's order)
    import sys

    k = random.key(11)
    with monkeypatch.context() as patch:
        patch.setattr(sys, "byteorder", byteorder)
        shard = random.uniform(random.with_row_offset(k, 3), (4, 5), np.float32)
    np.testing.assert_array_equal(shard, random.uniform(k, (7, 5), np.float32)[3:])


def test_row_offset_zero_and_scalar_draws_match_the_plain_key() -> None:
    k = random.key(11)
    z = random.with_row_offset(k, 0)
    assert random.row_offset(k) == 0
    np.testing.assert_array_equal(random.uniform(z, (4, 3)), random.uniform(k, (4, 3)))
    # a draw without a batch axis is the same on every shard
    s = random.with_row_offset(k, 5)
    assert random.uniform(s, ()) == random.uniform(k, ())
    assert random.normal(s, (), np.float64) == random.normal(k, (), np.float64)


def test_row_offset_errors() -> None:
    with pytest.raises(ValueError, match=r"random\.with_row_offset: offset must be an int >= 0; "
                                         r"got -1"):
        random.with_row_offset(random.key(0), -1)
    with pytest.raises(ValueError, match=r"random\.permutation: key must not carry a row offset"):
        random.permutation(random.with_row_offset(random.key(0), 2), 5)


def test_dropout_in_a_model_draws_its_rows_of_the_batch_mask() -> None:
    from nnfunc import combinators, layers

    model = combinators.serial(layers.dropout(0.5), layers.dropout(0.25))
    x = random.normal(random.key(1), (10, 6), np.float64)
    k = random.key(2)
    whole = model.apply(((), ()), x, key=k, train=True)
    for lo, hi in ((0, 4), (4, 7), (7, 10), (10, 10)):
        part = model.apply(((), ()), x[lo:hi], key=random.with_row_offset(k, lo), train=True)
        np.testing.assert_array_equal(part, whole[lo:hi])
