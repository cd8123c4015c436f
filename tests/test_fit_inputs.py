"""``fit`` casts inputs to the params' dtype, but keeps integer ids for a model that takes them."""

from __future__ import annotations

import numpy as np

import nnfunc as nf
from nnfunc import optim, random


def test_fit_trains_an_embedding_model_on_integer_ids() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, size=(256, 3))
    labels = (ids[:, 0] % 2).astype(np.int64)  # the class is the parity of the first id
    model = nf.serial(nf.embedding(6, 4), nf.flatten, nf.dense(2))
    _, params = model.init(random.key(0), (3,))
    result = nf.train.fit(model, nf.softmax_cross_entropy, optim.adam(0.05), params,
                          (ids, labels), epochs=15, batch_size=32, key=random.key(1),
                          validation=(ids[:64], labels[:64]), progress=False)
    assert result.history["loss"][-1] < 0.1 * result.history["loss"][0]
    logits = nf.train.predict(model, result.params, ids)
    assert np.mean(logits.argmax(axis=1) == labels) == 1.0


def test_integer_pixels_are_cast_for_a_dense_model() -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(64, 5)).astype(np.uint8)
    labels = rng.integers(0, 3, size=64)
    model = nf.serial(nf.dense(4), nf.relu, nf.dense(3))
    _, params = model.init(random.key(0), (5,))
    kwargs = dict(epochs=2, batch_size=16, key=random.key(2), progress=False)
    as_ints = nf.train.fit(model, nf.softmax_cross_entropy, optim.sgd(1e-3), params,
                           (pixels, labels), **kwargs)  # type: ignore[arg-type]
    as_floats = nf.train.fit(model, nf.softmax_cross_entropy, optim.sgd(1e-3), params,
                             (pixels.astype(np.float32), labels), **kwargs)  # type: ignore[arg-type]
    nf.tree.map(np.testing.assert_array_equal, as_ints.params, as_floats.params)
