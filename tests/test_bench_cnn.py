"""The CNN benchmark computes what it claims to (no timing is asserted here).

* the floor's products equal the products written out with ``@``;
* the hand-written step's gradients are nnfunc's on the same params and batch;
* a one-repeat run prints its table and writes a JSON record.
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

import nnfunc as nf  # noqa: E402
from benchmarks import cnn  # noqa: E402

UNIT = {
    "same": cnn.CnnWorkload("unit_same", (6, 6, 1), (3, 4), "same", (5, 3), 2),
    "valid": cnn.CnnWorkload("unit_valid", (11, 10, 2), (3, 2), "valid", (4,), 3),
}


@pytest.mark.parametrize("w", list(UNIT.values()) + list(cnn.WORKLOADS.values()),
                         ids=lambda w: w.name)
def test_shapes_and_param_count_agree_with_nnfunc(w: cnn.CnnWorkload) -> None:
    model = cnn.nnfunc_model(w)
    out, params = model.init(nf.random.key(0), w.image)
    assert out == (w.dense[-1],)
    assert nf.tree.size(params) == w.num_params


def test_floor_computes_every_unavoidable_product() -> None:
    floor = cnn.make_floor(UNIT["valid"])
    floor.step()
    assert floor.layers[0][5] is None  # the input layer needs no dx
    for a, w, y, dy, dw, da in floor.layers:
        np.testing.assert_allclose(y, a @ w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dw, a.T @ dy, rtol=1e-5, atol=1e-6)
        if da is not None:
            np.testing.assert_allclose(da, dy @ w.T, rtol=1e-5, atol=1e-6)
    # conv (9·c_in) x c_out on n·OH·OW rows, then dense
    assert [lay[1].shape for lay in floor.layers] == [(18, 3), (27, 2), (2, 4)]
    assert floor.layers[1][0].shape == (3 * 2 * 2, 27)


def _as_nnfunc(w: cnn.CnnWorkload, hand: cnn.Handwritten) -> Any:
    layers: list[Any] = []
    k = 0
    for i, _ in w.conv_shapes():
        kw, b = hand.params[k]
        layers += [nf.ConvParams(kw.reshape(3, 3, i[2], -1).astype(np.float64),
                                 b.astype(np.float64)), (), ()]
        k += 1
    layers.append(())
    for j in range(len(w.dense)):
        kw, b = hand.params[k]
        layers.append(nf.DenseParams(kw.astype(np.float64), b.astype(np.float64)))
        k += 1
        if j < len(w.dense) - 1:
            layers.append(())
    return tuple(layers)


@pytest.mark.parametrize("w", list(UNIT.values()), ids=lambda w: w.name)
def test_handwritten_gradients_are_nnfuncs(w: cnn.CnnWorkload) -> None:
    hand = cnn.make_handwritten_step(w)
    hand.forward_backward()
    model = cnn.nnfunc_model(w)
    params = _as_nnfunc(w, hand)
    _, grads = nf.value_and_grad(model, nf.softmax_cross_entropy)(
        params, hand.x.astype(np.float64), hand.y)
    leaves = [g for g in nf.tree.leaves(grads)]
    expected = [a.reshape(b.shape) for a, b in
                zip([x for pair in hand.grads for x in pair], leaves)]
    assert len(leaves) == 2 * len(hand.grads)
    for got, want in zip(leaves, expected):
        np.testing.assert_allclose(want, got, rtol=2e-4, atol=2e-6)


def test_handwritten_step_trains() -> None:
    w = UNIT["same"]
    hand = cnn.make_handwritten_step(w)
    before = [p.copy() for pair in hand.params for p in pair]
    hand.run()
    after = [p for pair in hand.params for p in pair]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))


def test_one_repeat_run_prints_and_writes_json(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cnn.WORKLOADS["unit_same"] = UNIT["same"]
    try:
        assert cnn.main(["--workloads", "unit_same", "--repeats", "1", "--no-peers",
                         "--json", str(tmp_path / "r.json")]) == 0
    finally:
        del cnn.WORKLOADS["unit_same"]
    out = capsys.readouterr().out
    assert "nnfunc/hand-written" in out
    record = json.loads((tmp_path / "r.json").read_text())
    (result,) = record["workloads"]
    assert set(result["contenders"]) == {"floor", "nnfunc", "handwritten"}
    assert result["nnfunc_vs"]["handwritten"]["bar"] == 1.0
