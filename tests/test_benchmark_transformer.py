"""``benchmarks.transformer`` computes what it claims to (no timing is asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import transformer as bt  # noqa: E402

SMALL = bt.Config(n=2, t=5, d=8, heads=2, mlp=2, classes=7)


def test_nnfunc_step_trains_on_its_batch() -> None:
    run, carry = bt.make_nnfunc_step(SMALL, lr=1e-2)
    run()
    first = float(carry[2])
    assert np.isclose(first, np.log(SMALL.classes), rtol=0.3)  # near-uniform at init
    for _ in range(30):
        run()
    assert float(carry[2]) < 0.5 * first


def test_floor_runs_and_counts_its_flops() -> None:
    bt.make_floor(SMALL)()
    rows, d, h, t, c, hidden = 10, 8, 2, 5, 7, 16
    dense = 2 * rows * (d * 3 * d * 2 + d * d * 3 + d * hidden * 3 + hidden * d * 3 + d * c * 3)
    assert bt.floor_flops(SMALL) == dense + 6 * 2 * 2 * h * t * t * (d // h)


def test_the_smoke_run_prints_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    record = bt.run(SMALL, 1, peers=False)
    assert set(record["contenders"]) == {"floor", "nnfunc"}
    print(bt.format_record(record))
    assert "nnfunc" in capsys.readouterr().out


@pytest.mark.torch
def test_torch_step_computes_the_same_model() -> None:
    pytest.importorskip("torch")
    run, carry, _ = bt.make_torch_step(SMALL, threads=1, lr=1e-2)
    run()
    assert np.isclose(float(carry[0]), np.log(SMALL.classes), rtol=0.3)
    for _ in range(30):
        run()
    assert float(carry[0]) < 0.5 * np.log(SMALL.classes)
