"""``python -m benchmarks.conv_parts``: the two choices inside nnfunc's conv2d, measured.

1. **Patch matrix**: one copy of the strided 6-D window view
   ``(n, OH, OW, kh, kw, C)`` against ``kh·kw`` slice copies into it.
2. **dx**: one product ``dP = dY Ŵᵀ`` followed by ``kh·kw`` strided adds of its
   column blocks into the padded gradient, against ``kh·kw`` small products
   ``dY W[i, j]ᵀ`` each added into its view.

For the conv layers of ``benchmarks.cnn``'s workloads (and a one-channel and
a two-channel input), each variant is timed over blocks of calls, the
variants interleaved within each repeat; the table gives median ms and the
median (min–max) over repeats of the paired ratio B/A.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from statistics import median
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.cnn import throughput
from nnfunc.layers import _patches

Array = npt.NDArray[Any]

# (n, H, W, c_in, c_out, padding): the conv layers of cnn_digits and cnn_mnist, then
# inputs with one and two channels
CASES = [(128, 8, 8, 1, 16, "same"), (128, 4, 4, 16, 32, "same"), (64, 28, 28, 1, 32, "valid"),
         (64, 13, 13, 32, 64, "valid"), (64, 28, 28, 2, 32, "valid")]


def _slice_patches(xp: Array, win: _patches.Window) -> Array:
    n, _, _, c = xp.shape
    (kh, kw), (oh, ow) = win.size, win.out_hw
    cols = np.empty((n, oh, ow, kh, kw, c), xp.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j] = _patches.offset_view(xp, win, i, j)
    return cols.reshape(n * oh * ow, kh * kw * c)


def _strided_patches(xp: Array, win: _patches.Window) -> Array:
    n, _, _, c = xp.shape
    (kh, kw), (oh, ow) = win.size, win.out_hw
    bn, bh, bw, bc = xp.strides
    view = np.lib.stride_tricks.as_strided(xp, (n, oh, ow, kh, kw, c),
                                           (bn, bh, bw, bh, bw, bc), writeable=False)
    return view.reshape(n * oh * ow, kh * kw * c)


def _dx_one_product(dy: Array, w: Array, win: _patches.Window) -> Array:
    n, oh, ow, c_out = dy.shape
    kh, kw, c_in, _ = w.shape
    dcols = (dy.reshape(-1, c_out) @ w.reshape(-1, c_out).T).reshape(n, oh, ow, kh, kw, c_in)

    def add(view: Array, i: int, j: int) -> None:
        np.add(view, dcols[:, :, :, i, j], out=view)

    return _patches.scatter(win, n, c_in, dy.dtype, add)


def _dx_per_offset(dy: Array, w: Array, win: _patches.Window) -> Array:
    n, c_out = dy.shape[0], dy.shape[-1]
    dy2 = dy.reshape(-1, c_out)

    def add(view: Array, i: int, j: int) -> None:
        np.add(view, (dy2 @ w[i, j].T).reshape(view.shape), out=view)

    return _patches.scatter(win, n, w.shape[2], dy.dtype, add)


def _pair(a: Callable[[], Any], b: Callable[[], Any], repeats: int,
          block: float) -> tuple[float, float, list[float]]:
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(throughput(a, block))
        tb.append(throughput(b, block))
    return median(ta), median(tb), [y / x for x, y in zip(ta, tb)]


def main(argv: list[str] | None = None) -> int:
    """Print one line per case and choice."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conv_parts",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--block", type=float, default=0.1, help="seconds per block")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print("case (n, H, W, c_in, c_out, padding)      A ms     B ms   B/A median (min-max)")
    for n, h, wd, c_in, c_out, padding in CASES:
        spec = _patches.padding_spec(padding, 2, "conv_parts")
        win = _patches.resolve(spec, (3, 3), (1, 1), (1, 1), (h, wd), "conv_parts")
        x = rng.random((n, h, wd, c_in), dtype=np.float32)
        xp = _patches.pad(x, win)
        w = rng.standard_normal((3, 3, c_in, c_out)).astype(np.float32)
        dy = rng.standard_normal((n, *win.out_hw, c_out)).astype(np.float32)
        np.testing.assert_array_equal(_slice_patches(xp, win), _strided_patches(xp, win))
        np.testing.assert_allclose(_dx_one_product(dy, w, win), _dx_per_offset(dy, w, win),
                                   rtol=1e-4, atol=1e-4)
        case = f"{(n, h, wd, c_in, c_out, padding)}"
        variants = (
            ("patches: A strided copy, B slice copies",
             partial(_strided_patches, xp, win), partial(_slice_patches, xp, win)),
            ("dx: A one product + adds, B per-offset products",
             partial(_dx_one_product, dy, w, win), partial(_dx_per_offset, dy, w, win)),
        )
        for label, a, b in variants:
            ta, tb, ratios = _pair(a, b, args.repeats, args.block)
            print(f"{case:38s} {ta * 1e3:8.3f} {tb * 1e3:8.3f}   {median(ratios):.2f} "
                  f"({min(ratios):.2f}-{max(ratios):.2f})  {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
