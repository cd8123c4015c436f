"""The embedding gradient's scatter-add: nnfunc's flat ``np.bincount`` against ``np.add.at``.

``python -m benchmarks.embedding_grad [repeats]`` times both (and a
per-column bincount) interleaved in one process, on float32 ``dy``: each
repeat times a block of 5 consecutive calls of each, and the script prints
each one's median per-call time and range over the repeats and the median
(and range) of the paired ratios ``add.at / bincount``. All three are checked
to give the same table first.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from nnfunc.layers.embedding import _scatter_add

Scatter = Callable[[np.ndarray, np.ndarray, int], np.ndarray]

# (vocab_size, ids per batch, d_out): a character model's batch, a word model's, a big table
CASES = [(65, 64 * 64, 64), (1_000, 64 * 32, 64), (10_000, 64 * 128, 128)]


def add_at(ids: np.ndarray, dy: np.ndarray, vocab_size: int) -> np.ndarray:
    dw = np.zeros((vocab_size, dy.shape[1]), dy.dtype)
    np.add.at(dw, ids, dy)
    return dw


def bincount_flat(ids: np.ndarray, dy: np.ndarray, vocab_size: int) -> np.ndarray:
    return _scatter_add(ids, dy, vocab_size, dy.dtype)


def bincount_per_column(ids: np.ndarray, dy: np.ndarray, vocab_size: int) -> np.ndarray:
    out = np.empty((vocab_size, dy.shape[1]), dy.dtype)
    for j in range(dy.shape[1]):
        out[:, j] = np.bincount(ids, weights=dy[:, j], minlength=vocab_size)
    return out


def main(repeats: int = 21, block: int = 5) -> None:
    rng = np.random.default_rng(0)
    fns: dict[str, Scatter] = {"add.at": add_at, "bincount (nnfunc)": bincount_flat,
                               "bincount per column": bincount_per_column}
    for vocab, m, d in CASES:
        ids = rng.integers(0, vocab, m)
        dy = rng.standard_normal((m, d)).astype(np.float32)
        ref = add_at(ids, dy.astype(np.float64), vocab)
        for fn in fns.values():
            np.testing.assert_allclose(fn(ids, dy, vocab), ref, rtol=1e-4, atol=1e-4)
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                for _ in range(block):
                    fn(ids, dy, vocab)
                times[name].append((time.perf_counter() - t0) / block)
        ratios = np.array(times["add.at"]) / np.array(times["bincount (nnfunc)"])
        print(f"vocab {vocab}, {m} ids, d_out {d}:")
        for name, ts in times.items():
            ms = np.array(ts) * 1e3
            print(f"  {name:20s} median {np.median(ms):7.2f} ms  "
                  f"[{ms.min():.2f} .. {ms.max():.2f}]")
        print(f"  paired add.at / bincount: median {np.median(ratios):.1f}x "
              f"[{ratios.min():.1f} .. {ratios.max():.1f}]")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 21)
