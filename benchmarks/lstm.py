"""``python -m benchmarks.lstm``: an LSTM training step against PyTorch eager and the floor.

The workload: a batch of 32 sequences, ``T = 64`` steps of ``D = 64``
features, one ``lstm(256, return_sequences=False)``, a dense readout of its
last step to 10 classes, softmax cross-entropy, Adam (lr 1e-3), float32.

Contenders, interleaved within each repeat (:mod:`benchmarks.timing`):

* ``floor`` — the matrix products the step cannot avoid, on preallocated
  buffers: the input projection ``(n·T, D) @ (D, 4H)``; ``T`` forward
  products ``h W_h`` ``(n, H) @ (H, 4H)``; ``T - 1`` backward products
  ``dG_t W_hᵀ`` (no ``dh_0`` is needed); ``dW_x = Xᵀ dG``, ``dW_h = H_prevᵀ
  dG``; and the readout's three small products. ``dx = dG W_xᵀ`` is not in
  it: the LSTM is the first layer, so neither nnfunc nor PyTorch computes it.
* ``nnfunc`` — ``train_step(model, softmax_cross_entropy, adam(1e-3),
  donate=True)``: forward, backward and the update.
* ``torch`` — ``nn.LSTM(64, 256, batch_first=True)`` + ``nn.Linear``,
  ``nn.CrossEntropyLoss``, ``optim.Adam``; ``zero_grad``, forward,
  ``backward``, ``step``; ``torch.set_num_threads`` the number of threads
  NumPy's BLAS runs (``--threads``, default ``os.cpu_count()``, set for both
  through threadpoolctl when it is installed; without it, set
  ``OPENBLAS_NUM_THREADS`` to match).

The report gives each contender's median ms over repeats and the median of
the paired per-repeat ratios: nnfunc/torch (the bar: <= 1.5) and each to the
floor. Nothing is asserted.

Examples::

    python -m benchmarks.lstm                   # 7 repeats
    python -m benchmarks.lstm --repeats 3 --json lstm.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import import_module
from pathlib import Path
from statistics import median
from typing import Any, NamedTuple

import numpy as np

import nnfunc as nf
from benchmarks import report, timing

BAR = 1.5  # nnfunc's step within 1.5x PyTorch eager's


class LstmWorkload(NamedTuple):
    batch: int = 32
    steps: int = 64
    d_in: int = 64
    hidden: int = 256
    classes: int = 10


def make_batch(w: LstmWorkload, seed: int = 0) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((w.batch, w.steps, w.d_in)).astype(np.float32)
    return x, rng.integers(0, w.classes, w.batch)


def floor_step(w: LstmWorkload) -> timing.Step:
    """The unavoidable products, each into a preallocated output."""
    rng = np.random.default_rng(1)
    n, steps, d, h, g = w.batch, w.steps, w.d_in, w.hidden, 4 * w.hidden

    def mat(*shape: int) -> np.ndarray[Any, Any]:
        return rng.standard_normal(shape).astype(np.float32)

    x, w_x, w_h, w_o = mat(n * steps, d), mat(d, g), mat(h, g), mat(h, w.classes)
    gx, dgates = np.empty((n * steps, g), np.float32), mat(steps, n, g)
    hs = mat(steps, n, h)
    out_h, out_g = np.empty((n, h), np.float32), np.empty((n, g), np.float32)
    dw_x, dw_h = np.empty((d, g), np.float32), np.empty((h, g), np.float32)
    logits, dlogits = np.empty((n, w.classes), np.float32), mat(n, w.classes)
    dw_o, dh_last = np.empty((h, w.classes), np.float32), np.empty((n, h), np.float32)
    w_ht, w_ot = w_h.T, w_o.T
    dg_flat, h_flat = dgates.reshape(-1, g), hs.reshape(-1, h)

    def run() -> None:
        np.matmul(x, w_x, out=gx)
        for t in range(steps):
            np.matmul(hs[t], w_h, out=out_g)
        np.matmul(hs[-1], w_o, out=logits)
        np.matmul(hs[-1].T, dlogits, out=dw_o)
        np.matmul(dlogits, w_ot, out=dh_last)
        for t in range(steps - 1, 0, -1):
            np.matmul(dgates[t], w_ht, out=out_h)
        np.matmul(x.T, dg_flat, out=dw_x)
        np.matmul(h_flat.T, dg_flat, out=dw_h)

    return run


def nnfunc_step(w: LstmWorkload) -> timing.Step:
    model = nf.serial(nf.lstm(w.hidden, return_sequences=False), nf.dense(w.classes))
    _, params = model.init(nf.random.key(0), (w.steps, w.d_in))
    opt = nf.optim.adam(1e-3)
    step = nf.train.train_step(model, nf.softmax_cross_entropy, opt, donate=True)
    x, y = make_batch(w)
    state = [params, opt.init(params)]

    def run() -> Any:
        state[0], state[1], loss = step(state[0], state[1], x, y)
        return loss

    return run


def torch_step(w: LstmWorkload, threads: int) -> tuple[timing.Step, str]:
    torch: Any = import_module("torch")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(w.d_in, w.hidden, batch_first=True)
    head = torch.nn.Linear(w.hidden, w.classes)
    params = [*lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x_np, y_np = make_batch(w)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        out, _ = lstm(x)
        loss_fn(head(out[:, -1]), y).backward()
        opt.step()

    return run, str(torch.__version__)


def measure(w: LstmWorkload, repeats: int, min_seconds: float, threads: int,
            torch: bool = True) -> dict[str, Any]:
    """Time the contenders interleaved; the run's JSON record."""
    steps: dict[str, timing.Step] = {"floor": floor_step(w), "nnfunc": nnfunc_step(w)}
    notes: list[str] = []
    torch_version = None
    try:
        if torch:
            steps["torch"], torch_version = torch_step(w, threads)
    except ImportError as err:
        notes.append(f"torch skipped: not installed ({err.name or err})")
    times = timing.interleaved(steps, repeats, min_seconds)
    out: dict[str, Any] = {"workload": w._asdict(), "notes": notes, "torch": torch_version,
                           "threads": threads,
                           "ms": {k: [1e3 * t for t in v] for k, v in times.items()}}
    out["median_ms"] = {k: median(v) for k, v in out["ms"].items()}
    out["vs_floor"] = {k: timing.paired(v, times["floor"])[0] for k, v in times.items()
                       if k != "floor"}
    if "torch" in times:
        ratios = [a / b for a, b in zip(times["nnfunc"], times["torch"])]
        out["nnfunc_vs_torch"] = {"median": median(ratios), "min": min(ratios),
                                  "max": max(ratios), "bar": BAR,
                                  "ok": median(ratios) <= BAR}
    return out


def lines(result: dict[str, Any]) -> list[str]:
    ms, spread = result["median_ms"], result["ms"]
    text = [f"{'contender':<10} {'median ms':>10} {'min..max ms':>18} {'vs floor':>9}"]
    for k in ms:
        vs = "" if k == "floor" else f"{result['vs_floor'][k]:.2f}x"
        text.append(f"{k:<10} {ms[k]:>10.2f} {min(spread[k]):>8.2f}..{max(spread[k]):<8.2f}"
                    f" {vs:>9}")
    if "nnfunc_vs_torch" in result:
        r = result["nnfunc_vs_torch"]
        text.append(f"nnfunc / torch (paired): median {r['median']:.2f}x, range "
                    f"{r['min']:.2f}..{r['max']:.2f}x; bar {r['bar']}x: "
                    f"{'ok' if r['ok'] else 'MISSED'}")
    notes: list[str] = result["notes"]
    return text + notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lstm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-seconds", type=float, default=0.6,
                        help="length of each contender's timed block per repeat")
    parser.add_argument("--steps", type=int, default=LstmWorkload().steps, help="T")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for NumPy's BLAS and for torch")
    parser.add_argument("--json", type=Path, help="write the record here too")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--no-tune", action="store_true",
                        help="do not call nnfunc.allocator.tune() first")
    args = parser.parse_args(argv)
    tuned = False if args.no_tune else nf.allocator.tune()
    try:  # optional; it ships no type information
        limits: Any = import_module("threadpoolctl").threadpool_limits(args.threads, "blas")
    except ImportError:
        limits = None
    w = LstmWorkload(steps=args.steps)
    info = report.machine_info("float32", args.repeats, tuned)
    print(report.header(info))
    print(f"lstm: batch {w.batch}, T {w.steps}, D {w.d_in}, H {w.hidden}, {w.classes} "
          f"classes, Adam, float32; {args.threads} threads for torch"
          + ("" if limits is not None else " (BLAS threads not set: no threadpoolctl)"))
    result = measure(w, args.repeats, args.min_seconds, args.threads, torch=not args.no_torch)
    print("\n".join(lines(result)))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "lstm": result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
