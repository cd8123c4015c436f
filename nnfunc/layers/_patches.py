"""Sliding-window machinery shared by convolution and pooling.

Everything works on a channels-last 2-D batch ``(n, H, W, C)``; a 1-D layer
is the 2-D case with ``H = 1`` (a ``(1, k)`` window, no padding on ``H``).

A window along one axis has size ``k``, stride ``s``, dilation ``d`` and
padding ``(p₀, p₁)``; its taps sit at ``o·s + i·d - p₀`` for output ``o`` and
kernel offset ``i < k``, so

    out = ⌊(H + p₀ + p₁ − d(k−1) − 1) / s⌋ + 1.

``"same"`` pads ``max((⌈H/s⌉ − 1)·s + d(k−1) + 1 − H, 0)`` cells in total,
the odd one at the end (bottom/right), as JAX and TensorFlow do, so that
``out = ⌈H/s⌉``.

For kernel offset ``(i, j)`` the inputs every output reads form one basic
strided slice of the padded input, ``xp[:, i·dh : i·dh + sh·(OH−1) + 1 : sh, j·dw : … : sw]``
(:func:`offset_view`). The forward pass gathers those views into a patch
matrix (:func:`patches`); the backward pass adds each offset's share of the
gradient into the same view of a zero padded buffer (:func:`scatter`), which
is the exact transpose of the gather — ``kh·kw`` vectorised adds, no
``np.add.at`` and no loop over pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from nnfunc._validate import describe, fail, type_fail
from nnfunc.typing import Array

__all__ = ["Padding", "Window", "int_tuple", "offset_view", "pad", "padding_spec", "patches",
           "resolve", "scatter", "unpad"]

Pair = tuple[int, int]
Padding = str | tuple[Pair, ...]
"""A normalised padding: ``"same"``, or one ``(before, after)`` pair per spatial axis."""


class Window(NamedTuple):
    """The geometry of a 2-D window over an ``(n, H, W, C)`` batch, all as ``(h, w)`` pairs."""

    size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[Pair, ...]
    in_hw: tuple[int, ...]
    out_hw: tuple[int, ...]

    @property
    def padded_hw(self) -> tuple[int, ...]:
        """``(H + p_top + p_bottom, W + p_left + p_right)``."""
        (t, b), (left, r) = self.pads
        return self.in_hw[0] + t + b, self.in_hw[1] + left + r

    @property
    def disjoint(self) -> bool:
        """Whether windows never overlap (stride at least the dilated window on both axes)."""
        return all(s >= d * (k - 1) + 1 for k, s, d in zip(self.size, self.stride,
                                                            self.dilation))

    @property
    def padded(self) -> bool:
        """Whether any side is padded."""
        return any(p for pair in self.pads for p in pair)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def int_tuple(value: Any, ndim: int, component: str, arg: str, minimum: int = 1) -> tuple[int, ...]:
    """``value`` (an int, or a tuple of ``ndim`` ints) as ``ndim`` ints ``>= minimum``."""
    values = (value,) * ndim if _is_int(value) else value
    if not (isinstance(values, tuple) and len(values) == ndim and all(map(_is_int, values))):
        raise type_fail(component, arg, f"must be an int or a tuple of {ndim} ints",
                        describe(value))
    if any(v < minimum for v in values):
        raise fail(component, arg, f"must be >= {minimum}", value)
    return tuple(int(v) for v in values)


def padding_spec(value: Any, ndim: int, component: str) -> Padding:
    """Normalise ``padding``: ``"valid"``, ``"same"``, an int, or ``(before, after)`` per axis.

    For ``ndim == 1`` a single pair ``(before, after)`` is accepted too.
    """
    if isinstance(value, str):
        if value.lower() == "valid":
            return ((0, 0),) * ndim
        if value.lower() == "same":
            return "same"
    elif _is_int(value):
        if value < 0:
            raise fail(component, "padding", "must be >= 0", value)
        return ((int(value), int(value)),) * ndim
    elif isinstance(value, tuple):
        pairs = (value,) if ndim == 1 and len(value) == 2 and all(map(_is_int, value)) else value
        if len(pairs) == ndim and all(isinstance(p, tuple) and len(p) == 2
                                      and all(map(_is_int, p)) for p in pairs):
            if any(v < 0 for p in pairs for v in p):
                raise fail(component, "padding", "must not be negative", value)
            return tuple((int(a), int(b)) for a, b in pairs)
    form = "(before, after)" if ndim == 1 else "((top, bottom), (left, right))"
    raise type_fail(component, "padding", f'must be "valid", "same", an int or {form}',
                    describe(value))


def _same(size: int, k: int, s: int, d: int) -> Pair:
    total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def resolve(padding: Padding, size: tuple[int, ...], stride: tuple[int, ...],
            dilation: tuple[int, ...], in_hw: tuple[int, ...],
            component: str, what: str = "kernel") -> Window:
    """The :class:`Window` of these settings over a spatial size ``in_hw``.

    Raises:
        ValueError: if the (padded) input is smaller than the dilated window.
    """
    pads = (tuple(_same(n, k, s, d) for n, k, s, d in zip(in_hw, size, stride, dilation))
            if isinstance(padding, str) else padding)
    out = []
    for n, k, s, d, (p0, p1) in zip(in_hw, size, stride, dilation, pads):
        span = d * (k - 1) + 1
        if n + p0 + p1 < span:
            raise fail(component, "input", f"is too small for the {what} {size} with dilation "
                       f"{dilation} and padding {pads} (padded size must be >= {span})",
                       f"spatial size {in_hw}")
        out.append((n + p0 + p1 - span) // s + 1)
    return Window(size, stride, dilation, pads, in_hw, tuple(out))


def pad(x: Array, win: Window, fill: float = 0.0) -> Array:
    """``x (n, H, W, C)`` padded by ``win.pads`` with ``fill`` (``x`` itself when unpadded)."""
    if not win.padded:
        return x
    (t, _), (left, _) = win.pads
    hp, wp = win.padded_hw
    xp = np.full((x.shape[0], hp, wp, x.shape[3]), fill, x.dtype)
    xp[:, t:t + x.shape[1], left:left + x.shape[2]] = x
    return xp


def unpad(xp: Array, win: Window) -> Array:
    """The inverse of :func:`pad`: the ``(n, H, W, C)`` interior view of ``xp``."""
    if not win.padded:
        return xp
    (t, _), (left, _) = win.pads
    return xp[:, t:t + win.in_hw[0], left:left + win.in_hw[1]]


def offset_view(xp: Array, win: Window, i: int, j: int) -> Array:
    """The ``(n, OH, OW, C)`` view of the padded ``xp`` that kernel offset ``(i, j)`` reads."""
    (sh, sw), (dh, dw), (oh, ow) = win.stride, win.dilation, win.out_hw
    r, c = i * dh, j * dw
    return xp[:, r:r + sh * (oh - 1) + 1:sh, c:c + sw * (ow - 1) + 1:sw]


def patches(xp: Array, win: Window) -> Array:
    """The patch matrix ``(n·OH·OW, kh·kw·C)`` of the padded ``xp (n, Hp, Wp, C)``.

    Row ``(b, o, p)`` holds the window of output ``(o, p)`` in ``(i, j, c)``
    order, matching an HWIO kernel reshaped to ``(kh·kw·C, c_out)``. It is
    one copy of a strided 6-D view ``(n, OH, OW, kh, kw, C)``; with one
    channel, ``kh·kw`` slice copies instead (a 6-D copy whose innermost axis
    has length 1 ran 3x slower: 1.27 ms against 0.42 ms for (64, 28, 28, 1)
    and a 3x3 kernel, 1.9x at (128, 8, 8, 1); from 2 channels up the strided
    copy wins by 2.5-10x; ``benchmarks/README.md``).
    """
    n, _, _, c = xp.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = win.size, win.stride, win.dilation, win.out_hw
    if c == 1:
        cols = np.empty((n, oh, ow, kh, kw, 1), xp.dtype)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, :, i, j] = offset_view(xp, win, i, j)
        return cols.reshape(n * oh * ow, kh * kw)
    bn, bh, bw, bc = xp.strides
    view = np.lib.stride_tricks.as_strided(
        xp, (n, oh, ow, kh, kw, c), (bn, bh * sh, bw * sw, bh * dh, bw * dw, bc),
        writeable=False)
    return view.reshape(n * oh * ow, kh * kw * c)


def scatter(win: Window, batch: int, channels: int, dtype: Any,
            add: Callable[[Array, int, int], None]) -> Array:
    """``dx (n, H, W, C)``: ``add(view, i, j)`` adds kernel offset ``(i, j)``'s share
    of the gradient into ``view``, its :func:`offset_view` ``(n, OH, OW, C)`` of a
    zero padded buffer (the transpose of reading those views); the padding is
    cut off. Offsets are visited once each, in row-major order. When
    ``win.disjoint``, no cell is in two views, so ``add`` may write instead.
    """
    dxp = np.zeros((batch, *win.padded_hw, channels), dtype)
    kh, kw = win.size
    for i in range(kh):
        for j in range(kw):
            add(offset_view(dxp, win, i, j), i, j)
    return unpad(dxp, win)
