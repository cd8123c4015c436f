"""``python -m benchmarks.phases``: where nnfunc's step spends its time above the floor.

Splits one nnfunc training step into the phases ``train_step`` runs —

* ``forward``: ``nnfunc.vjp(model, params, x, train=True)`` (outputs and the
  recorded pullbacks);
* ``loss``: ``train.loss_value_and_grad`` (softmax cross-entropy and its
  gradient from the logits);
* ``backward``: the pullback from the loss gradient to the param grads;
* ``update``: ``opt.update`` (Adam);

— and times each one, and the floor's forward and backward products, with
the same interleaved block medians as the main benchmark. The table gives
each phase's time, the floor part it contains, and the overhead (phase minus
floor part); ``glue`` is the whole step minus the sum of its phases. With
``--cprofile`` it also prints the functions that take the most time over a
block of whole steps (cProfile's own overhead inflates small Python calls).

Timed in isolation, a phase runs faster than inside a step (its arrays stay
in cache, BLAS's threads are in another state), so with ``--in-step`` it
also times the four phases inside consecutive whole steps — nnfunc's donated
step as ``train_step`` runs it, and the hand-written step's own four parts —
in alternating blocks, and prints both side by side: where nnfunc's time
above the practical bound goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import timing
from benchmarks.floor import make_floor
from benchmarks.handwritten import make_handwritten_step
from benchmarks.nnfunc_step import make_nnfunc_step
from benchmarks.workloads import WORKLOADS, Workload, parse_names


def phase_times(w: Workload, dtype: Any, repeats: int) -> dict[str, float]:
    """Median ms of each phase of nnfunc's step, of the whole step and of the floor's halves."""
    from nnfunc import vjp
    from nnfunc.losses import softmax_cross_entropy
    from nnfunc.train import loss_value_and_grad

    nn = make_nnfunc_step(w, dtype)
    for _ in range(3):  # params and Adam state past their first steps
        nn.run()
    params, state = nn.carry[0], nn.carry[1]
    y_pred, pullback = vjp(nn.model, params, nn.x, train=True)
    _, dy = loss_value_and_grad(softmax_cross_entropy, y_pred, nn.y)
    grads, _ = pullback(dy, False)
    floor = make_floor(w, dtype)
    steps: dict[str, timing.Step] = {
        "floor forward": floor.forward,
        "floor backward": floor.backward,
        "forward": lambda: vjp(nn.model, params, nn.x, train=True),
        "loss": lambda: loss_value_and_grad(softmax_cross_entropy, y_pred, nn.y),
        "backward": lambda: pullback(dy, False),
        "update": lambda: nn.opt.update(state, grads),
        "step": nn.run,
    }
    block = timing.block_seconds(timing.block(floor.step, 0.02, min_steps=2).per_step)
    times = timing.interleaved_blocks(steps, repeats, block)
    return {name: float(np.median([b.per_call for b in ts])) * 1e3 for name, ts in times.items()}


def phase_table(name: str, ms: dict[str, float]) -> str:
    """Each phase's ms, the floor products inside it and the overhead above them."""
    floor_part = {"forward": ms["floor forward"], "backward": ms["floor backward"]}
    phases = ["forward", "loss", "backward", "update"]
    glue = ms["step"] - sum(ms[p] for p in phases)
    floor_total = ms["floor forward"] + ms["floor backward"]
    lines = [f"{name}: step {ms['step']:.3f} ms, floor {floor_total:.3f} ms, "
             f"above the floor {ms['step'] - floor_total:.3f} ms",
             f"  {'phase':10s} {'ms':>9s} {'floor ms':>9s} {'over ms':>9s} {'share of over':>14s}"]
    over_total = ms["step"] - floor_total
    for p in [*phases, "glue"]:
        t = glue if p == "glue" else ms[p]
        f = floor_part.get(p, 0.0)
        share = (t - f) / over_total if over_total > 0 else float("nan")
        lines.append(f"  {p:10s} {t:9.3f} {f:9.3f} {t - f:9.3f} {share:14.0%}")
    return "\n".join(lines)


PHASES = ("forward", "loss", "backward", "update")


def in_step_times(w: Workload, dtype: Any, repeats: int,
                  steps: int = 50) -> dict[str, list[float]]:
    """Median µs of each phase timed inside whole steps: ``{"nnfunc": [...],
    "hand-written": [...]}`` in the order of :data:`PHASES`.

    Each of ``repeats`` rounds runs ``steps`` nnfunc steps, then ``steps``
    hand-written ones, each phase timed with ``perf_counter`` as it runs;
    the medians are over every timed step.
    """
    from nnfunc.losses import softmax_cross_entropy
    from nnfunc.optim import update_fn

    nn = make_nnfunc_step(w, dtype)
    for _ in range(3):  # params and Adam state past their first steps
        nn.run()

    update = update_fn(nn.opt, donate=True)  # Adam's update_in_place
    fused = softmax_cross_entropy.value_and_grad
    if fused is None:
        raise TypeError("softmax_cross_entropy has no fused value_and_grad")
    value_and_grad: Callable[[Any, Any], tuple[Any, Any]] = fused
    carry = nn.carry
    hand = make_handwritten_step(w, dtype)
    clock = time.perf_counter
    ours: list[list[float]] = []
    theirs: list[list[float]] = []

    def nnfunc_step() -> None:  # what train_step(donate=True) runs in this case
        t0 = clock()
        y_pred, pullback = nn.model.vjp(carry[0], nn.x, key=None, train=True)
        t1 = clock()
        _, dy = value_and_grad(y_pred, nn.y)
        t2 = clock()
        grads, _ = pullback(dy, False)
        t3 = clock()
        carry[1], carry[0] = update(carry[1], grads)
        ours.append([t1 - t0, t2 - t1, t3 - t2, clock() - t3])

    def hand_step() -> None:
        times = []
        for phase in hand.phases:
            t0 = clock()
            phase()
            times.append(clock() - t0)
        theirs.append(times)

    for _ in range(repeats):
        for _ in range(steps):
            nnfunc_step()
        for _ in range(steps):
            hand_step()
    return {"nnfunc": [float(x) * 1e6 for x in np.median(ours, axis=0)],
            "hand-written": [float(x) * 1e6 for x in np.median(theirs, axis=0)]}


def in_step_table(name: str, us: dict[str, list[float]]) -> str:
    """nnfunc's and the hand-written step's phases side by side, in µs."""
    lines = [f"{name}: phases inside the step (µs, medians)",
             f"  {'phase':10s} {'nnfunc':>9s} {'hand-written':>13s} {'difference':>11s}"]
    rows = [*zip(PHASES, us["nnfunc"], us["hand-written"]),
            ("sum", sum(us["nnfunc"]), sum(us["hand-written"]))]
    for phase, a, b in rows:
        lines.append(f"  {phase:10s} {a:9.1f} {b:13.1f} {a - b:+11.1f}")
    return "\n".join(lines)


def cprofile_top(w: Workload, dtype: Any, steps: int, top: int = 15) -> str:
    """cProfile's top functions by own time over ``steps`` whole nnfunc steps."""
    nn = make_nnfunc_step(w, dtype)
    nn.run()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        nn.run()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Print the phase table (and optionally cProfile's view) for each workload."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.phases", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default="medium,large")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-tune", action="store_true",
                        help="do not call nnfunc.allocator.tune() first")
    parser.add_argument("--cprofile", type=int, default=0, metavar="STEPS",
                        help="also cProfile this many whole steps per workload")
    parser.add_argument("--in-step", action="store_true",
                        help="also time the phases inside whole steps, beside the "
                        "hand-written step's")
    args = parser.parse_args(argv)
    try:
        names = parse_names(args.workloads)
    except ValueError as err:
        parser.error(str(err))
    if not args.no_tune:
        from nnfunc.allocator import tune

        tune()
    dtype = np.dtype(args.dtype)
    for name in names:
        print(phase_table(name, phase_times(WORKLOADS[name], dtype, args.repeats)), flush=True)
        if args.in_step:
            print(in_step_table(name, in_step_times(WORKLOADS[name], dtype, args.repeats)),
                  flush=True)
        if args.cprofile:
            print(cprofile_top(WORKLOADS[name], dtype, args.cprofile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
