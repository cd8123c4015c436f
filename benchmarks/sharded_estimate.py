"""Would a sharded optimizer update pay? Times its pieces against the Allreduce's.

    OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python -m mpi4py -m benchmarks.sharded_estimate

A sharded update replaces the step's ``Allreduce`` of the gradient by a
``Reduce_scatter`` (each rank receives the sum of its 1/p of the buffer), an
Adam update of that 1/p only, and an ``Allgather`` of the new params. This
times, interleaved over 7 repeats and as the slowest rank sees them, the
four pieces on flat float32 buffers of the benchmark MLPs' sizes: the
Allreduce, Reduce_scatter + Allgather, donated Adam on the whole buffer and
on 1/p of it. The update pays when ``adam(all) - adam(1/p)`` exceeds
``(reduce_scatter + allgather) - allreduce``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.workloads import WORKLOADS


def _pieces(comm: Any, size: int) -> dict[str, Callable[[], None]]:
    """The four pieces on flat float32 buffers of ``size`` (a multiple of the rank count)."""
    from mpi4py import MPI

    from nnfunc import optim
    from nnfunc.optim.base import update_fn

    p = comm.Get_size()
    buf, part = np.ones(size, np.float32), np.empty(size // p, np.float32)
    opt = optim.adam(1e-3)
    update = update_fn(opt, donate=True)
    states: list[Any] = [opt.init(np.ones(size, np.float32)),
                         opt.init(np.ones(size // p, np.float32))]
    grads = [np.full(size, 1e-3, np.float32), np.full(size // p, 1e-3, np.float32)]

    def allreduce() -> None:
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    def scatter_gather() -> None:
        comm.Reduce_scatter_block(buf, part, op=MPI.SUM)
        comm.Allgather(part, buf)

    def adam(i: int) -> Callable[[], None]:
        def run() -> None:
            states[i] = update(states[i], grads[i])[0]
        return run

    return {"allreduce": allreduce, "reduce_scatter+allgather": scatter_gather,
            "adam(all)": adam(0), "adam(1/p)": adam(1)}


def main() -> None:
    from mpi4py import MPI

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="small,medium,large")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD

    def timed(f: Callable[[], None], n: int) -> float:
        comm.Barrier()
        start = time.perf_counter()
        for _ in range(n):
            f()
        return float(max(comm.allgather((time.perf_counter() - start) / n * 1e3)))

    for name in args.workloads.split(","):
        size = WORKLOADS[name].num_params
        size -= size % comm.Get_size()
        pieces = _pieces(comm, size)
        n = 20 if size < 10**6 else 5
        times: dict[str, list[float]] = {k: [] for k in pieces}
        for _ in range(args.repeats):
            for k, f in pieces.items():
                times[k].append(timed(f, n))
        if comm.Get_rank() == 0:
            med = {k: statistics.median(v) for k, v in times.items()}
            gain = (med["adam(all)"] - med["adam(1/p)"]
                    - (med["reduce_scatter+allgather"] - med["allreduce"]))
            print(f"{name:6s} {size} floats: " + ", ".join(
                f"{k} {med[k]:.2f} [{min(v):.2f}-{max(v):.2f}]" for k, v in times.items())
                + f" ms; a sharded update would save {gain:.2f} ms a step", flush=True)


if __name__ == "__main__":
    main()
