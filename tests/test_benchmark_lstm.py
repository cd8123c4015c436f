"""benchmarks.lstm computes what it claims (no timing is asserted): nnfunc's step
trains, and a tiny run gives a record with the documented keys."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks.lstm import LstmWorkload, floor_step, lines, measure, nnfunc_step  # noqa: E402

TINY = LstmWorkload(batch=4, steps=3, d_in=5, hidden=6, classes=3)


def test_nnfunc_step_trains_on_its_batch() -> None:
    step = nnfunc_step(TINY)
    losses = [float(step()) for _ in range(150)]  # Adam at lr 1e-3, as benchmarked
    assert losses[-1] < 0.7 * losses[0]


def test_a_tiny_run_gives_the_record() -> None:
    floor_step(TINY)()
    result = measure(TINY, repeats=2, min_seconds=0.001, threads=1, torch=False)
    assert set(result["ms"]) == {"floor", "nnfunc"}
    assert all(len(v) == 2 for v in result["ms"].values())
    assert set(result["vs_floor"]) == {"nnfunc"}
    assert "nnfunc_vs_torch" not in result
    assert lines(result)[0].startswith("contender")
