"""The data-parallel step: its time at 1 and p ranks, and what the Allreduce costs.

Run on one process (BLAS threads as the environment sets them)::

    OPENBLAS_NUM_THREADS=2 python -m benchmarks.distributed

or on ``p`` ranks (one BLAS thread each, say)::

    OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python -m mpi4py -m benchmarks.distributed

For each benchmark MLP (``benchmarks/workloads.py``; Adam, donated, as
``fit`` steps) it times, interleaved within each repeat: ``step`` — one
``distributed.train_step`` on this rank's shard of the global batch (one
process: ``train.train_step`` on the whole batch, and ``distributed``'s on
``COMM_SELF`` to show the packing cost), and ``allreduce`` — the step's one
in-place ``Allreduce`` alone, on a buffer of the same size. Rank 0 prints the
medians over repeats (and their min–max), the bytes each step sums, and the
Allreduce's share of the step. Every rank runs the same number of steps per
block (fixed, not timed), so the collectives always match.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.nnfunc_step import make_nnfunc_step
from benchmarks.workloads import WORKLOADS, Workload


def _block(run: Callable[[], None], steps: int, sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        run()
    return (time.perf_counter() - start) / steps


def _contenders(w: Workload, comm: Any, dtype: Any) -> dict[str, Callable[[], None]]:
    from mpi4py import MPI

    from nnfunc import distributed
    from nnfunc.losses import softmax_cross_entropy

    base = make_nnfunc_step(w, dtype)
    size, rank = comm.Get_size(), comm.Get_rank()
    lo, hi = distributed.shard_bounds(len(base.y), size, rank)
    x, y = base.x[lo:hi], base.y[lo:hi]

    def sharded(on: Any) -> Callable[[], None]:
        step = distributed.train_step(base.model, softmax_cross_entropy, base.opt, comm=on,
                                      donate=True)
        carry = [base.carry[0], base.opt.init(base.carry[0])]

        def run() -> None:
            carry[0], carry[1], _ = step(carry[0], carry[1], x, y)

        return run

    buf = np.zeros(w.num_params + 2, dtype)

    def allreduce() -> None:
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    if size == 1:
        return {"train.train_step": base.run, "distributed, COMM_SELF": sharded(MPI.COMM_SELF),
                "allreduce": allreduce}
    return {f"step ({size} ranks)": sharded(comm), "allreduce": allreduce}


def main() -> None:
    from mpi4py import MPI

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="tiny,small,medium,large")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.3, help="per block, roughly")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--json", default=None, help="write the results here (rank 0)")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    size, rank = comm.Get_size(), comm.Get_rank()
    dtype = np.dtype(args.dtype)
    results: dict[str, Any] = {"ranks": size, "dtype": str(dtype), "workloads": {}}
    for name in args.workloads.split(","):
        w = WORKLOADS[name]
        runs = _contenders(w, comm, dtype)
        for run in runs.values():  # warm up, and size the blocks on rank 0's first step
            run()
        probe = _block(next(iter(runs.values())), 3, comm.Barrier)
        steps = comm.bcast(max(3, int(args.seconds / max(probe, 1e-6))), root=0)
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.repeats):
            for k, run in runs.items():
                times[k].append(_block(run, steps, comm.Barrier))
        # the slowest rank sets the pace: take each block's maximum over ranks
        slowest = {k: list(np.max(comm.allgather(v), axis=0)) for k, v in times.items()}
        nbytes = (w.num_params + 2) * dtype.itemsize
        row: dict[str, Any] = {k: {"median_ms": 1e3 * statistics.median(v), "min_ms": 1e3 * min(v),
                   "max_ms": 1e3 * max(v)} for k, v in slowest.items()}
        step_key = next(iter(row))
        row["allreduce_bytes"] = nbytes
        row["allreduce_share"] = row["allreduce"]["median_ms"] / row[step_key]["median_ms"]
        results["workloads"][name] = row
        if rank == 0:
            parts = ", ".join(f"{k} {r['median_ms']:.3f} ms [{r['min_ms']:.3f}-"
                              f"{r['max_ms']:.3f}]" for k, r in row.items()
                              if isinstance(r, dict))
            print(f"{name:6s} ({w.num_params} params, {nbytes / 1e6:.2f} MB summed, "
                  f"{steps} steps x {args.repeats}): {parts}; allreduce/step "
                  f"{row['allreduce_share']:.1%}", flush=True)
    if rank == 0 and args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
