"""Training runs for tests/test_distributed.py, run on every rank under ``mpiexec``.

``python -m mpi4py tests/mpi_cases.py OUT CASE...`` runs each case with
:func:`nnfunc.distributed.fit` (or the primitives) and saves what every rank
got to ``OUT/<case>.<rank>.npz``; the test computes the single-process
reference from the same :func:`case` arguments and compares. The data set
(23 samples) and the batch (7) divide by neither 2 nor 3, so shards are
uneven and, at 3 ranks, one is empty on the last batch of each epoch.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

import nnfunc as nf
from nnfunc import callbacks, optim, random

N, BATCH, FEATURES = 23, 7, 5


def _data(dtype: Any) -> tuple[Any, Any, Any]:
    x = random.normal(random.key(1), (N, FEATURES), np.float64)
    y = ((x[:, 0] + x[:, 1] ** 2) > 0.5).astype(np.int64)
    return x.astype(dtype), y, random.uniform(random.key(4), (N,), np.float64)


def case(name: str, ckpt_dir: str = ".") -> dict[str, Any]:
    """``fit``'s arguments for case ``name`` (positional ones under ``args``)."""
    dtype = np.float32 if name.startswith("f32") else np.float64
    x, y, w = _data(dtype)
    drop = "dropout" in name or name in ("early_stop", "resume")
    layers = [nf.dense(8), nf.relu] + ([nf.dropout(0.3)] if drop else []) + [nf.dense(2)]
    if "bn" in name:  # a stateful model: batch norm after the first layer's relu (before
        # it, the first bias would get a zero gradient and Adam would amplify its rounding)
        layers.insert(2, nf.batch_norm())
    model = nf.serial(*layers)
    kw: dict[str, Any] = {"epochs": 3, "batch_size": BATCH, "key": random.key(3),
                          "progress": False, "metrics": [nf.metrics.accuracy],
                          "validation": (x[:9], y[:9])}
    if "bn" in name:
        _, params, state = model.init_with_state(random.key(2), (FEATURES,))
        kw["model_state"] = nf.tree.astype(state, dtype)
    else:
        _, params = model.init(random.key(2), (FEATURES,))
    params = nf.tree.astype(params, dtype)
    if "weights" in name:
        w[::5] = 0.0  # zero-weight samples: some shards weigh nothing in some batches
        kw["sample_weight"] = w
        kw["class_weight"] = {1: 2.0}
    if name == "early_stop":
        kw.update(epochs=40, callbacks=[callbacks.early_stopping("val_loss", patience=2,
                                                                 min_delta=0.02)])
    if name == "resume":
        kw.update(epochs=4, callbacks=[callbacks.checkpoint(os.path.join(ckpt_dir, "full.npz"))])
    return {"args": (model, nf.softmax_cross_entropy, optim.adam(0.05), params, (x, y)),
            "kwargs": kw}


FIT_CASES = ("f64", "f32", "f64_dropout_weights", "f32_dropout_weights", "f64_ordered_dropout",
             "early_stop", "resume")
STATE_CASES = ("f64_bn_dropout",)  # batch norm: each shard normalises by its own statistics


def _run_fit(name: str, out: str) -> dict[str, Any]:
    from nnfunc import distributed, io

    c = case(name, out)
    ordered = "ordered" in name
    result = distributed.fit(*c["args"], ordered=ordered, **c["kwargs"])
    got: dict[str, Any] = {"params": result.params, "history": result.history,
                           "epoch": result.epoch, "model_state": result.model_state}
    if name == "resume":
        # stop after 2 epochs (rank 0 writes half.npz), then every rank resumes from the file
        kw = dict(c["kwargs"], epochs=2,
                  callbacks=[callbacks.checkpoint(os.path.join(out, "half.npz"))])
        distributed.fit(*c["args"], **kw)
        path = os.path.join(out, "half.npz")
        _, _, opt, params, _ = c["args"]
        ck = io.load(path, like={"params": params, "opt_state": opt.init(params), "epoch": 0,
                                 "history": io.load(path)["history"]})
        args = (*c["args"][:3], ck["params"], c["args"][4])
        again = distributed.fit(*args, **dict(c["kwargs"], opt_state=ck["opt_state"],
                                              initial_epoch=ck["epoch"], callbacks=[]))
        got["resumed"] = again.params
        got["resumed_history"] = again.history
    return got


def _run_primitives(out: str) -> dict[str, Any]:
    from mpi4py import MPI

    from nnfunc import distributed

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    mine = {"a": np.full((2, 3), rank + 0.1, np.float64), "b": [np.arange(4.0) * rank]}
    c = case("f64_dropout_weights")
    model, loss, opt, params, (x, y) = c["args"]
    lo, hi = distributed.shard_bounds(BATCH, comm.Get_size(), rank)
    step = distributed.train_step(model, loss, opt)
    state = opt.init(params)
    p1, state, loss1 = step(params, state, x[lo:hi], y[lo:hi], key=random.key(9))
    p2, _, loss2 = step(p1, state, x[BATCH + lo:BATCH + hi], y[BATCH + lo:BATCH + hi],
                        key=random.key(10))
    return {"broadcast": distributed.broadcast(mine), "mean": distributed.allreduce_mean(mine),
            "step_params": p2, "step_losses": np.array([loss1, loss2])}


def _messages(run: Any) -> str:
    try:
        run()
    except (ValueError, TypeError, RuntimeError) as err:
        return f"{type(err).__name__}: {err}"
    return "no error"


def _run_errors(out: str) -> dict[str, Any]:
    from mpi4py import MPI

    from nnfunc import distributed

    rank = MPI.COMM_WORLD.Get_rank()
    c = case("f64")
    args, kw = c["args"], c["kwargs"]
    x, y = args[4]
    short = (x[:-1], y[:-1]) if rank == 1 else (x, y)

    def perturb(info: Any) -> Any:  # rank 1's params drift: the epoch's hash check must see it
        if rank == 1 and info.epoch == 1:
            return nf.callbacks.Decision(opt_state=optim.scale_lr(info.opt_state, 1.0 + 1e-9))
        return None

    msgs = {
        "lengths": _messages(lambda: distributed.fit(*args[:4], short, **kw)),
        "batch_size": _messages(lambda: distributed.fit(
            *args, **dict(kw, batch_size=0 if rank == 1 else BATCH))),
        "key": _messages(lambda: distributed.fit(
            *args, **dict(kw, key=random.key(rank)))),
        "no_key": _messages(lambda: distributed.fit(
            *args, **dict(kw, key=None if rank == 1 else kw["key"]))),
        "comm": _messages(lambda: distributed.fit(*args, comm="world", **kw)),
        "diverged": _messages(lambda: distributed.fit(*args, **dict(kw, callbacks=[perturb]))),
    }
    with open(os.path.join(out, f"errors.{rank}.json"), "w") as f:
        json.dump(msgs, f)
    return {}


def main(out: str, names: list[str]) -> None:
    from mpi4py import MPI

    from nnfunc import io

    rank = MPI.COMM_WORLD.Get_rank()
    for name in names:
        if name == "primitives":
            got = _run_primitives(out)
        elif name == "errors":
            got = _run_errors(out)
        elif name == "progress":  # only rank 0 prints its one line per epoch
            c = case("f64")
            nf.distributed.fit(*c["args"], **dict(c["kwargs"], epochs=2, progress=True))
            got = {}
        elif name == "raise":
            # rank 1 fails after its first epoch; the others would wait in the next step's
            # Allreduce forever unless the launcher ends the job
            c = case("f64")

            def fail_on_rank_1(info: Any) -> None:
                if rank == 1:
                    raise RuntimeError("rank 1 fails on purpose")

            nf.distributed.fit(*c["args"], **dict(c["kwargs"], epochs=10**6,
                                                  callbacks=[fail_on_rank_1]))
            got = {}
        else:
            got = _run_fit(name, out)
        io.save(os.path.join(out, f"{name}.{rank}.npz"), got)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
