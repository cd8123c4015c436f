"""Learning-rate schedules: pure functions ``step -> lr`` (``step`` counts from 0).

Pass one as any optimizer's ``lr``; the state's ``lr`` field then shows the
rate of the last step.

>>> sched = warmup(cosine_decay(0.1, decay_steps=100), warmup_steps=10)
>>> [round(sched(s), 4) for s in (0, 5, 10, 110)]
[0.0, 0.05, 0.1, 0.0]
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nnfunc._validate import (
    describe,
    fail,
    finite_float,
    flag,
    non_negative_int,
    positive_int,
    real_number,
    type_fail,
)
from nnfunc.optim.base import Schedule

__all__ = ["constant", "cosine_decay", "exponential_decay", "piecewise_constant", "step_decay",
           "warmup"]


def _rate(value: float, component: str, arg: str) -> float:
    return finite_float(value, component, arg, lo=0.0)


def _step(step: Any, component: str) -> int:
    """The step a schedule is called with: an int >= 0 (the optimizer's count)."""
    if type(step) is int and step >= 0:  # the optimizer's own call: checked inline
        return step
    return non_negative_int(step, component, "step")


def constant(value: float) -> Schedule:
    """``lr(step) = value``.

    >>> constant(0.1)(1000)
    0.1
    """
    v = _rate(value, "constant", "value")

    def schedule(step: int) -> float:
        _step(step, "constant")
        return v

    return schedule


def exponential_decay(init: float, decay_rate: float, decay_steps: int, *,
                      staircase: bool = False) -> Schedule:
    """``lr(step) = init · rate^(step / decay_steps)`` (``⌊step / decay_steps⌋`` if staircase).

    Never overflows: at steps so large that ``rate^power`` leaves the float
    range it gives ``0.0`` (``rate < 1``) or ``inf`` (``rate > 1``, which the
    optimizer then reports as a learning rate that is not finite).

    >>> round(exponential_decay(1.0, 0.5, 10)(20), 6)
    0.25
    """
    i = _rate(init, "exponential_decay", "init")
    r = finite_float(decay_rate, "exponential_decay", "decay_rate", lo=0.0, lo_open=True)
    n = positive_int(decay_steps, "exponential_decay", "decay_steps")
    stairs = flag(staircase, "exponential_decay", "staircase")

    def schedule(step: int) -> float:
        s = _step(step, "exponential_decay")
        try:
            return i * r ** (s // n if stairs else s / n)
        except OverflowError:  # the power, or the step itself, beyond the float range
            return i if r == 1 or i == 0 else (0.0 if r < 1 else math.inf)

    return schedule


def piecewise_constant(boundaries: Sequence[int], values: Sequence[float]) -> Schedule:
    """``values[i]`` for ``boundaries[i-1] <= step < boundaries[i]``.

    Raises:
        ValueError: unless ``len(values) == len(boundaries) + 1``, the
            boundaries increase and are >= 0, and the values are finite and >= 0.
        TypeError: boundaries that are not ints, or arguments that are not sequences.

    >>> sched = piecewise_constant([10, 20], [1.0, 0.5, 0.1])
    >>> [sched(s) for s in (0, 10, 25)]
    [1.0, 0.5, 0.1]
    """
    for arg, seq in (("boundaries", boundaries), ("values", values)):
        if isinstance(seq, (str, bytes)) or not isinstance(seq, (Sequence, np.ndarray)):
            raise type_fail("piecewise_constant", arg, "must be a sequence (list or tuple)",
                            describe(seq))
    bounds = [non_negative_int(b, "piecewise_constant", f"boundaries[{j}]")
              for j, b in enumerate(boundaries)]
    vals = [_rate(v, "piecewise_constant", f"values[{j}]") for j, v in enumerate(values)]
    if len(vals) != len(bounds) + 1:
        raise fail("piecewise_constant", "values", f"must number len(boundaries) + 1 = "
                   f"{len(bounds) + 1}", len(vals))
    if any(b >= c for b, c in itertools.pairwise(bounds)):
        raise fail("piecewise_constant", "boundaries", "must increase", bounds)
    def schedule(step: int) -> float:
        return vals[bisect.bisect_right(bounds, _step(step, "piecewise_constant"))]

    return schedule


def step_decay(init: float, factor: float, every: int) -> Schedule:
    """Multiply by ``factor`` every ``every`` steps: ``init · factor^⌊step/every⌋``.

    >>> step_decay(1.0, 0.1, 5)(12)
    0.010000000000000002
    """
    return exponential_decay(init, factor, every, staircase=True)


def cosine_decay(init: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """Cosine annealing (Loshchilov & Hutter, 2017) from ``init`` to ``alpha · init``.

    ``lr(step) = init · ((1 - α) · ½(1 + cos(π min(step, T)/T)) + α)``.

    >>> cosine_decay(1.0, 10)(5)
    0.5
    """
    i = _rate(init, "cosine_decay", "init")
    n = positive_int(decay_steps, "cosine_decay", "decay_steps")
    a = finite_float(alpha, "cosine_decay", "alpha", lo=0.0, hi=1.0)

    def schedule(step: int) -> float:
        cos = 0.5 * (1 + math.cos(math.pi * min(_step(step, "cosine_decay"), n) / n))
        return i * ((1 - a) * cos + a)

    return schedule


def warmup(then: Schedule, warmup_steps: int, start: float = 0.0) -> Schedule:
    """Rise linearly from ``start`` to ``then(0)`` over ``warmup_steps``, then follow ``then``.

    ``lr(step) = start + (then(0) - start) · step / W`` for ``step < W``, else
    ``then(step - W)``.

    >>> sched = warmup(constant(1.0), 4)
    >>> [sched(s) for s in range(6)]
    [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    w = positive_int(warmup_steps, "warmup", "warmup_steps")
    s0 = _rate(start, "warmup", "start")
    if not callable(then):
        raise type_fail("warmup", "then", "must be a schedule step -> lr", describe(then))

    def after(step: int) -> float:
        value = then(step)
        if not real_number(value):
            raise type_fail("warmup", "then", f"must return a real number (step {step})",
                            describe(value))
        return float(value)

    def schedule(step: int) -> float:
        step = _step(step, "warmup")
        if step < w:
            return s0 + (after(0) - s0) * step / w
        return after(step - w)

    return schedule
