"""The record of a run: machine description, per-workload results, table and JSON.

Columns of the table:

* ``floor ms`` — the unavoidable matrix products of one step (see
  :mod:`benchmarks.floor`), median over repeats;
* ``nnfunc ms`` — nnfunc's full step (forward, backward, Adam), median;
* ``vs floor`` — the median of nnfunc/floor ratios paired within each repeat;
  on tiny, the median paired overhead above the floor in µs instead;
* ``bar`` / ``ok`` — the bar for that workload and whether it is met
  (reported, never asserted);
* ``sklearn ms``, ``torch ms`` — the peers' steps, median, with their ratio
  to the floor (paired) and, for scikit-learn, the dtype it computed in.
"""

from __future__ import annotations

import os
import platform
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.workloads import Workload


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def blas_info() -> dict[str, Any]:
    """NumPy's BLAS: build configuration and, if threadpoolctl is around, the live pool."""
    info: dict[str, Any] = {}
    try:
        config: Any = np.show_config(mode="dicts")  # NumPy >= 1.26
        deps = config.get("Build Dependencies", {})
        info["build"] = {k: deps.get(k) for k in ("blas", "lapack")}
    except TypeError:  # older NumPy only prints its configuration
        info["build"] = None
    try:  # optional (scikit-learn depends on it); it ships no type information
        pools: list[dict[str, Any]] = import_module("threadpoolctl").threadpool_info()
    except ImportError:
        info["runtime"] = None
    else:
        info["runtime"] = [{k: pool.get(k) for k in
                            ("internal_api", "version", "num_threads", "threading_layer")}
                           for pool in pools if pool.get("user_api") == "blas"]
    return info


def blas_summary(info: dict[str, Any]) -> str:
    """One line: BLAS name, version and thread count, as far as known."""
    if info.get("runtime"):
        pool = info["runtime"][0]
        return f"{pool['internal_api']} {pool['version']}, {pool['num_threads']} threads"
    build = (info.get("build") or {}).get("blas") or {}
    return f"{build.get('name', 'unknown BLAS')} {build.get('version', '')}".strip()


def machine_info(dtype: str, repeats: int, allocator_tuned: bool) -> dict[str, Any]:
    """What the numbers depend on, recorded beside them."""
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "dtype": dtype,
        "repeats": repeats,
        "allocator_tuned": allocator_tuned,
    }


def header(info: dict[str, Any]) -> str:
    """The lines printed above the table."""
    alloc = "nnfunc.allocator.tune() applied" if info["allocator_tuned"] else "default allocator"
    return (f"{info['cpu']}, {info['cpu_count']} cores; Python {info['python']}; "
            f"NumPy {info['numpy']} ({blas_summary(info['blas'])})\n"
            f"{info['dtype']}; {info['repeats']} interleaved repeats; {alloc}")


def _bar_text(w: Workload) -> str:
    return f"+{w.bar:.0f} us" if w.bar_kind == "over_us" else f"{w.bar:.2f}x"


def _vs_floor(w: Workload, c: dict[str, Any]) -> str:
    return f"+{c['over_us']:.0f} us" if w.bar_kind == "over_us" else f"{c['ratio']:.2f}x"


def _peer_cell(c: dict[str, Any] | None, show_dtype: bool) -> str:
    if c is None:
        return "-"
    cell = f"{c['ms']:.3f} ({c['ratio']:.1f}x)"
    return f"{cell} {c['dtype']}" if show_dtype else cell


def table(results: list[dict[str, Any]], workloads: dict[str, Workload]) -> str:
    """The fixed-width result table, one row per workload, notes under it."""
    heads = ["workload", "floor ms", "nnfunc ms", "vs floor", "bar", "ok",
             "pure vs floor", "hand-written vs floor", "sklearn ms (x floor)",
             "torch ms (x floor)"]
    rows: list[list[str]] = []
    notes: list[str] = []
    for r in results:
        w = workloads[r["workload"]]
        c = r["contenders"]
        nn = c["nnfunc"]
        rows.append([
            w.name,
            f"{c['floor']['ms']:.3f}",
            f"{nn['ms']:.3f}",
            _vs_floor(w, nn),
            _bar_text(w),
            "pass" if nn["pass"] else "FAIL",
            _vs_floor(w, c["nnfunc_pure"]),
            _vs_floor(w, c["handwritten"]),
            _peer_cell(c.get("sklearn"), show_dtype=True),
            _peer_cell(c.get("torch"), show_dtype=False),
        ])
        notes.extend(f"{w.name}: {note}" for note in r["notes"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(wd) if i == 0 else cell.rjust(wd)
                         for i, (cell, wd) in enumerate(zip(cells, widths))).rstrip()

    out = [line(heads), line(["-" * wd for wd in widths])] + [line(row) for row in rows]
    return "\n".join(out + notes)


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} MiB"


def process_lines(imports: dict[str, Any] | None, memory: dict[str, Any] | None) -> str:
    """The import-time and peak-memory lines printed under the table."""
    lines: list[str] = []
    if imports is not None:
        foreign = ", ".join(imports["foreign_modules"]) or "none"
        lines.append(f"import nnfunc (fresh process, median of {imports['runs']}): "
                     f"{imports['nnfunc_s'] * 1e3:.1f} ms on top of import numpy "
                     f"{imports['numpy_s'] * 1e3:.1f} ms; other non-stdlib modules: {foreign}")
    if memory is not None:
        nn, fl = memory["nnfunc"], memory["numpy_floor"]
        lines.append(f"peak RSS, {memory['steps']} {memory['workload']} steps (fresh process): "
                     f"nnfunc {nn['peak_mib']:.0f} MiB (after imports {nn['base_mib']:.0f}), "
                     f"NumPy products {fl['peak_mib']:.0f} MiB "
                     f"(after imports {fl['base_mib']:.0f}); own VmHWM "
                     f"{_mib(nn['vm_hwm_mib'])} vs {_mib(fl['vm_hwm_mib'])}")
    return "\n".join(lines)
