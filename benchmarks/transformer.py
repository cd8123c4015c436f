"""``python -m benchmarks.transformer``: one pre-norm transformer block's training step.

The workload (issue 15): batch 16, ``T = 128``, ``D = 128``, 4 causal heads,
one pre-norm block with a 4× GELU MLP, a per-position readout to ``C = 64``
classes, softmax cross-entropy over ``(n, T, C)``, Adam::

    h = x + mha(layer_norm(x))                  # multi_head_attention(4, causal=True)
    h = h + dense(D)(gelu(dense(4D)(layer_norm(h))))
    logits = dense(C)(layer_norm(h))

Contenders, interleaved within each repeat (:mod:`benchmarks.timing`):

* **floor** — the matrix products no step can avoid, with ``np.matmul(...,
  out=...)`` into buffers allocated once: forward ``x W`` for the four
  projections (qkv, output, MLP in and out) and the readout, and the two
  batched attention products ``Q Kᵀ`` and ``P V`` on ``(n, h, T, d)``;
  backward ``Xᵀ dY`` for every kernel, ``dY Wᵀ`` for all but the qkv
  projection (the input needs no gradient), and the four batched products
  ``Pᵀ dO``, ``dO Vᵀ``, ``dS K``, ``dSᵀ Q``.
* **nnfunc** — ``train_step(model, softmax_cross_entropy, adam, donate=True)``
  as ``fit`` runs it, after ``nnfunc.allocator.tune()`` (``--no-tune`` skips it).
* **torch** — PyTorch eager with the same threads (``torch.set_num_threads``
  of NumPy's BLAS threads): ``nn.LayerNorm``, ``nn.MultiheadAttention
  (batch_first=True)`` with a boolean causal ``attn_mask``, ``nn.Linear``,
  ``nn.GELU(approximate="tanh")`` (nnfunc's ``gelu`` is the tanh form),
  ``nn.CrossEntropyLoss``, ``optim.Adam``; a step is ``zero_grad``, forward,
  loss, ``backward``, ``step``.

Ratios are paired (taken within each repeat, then the median). The bar:
nnfunc within 1.5× of PyTorch eager. Reported, never asserted.

Examples::

    python -m benchmarks.transformer                  # 5 repeats, with torch if installed
    python -m benchmarks.transformer --repeats 9 --json out.json
    python -m benchmarks.transformer --threads 1      # one thread each (a busy machine)
    python -m benchmarks.transformer --no-peers --repeats 1   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from statistics import median
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from benchmarks import timing

Array = npt.NDArray[Any]
BAR_VS_TORCH = 1.5


class Config(NamedTuple):
    """The workload's sizes: batch ``n``, steps ``t``, width ``d``, heads, MLP factor, classes."""

    n: int = 16
    t: int = 128
    d: int = 128
    heads: int = 4
    mlp: int = 4
    classes: int = 64


def make_batch(cfg: Config, dtype: npt.DTypeLike = np.float32,
               seed: int = 0) -> tuple[Array, npt.NDArray[np.int64]]:
    """A fixed batch: ``x (n, T, D)`` standard normal and labels ``(n, T)``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg.n, cfg.t, cfg.d)).astype(dtype)
    y = rng.integers(0, cfg.classes, (cfg.n, cfg.t)).astype(np.int64)
    return x, y


def make_floor(cfg: Config, dtype: npt.DTypeLike = np.float32,
               seed: int = 1) -> Callable[[], None]:
    """The floor's step: every unavoidable product of one training step, into fixed buffers."""
    rng = np.random.default_rng(seed)
    n, t, d, h, c = cfg.n, cfg.t, cfg.d, cfg.heads, cfg.classes
    rows, dh, hidden = n * t, d // h, cfg.mlp * d

    def normal(*shape: int, scale: float = 1.0) -> Array:
        return (rng.standard_normal(shape) * scale).astype(dtype)

    # (input rows, kernel, output rows, output gradient, kernel gradient, input gradient)
    shapes = [(d, 3 * d), (d, d), (d, hidden), (hidden, d), (d, c)]
    xs = [normal(rows, a) for a, _ in shapes]
    ws = [normal(a, b, scale=a ** -0.5) for a, b in shapes]
    ys = [np.empty((rows, b), dtype) for _, b in shapes]
    dys = [normal(rows, b, scale=1.0 / rows) for _, b in shapes]
    dws = [np.empty_like(w) for w in ws]
    dxs: list[Array | None] = [None] + [np.empty((rows, a), dtype) for a, _ in shapes[1:]]
    q, k, v, do = (normal(n, h, t, dh) for _ in range(4))
    s, ds = np.empty((n, h, t, t), dtype), normal(n, h, t, t, scale=1.0 / t)
    p = np.full((n, h, t, t), 1.0 / t, dtype)
    o, dq, dk, dv = (np.empty((n, h, t, dh), dtype) for _ in range(4))
    dp = np.empty_like(s)

    def step() -> None:
        np.matmul(xs[0], ws[0], out=ys[0])
        np.matmul(q, k.swapaxes(-1, -2), out=s)
        np.matmul(p, v, out=o)
        for i in range(1, len(ws)):
            np.matmul(xs[i], ws[i], out=ys[i])
        for i in range(len(ws) - 1, -1, -1):
            np.matmul(xs[i].T, dys[i], out=dws[i])
            dx = dxs[i]
            if dx is not None:
                np.matmul(dys[i], ws[i].T, out=dx)
            if i == 1:  # the attention's backward sits between its two projections
                np.matmul(p.swapaxes(-1, -2), do, out=dv)
                np.matmul(do, v.swapaxes(-1, -2), out=dp)
                np.matmul(ds, k, out=dq)
                np.matmul(ds.swapaxes(-1, -2), q, out=dk)

    return step


def floor_flops(cfg: Config) -> int:
    """Floating-point operations of the floor's step (2 per multiply-add)."""
    rows, d, h, t = cfg.n * cfg.t, cfg.d, cfg.heads, cfg.t
    hidden = cfg.mlp * d
    dense = [(d, 3 * d, 2), (d, d, 3), (d, hidden, 3), (hidden, d, 3), (d, cfg.classes, 3)]
    total = sum(2 * rows * a * b * k for a, b, k in dense)
    return total + 6 * 2 * cfg.n * h * t * t * (d // h)


def build_nnfunc_model(cfg: Config) -> Any:
    """The block as an nnfunc layer (imports nnfunc)."""
    import nnfunc as nf

    return nf.serial(
        nf.residual(nf.serial(nf.layer_norm(), nf.multi_head_attention(cfg.heads, causal=True))),
        nf.residual(nf.serial(nf.layer_norm(), nf.dense(cfg.mlp * cfg.d), nf.gelu,
                              nf.dense(cfg.d))),
        nf.layer_norm(),
        nf.dense(cfg.classes),
    )


def make_nnfunc_step(cfg: Config, *, donate: bool = True,
                     lr: float = 1e-3) -> tuple[Callable[[], None], list[Any]]:
    """nnfunc's step and its carry ``[params, opt_state, last_loss]``."""
    import nnfunc as nf

    model = build_nnfunc_model(cfg)
    _, params = model.init(nf.random.key(0), (cfg.t, cfg.d))
    opt = nf.optim.adam(lr)
    x, y = make_batch(cfg)
    step = nf.train.train_step(model, nf.softmax_cross_entropy, opt, donate=donate)
    carry: list[Any] = [params, opt.init(params), None]

    def run() -> None:
        carry[0], carry[1], carry[2] = step(carry[0], carry[1], x, y)

    return run, carry


def make_torch_step(cfg: Config, threads: int,
                    lr: float = 1e-3) -> tuple[Callable[[], None], list[Any], str]:
    """PyTorch eager's step, its carry ``[last_loss]`` and torch's version."""
    torch: Any = import_module("torch")  # typed as Any whether or not torch is installed
    nn = torch.nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)

    d = cfg.d
    model = nn.ModuleDict({
        "ln1": nn.LayerNorm(d), "attn": nn.MultiheadAttention(d, cfg.heads, batch_first=True),
        "ln2": nn.LayerNorm(d), "mlp": nn.Sequential(nn.Linear(d, cfg.mlp * d),
                                                     nn.GELU(approximate="tanh"),
                                                     nn.Linear(cfg.mlp * d, d)),
        "ln3": nn.LayerNorm(d), "out": nn.Linear(d, cfg.classes)})
    mask = torch.triu(torch.ones(cfg.t, cfg.t, dtype=torch.bool), 1)

    def forward(x: Any) -> Any:
        a = model["ln1"](x)
        x = x + model["attn"](a, a, a, attn_mask=mask, need_weights=False)[0]
        x = x + model["mlp"](model["ln2"](x))
        return model["out"](model["ln3"](x))

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    x_np, y_np = make_batch(cfg)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np).reshape(-1)
    carry: list[Any] = [None]

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward(x).reshape(-1, cfg.classes), y)
        loss.backward()
        opt.step()
        carry[0] = loss.detach()

    return run, carry, str(torch.__version__)


def _blas_threads() -> int:
    try:
        info = import_module("threadpoolctl").threadpool_info()
    except ImportError:
        return os.cpu_count() or 1
    counts = [int(p["num_threads"]) for p in info if p.get("user_api") == "blas"]
    return max(counts) if counts else (os.cpu_count() or 1)


def run(cfg: Config, repeats: int, *, peers: bool = True,
        threads: int | None = None) -> dict[str, Any]:
    """Time the contenders interleaved; the JSON record of the run.

    ``threads`` limits NumPy's BLAS (through ``threadpoolctl``) and torch to
    that many threads; by default both use NumPy's BLAS thread count.
    """
    if threads is not None:
        import_module("threadpoolctl").threadpool_limits(threads, user_api="blas")
    steps: dict[str, timing.Step] = {"floor": make_floor(cfg)}
    nn_step, _ = make_nnfunc_step(cfg)
    steps["nnfunc"] = nn_step
    threads = _blas_threads()
    notes: list[str] = []
    versions: dict[str, str] = {}
    if peers:
        try:
            torch_step, _, version = make_torch_step(cfg, threads)
        except ImportError:
            notes.append("torch is not installed: no PyTorch column")
        else:
            steps["torch"] = torch_step
            versions["torch"] = version
    steps["floor"]()
    block = timing.block_seconds(timing.block_time(steps["floor"], 0.05, min_steps=2))
    times = timing.interleaved(steps, repeats, block)
    record: dict[str, Any] = {
        "workload": "transformer", "config": cfg._asdict(), "repeats": repeats,
        "threads": threads, "floor_gflop": floor_flops(cfg) / 1e9, "notes": notes,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
                   f"Python {platform.python_version()}; NumPy {np.__version__}",
        "contenders": {},
    }
    for name, ts in times.items():
        ratio, over = timing.paired(ts, times["floor"])
        record["contenders"][name] = {
            "ms": median(ts) * 1e3, "ms_per_repeat": [t * 1e3 for t in ts],
            "vs_floor": ratio, "over_floor_ms": over * 1e3, **(
                {"version": versions[name]} if name in versions else {})}
    if "torch" in times:
        vs_torch, _ = timing.paired(times["nnfunc"], times["torch"])
        record["nnfunc_vs_torch"] = vs_torch
        record["nnfunc_vs_torch_per_repeat"] = [a / b for a, b in zip(times["nnfunc"],
                                                                       times["torch"])]
        record["pass"] = vs_torch <= BAR_VS_TORCH
    return record


def format_record(record: dict[str, Any]) -> str:
    """The run as a small table."""
    cfg = record["config"]
    lines = [record["machine"] + f"; {record['threads']} BLAS/torch threads",
             f"transformer block: batch {cfg['n']}, T {cfg['t']}, D {cfg['d']}, {cfg['heads']} "
             f"causal heads, {cfg['mlp']}x MLP, {cfg['classes']} classes; float32; "
             f"{record['repeats']} interleaved repeats; floor {record['floor_gflop']:.2f} GFLOP",
             f"{'contender':<10} {'ms':>9} {'vs floor':>9}  ms per repeat"]
    for name, c in record["contenders"].items():
        per = " ".join(f"{t:.1f}" for t in c["ms_per_repeat"])
        lines.append(f"{name:<10} {c['ms']:>9.2f} {c['vs_floor']:>8.2f}x  {per}")
    if "nnfunc_vs_torch" in record:
        per = " ".join(f"{r:.2f}" for r in record["nnfunc_vs_torch_per_repeat"])
        verdict = "pass" if record["pass"] else "FAIL"
        lines.append(f"nnfunc / torch (paired): {record['nnfunc_vs_torch']:.2f}x  "
                     f"(bar {BAR_VS_TORCH}x: {verdict}; per repeat {per})")
    lines += record["notes"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transformer",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-peers", action="store_true", help="skip PyTorch")
    parser.add_argument("--json", type=Path, help="write the record here too")
    parser.add_argument("--threads", type=int,
                        help="BLAS and torch threads (default: NumPy's BLAS threads); needs "
                             "threadpoolctl")
    parser.add_argument("--no-tune", action="store_true",
                        help="do not call nnfunc.allocator.tune() first")
    args = parser.parse_args(argv)
    if not args.no_tune:  # as the MLP benchmark and the README's training scripts do
        import_module("nnfunc.allocator").tune()
    record = run(Config(), args.repeats, peers=not args.no_peers, threads=args.threads)
    print(format_record(record))
    if args.json is not None:
        args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Config", "build_nnfunc_model", "floor_flops", "main", "make_batch", "make_floor",
           "make_nnfunc_step", "make_torch_step", "run"]
