"""Peak memory of training the medium workload, each in a fresh process.

Two children run the same number of medium-workload steps: one trains with
nnfunc, the other is a plain NumPy process doing only the floor's products
(preallocated). Each reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
(KiB on Linux) right after its imports (the interpreter and NumPy, plus
nnfunc in the first) and at the end. The difference between the two peaks is
what nnfunc's pure, allocate-per-step style costs in memory: the
activations, pullbacks, gradients and the optimizer's two moment trees.

Caveat, and why :func:`measure_memory` must run before the parent grows:
Linux carries the parent's peak RSS over into a child's ``ru_maxrss``
(fork/exec keep the larger of the two), so a child started by a process that
already holds the large workload reports the parent's peak. The children
also report ``VmHWM`` from ``/proc/self/status``, the high-water mark of
their own address space only, as a cross-check.
"""

from __future__ import annotations

from typing import Any

from benchmarks.import_time import run_child

_CHILD = """
import json, os, resource
if {numpy_adam}:
    os.environ["NNFUNC_COMPILED"] = "0"
def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def hwm_mib():
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
import numpy as np
from benchmarks.workloads import WORKLOADS
w = WORKLOADS[{workload!r}]
if {use_nnfunc}:
    import nnfunc
    if {tune}:
        import nnfunc.allocator
        nnfunc.allocator.tune()
    from benchmarks.nnfunc_step import make_nnfunc_step
    base = peak_mib()
    step = make_nnfunc_step(w, np.float32).run
else:
    from benchmarks.floor import make_floor
    base = peak_mib()
    step = make_floor(w, np.float32).step
for _ in range({steps}):
    step()
print(json.dumps({{'base_mib': base, 'peak_mib': peak_mib(), 'vm_hwm_mib': hwm_mib()}}))
"""


def measure_memory(workload: str = "medium", steps: int = 20,
                   tune: bool = False) -> dict[str, Any]:
    """Peak RSS (MiB) of ``steps`` training steps of ``workload``: nnfunc vs NumPy's products.

    Returns ``{"workload", "steps", "allocator_tuned", "nnfunc": {"base_mib",
    "peak_mib", "vm_hwm_mib"}, "nnfunc_numpy_adam": {...}, "numpy_floor":
    {...}}`` (``ru_maxrss`` after the imports and at the end; ``VmHWM`` at the
    end, ``None`` off Linux). ``nnfunc_numpy_adam`` runs with
    ``NNFUNC_COMPILED=0``, Adam's NumPy kernel instead of the compiled loop
    (whose chunked passes need one scratch chunk more).
    ``tune`` applies ``nnfunc.allocator.tune()`` in the nnfunc child, as the
    timed run did.
    """
    def child(use_nnfunc: bool, numpy_adam: bool = False) -> dict[str, Any]:
        return run_child(_CHILD.format(workload=workload, use_nnfunc=use_nnfunc,
                                       tune=tune, steps=steps, numpy_adam=numpy_adam))

    return {"workload": workload, "steps": steps, "allocator_tuned": tune,
            "nnfunc": child(True), "nnfunc_numpy_adam": child(True, True),
            "numpy_floor": child(False)}
