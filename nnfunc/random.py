"""Explicit random keys: no global RNG anywhere in nnfunc.

A key is a ``(2,)`` ``uint64`` array: the 128-bit key of a Philox
counter-based generator (NumPy's ``np.random.Philox``). Every draw is a pure
function of the key: the same key gives the same numbers, on every machine.
:func:`split` and :func:`fold_in` derive new keys by encrypting distinct
counter values under the parent key, so derived keys are independent of each
other and of the numbers the parent key draws directly. Like in JAX, do not
draw twice from one key; split it first.

>>> from nnfunc import random
>>> k = random.key(0)
>>> k1, k2 = random.split(k)
>>> bool((random.uniform(k1, (3,)) == random.uniform(k1, (3,))).all())
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from nnfunc._validate import describe, fail, finite_float, non_negative_int, type_fail
from nnfunc.typing import Array, Key, Shape

__all__ = ["bernoulli", "check_key", "fold_in", "generator", "key", "normal",
           "permutation", "split", "uniform"]

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
    if not (isinstance(k, np.ndarray) and k.dtype == np.uint64 and k.shape == (2,)):
        raise type_fail(component, arg, "must be a key from nnfunc.random.key "
                        "(a (2,) uint64 array)", describe(k))
    return k


def _philox(k: Key, tag: int, word: int = 0) -> np.random.Philox:
    counter = np.array([0, 0, word, tag], dtype=np.uint64)
    return np.random.Philox(key=k, counter=counter)


def split(k: Key, num: int = 2) -> npt.NDArray[np.uint64]:
    """``num`` independent keys derived from ``k``, as a ``(num, 2)`` array.

    Unpack it (``k1, k2 = split(k)``) or index it (``keys[i]``).
    """
    check_key(k, "random.split")
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise fail("random.split", "num", "must be an int >= 1", num)
    raw = _philox(k, _SPLIT).random_raw(2 * int(num))
    return np.asarray(raw, dtype=np.uint64).reshape(int(num), 2)


def fold_in(k: Key, data: int) -> Key:
    """A new key derived from ``k`` and an integer (e.g. an epoch or step)."""
    check_key(k, "random.fold_in")
    if isinstance(data, bool) or not isinstance(data, (int, np.integer)) or data < 0:
        raise fail("random.fold_in", "data", "must be an int >= 0", data)
    raw = _philox(k, _FOLD, int(data) % (1 << 64)).random_raw(2)
    return np.asarray(raw, dtype=np.uint64)


def generator(k: Key, component: str = "random.generator") -> np.random.Generator:
    """A NumPy ``Generator`` whose whole stream is determined by ``k``.

    ``component`` names the caller in the error raised for a bad key.
    """
    check_key(k, component)
    return np.random.Generator(_philox(k, _DRAW))


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
    u = generator(k, "random.uniform").random(shape, dtype=dt)
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
    z = generator(k, "random.normal").standard_normal(shape, dtype=dt)
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
    draws: Array = generator(k, "random.bernoulli").random(shape, dtype=np.float32)
    mask: npt.NDArray[np.bool_] = draws < np.float32(p)
    return mask


def permutation(k: Key, n: int) -> npt.NDArray[np.intp]:
    """A random permutation of ``range(n)`` (``n`` an int >= 0)."""
    n = non_negative_int(n, "random.permutation", "n")
    return generator(k, "random.permutation").permutation(n).astype(np.intp)
