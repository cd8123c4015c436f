"""A character-level language model of Python's own documentation.

The text is ``pydoc_data.topics.topics`` (the help() topics every CPython
ships, about 465,000 characters: no download). The first 90% trains, the
last 10% is held out. Two models, chosen by ``--model``:

* ``transformer`` (default): ``embedding`` + ``position_embedding``, pre-norm
  blocks ``x + mha(layer_norm(x))``, ``x + mlp(layer_norm(x))`` with causal
  ``multi_head_attention`` and a 4x GELU MLP, a final ``layer_norm`` and a
  ``dense`` readout to the characters;
* ``lstm``: ``embedding``, one ``lstm`` layer, a ``dense`` readout.

Each step trains on a batch of random windows of ``T + 1`` characters
(predict every next character; ``softmax_cross_entropy`` over ``(n, T, C)``)
with Adam through ``train_step(donate=True)`` (gradients clipped to norm 1,
a warm-up then cosine decay of the learning rate), for ``--steps`` or until
``--seconds`` have passed, whichever comes first. The script then prints
the held-out cross-entropy in bits per character, beside a count-based
bigram model (add-one smoothing, trained on the same 90%), and a sample of
generated text.

Run:  python examples/char_lm.py [--model transformer|lstm] [--steps N] [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pydoc_data.topics import topics
from typing import Any, NamedTuple

import numpy as np

import nnfunc as nf
import nnfunc.allocator
from nnfunc import optim, random


class Corpus(NamedTuple):
    """The text as ids: ``train`` and ``held_out`` arrays, and the alphabet."""

    train: np.ndarray
    held_out: np.ndarray
    chars: str


def load_corpus() -> Corpus:
    """The help() topics in key order, as ids into their sorted alphabet; split 90/10."""
    text = "".join(topics[k] for k in sorted(topics))
    chars = "".join(sorted(set(text)))
    lookup = {c: i for i, c in enumerate(chars)}
    ids = np.fromiter((lookup[c] for c in text), np.int64, len(text))
    cut = int(0.9 * len(ids))
    return Corpus(ids[:cut], ids[cut:], chars)


def bigram_bits(corpus: Corpus) -> float:
    """Held-out bits/char of ``P(b | a) = (count(a, b) + 1) / (count(a) + C)``.

    The first held-out character is predicted from the last training one.
    """
    c = len(corpus.chars)
    counts = np.ones((c, c))
    np.add.at(counts, (corpus.train[:-1], corpus.train[1:]), 1.0)
    logp = np.log2(counts) - np.log2(counts.sum(axis=1, keepdims=True))
    prev = np.concatenate([corpus.train[-1:], corpus.held_out[:-1]])
    return float(-logp[prev, corpus.held_out].mean())


class Config(NamedTuple):
    """Model and training sizes."""

    t: int  # context: characters per training window
    width: int
    blocks: int
    heads: int
    hidden: int  # LSTM state size
    batch: int
    lr: float
    steps: int
    seconds: float  # training stops at steps or seconds, whichever comes first


FULL = Config(t=64, width=64, blocks=2, heads=4, hidden=256, batch=32, lr=4e-3, steps=1200,
              seconds=150.0)
# CI's quick run always takes all its steps (no time limit), so its result does
# not depend on how busy the machine is: 2.56 against the bigram's 3.35
QUICK = Config(t=32, width=64, blocks=1, heads=2, hidden=128, batch=32, lr=5e-3, steps=500,
               seconds=math.inf)


def transformer(vocab: int, cfg: Config) -> nf.Layer:
    """A small pre-norm GPT-style model: ids ``(n, T)`` -> logits ``(n, T, vocab)``."""
    d = cfg.width
    block = [
        layer
        for _ in range(cfg.blocks)
        for layer in (
            nf.residual(nf.serial(nf.layer_norm(), nf.multi_head_attention(cfg.heads,
                                                                           causal=True))),
            nf.residual(nf.serial(nf.layer_norm(), nf.dense(4 * d), nf.gelu, nf.dense(d))),
        )
    ]
    return nf.serial(nf.embedding(vocab, d, w_init=nf.initializers.normal(0.1)),
                     nf.position_embedding(cfg.t), *block, nf.layer_norm(), nf.dense(vocab))


def lstm(vocab: int, cfg: Config) -> nf.Layer:
    """Embedding, one LSTM over the sequence, a readout at every step."""
    return nf.serial(nf.embedding(vocab, cfg.width, w_init=nf.initializers.normal(0.1)),
                     nf.lstm(cfg.hidden), nf.dense(vocab))


def windows(ids: np.ndarray, starts: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``ids[s : s+t]`` and next-character targets ``ids[s+1 : s+t+1]`` per start."""
    idx = starts[:, None] + np.arange(t + 1)
    chunk = ids[idx]
    return chunk[:, :-1], chunk[:, 1:]


def held_out_bits(model: nf.Layer, params: Any, ids: np.ndarray, t: int,
                  batch: int = 64) -> float:
    """Mean bits/char over the held-out text cut into consecutive windows of ``t``.

    Every held-out character (after the first) is predicted once, from the
    characters before it in its window.
    """
    starts = np.arange(0, len(ids) - t - 1, t)
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        x, y = windows(ids, starts[i:i + batch], t)
        logits = model.apply(params, x)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        logz = np.log(np.exp(shifted).sum(axis=-1))
        picked = np.take_along_axis(shifted, y[..., None], axis=-1)[..., 0]
        total += float((logz - picked).sum())
        count += y.size
    return total / count / math.log(2)


def generate(model: nf.Layer, params: Any, chars: str, prompt: str, length: int, t: int,
             key: Any, temperature: float = 0.8) -> str:
    """Sample ``length`` characters after ``prompt``, each from the last ``t`` characters."""
    lookup = {c: i for i, c in enumerate(chars)}
    ids = [lookup[c] for c in prompt if c in lookup]
    rng = random.generator(key)
    for _ in range(length):
        context = np.array([ids[-t:]])
        logits = model.apply(params, context)[0, -1].astype(np.float64) / temperature
        p = np.exp(logits - logits.max())
        ids.append(int(rng.choice(len(chars), p=p / p.sum())))
    return "".join(chars[i] for i in ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("transformer", "lstm"), default="transformer")
    parser.add_argument("--quick", action="store_true",
                        help="a smaller model and fewer steps (for CI)")
    parser.add_argument("--steps", type=int, help="training steps (default 1200; quick 500)")
    parser.add_argument("--seconds", type=float,
                        help="stop training after this many seconds even if steps remain "
                             "(default 150; quick: no limit)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    nnfunc.allocator.tune()  # keep freed memory for the next step's arrays
    cfg = QUICK if args.quick else FULL
    if args.steps is not None:
        cfg = cfg._replace(steps=args.steps)
    if args.seconds is not None:
        cfg = cfg._replace(seconds=args.seconds)

    corpus = load_corpus()
    vocab = len(corpus.chars)
    print(f"text: {len(corpus.train) + len(corpus.held_out):,} characters, {vocab} distinct; "
          f"train {len(corpus.train):,}, held out {len(corpus.held_out):,}")
    model = (transformer if args.model == "transformer" else lstm)(vocab, cfg)
    k_init, k_data, k_sample = random.split(random.key(args.seed), 3)
    _, params = model.init(k_init, (cfg.t,))
    print(f"{args.model}: {nf.tree.size(params):,} params; context {cfg.t}, batch {cfg.batch}, "
          f"{cfg.steps} steps" + (f" or {cfg.seconds:g} s" if math.isfinite(cfg.seconds) else ""))

    warmup = min(100, cfg.steps // 10 + 1)
    schedule = optim.schedules.warmup(
        optim.schedules.cosine_decay(cfg.lr, max(cfg.steps - warmup, 1), alpha=0.1), warmup)
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adam(schedule))
    step = nf.train.train_step(model, nf.softmax_cross_entropy, opt, donate=True)
    opt_state = opt.init(params)
    rng = random.generator(k_data)
    start = time.perf_counter()
    steps, recent = 0, []
    while steps < cfg.steps and time.perf_counter() - start < cfg.seconds:
        x, y = windows(corpus.train, rng.integers(0, len(corpus.train) - cfg.t - 1, cfg.batch),
                       cfg.t)
        params, opt_state, loss = step(params, opt_state, x, y)
        recent.append(float(loss))
        steps += 1
        if steps % 100 == 0:
            print(f"  step {steps}: train bits/char {np.mean(recent) / math.log(2):.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
            recent = []
    train_s = time.perf_counter() - start

    model_bits = held_out_bits(model, params, corpus.held_out, cfg.t)
    baseline = bigram_bits(corpus)
    print(f"trained {steps} steps in {train_s:.0f} s")
    print(f"held-out bits/char: model {model_bits:.2f}, bigram {baseline:.2f}")
    sample = generate(model, params, corpus.chars, "The ", 300 if not args.quick else 120,
                      cfg.t, k_sample)
    print("sample:\n" + sample)
    return 0 if model_bits < baseline else 1


if __name__ == "__main__":
    sys.exit(main())
