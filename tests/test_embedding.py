"""embedding against a naive lookup and a naive accumulation loop."""

from __future__ import annotations

import numpy as np
import pytest

from nnfunc import random
from nnfunc.layers import EmbeddingParams, embedding
from nnfunc.testing import check_grad


@pytest.mark.parametrize("ids_shape", [(1,), (6,), (3, 4), (2, 3, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lookup_and_grad_match_naive_loops(ids_shape: tuple[int, ...], dtype: type) -> None:
    vocab, d = 4, 3  # few ids, so that they repeat
    layer = embedding(vocab, d, dtype=dtype)
    out_shape, params = layer.init(random.key(0), ids_shape[1:])
    ids = random.generator(random.key(1)).integers(0, vocab, size=ids_shape)
    dy = random.normal(random.key(2), (*ids_shape, d), dtype)
    y = layer.apply(params, ids)
    assert out_shape == (*ids_shape[1:], d)
    assert y.shape == (*ids_shape, d)
    assert y.dtype == dtype
    (dw,), dx = layer.grad(params, ids, dy)
    assert dx is None
    assert dw.dtype == dtype
    expected_y = np.empty((*ids_shape, d), dtype)
    expected_dw = np.zeros((vocab, d), np.float64)
    for pos in np.ndindex(*ids_shape):
        expected_y[pos] = params.w[ids[pos]]
        for j in range(d):
            expected_dw[ids[pos], j] += float(dy[(*pos, j)])
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_allclose(dw, expected_dw, rtol=1e-6 if dtype == np.float32 else 1e-13,
                               atol=1e-6 if dtype == np.float32 else 1e-13)


def test_check_grad_skips_integer_ids() -> None:
    layer = embedding(5, 2)
    _, params = layer.init(random.key(0), (3,))
    report = check_grad(layer, params, np.array([[0, 4, 4], [1, 0, 4]]))
    assert report.ok
    assert report.checked == 10  # the table's entries only


def test_unused_rows_get_zero_gradient() -> None:
    layer = embedding(6, 2, dtype=np.float64)
    _, params = layer.init(random.key(0), ())
    (dw,), _ = layer.grad(params, np.array([2, 2]), np.ones((2, 2)))
    np.testing.assert_array_equal(dw, [[0, 0], [0, 0], [2, 2], [0, 0], [0, 0], [0, 0]])


def test_bad_ids_are_clear_errors() -> None:
    layer = embedding(5, 2)
    _, params = layer.init(random.key(0), (2,))
    with pytest.raises(ValueError, match=r"embedding\(5, 2\): x must hold ids in \[0, 5\); "
                       r"got ids from 0 to 5"):
        layer.apply(params, np.array([[0, 5]]))
    with pytest.raises(ValueError, match=r"ids from -1 to 1"):
        layer.apply(params, np.array([[-1, 1]]))
    with pytest.raises(TypeError, match=r"embedding\(5, 2\): x must have an integer dtype"):
        layer.apply(params, np.array([[0.0, 1.0]]))
    with pytest.raises(TypeError, match="x must be a NumPy array"):
        layer.apply(params, [[0, 1]])
    with pytest.raises(TypeError, match="params must be EmbeddingParams"):
        layer.apply(EmbeddingParams(np.zeros((4, 2), np.float32)), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="embedding: vocab_size must be > 0"):
        embedding(0, 2)
