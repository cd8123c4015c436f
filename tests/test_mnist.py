"""The bundled MNIST 5k subset: counts, the fixed stratified split, scaling, layout."""

from __future__ import annotations

import csv
import gzip
from importlib import resources

import numpy as np

from nnfunc import datasets


def test_mnist_counts_split_scaling_and_layout() -> None:
    d = datasets.load_mnist_5k()
    assert d.x_train.shape == (4000, 784)
    assert d.x_test.shape == (1000, 784)
    assert d.x_train.dtype == np.float32
    assert d.y_test.dtype == np.int64
    assert d.x_train.min() == 0.0
    assert d.x_train.max() == 1.0  # raw 255 scales to exactly 1
    np.testing.assert_array_equal(np.bincount(d.y_train, minlength=10), [400] * 10)
    np.testing.assert_array_equal(np.bincount(d.y_test, minlength=10), [100] * 10)
    images = datasets.load_mnist_5k(flat=False, dtype=np.float64)
    assert images.x_train.shape == (4000, 28, 28, 1)
    assert images.x_train.dtype == np.float64
    np.testing.assert_allclose(images.x_test.reshape(1000, 784), d.x_test, rtol=1e-6)
    np.testing.assert_array_equal(images.y_test, d.y_test)


def test_mnist_rows_are_the_csv_rows_scaled() -> None:
    ref = resources.files("nnfunc") / "data" / "mnist_5k.csv.gz"
    with ref.open("rb") as raw, gzip.open(raw, "rt") as text:
        lines = text.read().splitlines()
    assert len(lines) == 5000
    d = datasets.load_mnist_5k(dtype=np.float64)
    x = np.concatenate([d.x_train, d.x_test])
    y = np.concatenate([d.y_train, d.y_test])
    pixels = np.rint(x * 255.0)
    np.testing.assert_allclose(pixels, x * 255.0, atol=1e-9)  # exactly k/255
    loaded = {img.astype(np.uint8).tobytes(): int(label) for img, label in zip(pixels, y)}
    # every 25th row of the file, parsed on its own, is a loaded image with its label
    for row in csv.reader(lines[::25]):
        values = np.array([int(v) for v in row])
        assert loaded[values[:-1].astype(np.uint8).tobytes()] == values[-1]


def test_mnist_split_is_fixed() -> None:
    a, b = datasets.load_mnist_5k(), datasets.load_mnist_5k()
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
