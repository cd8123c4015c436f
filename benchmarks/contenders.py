"""Every contender by name, and each one timed in a fresh process of its own.

Interleaving all contenders in one process pairs them against the same
drift, but lets them disturb each other: one contender's freed memory, its
thread pools, or a process-wide setting (``nnfunc.allocator.tune()``) carry
over to the next. So the benchmark also times each contender in a fresh
interpreter of its own, against a floor timed in that same interpreter
(paired within each repeat there too): what a user's training script sees.
``nnfunc_tuned`` exists only that way, since the setting it applies would
change every other contender in the process; so does ``nnfunc_numpy``, the
default step with Adam's NumPy kernel in place of the compiled loop (what a
user whose install found no C compiler runs; ``NNFUNC_COMPILED=0``).
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from benchmarks import timing
from benchmarks.floor import make_floor
from benchmarks.handwritten import make_handwritten_step
from benchmarks.import_time import run_child
from benchmarks.nnfunc_step import make_nnfunc_step
from benchmarks.peers import PEERS
from benchmarks.workloads import WORKLOADS, Workload

NNFUNC = ("nnfunc", "nnfunc_pure")
"""nnfunc's contenders: ``train_step(donate=True)`` as ``fit`` runs it, and the
pure ``value_and_grad`` + ``opt.update`` through ``train_step(donate=False)``."""


class Contender(NamedTuple):
    """A ready-to-time step and what the table prints beside it."""

    run: timing.Step
    info: dict[str, Any]


def make_contender(name: str, w: Workload, dtype: npt.DTypeLike) -> Contender:
    """Build contender ``name`` (``floor``, ``nnfunc``, ``nnfunc_pure``,
    ``nnfunc_tuned``, ``nnfunc_numpy``, ``handwritten`` or a peer of
    :data:`benchmarks.peers.PEERS`).

    Raises:
        ImportError: a peer that is not installed.
        ValueError: an unknown name.
    """
    dt = np.dtype(dtype).name
    if name == "floor":
        return Contender(make_floor(w, dtype).step, {"dtype": dt})
    if name in ("nnfunc", "nnfunc_tuned", "nnfunc_pure", "nnfunc_numpy"):
        if name == "nnfunc_tuned":
            from nnfunc.allocator import tune

            tune()
        if name == "nnfunc_numpy":  # only ever in a process of its own (see time_fresh)
            from nnfunc import losses
            from nnfunc.optim import _compiled

            os.environ["NNFUNC_COMPILED"] = "0"  # NumPy code for Adam, the loss, bias, ReLU
            _compiled.kernels.cache_clear()
            losses._compiled_sce.cache_clear()
        nn = make_nnfunc_step(w, dtype, donate=name != "nnfunc_pure")
        return Contender(nn.run, {"dtype": dt, "via": nn.via})
    if name == "handwritten":
        return Contender(make_handwritten_step(w, dtype).run, {"dtype": dt})
    if name in PEERS:
        peer = PEERS[name](w, dtype)
        return Contender(peer.run, {"dtype": peer.dtype, "version": peer.version})
    raise ValueError(f"unknown contender {name!r}")


_CHILD = """
from benchmarks.contenders import child_main
child_main({args!r})
"""


def child_main(args: dict[str, Any]) -> None:
    """A fresh process's side: time ``args["name"]`` and the floor, print the blocks as JSON."""
    w = WORKLOADS[args["workload"]]
    steps = {"floor": make_contender("floor", w, args["dtype"]).run,
             args["name"]: make_contender(args["name"], w, args["dtype"]).run}
    times = timing.interleaved_blocks(steps, args["repeats"], args["block"])
    print(json.dumps({name: [list(b) for b in blocks] for name, blocks in times.items()}))


def time_fresh(name: str, w: Workload, dtype: npt.DTypeLike, repeats: int,
               block: float) -> dict[str, list[timing.Block]]:
    """``{"floor": [...], name: [...]}``: the blocks of ``name`` and of the floor,
    interleaved in a fresh interpreter of their own.

    Raises:
        ImportError: ``name`` is a peer that is not installed there.
    """
    try:
        raw = run_child(_CHILD.format(args={"name": name, "workload": w.name,
                                            "dtype": np.dtype(dtype).name,
                                            "repeats": repeats, "block": block}))
    except RuntimeError as err:
        if "ImportError" in str(err) or "ModuleNotFoundError" in str(err):
            raise ImportError(str(err)) from err
        raise
    return {k: [timing.Block(*b) for b in v] for k, v in raw.items()}

