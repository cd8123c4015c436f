"""``python -m benchmarks.faults``: page faults and CPU time per nnfunc step.

Wall-clock ratios on a shared 2-core machine swing by 2x when other tenants
run; two quantities barely move: the *minor page faults* a step takes (the
kernel mapping and zeroing a fresh 4 KiB page: what a workspace exists to
avoid) and the *CPU time* of a block of steps (``time.process_time``, which
preemption does not inflate). For each workload and each of nnfunc's steps
(donated, pure) this prints both, the CPU-time ratio paired with the floor
within each of ``--repeats`` blocks (median [lowest-highest]).

To compare two checkouts, run it in each (``PYTHONPATH=<checkout>``),
alternating; to see the C allocator's luck taken away, run it under glibc's
fixed default thresholds: ``MALLOC_MMAP_THRESHOLD_=131072
MALLOC_TRIM_THRESHOLD_=131072`` (setting them turns glibc's dynamic
thresholds off, as a process whose allocation history never raised them).
"""

from __future__ import annotations

import argparse
import resource
import time
from statistics import median

import numpy as np

from benchmarks.floor import make_floor
from benchmarks.nnfunc_step import make_nnfunc_step
from benchmarks.timing import Step
from benchmarks.workloads import WORKLOADS, parse_names


def _cpu_block(step: Step, seconds: float, min_steps: int = 5) -> tuple[float, float]:
    """CPU seconds per step over a block, and minor page faults per step."""
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.process_time()
    k = 0
    while k < min_steps or time.process_time() - start < seconds:
        step()
        k += 1
    cpu = (time.process_time() - start) / k
    return cpu, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / k


def measure(name: str, donate: bool, repeats: int) -> dict[str, float]:
    """``{"ratio", "lo", "hi", "faults", "floor_ms"}`` for one nnfunc step of workload ``name``."""
    w = WORKLOADS[name]
    floor = make_floor(w, np.float32).step
    nn = make_nnfunc_step(w, np.float32, donate=donate).run
    floor_s, _ = _cpu_block(floor, 0.2)
    _cpu_block(nn, 0.2)  # warm: the workspaces fill, Adam's state is past its first steps
    seconds = max(0.1, 30 * floor_s)
    ratios, faults, floors = [], [], []
    for _ in range(repeats):
        f, _ = _cpu_block(floor, seconds)
        t, n_faults = _cpu_block(nn, seconds)
        ratios.append(t / f)
        faults.append(n_faults)
        floors.append(f)
    return {"ratio": median(ratios), "lo": min(ratios), "hi": max(ratios),
            "faults": median(faults), "floor_ms": median(floors) * 1e3}


def main(argv: list[str] | None = None) -> int:
    """Print one line per workload and step kind. Returns 0."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default="small,medium")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    for name in parse_names(args.workloads):
        for donate in (True, False):
            r = measure(name, donate, args.repeats)
            kind = "donated" if donate else "pure"
            print(f"{name:6s} {kind:7s} CPU time {r['ratio']:.3f}x floor "
                  f"[{r['lo']:.3f}-{r['hi']:.3f}]  floor {r['floor_ms']:.2f} ms  "
                  f"page faults/step {r['faults']:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
