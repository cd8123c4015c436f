"""Explicit random keys: no global RNG anywhere in nnfunc.

A key is a ``(2,)`` ``uint64`` array: the 128-bit key of a Philox
counter-based generator (NumPy's ``np.random.Philox``). Every draw is a pure
function of the key: the same key gives the same numbers, on every machine.
:func:`split` and :func:`fold_in` derive new keys by encrypting distinct
counter values under the parent key, so derived keys are independent of each
other and of the numbers the parent key draws directly. Like in JAX, do not
draw twice from one key; split it first.

A key may also carry a *row offset* (:func:`with_row_offset`, a ``(3,)``
key): then :func:`uniform`, :func:`normal` and :func:`bernoulli` return rows
``offset .. offset + shape[0]`` of what the plain key draws for a batch
that starts at row 0, so a process holding a shard of a batch draws exactly
its rows of the batch's numbers (this is how dropout masks stay independent
of the number of processes in :mod:`nnfunc.distributed`). :func:`split` and
:func:`fold_in` keep the offset; a key without one behaves as offset 0.

>>> from nnfunc import random
>>> k = random.key(0)
>>> k1, k2 = random.split(k)
>>> bool((random.uniform(k1, (3,)) == random.uniform(k1, (3,))).all())
True
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any

import numpy as np
import numpy.typing as npt

from nnfunc._validate import describe, fail, finite_float, non_negative_int, type_fail
from nnfunc.typing import Array, Key, Shape

__all__ = ["bernoulli", "check_key", "fold_in", "generator", "key", "normal",
           "permutation", "row_offset", "split", "uniform", "with_row_offset"]

# The last Philox counter word tags what a counter block is used for, so that
# draws, splits and fold-ins of one key never read the same block.
_DRAW, _SPLIT, _FOLD = 0, 1, 2


def key(seed: int) -> Key:
    """A key from an integer seed (any size; mixed through ``SeedSequence``)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise type_fail("random.key", "seed", "must be an int", describe(seed))
    if seed < 0:
        raise fail("random.key", "seed", "must be >= 0", seed)
    words = np.random.SeedSequence(int(seed)).generate_state(2, np.uint64)
    return words.astype(np.uint64)


def check_key(k: Any, component: str, arg: str = "key") -> Key:
    """Validate that ``k`` is a key (for use by every component taking one)."""
    if not (isinstance(k, np.ndarray) and k.dtype == np.uint64 and k.shape in ((2,), (3,))):
        raise type_fail(component, arg, "must be a key from nnfunc.random.key "
                        "(a (2,) uint64 array, or (3,) with a row offset)", describe(k))
    return k


def with_row_offset(k: Key, offset: int) -> Key:
    """``k`` marked as drawing for the rows of a batch that start at ``offset``.

    Draws of shape ``(n, ...)`` from the result are rows ``offset ..
    offset + n`` of the same draw from ``k`` for a batch of ``offset + n``
    rows or more: ``uniform(with_row_offset(k, a), (n, d))`` equals
    ``uniform(k, (a + n, d))[a:]``. A key that already has an offset gets
    the new one.

    >>> k = key(0)
    >>> whole = bernoulli(k, 0.5, (6, 3))
    >>> bool((bernoulli(with_row_offset(k, 4), 0.5, (2, 3)) == whole[4:]).all())
    True
    """
    check_key(k, "random.with_row_offset")
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
        raise fail("random.with_row_offset", "offset", "must be an int >= 0", offset)
    return np.array([k[0], k[1], offset], dtype=np.uint64)


def row_offset(k: Key) -> int:
    """The row offset a key carries (0 for a plain key)."""
    check_key(k, "random.row_offset")
    return int(k[2]) if k.shape == (3,) else 0


def _with_offset_of(parent: Key, child: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """``child`` keys (``(..., 2)``) carrying ``parent``'s row offset, if it has one."""
    if parent.shape == (2,):
        return child
    offsets = np.full((*child.shape[:-1], 1), parent[2], dtype=np.uint64)
    return np.concatenate([child, offsets], axis=-1)


class _KeyWords:
    """A seed sequence that hands ``np.random.Philox`` the key's two words as its key.

    ``Philox(key=...)`` gives the same generator but first draws a fresh
    ``SeedSequence`` from the OS's entropy, which it then ignores: 24 µs a
    generator on the benchmark VM against 6 µs this way. Every ``split``,
    ``fold_in`` and draw builds one, so a step of an MLP with dropout
    built four. The words are asked for exactly as Philox asks for a key.
    (Registered as NumPy's ``ISeedSequence`` on first use, so that ``import
    nnfunc`` does not import ``numpy.random``, ~20 ms.)
    """

    __slots__ = ("words",)

    def __init__(self, words: npt.NDArray[np.uint64]) -> None:
        self.words = words

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> npt.NDArray[Any]:
        if n_words != 2 or np.dtype(dtype) != np.uint64:  # not how Philox asks: a NumPy change
            raise RuntimeError(f"nnfunc.random: Philox asked its seed for {n_words} words of "
                               f"{np.dtype(dtype)}, not a key's 2 of uint64")
        return self.words


def _philox(k: Key, tag: int, word: int = 0, block: int = 0) -> np.random.Philox:
    # the first counter word numbers the 4-word blocks of one stream
    counter = np.array([block, 0, word, tag], dtype=np.uint64)
    _seed_sequence_registered()
    seed: Any = _KeyWords(k[:2].copy())  # an ISeedSequence by registration, unknown to the stubs
    return np.random.Philox(seed, counter=counter)


@functools.lru_cache(maxsize=1)
def _seed_sequence_registered() -> None:
    from numpy.random.bit_generator import ISeedSequence  # what Philox takes as its seed

    ISeedSequence.register(_KeyWords)


def split(k: Key, num: int = 2) -> npt.NDArray[np.uint64]:
    """``num`` independent keys derived from ``k``, as a ``(num, 2)`` array.

    Unpack it (``k1, k2 = split(k)``) or index it (``keys[i]``).
    """
    check_key(k, "random.split")
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise fail("random.split", "num", "must be an int >= 1", num)
    raw = _philox(k, _SPLIT).random_raw(2 * int(num))
    return _with_offset_of(k, np.asarray(raw, dtype=np.uint64).reshape(int(num), 2))


def fold_in(k: Key, data: int) -> Key:
    """A new key derived from ``k`` and an integer (e.g. an epoch or step)."""
    check_key(k, "random.fold_in")
    if isinstance(data, bool) or not isinstance(data, (int, np.integer)) or data < 0:
        raise fail("random.fold_in", "data", "must be an int >= 0", data)
    raw = _philox(k, _FOLD, int(data) % (1 << 64)).random_raw(2)
    return _with_offset_of(k, np.asarray(raw, dtype=np.uint64))


def generator(k: Key, component: str = "random.generator") -> np.random.Generator:
    """A NumPy ``Generator`` whose whole stream is determined by ``k``.

    ``component`` names the caller in the error raised for a bad key. A
    ``Generator``'s draws cannot follow a row offset, so a key carrying one
    is refused (draw with :func:`uniform`, :func:`normal` or
    :func:`bernoulli`, or pass ``k[:2]`` to draw the same numbers on every
    shard).
    """
    check_key(k, component)
    if k.shape != (2,):
        raise fail(component, "key", "must not carry a row offset (a Generator's stream "
                   "cannot follow one; draw with random.uniform/normal/bernoulli)",
                   f"a key with row offset {int(k[2])}")
    return np.random.Generator(_philox(k, _DRAW))


def _row_words(k: Key, shape: Shape, bits: int) -> npt.NDArray[np.unsignedinteger[Any]]:
    """Words ``offset·m .. (offset + n)·m`` of ``k``'s draw stream, ``m`` per row.

    NumPy's ``Generator`` makes a float64 from one 64-bit Philox word and a
    float32 from one 32-bit half-word, low half first; a counter-based
    generator can start at any 4-word block, so the shard's words are read
    directly and its rows cost what they would in one process. (32-bit words
    come as ``uint32``: on a little-endian machine the 64-bit words' own memory,
    low half first.)
    """
    per_row = math.prod(shape[1:])
    first, count = row_offset(k) * per_row, shape[0] * per_row
    per_word = 64 // bits
    block = first // (4 * per_word)
    start = first - 4 * per_word * block
    n_raw = -(-(start + count) // per_word)
    raw = np.asarray(_philox(k, _DRAW, block=block).random_raw(n_raw), dtype=np.uint64)
    words: npt.NDArray[np.unsignedinteger[Any]] = raw
    if bits == 32 and sys.byteorder == "little":
        words = raw.view(np.uint32)
    elif bits == 32:
        halves = np.empty((n_raw, 2), dtype=np.uint32)
        halves[:, 0] = raw & np.uint64(0xFFFFFFFF)
        halves[:, 1] = raw >> np.uint64(32)
        words = halves.reshape(-1)
    return words[start:start + count]


def _unit_uniform(k: Key, shape: Shape, dt: np.dtype[Any], component: str) -> Array:
    """Uniform draws on ``[0, 1)``, the rows a key's offset selects."""
    if k.shape == (2,) or not shape:
        return generator(k[:2], component).random(shape, dtype=dt)
    # NumPy's own conversions: the top 24 (float32) or 53 (float64) bits
    if dt == np.float32:
        top = _row_words(k, shape, 32) >> np.uint64(8)
        u: Array = top.astype(np.float32) * np.float32(2.0**-24)
    else:
        u = (_row_words(k, shape, 64) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return u.reshape(shape)


def _shape(shape: Any, component: str) -> Shape:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape):
        raise type_fail(component, "shape", "must be a tuple of ints", describe(shape))
    out = tuple(int(s) for s in shape)
    if any(s < 0 for s in out):
        raise fail(component, "shape", "must have no negative sizes", out)
    return out


def _float_dtype(dtype: Any, component: str) -> np.dtype[Any]:
    try:
        dt: np.dtype[Any] = np.dtype(dtype)
    except TypeError:
        raise type_fail(component, "dtype", "must be float32 or float64", repr(dtype)) from None
    if dt not in (np.float32, np.float64):
        raise fail(component, "dtype", "must be float32 or float64", dt)
    return dt


def uniform(k: Key, shape: Shape | int = (), dtype: Any = np.float32,
            low: float = 0.0, high: float = 1.0) -> Array:
    """Uniform draws on ``[low, high)`` of the given shape and dtype."""
    shape = _shape(shape, "random.uniform")
    dt = _float_dtype(dtype, "random.uniform")
    low = finite_float(low, "random.uniform", "low")
    high = finite_float(high, "random.uniform", "high", lo=low)
    u = _unit_uniform(check_key(k, "random.uniform"), shape, dt, "random.uniform")
    if low != 0.0 or high != 1.0:
        u *= dt.type(high - low)
        u += dt.type(low)
    return u


def normal(k: Key, shape: Shape | int = (), dtype: Any = np.float32,
           mean: float = 0.0, std: float = 1.0) -> Array:
    """Normal draws ``N(mean, std²)`` of the given shape and dtype."""
    shape = _shape(shape, "random.normal")
    dt = _float_dtype(dtype, "random.normal")
    mean = finite_float(mean, "random.normal", "mean")
    std = finite_float(std, "random.normal", "std", lo=0.0)
    offset = row_offset(check_key(k, "random.normal")) if shape else 0
    gen = generator(k[:2], "random.normal")
    if offset:
        # a normal draw takes a variable number of words (ziggurat rejection), so a
        # shard draws the rows before its own too and keeps only its own
        z = gen.standard_normal((offset + shape[0], *shape[1:]), dtype=dt)[offset:]
    else:
        z = gen.standard_normal(shape, dtype=dt)
    if std != 1.0:
        z *= dt.type(std)
    if mean != 0.0:
        z += dt.type(mean)
    return z


def bernoulli(k: Key, p: float, shape: Shape | int = ()) -> npt.NDArray[np.bool_]:
    """Boolean draws that are ``True`` with probability ``p``."""
    shape = _shape(shape, "random.bernoulli")
    p = finite_float(p, "random.bernoulli", "p", lo=0.0, hi=1.0)
    # float32 draws are uniform on a 2^-24 grid, fine for a probability
    draws = _unit_uniform(check_key(k, "random.bernoulli"), shape, np.dtype(np.float32),
                          "random.bernoulli")
    mask: npt.NDArray[np.bool_] = draws < np.float32(p)
    return mask


def permutation(k: Key, n: int) -> npt.NDArray[np.intp]:
    """A random permutation of ``range(n)`` (``n`` an int >= 0)."""
    n = non_negative_int(n, "random.permutation", "n")
    return generator(k, "random.permutation").permutation(n).astype(np.intp)
