"""``python -m benchmarks``: nnfunc's training step against the BLAS floor and peers.

Times one full training step (forward, backward, Adam) of each workload's MLP
classifier — the floor, nnfunc as ``fit`` runs it (``train_step(donate=True)``,
no allocator tuning), nnfunc's pure ``value_and_grad`` + ``opt.update``, a
hand-written in-place NumPy step (the practical bound for a NumPy toolkit)
and the installed peers (JAX ``jit`` + optax, PyTorch eager, scikit-learn) —
as throughput over blocks of consecutive steps, interleaved within each
repeat, and again each contender in a fresh process of its own (plus nnfunc
with ``nnfunc.allocator.tune()``, which only exists that way); prints the
table with the issue's bars under it; then ``fit``'s epoch on the digits
beside a plain NumPy loop, the cost of ``import nnfunc`` and the peak memory
of a medium training run, each in fresh processes.

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
from benchmarks.contenders import NNFUNC, Contender, make_contender, time_fresh
from benchmarks.fit_epoch import measure_fit_epoch
from benchmarks.floor import make_floor
from benchmarks.import_time import measure_import
from benchmarks.memory import measure_memory
from benchmarks.peers import PEERS
from benchmarks.workloads import WORKLOADS, Workload, parse_names

PEER_NAMES = tuple(PEERS)


def _record(blocks: list[timing.Block], floor: list[timing.Block]) -> dict[str, Any]:
    """A contender's JSON record from its blocks and the floor's (paired by repeat)."""
    per_step = [b.per_step for b in blocks]
    per_call = [b.per_call for b in blocks]
    ratio, over = timing.paired(per_step, [b.per_step for b in floor])
    call_ratio, _ = timing.paired(per_call, [b.per_call for b in floor])
    return {"ms": float(np.median(per_step)) * 1e3, "ms_per_repeat": [t * 1e3 for t in per_step],
            "ratio": ratio, "over_us": over * 1e6,
            "ratio_spread": _spread(per_step, [b.per_step for b in floor]),
            "per_call_ms": float(np.median(per_call)) * 1e3, "per_call_ratio": call_ratio}


def _vs_donated(pure: list[timing.Block], donated: list[timing.Block]) -> dict[str, Any]:
    """The pure step against the donated one, paired within each repeat as the floor
    ratios are: the median of the per-repeat ratios, their spread, and the ratio of the
    two medians (unpaired, which the floor's drift between repeats moves)."""
    p, d = [b.per_step for b in pure], [b.per_step for b in donated]
    ratio, _ = timing.paired(p, d)
    return {"ratio": ratio, "ratio_spread": _spread(p, d),
            "unpaired": float(np.median(p) / np.median(d))}


def _spread(times: list[float], floor: list[float]) -> list[float]:
    """The lowest and highest paired ratio over the repeats."""
    ratios = [t / f for t, f in zip(times, floor)]
    return [min(ratios), max(ratios)]


def run_workload(w: Workload, dtype: npt.DTypeLike, repeats: int, *,
                 peers: bool, fresh: bool) -> dict[str, Any]:
    """Time the floor, nnfunc, the hand-written step and (optionally) the peers on ``w``.

    All interleaved in this process; with ``fresh``, each also (and
    ``nnfunc_tuned`` and ``nnfunc_numpy``, only) in a fresh process of its own against a floor
    timed there. Returns the workload's JSON record: per contender the median
    ms (throughput over blocks of consecutive steps), the per-repeat ms, the
    paired ratio to the floor and overhead above it, their spread, the
    per-call figures, and under ``"fresh"`` the same from its own process.
    """
    names = ["floor", *NNFUNC, "handwritten", *(PEER_NAMES if peers else ())]
    built: dict[str, Contender] = {}
    notes: list[str] = []
    for name in names:
        try:
            built[name] = make_contender(name, w, dtype)
        except ImportError as err:
            notes.append(f"{name} skipped: not installed ({getattr(err, 'name', None) or err})")
    floor_step = built["floor"].run
    block = timing.block_seconds(timing.block(floor_step, 0.02, min_steps=2).per_step)
    times = timing.interleaved_blocks({n: c.run for n, c in built.items()}, repeats, block)
    contenders = {n: {**_record(ts, times["floor"]), **built[n].info} for n, ts in times.items()}
    contenders["nnfunc_pure"]["vs_donated"] = _vs_donated(times["nnfunc_pure"], times["nnfunc"])
    del built, times  # this process's arrays go before the fresh ones start
    if fresh:
        for name in [n for n in names if n in contenders and n != "floor"] + ["nnfunc_tuned",
                                                                            "nnfunc_numpy"]:
            own = time_fresh(name, w, dtype, repeats, block)
            fresh_record = _record(own[name], own["floor"])
            contenders.setdefault(name, {"dtype": np.dtype(dtype).name})["fresh"] = fresh_record
    floor_ms = contenders["floor"]["ms_per_repeat"]
    spread = max(floor_ms) / min(floor_ms)
    if spread > 1.2:  # e.g. another process took the cores for part of the run
        notes.append(f"WARNING: the floor varied {spread:.2f}x across repeats (machine busy?); "
                     "paired ratios are less trustworthy; ms_per_repeat is in the JSON")
    floor_s = contenders["floor"]["ms"] / 1e3
    return {
        "workload": w.name, "sizes": list(w.sizes), "batch": w.batch,
        "num_params": w.num_params, "block_seconds": block,
        "floor_gflops": make_floor(w, dtype).flops / floor_s / 1e9,
        "bar": {"kind": w.bar_kind, "value": w.bar},
        "contenders": contenders, "checks": report.checks(w, contenders), "notes": notes,
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
    parser.add_argument("--no-peers", action="store_true",
                        help="skip scikit-learn, PyTorch and JAX")
    parser.add_argument("--no-process", action="store_true",
                        help="skip every fresh-process run: each contender in its own "
                             "process (and the tuned column), import time, peak memory, "
                             "fit's epoch")
    args = parser.parse_args(argv)
    try:
        args.names = parse_names(args.workloads)
    except ValueError as err:
        parser.error(str(err))
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; optionally write JSON. Returns 0."""
    args = parse_args(argv)
    dtype = np.dtype(args.dtype)
    info = report.machine_info(args.dtype, args.repeats)
    print(report.header(info), flush=True)
    record: dict[str, Any] = {"machine": info, "workloads": [], "import": None,
                              "memory": None, "fit_epoch": None}
    if not args.no_process:  # first: children inherit the parent's peak RSS (see memory)
        record["import"] = measure_import()
        record["memory"] = measure_memory()
        record["fit_epoch"] = measure_fit_epoch(max(3, args.repeats))
    results = []
    for name in args.names:
        results.append(run_workload(WORKLOADS[name], dtype, args.repeats,
                                    peers=not args.no_peers, fresh=not args.no_process))
        print(f"  {name} done", file=sys.stderr, flush=True)
    record["workloads"] = results
    print(report.table(results, WORKLOADS))
    if not args.no_process:
        print(report.process_lines(record["import"], record["memory"], record["fit_epoch"]))
    if args.json is not None:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"record written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
