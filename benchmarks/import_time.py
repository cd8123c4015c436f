"""What ``import nnfunc`` costs, measured in fresh interpreters.

Each run starts a new Python, imports NumPy (timed), then nnfunc (timed), and
lists every module the nnfunc import added that is neither the standard
library nor NumPy nor nnfunc itself — the benchmark issue allows none (the
declared typing-extensions dependency is not imported), and never
scikit-learn, torch, matplotlib, hypothesis or pytest. The report gives the
median of several runs: a single cold import is mostly disk cache and noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import json, sys, time
clock = time.perf_counter
t0 = clock()
import numpy
t1 = clock()
before = set(sys.modules)
import nnfunc
t2 = clock()
own = {'nnfunc', 'numpy', '_distutils_hack'}
foreign = sorted({m.split('.')[0] for m in set(sys.modules) - before}
                 - set(sys.stdlib_module_names) - own)
print(json.dumps({'numpy': t1 - t0, 'nnfunc': t2 - t1, 'foreign': foreign}))
"""


def child_env() -> dict[str, str]:
    """The environment for child interpreters: this checkout's nnfunc and benchmarks first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def run_child(code: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; its last stdout line is a JSON object."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=child_env(), check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child process failed ({done.returncode}):\n"
                           f"{done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_import(runs: int = 7) -> dict[str, Any]:
    """Median seconds of ``import numpy`` and of ``import nnfunc`` after it.

    Returns ``{"runs", "numpy_s", "nnfunc_s", "total_s", "foreign_modules"}``:
    ``nnfunc_s`` is nnfunc's own share (NumPy already loaded), ``total_s`` the
    median of the sum; ``foreign_modules`` the union over runs of the top-level
    non-stdlib, non-NumPy modules that ``import nnfunc`` loaded.
    """
    results = [run_child(_CHILD) for _ in range(runs)]
    foreign = sorted({m for r in results for m in r["foreign"]})
    return {
        "runs": runs,
        "numpy_s": median(r["numpy"] for r in results),
        "nnfunc_s": median(r["nnfunc"] for r in results),
        "total_s": median(r["numpy"] + r["nnfunc"] for r in results),
        "foreign_modules": foreign,
    }
