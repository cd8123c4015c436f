"""The record of a run: machine description, per-workload results, table and JSON.

Every time is *throughput*: a block of consecutive steps' wall time over its
steps (see :mod:`benchmarks.timing`), with no allocator tuning. Columns:

* ``floor ms`` — the unavoidable matrix products of one step (see
  :mod:`benchmarks.floor`), median over repeats;
* ``nnfunc ms`` / ``x floor`` — ``train_step(donate=True)`` as ``fit`` runs
  it: median ms, and the median over repeats of the ratio to the floor
  paired within each repeat [lowest-highest]; on tiny, the paired overhead
  above the floor in µs instead;
* ``own proc`` — the same ratio with nnfunc alone in a fresh process
  against a floor timed there;
* ``pure`` — the pure ``value_and_grad`` + ``opt.update`` step, and
  ``pure/donated`` the ratio of the two (bar 1.15), paired within each
  repeat like the floor ratios (the JSON keeps the ratio of the two medians
  beside it as ``unpaired``);
* ``jax``, ``torch``, ``sklearn`` — the peers' ratios (tiny: overhead);
* ``jax products`` — the floor's products alone under one ``jax.jit``: JAX's
  own floor (below 1.00x where XLA's products beat NumPy's BLAS calls);
* ``hand`` — the hand-written in-place NumPy step (the practical bound);
* secondary: ``tuned`` — nnfunc with ``nnfunc.allocator.tune()``, in its own
  process; ``numpy kernels`` — nnfunc with NumPy's code for Adam, the loss,
  the bias add and ReLU instead of the compiled loops (the C extensions
  ``nnfunc.optim._fused``, ``nnfunc._xent`` and ``nnfunc._elementwise``;
  ``NNFUNC_COMPILED=0``), in its own process (the header
  says which Adam the other nnfunc columns ran);
  ``per-call`` — nnfunc's per-call median ratio.

Under the table, one line per workload lists the issue's bars (relative to
JAX where JAX ran) and whether each holds — reported, never asserted.
"""

from __future__ import annotations

import os
import platform
import time
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


def machine_info(dtype: str, repeats: int, allocator_tuned: bool = False) -> dict[str, Any]:
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
        "adam_kernel": adam_kernel(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def adam_kernel() -> str:
    """Which Adam update the nnfunc columns run: the C extension's loop or NumPy's kernel."""
    from nnfunc.optim import _compiled

    if not _compiled.available():
        return "NumPy kernel (nnfunc.optim._fused not built: no C compiler at install)"
    if not _compiled.wanted():
        return "NumPy kernel (NNFUNC_COMPILED=0)"
    return "compiled loop (nnfunc.optim._fused, C)"


def header(info: dict[str, Any]) -> str:
    """The lines printed above the table."""
    load = info.get("load_average")
    busy = f"; load average {load[0]:.1f} on {info['cpu_count']} cores" if load else ""
    return (f"{info['cpu']}, {info['cpu_count']} cores; Python {info['python']}; "
            f"NumPy {info['numpy']} ({blas_summary(info['blas'])}); {info['date']}{busy}\n"
            f"{info['dtype']}; {info['repeats']} interleaved repeats; default allocator "
            "(throughput over blocks of consecutive steps); "
            f"Adam: {info.get('adam_kernel', 'unknown')}")


def checks(w: Workload, c: dict[str, Any]) -> dict[str, bool]:
    """The issue's bars on workload ``w`` from its contenders' records.

    With JAX: medium and large ``ratio <= jax``; small ``ratio <= 1.05 jax``;
    tiny ``overhead <= 1.3 jax's``. Without JAX, the workload's own bar. On
    all: pure within 1.15x of donated, faster than torch and scikit-learn.
    """
    nn = c["nnfunc"]
    out: dict[str, bool] = {}
    jax = c.get("jax")
    if jax is None:
        out[f"bar {_bar_text(w)}"] = w.passes(nn["ratio"], nn["over_us"])
    elif w.bar_kind == "over_us":
        out["over <= 1.3 jax"] = nn["over_us"] <= 1.3 * jax["over_us"]
    elif w.name == "small":
        out["ratio <= 1.05 jax"] = nn["ratio"] <= 1.05 * jax["ratio"]
    else:
        out["ratio <= jax"] = nn["ratio"] <= jax["ratio"]
    out["pure <= 1.15 donated"] = _pure_vs_donated(c) <= 1.15
    for peer in ("torch", "sklearn"):
        if peer in c:
            out[f"faster than {peer}"] = nn["ms"] < c[peer]["ms"]
    return out


def _pure_vs_donated(c: dict[str, Any]) -> float:
    """The pure step's time over the donated one's: paired within each repeat (see
    ``vs_donated`` in the JSON), or from the two medians in a record made before that."""
    paired: dict[str, Any] | None = c["nnfunc_pure"].get("vs_donated")
    if paired is not None:
        return float(paired["ratio"])
    return float(c["nnfunc_pure"]["ms"] / c["nnfunc"]["ms"])


def _bar_text(w: Workload) -> str:
    return f"+{w.bar:.0f} us" if w.bar_kind == "over_us" else f"{w.bar:.2f}x"


def _vs_floor(w: Workload, c: dict[str, Any]) -> str:
    return f"+{c['over_us']:.0f} us" if w.bar_kind == "over_us" else f"{c['ratio']:.2f}x"


def _cell(w: Workload, c: dict[str, Any] | None, spread: bool = False) -> str:
    if c is None:
        return "-"
    text = _vs_floor(w, c)
    if spread and w.bar_kind == "ratio":
        lo, hi = c["ratio_spread"]
        text += f" [{lo:.2f}-{hi:.2f}]"
    return text


def table(results: list[dict[str, Any]], workloads: dict[str, Workload]) -> str:
    """The fixed-width result table, one row per workload, the bars and notes under it."""
    heads = ["workload", "floor ms", "nnfunc ms", "x floor", "own proc", "pure",
             "pure/donated", "jax", "jax products", "torch", "sklearn", "hand", "tuned",
             "numpy kernels", "per-call"]
    rows: list[list[str]] = []
    notes: list[str] = []
    for r in results:
        w = workloads[r["workload"]]
        c = r["contenders"]
        nn = c["nnfunc"]
        tuned = c.get("nnfunc_tuned", {}).get("fresh")
        numpy_adam = c.get("nnfunc_numpy", {}).get("fresh")
        rows.append([
            w.name,
            f"{c['floor']['ms']:.3f}",
            f"{nn['ms']:.3f}",
            _cell(w, nn, spread=True),
            _cell(w, nn.get("fresh")),
            _cell(w, c["nnfunc_pure"]),
            f"{_pure_vs_donated(c):.2f}",
            _cell(w, c.get("jax")),
            _cell(w, c.get("jax_products")),
            _cell(w, c.get("torch")),
            _cell(w, c.get("sklearn")),
            _cell(w, c.get("handwritten")),
            _cell(w, tuned),
            _cell(w, numpy_adam),
            f"{nn['per_call_ratio']:.2f}x",
        ])
        verdicts = ", ".join(f"{k} {'yes' if ok else 'NO'}" for k, ok in r["checks"].items())
        notes.append(f"{w.name}: {verdicts}")
        notes.extend(f"{w.name}: {note}" for note in r["notes"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(wd) if i == 0 else cell.rjust(wd)
                         for i, (cell, wd) in enumerate(zip(cells, widths))).rstrip()

    out = [line(heads), line(["-" * wd for wd in widths])] + [line(row) for row in rows]
    return "\n".join(out + notes)


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} MiB"


def process_lines(imports: dict[str, Any] | None, memory: dict[str, Any] | None,
                  fit_epoch: dict[str, Any] | None = None) -> str:
    """The import-time, peak-memory and fit-epoch lines printed under the table."""
    lines: list[str] = []
    if fit_epoch is not None:
        lines.append(f"fit, one digits epoch ({fit_epoch['steps']} steps of 32, fresh process, "
                     f"median of {fit_epoch['epochs']}): {fit_epoch['fit_s'] * 1e3:.1f} ms; "
                     f"plain NumPy loop {fit_epoch['numpy_s'] * 1e3:.1f} ms; paired ratio "
                     f"{fit_epoch['ratio']:.2f}x")
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
        plain = memory.get("nnfunc_numpy_adam")
        if plain is not None:
            lines.append(f"peak RSS, the same with NNFUNC_COMPILED=0 (NumPy's kernels): nnfunc "
                         f"{plain['peak_mib']:.0f} MiB (after imports {plain['base_mib']:.0f}), "
                         f"own VmHWM {_mib(plain['vm_hwm_mib'])}")
    return "\n".join(lines)
