"""nnfunc.distributed: data-parallel fit on 2 and 3 MPI ranks equals single-process fit.

The multi-rank runs launch ``tests/mpi_cases.py`` under ``mpiexec -n 2`` and
``-n 3`` (subprocesses with hard timeouts, so a hang fails the test instead
of the suite); the single-process references are computed here, by
:func:`nnfunc.train.fit` on the same arguments. Each run's data (23 samples)
and batch (7) divide by neither rank count, so shards are uneven and, at 3
ranks, rank 0's shard of each epoch's last batch (2 rows) is empty.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnfunc as nf
from nnfunc import io, optim, random

from mpi_cases import FIT_CASES, STATE_CASES, case

MPI = pytest.importorskip("mpi4py.MPI")  # the mpi extra; CI installs it (.ci/run)
from nnfunc import distributed  # noqa: E402 (after the mpi4py import check)

ROOT = Path(nf.__file__).resolve().parent.parent
CASES = Path(__file__).with_name("mpi_cases.py")
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
RANKS = (2, 3)


def _launch(ranks: int, out: Path, names: list[str],
            timeout: float) -> subprocess.CompletedProcess[str]:
    assert MPIEXEC, "mpiexec not found (pip install mpich, the mpi extra)"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, "-m", "mpi4py",
                           str(CASES), str(out), *names], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module", params=RANKS, ids=[f"{r}ranks" for r in RANKS])
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[int, Path]:
    ranks = request.param
    out = tmp_path_factory.mktemp(f"mpi{ranks}")
    done = _launch(ranks, out, [*FIT_CASES, *STATE_CASES, "primitives", "errors", "progress"],
                   timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    (out / "stderr.txt").write_text(done.stderr)
    return ranks, out


def _rank_results(out: Path, name: str, ranks: int) -> list[Any]:
    return [io.load(out / f"{name}.{r}.npz") for r in range(ranks)]


def _rel_err(a: Any, b: Any) -> float:
    return max(float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-300))
               for x, y in zip(nf.tree.leaves(a), nf.tree.leaves(b)))


def _bit_identical(a: Any, b: Any) -> bool:
    la, lb = nf.tree.leaves(a), nf.tree.leaves(b)
    return len(la) == len(lb) and all(x.dtype == y.dtype and x.tobytes() == y.tobytes()
                                      for x, y in zip(la, lb))


@pytest.mark.parametrize("name", FIT_CASES)
def test_fit_equals_single_process(runs: tuple[int, Path], name: str,
                                   tmp_path: Path) -> None:
    ranks, out = runs
    got = _rank_results(out, name, ranks)
    for other in got[1:]:
        assert _bit_identical(other["params"], got[0]["params"])
        assert other["history"] == got[0]["history"]
    c = case(name, str(tmp_path))
    ref = nf.train.fit(*c["args"], **c["kwargs"])
    # float64: 1e-9 relative; float32: 1e-5 (about 80 float32 ulps) after 12 Adam steps
    tol = 1e-5 if name.startswith("f32") else 1e-9
    assert got[0]["params"][0][0].dtype == ref.params[0][0].dtype
    assert _rel_err(got[0]["params"], ref.params) < tol
    assert got[0]["epoch"] == ref.epoch
    assert sorted(got[0]["history"]) == sorted(ref.history)
    for k, values in ref.history.items():
        if k != "time":
            np.testing.assert_allclose(got[0]["history"][k], values, rtol=tol, atol=0)
    if name == "early_stop":
        assert ref.epoch < c["kwargs"]["epochs"]  # it did stop early


@pytest.mark.parametrize("name", STATE_CASES)
def test_stateful_fit_keeps_ranks_identical(runs: tuple[int, Path], name: str) -> None:
    # per-shard batch statistics make the result depend on the number of ranks (documented);
    # what must hold is that every rank ends with the same params, state and history
    ranks, out = runs
    got = _rank_results(out, name, ranks)
    assert nf.tree.leaves(got[0]["model_state"])
    for other in got[1:]:
        assert _bit_identical(other["params"], got[0]["params"])
        assert _bit_identical(other["model_state"], got[0]["model_state"])
        assert other["history"] == got[0]["history"]
    assert got[0]["epoch"] == 3
    assert all(np.isfinite(v).all() for v in got[0]["history"]["loss"])


def test_resume_from_rank_0_checkpoint_equals_uninterrupted(runs: tuple[int, Path]) -> None:
    ranks, out = runs
    got = _rank_results(out, "resume", ranks)
    for g in got:
        assert _bit_identical(g["resumed"], got[0]["params"])
        # the resumed run's history holds its own epochs, 3 and 4
        assert g["resumed_history"]["loss"] == got[0]["history"]["loss"][2:]
    # one file, written by rank 0 at the end, holding the result
    ck = io.load(out / "full.npz")
    assert ck["epoch"] == 4
    assert _bit_identical(ck["params"], got[0]["params"])
    assert ck["history"]["loss"] == got[0]["history"]["loss"]


def test_primitives(runs: tuple[int, Path]) -> None:
    ranks, out = runs
    got = _rank_results(out, "primitives", ranks)
    for g in got:
        np.testing.assert_array_equal(g["broadcast"]["a"], np.full((2, 3), 0.1))
        np.testing.assert_array_equal(g["broadcast"]["b"][0], np.zeros(4))
        assert _bit_identical(g["mean"], got[0]["mean"])
        assert _bit_identical(g["step_params"], got[0]["step_params"])
        np.testing.assert_array_equal(g["step_losses"], got[0]["step_losses"])
    mean_a = sum(r + 0.1 for r in range(ranks)) / ranks
    np.testing.assert_allclose(got[0]["mean"]["a"], np.full((2, 3), mean_a), rtol=1e-15)
    np.testing.assert_allclose(got[0]["mean"]["b"][0], np.arange(4.0) * (ranks - 1) / 2,
                               rtol=1e-15)
    # two data-parallel steps equal two single-process steps on the whole batches
    c = case("f64_dropout_weights")
    model, loss, opt, params, (x, y) = c["args"]
    step = nf.train.train_step(model, loss, opt)
    p1, state, loss1 = step(params, opt.init(params), x[:7], y[:7], key=random.key(9))
    p2, _, loss2 = step(p1, state, x[7:14], y[7:14], key=random.key(10))
    assert _rel_err(got[0]["step_params"], p2) < 1e-9
    np.testing.assert_allclose(got[0]["step_losses"], [loss1, loss2], rtol=1e-9)


def test_bad_inputs_fail_on_every_rank(runs: tuple[int, Path]) -> None:
    ranks, out = runs
    msgs = [json.loads((out / f"errors.{r}.json").read_text()) for r in range(ranks)]
    for r, m in enumerate(msgs):
        assert m["lengths"].startswith("ValueError: distributed.fit: samples, data must be the "
                                       "same on every rank")
        assert "rank 1 22" in m["lengths"]
        assert "rank 0 23" in m["lengths"]
        assert "rank 1 [('batch_size', 0)" in m["batch_size"]
        assert m["key"].startswith("ValueError: distributed.fit: key must be the same")
        if r == 1:  # the rank with the bad argument raises its own error ...
            assert m["no_key"].startswith("TypeError: distributed.fit: key must be a key")
        else:  # ... and every other rank says which rank failed
            assert m["no_key"].startswith("ValueError: distributed.fit: rank 1 rejected its "
                                          "arguments (TypeError: distributed.fit: key must be")
        assert m["comm"].startswith("TypeError: distributed.fit: comm must be an mpi4py")
        assert m["diverged"].startswith("RuntimeError: distributed.fit: the ranks' params or "
                                        "states differ after epoch 2")


def test_progress_shows_on_rank_0_only(runs: tuple[int, Path]) -> None:
    _, out = runs
    lines = [line for line in (out / "stderr.txt").read_text().splitlines()
             if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]


def test_a_raising_rank_ends_the_job_promptly(tmp_path: Path) -> None:
    start = time.perf_counter()
    done = _launch(2, tmp_path, ["raise"], timeout=60)
    elapsed = time.perf_counter() - start
    assert done.returncode != 0
    assert "rank 1 fails on purpose" in done.stderr
    assert elapsed < 30, f"the job took {elapsed:.1f} s to end"


@pytest.mark.parametrize("module", ["benchmarks.distributed", "benchmarks.sharded_estimate"])
def test_benchmarks_run_on_two_ranks(module: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    extra = ["--seconds", "0.01"] if module == "benchmarks.distributed" else []
    done = subprocess.run([MPIEXEC or "mpiexec", "-n", "2", sys.executable, "-m", "mpi4py", "-m",
                           module, "--workloads", "tiny", "--repeats", "1", *extra],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("tiny ")
    assert done.stdout.count("\n") == 1  # rank 0 alone prints


# -- one process (no mpiexec): COMM_WORLD of size 1, COMM_SELF -----------------------------

@pytest.mark.parametrize(("comm", "name"), [(None, "f64_dropout_weights"),
                                            ("self", "f64_dropout_weights"),
                                            ("self", "f64_bn_dropout")])
def test_one_process_equals_fit(comm: Any, name: str, tmp_path: Path) -> None:
    c = case(name, str(tmp_path))
    world = MPI.COMM_SELF if comm == "self" else None
    got = distributed.fit(*c["args"], comm=world, **c["kwargs"])
    ref = nf.train.fit(*c["args"], **c["kwargs"])
    assert _rel_err(got.params, ref.params) < 1e-9
    if ref.model_state is not None:
        assert _rel_err(got.model_state, ref.model_state) < 1e-9
    np.testing.assert_allclose(got.history["loss"], ref.history["loss"], rtol=1e-12)
    assert got.epoch == ref.epoch


def test_one_process_primitives() -> None:
    tree = {"w": np.arange(6.0).reshape(2, 3), "b": (np.float32(2.5) * np.ones(3, np.float32),)}
    assert _bit_identical(distributed.broadcast(tree, comm=MPI.COMM_SELF), tree)
    mean = distributed.allreduce_mean(tree, comm=MPI.COMM_SELF)
    assert _bit_identical(mean, tree)
    assert mean["b"][0].dtype == np.float32
    assert _bit_identical(distributed.allreduce_mean(tree, comm=MPI.COMM_SELF, ordered=True),
                          tree)
    scalars = distributed.allreduce_mean({"f": 0.25, "g": np.float32(1.5)}, comm=MPI.COMM_SELF)
    assert scalars == {"f": 0.25, "g": np.float32(1.5)}
    assert type(scalars["f"]) is float
    assert type(scalars["g"]) is np.float32


def test_one_process_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"distributed\.broadcast: comm must be an mpi4py "
                                        r"intracommunicator.*got int 3"):
        distributed.broadcast({}, comm=3)
    with pytest.raises(ValueError, match=r"distributed\.broadcast: root must be a rank in "
                                         r"\[0, 1\); got 1"):
        distributed.broadcast({}, comm=MPI.COMM_SELF, root=1)
    with pytest.raises(TypeError, match=r"distributed\.allreduce_mean: tree_ must have float "
                                        r"leaves only; got dtype int64"):
        distributed.allreduce_mean({"n": np.arange(3)}, comm=MPI.COMM_SELF)
    model, opt = nf.dense(2), optim.sgd(0.1)
    with pytest.raises(TypeError, match=r"distributed\.train_step: optimizer must have"):
        distributed.train_step(model, nf.mse, object())
    with pytest.raises(TypeError, match=r"distributed\.train_step: comm must be"):
        distributed.train_step(model, nf.mse, opt, comm=MPI.COMM_NULL)


def test_train_step_with_an_empty_shard_and_zero_weights() -> None:
    model, opt = nf.dense(2), optim.sgd(0.1)
    _, params = model.init(random.key(0), (3,))
    step = distributed.train_step(model, nf.mse, opt, comm=MPI.COMM_SELF)
    x, y = np.ones((0, 3), np.float32), np.ones((0, 2), np.float32)
    with pytest.raises(ValueError, match=r"distributed\.train_step: sample_weight must have a "
                                         r"positive sum over all ranks; got 0\.0"):
        step(params, opt.init(params), x, y)


def test_import_without_mpi4py_names_the_extra() -> None:
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "try:\n    import nnfunc.distributed\nexcept ImportError as err:\n    print(err)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True)
    assert 'pip install "nnfunc[mpi]"' in out.stdout


def test_import_nnfunc_imports_no_mpi() -> None:
    code = ("import sys, nnfunc; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mpi4py'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True)
    assert out.stdout.strip() == "[]"
