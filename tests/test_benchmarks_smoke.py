"""The benchmark package computes what it claims to (no timing is asserted here).

* the floor's products equal the products written out with ``@``;
* nnfunc's benchmarked step really trains (the loss falls on its fixed batch);
* a peer that is not installed is skipped with a note, not an error;
* a tiny run writes a JSON record with the documented keys;
* the hand-written step does nnfunc's work, and `phases --in-step` times both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import peers  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402
from benchmarks.floor import make_floor  # noqa: E402
from benchmarks.nnfunc_step import make_nnfunc_step  # noqa: E402
from benchmarks.workloads import WORKLOADS, Workload  # noqa: E402

SMALL = Workload("unit", (6, 5, 4, 3), 7, 1.0, "ratio")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_floor_computes_every_unavoidable_product(dtype: type) -> None:
    floor = make_floor(SMALL, dtype)
    floor.step()
    ws, acts, dys, dws, dxs = floor
    assert len(ws) == len(dws) == len(dys) == len(dxs) == len(acts) - 1 == 3
    assert dxs[0] is None  # the input layer needs no dx
    for i, w in enumerate(ws):
        assert acts[i + 1].dtype == dws[i].dtype == dtype
        np.testing.assert_allclose(acts[i + 1], acts[i] @ w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dws[i], acts[i].T @ dys[i], rtol=1e-5, atol=1e-6)
        dx = dxs[i]
        if dx is not None:
            np.testing.assert_allclose(dx, dys[i] @ w.T, rtol=1e-5, atol=1e-6)
    assert floor.flops == 2 * 7 * (6 * 5 * 2 + 5 * 4 * 3 + 4 * 3 * 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nnfunc_step_trains_in_the_requested_dtype(dtype: type) -> None:
    step = make_nnfunc_step(WORKLOADS["tiny"], dtype)
    losses = []
    for _ in range(20):
        step.run()
        losses.append(float(step.carry[2]))
    assert step.carry[2].dtype == dtype
    assert losses[-1] < losses[0]


def test_missing_peer_is_skipped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(w: Workload, dtype: Any) -> peers.PeerStep:
        raise ModuleNotFoundError("No module named 'fakepeer'", name="fakepeer")

    monkeypatch.setitem(peers.PEERS, "fakepeer", not_installed)
    found, notes = peers.available_peers(SMALL, np.float32, names=("fakepeer",))
    assert found == {}
    assert notes == ["fakepeer skipped: not installed (fakepeer)"]


def test_tiny_run_writes_the_documented_json(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["--workloads", "tiny", "--repeats", "1", "--no-peers", "--no-process",
                 "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert set(record) == {"machine", "workloads", "import", "memory", "fit_epoch"}
    assert {"cpu", "cpu_count", "numpy", "blas", "dtype", "repeats"} <= set(record["machine"])
    (tiny,) = record["workloads"]
    assert tiny["workload"] == "tiny"
    assert tiny["bar"] == {"kind": "over_us", "value": 120.0}
    assert set(tiny["contenders"]) == {"floor", "nnfunc", "nnfunc_pure", "handwritten"}
    nn = tiny["contenders"]["nnfunc"]
    assert {"ms", "ms_per_repeat", "ratio", "over_us", "ratio_spread", "per_call_ms",
            "per_call_ratio", "dtype"} <= set(nn)
    assert len(nn["ms_per_repeat"]) == 1
    assert set(tiny["checks"]) == {"bar +120 us", "pure <= 1.15 donated"}
    assert set(tiny["contenders"]["nnfunc_pure"]["vs_donated"]) == {"ratio", "ratio_spread",
                                                                    "unpaired"}
    assert "tiny" in capsys.readouterr().out


def test_pure_against_donated_is_paired_within_each_repeat() -> None:
    # repeat 1: pure 2 ms, donated 1 ms (ratio 2); repeat 2, on a slower machine: both
    # 4 ms (ratio 1). The paired median is 1.5; the two medians (3 and 2.5 ms) give 1.2
    from benchmarks.__main__ import _vs_donated
    from benchmarks.report import _pure_vs_donated
    from benchmarks.timing import Block

    got = _vs_donated([Block(2e-3, 0.0), Block(4e-3, 0.0)], [Block(1e-3, 0.0), Block(4e-3, 0.0)])
    assert got == {"ratio": 1.5, "ratio_spread": [1.0, 2.0], "unpaired": 1.2}
    record = {"nnfunc": {"ms": 2.5}, "nnfunc_pure": {"ms": 3.0, "vs_donated": got}}
    assert _pure_vs_donated(record) == 1.5
    del record["nnfunc_pure"]["vs_donated"]  # a record from before the pairing
    assert _pure_vs_donated(record) == 1.2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_handwritten_step_is_the_same_adam_step_as_nnfunc(dtype: type) -> None:
    # the calibration contender must do the work nnfunc does, or comparing
    # their times means nothing: same gradients, same Adam update
    from benchmarks.handwritten import make_handwritten_step
    from nnfunc import optim, train
    from nnfunc.activations import relu
    from nnfunc.combinators import serial
    from nnfunc.layers import DenseParams, dense
    from nnfunc.losses import softmax_cross_entropy

    hand = make_handwritten_step(SMALL, dtype)
    params = tuple(p for w, b in hand.params
                   for p in (DenseParams(w.copy(), b.copy()), ()))[:-1]
    model = serial(dense(5), relu, dense(4), relu, dense(3))
    tol = {"rtol": 1e-4, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}
    opt = optim.adam(1e-3)
    state = opt.init(params)
    for _ in range(3):
        _, grads = train.value_and_grad(model, softmax_cross_entropy)(params, hand.x, hand.y)
        state, params = opt.update(state, grads)
        hand.run()
        for (dw, db), g in zip(hand.grads, grads[::2]):
            np.testing.assert_allclose(dw, g.w, **tol)
            np.testing.assert_allclose(db, g.b, **tol)
        for (w, b), p in zip(hand.params, params[::2]):
            assert w.dtype == dtype
            np.testing.assert_allclose(w, p.w, **tol)
            np.testing.assert_allclose(b, p.b, **tol)


def test_in_step_phases_time_both_steps_phase_by_phase() -> None:
    # the --in-step table: each of the four phases of nnfunc's donated step and
    # of the hand-written step, timed inside whole steps (times are not judged)
    from benchmarks.phases import PHASES, in_step_table, in_step_times

    us = in_step_times(SMALL, np.float32, repeats=2, steps=3)
    assert set(us) == {"nnfunc", "hand-written"}
    for times in us.values():
        assert len(times) == len(PHASES)
        assert all(t > 0 for t in times)
    table = in_step_table("unit", us).splitlines()
    assert [line.split()[0] for line in table[2:]] == [*PHASES, "sum"]
