"""The pieces of ``examples/char_lm.py`` that its printed numbers rest on."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np

import nnfunc as nf

_PATH = Path(__file__).resolve().parent.parent / "examples" / "char_lm.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("char_lm", _PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["char_lm"] = module
    spec.loader.exec_module(module)
    return module


lm = _load()


def test_bigram_bits_is_add_one_smoothed_bigram_cross_entropy() -> None:
    chars = "abc"
    train = np.array([0, 1, 2, 0, 1, 1, 0])
    held = np.array([2, 2, 0, 1])
    corpus = lm.Corpus(train, held, chars)
    pairs = Counter(zip(train[:-1].tolist(), train[1:].tolist()))
    firsts = Counter(train[:-1].tolist())
    prev = [int(train[-1]), *held[:-1].tolist()]
    expected = -sum(math.log2((pairs[(a, b)] + 1) / (firsts[a] + len(chars)))
                    for a, b in zip(prev, held.tolist())) / len(held)
    assert math.isclose(lm.bigram_bits(corpus), expected, rel_tol=1e-12)


def test_windows_pair_each_character_with_the_next() -> None:
    ids = np.arange(20)
    x, y = lm.windows(ids, np.array([0, 7, 12]), 5)
    np.testing.assert_array_equal(x[1], [7, 8, 9, 10, 11])
    np.testing.assert_array_equal(y[1], [8, 9, 10, 11, 12])
    assert x.shape == y.shape == (3, 5)


def test_held_out_bits_is_the_sequence_loss_in_bits() -> None:
    cfg = lm.QUICK._replace(t=6, width=8, heads=2)
    model = lm.transformer(5, cfg)
    _, params = model.init(nf.random.key(0), (cfg.t,))
    ids = nf.random.generator(nf.random.key(1)).integers(0, 5, 40)
    starts = np.arange(0, len(ids) - cfg.t - 1, cfg.t)
    x, y = lm.windows(ids, starts, cfg.t)
    nats = float(nf.softmax_cross_entropy.apply(model.apply(params, x), y))
    assert math.isclose(lm.held_out_bits(model, params, ids, cfg.t, batch=2), nats / math.log(2),
                        rel_tol=1e-5)


def test_the_corpus_is_pydocs_topics_split_90_10() -> None:
    corpus = lm.load_corpus()
    total = len(corpus.train) + len(corpus.held_out)
    assert total > 400_000
    assert len(corpus.train) == int(0.9 * total)
    assert corpus.train.max() < len(corpus.chars)
