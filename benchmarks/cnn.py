"""``python -m benchmarks.cnn``: a convolutional training step against its floor and peers.

Two workloads (issue 14), each a stack of blocks ``conv 3×3 -> relu ->
max-pool 2`` (channels last), then dense layers, softmax cross-entropy on
int64 labels and Adam(1e-3), float32:

* ``cnn_digits``: ``(8, 8, 1)`` -> conv 16 same -> pool -> conv 32 same -> pool ->
  flatten -> dense 10; batch 128.
* ``cnn_mnist``: ``(28, 28, 1)`` -> conv 32 -> pool -> conv 64 -> pool -> flatten ->
  dense 128 -> relu -> dense 10; batch 64 (valid convolutions, as in the classic
  Keras example).

Contenders, timed interleaved in one process (:func:`benchmarks.timing.interleaved`
pauses and warms each before its block):

* ``floor`` — the products no convolutional step can avoid, into buffers
  allocated once: per conv layer ``Y = P W``, ``dW = Pᵀ dY`` and (except the
  input layer) ``dP = dY Wᵀ`` on its patch matrix ``P (n·OH·OW, 9·c_in)``;
  per dense layer its three products (two for an input layer);
* ``nnfunc`` — ``nnfunc.train.train_step(..., donate=True)``, the full step;
* ``handwritten`` — a careful one-off NumPy step (im2col from a strided view
  into preallocated buffers, ``dx`` by one product per kernel offset added
  into its view, pooling by reshape, flat in-place Adam): the practical bound
  for a NumPy toolkit;
* ``torch`` — PyTorch eager (NCHW ``Conv2d``/``MaxPool2d``/``Linear``,
  ``CrossEntropyLoss``, ``optim.Adam``), ``torch.set_num_threads(cpu_count)``,
  when installed.

Each repeat times every contender over a block of consecutive steps and
records the block's *throughput* (seconds per step = block time / steps).
Ratios are paired within repeats (:func:`benchmarks.timing.paired`) and the
medians over repeats are reported, with the spread (min–max) of the ratios.
Bars, reported and never asserted: nnfunc no slower than the hand-written
step, and within 1.5× of PyTorch eager.

Examples::

    python -m benchmarks.cnn                         # both workloads, 7 repeats
    python -m benchmarks.cnn --threads 1             # BLAS and torch on one thread each
    python -m benchmarks.cnn --workloads cnn_digits --repeats 1 --no-peers   # smoke
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from statistics import median
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from benchmarks import report, timing

Array = npt.NDArray[Any]


class CnnWorkload(NamedTuple):
    """Conv blocks (each ``conv 3×3 -> relu -> max-pool 2``), then dense layers.

    Attributes:
        name: ``cnn_digits`` or ``cnn_mnist``.
        image: ``(H, W, C)`` of one input.
        convs: output channels of each conv block.
        padding: ``"same"`` or ``"valid"`` for every convolution.
        dense: widths of the dense layers after ``flatten`` (classes last).
        batch: images per step.
    """

    name: str
    image: tuple[int, int, int]
    convs: tuple[int, ...]
    padding: str
    dense: tuple[int, ...]
    batch: int

    def conv_shapes(self) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
        """Per conv layer: its input ``(H, W, c_in)`` and its output ``(OH, OW, c_out)``."""
        out = []
        h, w, c = self.image
        for c_out in self.convs:
            oh, ow = (h, w) if self.padding == "same" else (h - 2, w - 2)
            out.append(((h, w, c), (oh, ow, c_out)))
            h, w, c = oh // 2, ow // 2, c_out
        return out

    def dense_shapes(self) -> list[tuple[int, int]]:
        """``(d_in, d_out)`` of each dense layer."""
        (_, (oh, ow, c)) = self.conv_shapes()[-1]
        sizes = [(oh // 2) * (ow // 2) * c, *self.dense]
        return [(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]

    @property
    def num_params(self) -> int:
        """Weights plus biases."""
        conv = sum(9 * i[2] * o[2] + o[2] for i, o in self.conv_shapes())
        return conv + sum(a * b + b for a, b in self.dense_shapes())


WORKLOADS: dict[str, CnnWorkload] = {w.name: w for w in (
    CnnWorkload("cnn_digits", (8, 8, 1), (16, 32), "same", (10,), 128),
    CnnWorkload("cnn_mnist", (28, 28, 1), (32, 64), "valid", (128, 10), 64),
)}

HANDWRITTEN_BAR = 1.0  # nnfunc / hand-written
TORCH_BAR = 1.5        # nnfunc / torch


def make_batch(w: CnnWorkload, seed: int = 0) -> tuple[Array, Array]:
    """Fixed float32 images ``(batch, H, W, C)`` in ``[0, 1)`` and int64 labels."""
    rng = np.random.default_rng(seed)
    x = rng.random((w.batch, *w.image), dtype=np.float32)
    return x, rng.integers(0, w.dense[-1], size=w.batch, dtype=np.int64)


# -- the floor ---------------------------------------------------------------------------

class Floor(NamedTuple):
    """The unavoidable products of one step: ``(a, w, y, dy, dw, da)`` per layer,
    ``a`` the patch matrix (conv) or the input (dense); ``da`` is ``None`` for the
    input layer."""

    layers: list[tuple[Array, Array, Array, Array, Array, Array | None]]

    def step(self) -> None:
        """Every forward product, then every backward product from the top."""
        for a, w, y, _, _, _ in self.layers:
            np.matmul(a, w, out=y)
        for a, w, _, dy, dw, da in reversed(self.layers):
            np.matmul(a.T, dy, out=dw)
            if da is not None:
                np.matmul(dy, w.T, out=da)

    @property
    def flops(self) -> int:
        """Floating-point operations per step (2 per multiply-add)."""
        return sum(2 * a.shape[0] * w.shape[0] * w.shape[1] * (2 if da is None else 3)
                   for a, w, _, _, _, da in self.layers)


def make_floor(w: CnnWorkload, seed: int = 1) -> Floor:
    """The floor's buffers for ``w`` (float32; values irrelevant, kept O(1))."""
    rng = np.random.default_rng(seed)
    n = w.batch
    dims = [(n * o[0] * o[1], 9 * i[2], o[2]) for i, o in w.conv_shapes()]
    dims += [(n, d_in, d_out) for d_in, d_out in w.dense_shapes()]
    layers = []
    for idx, (rows, d_in, d_out) in enumerate(dims):
        a = rng.random((rows, d_in), dtype=np.float32)
        wt = (rng.standard_normal((d_in, d_out)) / math.sqrt(d_in)).astype(np.float32)
        dy = (rng.standard_normal((rows, d_out)) / rows).astype(np.float32)
        layers.append((a, wt, np.empty((rows, d_out), np.float32), dy, np.empty_like(wt),
                       None if idx == 0 else np.empty_like(a)))
    return Floor(layers)


# -- nnfunc ------------------------------------------------------------------------------

def nnfunc_model(w: CnnWorkload) -> Any:
    """The workload as an nnfunc model (imported here: loading this module loads no nnfunc)."""
    import nnfunc as nf

    layers: list[Any] = []
    for c_out in w.convs:
        layers += [nf.conv2d(c_out, 3, padding=w.padding), nf.relu, nf.max_pool2d(2)]
    layers.append(nf.flatten)
    for width in w.dense[:-1]:
        layers += [nf.dense(width), nf.relu]
    layers.append(nf.dense(w.dense[-1]))
    return nf.serial(*layers)


def nnfunc_step(w: CnnWorkload) -> Callable[[], None]:
    """One donated Adam step of :func:`nnfunc_model` on the fixed batch."""
    import nnfunc as nf

    model = nnfunc_model(w)
    _, params = model.init(nf.random.key(0), w.image)
    opt = nf.optim.adam(1e-3)
    step = nf.train.train_step(model, nf.softmax_cross_entropy, opt, donate=True)
    x, y = make_batch(w)
    carry = [params, opt.init(params)]

    def run() -> None:
        carry[0], carry[1], _ = step(carry[0], carry[1], x, y)

    return run


# -- the hand-written step -----------------------------------------------------------------

class Handwritten(NamedTuple):
    """The hand-written step and its buffers (exposed for the tests).

    ``params``/``grads``: per layer ``(w, b)`` views into the flat vectors, conv
    kernels as ``(9·c_in, c_out)`` in ``(i, j, c)`` row order (HWIO reshaped);
    ``forward_backward()`` fills ``grads`` without the Adam update; ``run()`` is
    the whole step.
    """

    run: Callable[[], None]
    forward_backward: Callable[[], None]
    params: list[tuple[Array, Array]]
    grads: list[tuple[Array, Array]]
    x: Array
    y: Array


def _aligned(n: int) -> Array:
    """``n`` float32 zeros starting on a 64-byte boundary."""
    raw = np.zeros(n + 16, np.float32)
    start = (-raw.ctypes.data % 64) // 4
    return raw[start:start + n]


def _window_view(xp: Array, oh: int, ow: int) -> Array:
    """The ``(n, OH, OW, 3, 3, C)`` strided view of 3×3 stride-1 windows of ``xp``."""
    n, _, _, c = xp.shape
    sn, sh, sw, sc = xp.strides
    return np.lib.stride_tricks.as_strided(xp, (n, oh, ow, 3, 3, c), (sn, sh, sw, sh, sw, sc),
                                           writeable=False)


def make_handwritten_step(w: CnnWorkload, lr: float = 1e-3, seed: int = 2) -> Handwritten:
    """The workload's step written out in NumPy with preallocated buffers (float32)."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    n = w.batch
    conv = w.conv_shapes()
    dense = w.dense_shapes()
    shapes = [(9 * i[2], o[2]) for i, o in conv] + dense
    total = sum(a * b + b for a, b in shapes)
    flat_p, flat_g, m, v, tmp = (_aligned(total) for _ in range(5))
    params: list[tuple[Array, Array]] = []
    grads: list[tuple[Array, Array]] = []
    at = 0
    for d_in, d_out in shapes:
        wv, gv = (f[at:at + d_in * d_out].reshape(d_in, d_out) for f in (flat_p, flat_g))
        wv[...] = rng.standard_normal((d_in, d_out)) * math.sqrt(2.0 / d_in)
        at += d_in * d_out
        params.append((wv, flat_p[at:at + d_out]))
        grads.append((gv, flat_g[at:at + d_out]))
        at += d_out
    x, y = make_batch(w)
    pad = 1 if w.padding == "same" else 0
    # per conv block: padded input, patch matrix, conv output (relu'd in place),
    # pooled output; and for the backward pass the gradient buffers
    xps = [np.zeros((n, i[0] + 2 * pad, i[1] + 2 * pad, i[2]), f32) for i, _ in conv]
    cols = [np.empty((n * o[0] * o[1], 9 * i[2]), f32) for i, o in conv]
    zs = [np.empty((n, *o), f32) for _, o in conv]
    pools = [np.empty((n, o[0] // 2, o[1] // 2, o[2]), f32) for _, o in conv]
    dzs = [np.zeros((n, *o), f32) for _, o in conv]
    dcols = [np.empty((n * o[0] * o[1], i[2]), f32) for i, o in conv]
    dxps = [np.empty_like(xp) for xp in xps]
    hs = [np.empty((n, d_out), f32) for _, d_out in dense]
    dhs = [np.empty((n, d_in), f32) for d_in, _ in dense]
    dlogits = np.empty((n, w.dense[-1]), f32)
    rows = np.arange(n)
    nc = len(conv)

    def forward() -> None:
        a = x
        for k, ((hi, wi, ci), (oh, ow, co)) in enumerate(conv):
            xp = xps[k]
            xp[:, pad:pad + hi, pad:pad + wi] = a
            c6 = cols[k].reshape(n, oh, ow, 3, 3, ci)
            if ci == 1:  # slice copies beat a 6-D copy with a unit inner axis
                for i in range(3):
                    for j in range(3):
                        c6[:, :, :, i, j] = xp[:, i:i + oh, j:j + ow]
            else:
                np.copyto(c6, _window_view(xp, oh, ow))
            z = zs[k].reshape(-1, co)
            np.matmul(cols[k], params[k][0], out=z)
            np.add(z, params[k][1], out=z)
            np.maximum(z, f32(0), out=z)
            ph, pw = oh // 2, ow // 2
            blocks = zs[k][:, :2 * ph, :2 * pw].reshape(n, ph, 2, pw, 2, co)
            np.max(blocks, axis=(2, 4), out=pools[k])
            a = pools[k]
        h = a.reshape(n, -1)
        for k in range(len(dense)):
            wd, bd = params[nc + k]
            np.matmul(h, wd, out=hs[k])
            np.add(hs[k], bd, out=hs[k])
            if k < len(dense) - 1:
                np.maximum(hs[k], f32(0), out=hs[k])
            h = hs[k]

    def loss_grad() -> None:  # (softmax - onehot) / n
        z = hs[-1]
        np.subtract(z, np.max(z, axis=1, keepdims=True), out=dlogits)
        np.exp(dlogits, out=dlogits)
        np.divide(dlogits, np.sum(dlogits, axis=1, keepdims=True), out=dlogits)
        dlogits[rows, y] -= 1
        np.multiply(dlogits, f32(1.0 / n), out=dlogits)

    def backward() -> None:
        d = dlogits
        for k in range(len(dense) - 1, -1, -1):
            wd, _ = params[nc + k]
            gw, gb = grads[nc + k]
            h_in = hs[k - 1] if k > 0 else pools[-1].reshape(n, -1)
            np.matmul(h_in.T, d, out=gw)
            np.sum(d, axis=0, out=gb)
            np.matmul(d, wd.T, out=dhs[k])
            if k > 0:
                np.multiply(dhs[k], hs[k - 1] > 0, out=dhs[k])
            d = dhs[k]
        dpool = d.reshape(pools[-1].shape)
        for k in range(nc - 1, -1, -1):
            (hi, wi, ci), (oh, ow, co) = conv[k]
            ph, pw = oh // 2, ow // 2
            blocks = zs[k][:, :2 * ph, :2 * pw].reshape(n, ph, 2, pw, 2, co)
            dblocks = dzs[k][:, :2 * ph, :2 * pw].reshape(n, ph, 2, pw, 2, co)
            winners = blocks == pools[k][:, :, None, :, None]
            # ties (whole windows of relu zeros) get no gradient: the relu mask kills them
            np.multiply(winners, dpool[:, :, None, :, None], out=dblocks)
            np.multiply(dblocks, blocks > 0, out=dblocks)
            dz = dzs[k].reshape(-1, co)
            np.matmul(cols[k].T, dz, out=grads[k][0])
            np.sum(dz, axis=0, out=grads[k][1])
            if k == 0:
                break
            # col2im by kernel offset: one (n·OH·OW, c_out) x (c_out, c_in) product each,
            # added into its strided view (faster than one big product here)
            w9 = params[k][0].reshape(3, 3, ci, co)
            dxp = dxps[k]
            dxp[...] = 0
            for i in range(3):
                for j in range(3):
                    view = dxp[:, i:i + oh, j:j + ow]
                    np.matmul(dz, w9[i, j].T, out=dcols[k])
                    np.add(view, dcols[k].reshape(view.shape), out=view)
            dpool = dxp[:, pad:pad + hi, pad:pad + wi]

    b1, b2, eps = 0.9, 0.999, 1e-8
    t = [0]

    def adam() -> None:
        t[0] += 1
        c2 = math.sqrt(1 - b2 ** t[0])
        np.multiply(m, f32(b1), out=m)
        np.multiply(flat_g, f32(1 - b1), out=tmp)
        np.add(m, tmp, out=m)
        np.multiply(v, f32(b2), out=v)
        np.multiply(flat_g, flat_g, out=tmp)
        np.multiply(tmp, f32(1 - b2), out=tmp)
        np.add(v, tmp, out=v)
        np.sqrt(v, out=tmp)
        np.add(tmp, f32(eps * c2), out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, f32(lr * c2 / (1 - b1 ** t[0])), out=tmp)
        np.subtract(flat_p, tmp, out=flat_p)

    def forward_backward() -> None:
        forward()
        loss_grad()
        backward()

    def run() -> None:
        forward_backward()
        adam()

    return Handwritten(run, forward_backward, params, grads, x, y)


# -- PyTorch -----------------------------------------------------------------------------

def torch_step(w: CnnWorkload, threads: int | None = None) -> tuple[Callable[[], None], str]:
    """PyTorch eager, NCHW: ``zero_grad``, forward, cross-entropy, ``backward``, Adam ``step``,
    on ``threads`` threads (default: every core, as NumPy's BLAS)."""
    torch: Any = import_module("torch")
    torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.manual_seed(0)
    nn = torch.nn
    modules: list[Any] = []
    c_in = w.image[2]
    for c_out in w.convs:
        modules += [nn.Conv2d(c_in, c_out, 3, padding=w.padding), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c_out
    modules.append(nn.Flatten())
    for d_in, d_out in w.dense_shapes()[:-1]:
        modules += [nn.Linear(d_in, d_out), nn.ReLU()]
    modules.append(nn.Linear(*w.dense_shapes()[-1]))
    model = nn.Sequential(*modules)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x_np, y_np = make_batch(w)
    x = torch.from_numpy(np.ascontiguousarray(x_np.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(y_np)

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return run, str(torch.__version__)


# -- timing --------------------------------------------------------------------------------

def throughput(step: timing.Step, min_seconds: float, min_steps: int = 3) -> float:
    """Seconds per step over a block of consecutive steps (at least ``min_seconds``)."""
    clock = time.perf_counter
    steps = 0
    start = clock()
    while steps < min_steps or clock() - start < min_seconds:
        step()
        steps += 1
    return (clock() - start) / steps


def interleaved(steps: dict[str, timing.Step], repeats: int, block: float,
                settle: float = 0.15) -> dict[str, list[float]]:
    """Per contender, seconds per step in each repeat; every repeat times every
    contender once, in order, each after a pause and one untimed step."""
    for step in steps.values():
        throughput(step, block / 2, 2)
    out: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            time.sleep(settle)
            step()
            out[name].append(throughput(step, block))
    return out


def run_workload(w: CnnWorkload, repeats: int, *, peers: bool,
                 threads: int | None = None) -> dict[str, Any]:
    """Time every contender on ``w``; the workload's JSON record."""
    floor = make_floor(w)
    steps: dict[str, timing.Step] = {"floor": floor.step, "nnfunc": nnfunc_step(w),
                                     "handwritten": make_handwritten_step(w).run}
    notes: list[str] = []
    versions: dict[str, str] = {}
    if peers:
        try:
            steps["torch"], versions["torch"] = torch_step(w, threads)
        except ImportError as err:
            notes.append(f"torch skipped: not installed ({err.name or err})")
    block = timing.block_seconds(throughput(floor.step, 0.02, 2), target=0.3, cap=1.0)
    times = interleaved(steps, repeats, block)
    contenders: dict[str, dict[str, Any]] = {}
    for name, ts in times.items():
        ratios = [t / f for t, f in zip(ts, times["floor"])]
        contenders[name] = {"ms": median(ts) * 1e3, "ms_per_repeat": [t * 1e3 for t in ts],
                            "vs_floor": median(ratios),
                            "vs_floor_range": [min(ratios), max(ratios)]}
        if name in versions:
            contenders[name]["version"] = versions[name]
    bars: dict[str, Any] = {}
    for peer, bar in (("handwritten", HANDWRITTEN_BAR), ("torch", TORCH_BAR)):
        if peer in times:
            ratios = [a / b for a, b in zip(times["nnfunc"], times[peer])]
            bars[peer] = {"ratio": timing.paired(times["nnfunc"], times[peer])[0],
                          "range": [min(ratios), max(ratios)], "bar": bar,
                          "pass": timing.paired(times["nnfunc"], times[peer])[0] <= bar}
    spread = max(times["floor"]) / min(times["floor"])
    if spread > 1.5:
        notes.append(f"the floor varied {spread:.1f}x across repeats (machine busy?)")
    return {"workload": w.name, "batch": w.batch, "num_params": w.num_params,
            "block_seconds": block,
            "floor_gflops": floor.flops / (contenders["floor"]["ms"] / 1e3) / 1e9,
            "contenders": contenders, "nnfunc_vs": bars, "notes": notes}


def _ms(c: dict[str, Any], name: str) -> str:
    return f"{c[name]['ms']:.2f}" if name in c else "-"


def _vs(c: dict[str, Any], name: str) -> str:
    return f"{c[name]['vs_floor']:.2f}x" if name in c else "-"


def _bar(vs_peer: dict[str, Any], peer: str) -> str:
    b = vs_peer.get(peer)
    if b is None:
        return "-"
    lo, hi = b["range"]
    return f"{b['ratio']:.2f} [{lo:.2f}-{hi:.2f}] {'pass' if b['pass'] else 'FAIL'}"


def table(results: list[dict[str, Any]]) -> str:
    """One row per workload: medians, paired ratios and their spread, bars."""
    heads = ["workload", "floor ms", "nnfunc ms", "vs floor", "hand-written ms", "vs floor",
             "torch ms", "vs floor", "nnfunc/hand-written (<=1.0)", "nnfunc/torch (<=1.5)"]
    rows = []
    notes = []
    for r in results:
        c, vs_peer = r["contenders"], r["nnfunc_vs"]
        rows.append([r["workload"], _ms(c, "floor"), _ms(c, "nnfunc"), _vs(c, "nnfunc"),
                     _ms(c, "handwritten"), _vs(c, "handwritten"), _ms(c, "torch"),
                     _vs(c, "torch"), _bar(vs_peer, "handwritten"), _bar(vs_peer, "torch")])
        notes += [f"{r['workload']}: {note}" for note in r["notes"]]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(wd) if i == 0 else cell.rjust(wd)
                         for i, (cell, wd) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(heads), line(["-" * wd for wd in widths]),
                      *(line(row) for row in rows), *notes])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; optionally write JSON. Returns 0."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, metavar="PATH")
    parser.add_argument("--no-peers", action="store_true", help="skip torch")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="limit NumPy's BLAS (through threadpoolctl) and torch to N "
                             "threads; default: every core for both")
    parser.add_argument("--no-tune", action="store_true",
                        help="do not call nnfunc.allocator.tune() first")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.workloads.split(",") if s.strip()]
    unknown = [s for s in names if s not in WORKLOADS]
    if unknown or not names:
        parser.error(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    tuned = False
    if not args.no_tune:
        from nnfunc.allocator import tune

        tuned = tune()
    limit: Any = contextlib.nullcontext()
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        limit = import_module("threadpoolctl").threadpool_limits(args.threads, user_api="blas")
    with limit:
        info = report.machine_info("float32", args.repeats, tuned)
        info["threads"] = args.threads
        print(report.header(info), flush=True)
        results = []
        for name in names:
            results.append(run_workload(WORKLOADS[name], args.repeats, peers=not args.no_peers,
                                        threads=args.threads))
            print(f"  {name} done", file=sys.stderr, flush=True)
    print(table(results))
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": info, "workloads": results}, indent=2)
                             + "\n")
        print(f"record written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
