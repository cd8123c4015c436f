"""Interleaved, paired timing for a shared, noisy machine.

The machine's speed drifts (other tenants, frequency changes): on the large
workload the floor alone differs up to 2x between processes. So every
contender is timed in the same process, and each *repeat* times all of them
back to back, in the same order. Within a repeat a contender runs a block of
consecutive steps (at least ``min_seconds`` long, and at least
``min_steps``). Its time for that repeat is the block's *throughput* — the
block's wall time over its steps, so every periodic cost (garbage
collection, the C allocator returning and re-faulting memory) is in it, as
a user sees it; the per-call median of the same block is kept as a
secondary figure. A contender's ratio to the floor is taken within each
repeat (paired, so both saw the same drift), and the report gives the median
over repeats of those paired ratios beside the median times.

Contenders disturb each other through their thread pools: after NumPy's
last product OpenBLAS's worker threads keep spinning for ~0.1 s, which on a
2-core machine halved PyTorch's speed for its first few steps, and torch's
OpenMP threads slowed the next floor step ~3x. So before each block the
machine is left idle for ``settle_seconds`` and the contender runs one
untimed step (its caches and thread pool back in shape); only then is the
block timed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from statistics import median
from typing import Any, NamedTuple

Step = Callable[[], Any]


class Block(NamedTuple):
    """One timed block: seconds per step as throughput, and the per-call median."""

    per_step: float
    per_call: float


def block(step: Step, min_seconds: float, min_steps: int = 3) -> Block:
    """Time a block of consecutive calls of ``step``.

    The block lasts at least ``min_seconds`` and holds at least ``min_steps``
    calls; ``per_step`` is its wall time over its calls, ``per_call`` the
    median of the calls timed one by one (which a preempted call moves
    little, and which hides periodic costs).
    """
    times: list[float] = []
    clock = time.perf_counter
    start = clock()
    while len(times) < min_steps or clock() - start < min_seconds:
        t0 = clock()
        step()
        times.append(clock() - t0)
    return Block((clock() - start) / len(times), median(times))


def block_time(step: Step, min_seconds: float, min_steps: int = 3) -> float:
    """The per-call median of :func:`block` (what the other benchmarks report)."""
    return block(step, min_seconds, min_steps).per_call


def interleaved(steps: Mapping[str, Step], repeats: int, min_seconds: float,
                warmup_seconds: float | None = None,
                settle_seconds: float = 0.15) -> dict[str, list[float]]:
    """Per-call median seconds of each contender in each repeat (see :func:`interleaved_blocks`)."""
    blocks = interleaved_blocks(steps, repeats, min_seconds, warmup_seconds, settle_seconds)
    return {name: [b.per_call for b in bs] for name, bs in blocks.items()}


def interleaved_blocks(steps: Mapping[str, Step], repeats: int, min_seconds: float,
                       warmup_seconds: float | None = None,
                       settle_seconds: float = 0.15) -> dict[str, list[Block]]:
    """Each contender's block in each repeat: ``{name: [block_1, ..., block_repeats]}``.

    Each contender first runs a warm-up block (caches, allocator arenas, BLAS
    and OpenMP thread pools, lazy imports inside peers); then each repeat
    times every contender once, each block after a ``settle_seconds`` pause
    and one untimed step. The first repeat keeps the order of ``steps``; each
    later one shuffles it (seeded by the repeat's number, so a run is
    reproducible), so no contender always follows the same one: on the
    medium MLP, whichever step ran right after the floor's products came out
    0.08-0.15x of the floor slower than in second place (five 60 ms blocks of
    each; 1.28 against 1.20 for the donated step, 1.35 against 1.25 for the
    pure one).
    """
    if repeats < 1:
        raise ValueError(f"interleaved: repeats must be >= 1, got {repeats}")
    warm = min_seconds / 2 if warmup_seconds is None else warmup_seconds
    for step in steps.values():
        block(step, warm, min_steps=2)
    out: dict[str, list[Block]] = {name: [] for name in steps}
    for r in range(repeats):
        names = list(steps)
        if r:
            random.Random(r).shuffle(names)
        for name in names:
            time.sleep(settle_seconds)  # let the previous contender's threads go idle
            steps[name]()
            out[name].append(block(steps[name], min_seconds))
    return out


def paired(times: list[float], floor: list[float]) -> tuple[float, float]:
    """Median over repeats of ``times / floor`` and of ``times - floor`` (seconds)."""
    if len(times) != len(floor):
        raise ValueError(f"paired: {len(times)} times against {len(floor)} floor times")
    ratio = median(t / f for t, f in zip(times, floor))
    over = median(t - f for t, f in zip(times, floor))
    return ratio, over


def block_seconds(floor_step_seconds: float, target: float = 0.2, cap: float = 1.0) -> float:
    """How long a block should last: long enough for many consecutive steps.

    At least ``target`` seconds (about 16 medium and 800 tiny MLP steps on
    the benchmark VM; 50 ms, the former default, was five medium steps, too
    few for a throughput); on workloads whose floor step alone is slow,
    enough for about five floor steps (capped at ``cap``).
    """
    return min(max(target, 5 * floor_step_seconds), cap)
