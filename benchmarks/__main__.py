"""``python -m benchmarks``: nnfunc's training step against the BLAS floor and peers.

Times one full training step (forward, backward, Adam) of each workload's MLP
classifier for the floor, nnfunc, a hand-written in-place NumPy step (the
practical bound for a NumPy toolkit) and the installed peers, interleaved
within each repeat; prints a table with nnfunc's paired ratio to the floor
beside the bar; then the cost of ``import nnfunc`` and the peak memory of a medium
training run, each measured in fresh processes.

Examples::

    python -m benchmarks                                   # everything, float32
    python -m benchmarks --workloads tiny,small --repeats 3 --json out.json
    python -m benchmarks --workloads tiny --repeats 1 --no-peers   # CI smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks import report, timing
from benchmarks.floor import make_floor
from benchmarks.handwritten import make_handwritten_step
from benchmarks.import_time import measure_import
from benchmarks.memory import measure_memory
from benchmarks.nnfunc_step import make_nnfunc_step
from benchmarks.peers import available_peers
from benchmarks.workloads import WORKLOADS, Workload, parse_names


def run_workload(w: Workload, dtype: npt.DTypeLike, repeats: int, *,
                 peers: bool) -> dict[str, Any]:
    """Time the floor, nnfunc and (optionally) the peers on ``w``, interleaved.

    Returns the workload's JSON record: per contender the median ms, the
    per-repeat ms, the paired ratio to the floor and overhead above it; for
    nnfunc also whether it meets the bar.
    """
    floor = make_floor(w, dtype)
    steps: dict[str, timing.Step] = {"floor": floor.step}
    extra: dict[str, dict[str, Any]] = {"floor": {"dtype": np.dtype(dtype).name}}
    notes: list[str] = []
    for name, donate in (("nnfunc", True), ("nnfunc_pure", False)):
        nn = make_nnfunc_step(w, dtype, donate=donate)
        steps[name] = nn.run
        extra[name] = {"dtype": np.dtype(dtype).name, "via": nn.via}
    # the practical bound for a NumPy toolkit, to tell a slow machine from a slow nnfunc
    steps["handwritten"] = make_handwritten_step(w, dtype).run
    extra["handwritten"] = {"dtype": np.dtype(dtype).name}
    if peers:
        found, skipped = available_peers(w, dtype)
        notes.extend(skipped)
        for name, peer in found.items():
            steps[name] = peer.run
            extra[name] = {"dtype": peer.dtype, "version": peer.version}

    block = timing.block_seconds(timing.block_time(floor.step, 0.02, min_steps=2))
    times = timing.interleaved(steps, repeats, block)
    contenders: dict[str, dict[str, Any]] = {}
    for name, ts in times.items():
        ratio, over = timing.paired(ts, times["floor"])
        record = {"ms": float(np.median(ts)) * 1e3, "ms_per_repeat": [t * 1e3 for t in ts],
                  "ratio": ratio, "over_us": over * 1e6, **extra[name]}
        if name == "nnfunc":
            record["pass"] = w.passes(ratio, over * 1e6)
        contenders[name] = record
    spread = max(times["floor"]) / min(times["floor"])
    if spread > 1.5:  # e.g. another process took the cores for part of the run
        notes.append(f"the floor varied {spread:.1f}x across repeats (machine busy?); paired "
                     "ratios of contended repeats run low; ms_per_repeat is in the JSON")
    floor_s = contenders["floor"]["ms"] / 1e3
    return {
        "workload": w.name, "sizes": list(w.sizes), "batch": w.batch,
        "num_params": w.num_params, "block_seconds": block,
        "floor_gflops": floor.flops / floor_s / 1e9,
        "bar": {"kind": w.bar_kind, "value": w.bar},
        "contenders": contenders, "notes": notes,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; see ``python -m benchmarks --help``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help="comma-separated subset of %(default)s")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=7,
                        help="interleaved repeats; ratios are their paired median "
                             "(default %(default)s)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the record here")
    parser.add_argument("--no-peers", action="store_true", help="skip scikit-learn and torch")
    parser.add_argument("--no-tune", action="store_true",
                        help="do not call nnfunc.allocator.tune() first (the README "
                             "recommends it for training; the default applies it)")
    parser.add_argument("--no-process", action="store_true",
                        help="skip the fresh-process import-time and peak-memory runs")
    args = parser.parse_args(argv)
    try:
        args.names = parse_names(args.workloads)
    except ValueError as err:
        parser.error(str(err))
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    return args


def _tune_allocator() -> bool:
    try:
        from nnfunc.allocator import tune
    except ImportError:
        return False
    return tune()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; optionally write JSON. Returns 0."""
    args = parse_args(argv)
    dtype = np.dtype(args.dtype)
    tuned = False if args.no_tune else _tune_allocator()
    info = report.machine_info(args.dtype, args.repeats, tuned)
    print(report.header(info), flush=True)
    record: dict[str, Any] = {"machine": info, "workloads": [],
                              "import": None, "memory": None}
    if not args.no_process:  # first: children inherit the parent's peak RSS (see memory)
        record["import"] = measure_import()
        record["memory"] = measure_memory(tune=tuned)
    results = []
    for name in args.names:
        results.append(run_workload(WORKLOADS[name], dtype, args.repeats, peers=not args.no_peers))
        print(f"  {name} done", file=sys.stderr, flush=True)
    record["workloads"] = results
    print(report.table(results, WORKLOADS))
    if not args.no_process:
        print(report.process_lines(record["import"], record["memory"]))
    if args.json is not None:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"record written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
