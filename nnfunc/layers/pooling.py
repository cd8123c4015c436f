"""Pooling layers: ``max_pool1d/2d``, ``avg_pool1d/2d``, ``global_avg_pool``, ``global_max_pool``.

All are channels last and pool each channel on its own; params are ``()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from nnfunc._validate import fail
from nnfunc.layer import Layer, batch_array, from_forward_backward, no_params
from nnfunc.layers import _patches
from nnfunc.layers._shapes import feature_shape
from nnfunc.typing import Array, Key, Shape, ShapeTree

__all__ = ["avg_pool1d", "avg_pool2d", "global_avg_pool", "global_max_pool", "max_pool1d",
           "max_pool2d"]


class _Residuals(NamedTuple):
    aux: Any  # max: the padded input and the output; avg: 1 / count
    win: _patches.Window
    x_shape: Shape


# forward(x4 (n, H, W, C), win) -> (y4 (n, OH, OW, C), aux);
# backward(dy4, aux, win) -> add(view, i, j), which adds the share of dy4 that kernel
# offset (i, j) read into view (see _patches.scatter)
_Adder = Callable[[Array, int, int], None]
_Forward = Callable[[Array, _patches.Window], tuple[Array, Any]]
_Backward = Callable[[Array, Any, _patches.Window], _Adder]


def _pool(family: str, ndim: int, window: Any, stride: Any, padding: Any,
          forward4: _Forward, backward4: _Backward) -> Layer:
    """A pooling layer over ``ndim`` spatial axes, run as 2-D (a 1-D pool is
    the 2-D case with ``H = 1``)."""
    size = _patches.int_tuple(window, ndim, family, "window")
    strides = size if stride is None else _patches.int_tuple(stride, ndim, family, "stride")
    spec = _patches.padding_spec(padding, ndim, family)
    if not isinstance(spec, str) and any(p >= k for pair, k in zip(spec, size) for p in pair):
        # a window made only of padding would have no maximum and nothing to average
        raise fail(family, "padding", f"must be smaller than the window {size} on every side",
                   padding)
    name = f"{family}({'x'.join(map(str, size))})"
    lead = (1,) * (2 - ndim)
    size2, stride2, ones = (*lead, *size), (*lead, *strides), (1, 1)
    spec2 = spec if isinstance(spec, str) else ((0, 0),) * (2 - ndim) + spec
    axes = "T" if ndim == 1 else "H, W"

    def resolve(in_spatial: tuple[int, ...]) -> _patches.Window:
        return _patches.resolve(spec2, size2, stride2, ones, (*lead, *in_spatial), name,
                                "window")

    def init(key: Key, in_shape: ShapeTree) -> tuple[Shape, tuple[()]]:
        shape = feature_shape(name, in_shape)
        if len(shape) != ndim + 1:
            raise fail(name, "in_shape", f"must be ({axes}, C) (channels last, batch axis "
                       "excluded)", shape)
        win = resolve(shape[:-1])
        return (*win.out_hw[2 - ndim:], shape[-1]), ()

    def forward(params: tuple[()], x: Any, key: Key | None,
                train: bool) -> tuple[Array, _Residuals]:
        if not (type(params) is tuple and not params):
            raise no_params(name, params)
        x = batch_array(name, x)
        if x.ndim != ndim + 2:
            raise fail(name, "x", f"must have shape (batch, {axes}, C)", f"shape {x.shape}")
        win = resolve(x.shape[1:-1])
        y4, aux = forward4(x[:, None] if ndim == 1 else x, win)
        return (y4[:, 0] if ndim == 1 else y4), _Residuals(aux, win, x.shape)

    def backward(params: tuple[()], res: _Residuals, dy: Array,
                 need_dx: bool) -> tuple[tuple[()], Array | None]:
        if not need_dx:
            return (), None
        aux, win, x_shape = res
        dy4 = dy[:, None] if ndim == 1 else dy
        dx4 = _patches.scatter(win, x_shape[0], x_shape[-1], dy.dtype, backward4(dy4, aux, win))
        return (), (dx4[:, 0] if ndim == 1 else dx4)

    return from_forward_backward(name, init, forward, backward, uses_key=False)


def _max_forward(x: Array, win: _patches.Window) -> tuple[Array, tuple[Array, Array]]:
    xp = _patches.pad(x, win, -np.inf)
    kh, kw = win.size
    views = [_patches.offset_view(xp, win, k // kw, k % kw) for k in range(kh * kw)]
    y = views[0].copy() if len(views) == 1 else np.maximum(views[0], views[1])
    for view in views[2:]:
        np.maximum(y, view, out=y)
    return y, (xp, y)


def _max_backward(dy: Array, aux: tuple[Array, Array], win: _patches.Window) -> _Adder:
    """Offsets come in row-major order (:func:`_patches.scatter`); an offset gets a
    window's ``dy`` where it holds the maximum and no earlier offset did, which is
    the first maximum, found without storing an argmax."""
    xp, y = aux
    free = np.ones(dy.shape, bool)  # no earlier offset of the window held its maximum

    def add(view: Array, i: int, j: int) -> None:
        hit = _patches.offset_view(xp, win, i, j) == y
        hit &= free
        np.logical_xor(free, hit, out=free)
        if win.disjoint:  # the view is still zero: write, do not add
            np.multiply(hit, dy, out=view)
        else:
            np.add(view, np.where(hit, dy, dy.dtype.type(0)), out=view)

    return add


def _counts(n: int, k: int, s: int, pads: tuple[int, int], out: int) -> Array:
    """How many real (unpadded) cells each of the ``out`` windows along one axis covers."""
    start = np.arange(out) * s
    return np.minimum(start + k, pads[0] + n) - np.maximum(start, pads[0])


def _avg_forward(x: Array, win: _patches.Window) -> tuple[Array, Array]:
    xp = _patches.pad(x, win, 0.0)
    kh, kw = win.size
    total = _patches.offset_view(xp, win, 0, 0).copy()
    for k in range(1, kh * kw):
        total += _patches.offset_view(xp, win, k // kw, k % kw)
    count = (_counts(win.in_hw[0], kh, win.stride[0], win.pads[0], win.out_hw[0])[:, None]
             * _counts(win.in_hw[1], kw, win.stride[1], win.pads[1], win.out_hw[1]))
    inv = (1.0 / count).astype(x.dtype)[:, :, None]
    total *= inv
    return total, inv


def _avg_backward(dy: Array, inv: Array, win: _patches.Window) -> _Adder:
    share = dy * inv

    def add(view: Array, i: int, j: int) -> None:
        np.add(view, share, out=view)

    return add


def max_pool2d(window: int | tuple[int, int], *, stride: int | tuple[int, int] | None = None,
               padding: Any = "valid") -> Layer:
    """2-D max pooling: the largest value of each window, per channel.

    Shapes: ``x (n, H, W, C) -> y (n, OH, OW, C)``, ``OH = ⌊(H + p₀ + p₁ − kh)/sh⌋ + 1``;
    params ``()``.
    Forward:  ``y[b, o, p, c] = max_{i,j} xp[b, o·sh + i, p·sw + j, c]``, with
    ``xp`` padded by ``−∞`` (padding never wins).
    Backward: each window's ``dy`` goes to its *first* maximum in row-major
    window order ``(i, j)`` (argmax semantics): a tie — common after ReLU —
    never doubles the gradient; overlapping windows add.

    Args:
        window: ``k`` or ``(kh, kw)``.
        stride: ``s`` or ``(sh, sw)``; ``None`` (default) is the window
            (non-overlapping windows).
        padding: as :func:`nnfunc.layers.conv2d`; every pad must be smaller
            than the window, so each window holds at least one real cell.

    Raises:
        ValueError: padding as large as the window; at ``init``, an
            ``in_shape`` that is not ``(H, W, C)`` or smaller than the window.

    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> max_pool2d(2).apply((), x)[0, :, :, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    """
    return _pool("max_pool2d", 2, window, stride, padding, _max_forward, _max_backward)


def max_pool1d(window: int | tuple[int], *, stride: int | tuple[int] | None = None,
               padding: Any = "valid") -> Layer:
    """1-D max pooling over a sequence: ``x (n, T, C) -> y (n, OT, C)``.

    Forward: ``y[b, t, c] = max_i xp[b, t·s + i, c]`` (``−∞`` padding); backward
    sends ``dy`` to each window's first maximum. Arguments as
    :func:`max_pool2d` (``padding``: ``"valid"``, ``"same"``, an int, or
    ``(before, after)``).

    >>> import numpy as np
    >>> max_pool1d(2).apply((), np.array([[[1.0], [3.0], [2.0], [2.0]]]))[0, :, 0].tolist()
    [3.0, 2.0]
    """
    return _pool("max_pool1d", 1, window, stride, padding, _max_forward, _max_backward)


def avg_pool2d(window: int | tuple[int, int], *, stride: int | tuple[int, int] | None = None,
               padding: Any = "valid") -> Layer:
    """2-D average pooling; padded cells are not counted.

    Shapes: ``x (n, H, W, C) -> y (n, OH, OW, C)`` (sizes as :func:`max_pool2d`).
    Forward:  ``y[b, o, p, c] = (1/N_op) Σ_{i,j} xp[b, o·sh + i, p·sw + j, c]``
    with ``xp`` zero-padded and ``N_op`` the number of *real* cells in the window
    (``kh·kw`` away from the border).
    Backward: every real cell of window ``(o, p)`` receives ``dy[b, o, p, c] / N_op``;
    overlapping windows add.

    Args:
        window, stride, padding: as :func:`max_pool2d`.

    >>> import numpy as np
    >>> x = np.ones((1, 3, 3, 1))
    >>> avg_pool2d(2, stride=1, padding=1).apply((), x)[0, :, :, 0].min()
    np.float64(1.0)
    """
    return _pool("avg_pool2d", 2, window, stride, padding, _avg_forward, _avg_backward)


def avg_pool1d(window: int | tuple[int], *, stride: int | tuple[int] | None = None,
               padding: Any = "valid") -> Layer:
    """1-D average pooling over a sequence: ``x (n, T, C) -> y (n, OT, C)``.

    Forward: ``y[b, t, c] = (1/N_t) Σ_i xp[b, t·s + i, c]``, ``N_t`` the real
    cells of window ``t``; backward: ``dy / N_t`` to each. Arguments as
    :func:`avg_pool2d`.

    >>> import numpy as np
    >>> avg_pool1d(2).apply((), np.array([[[1.0], [3.0], [2.0], [6.0]]]))[0, :, 0].tolist()
    [2.0, 4.0]
    """
    return _pool("avg_pool1d", 1, window, stride, padding, _avg_forward, _avg_backward)


def _global(name: str, reduce: Callable[[Array], tuple[Array, Any]],
            spread: Callable[[Array, Any, Shape], Array]) -> Layer:
    """A pool over every axis of each sample but the last: ``(n, …, C) -> (n, C)``."""

    def init(key: Key, in_shape: ShapeTree) -> tuple[Shape, tuple[()]]:
        shape = feature_shape(name, in_shape)
        if len(shape) < 2:
            raise fail(name, "in_shape", "must be (…spatial…, C) with at least one spatial "
                       "axis", shape)
        return (shape[-1],), ()

    def forward(params: tuple[()], x: Any, key: Key | None,
                train: bool) -> tuple[Array, tuple[Any, Shape]]:
        if not (type(params) is tuple and not params):
            raise no_params(name, params)
        x = batch_array(name, x)
        if x.ndim < 3:
            raise fail(name, "x", "must have shape (batch, …spatial…, C)", f"shape {x.shape}")
        y, aux = reduce(x.reshape(x.shape[0], -1, x.shape[-1]))
        return y, (aux, x.shape)

    def backward(params: tuple[()], res: tuple[Any, Shape], dy: Array,
                 need_dx: bool) -> tuple[tuple[()], Array | None]:
        if not need_dx:
            return (), None
        aux, x_shape = res
        return (), spread(dy, aux, (x_shape[0], -1, x_shape[-1])).reshape(x_shape)

    return from_forward_backward(name, init, forward, backward, uses_key=False)


def _mean_reduce(xs: Array) -> tuple[Array, int]:
    return np.add.reduce(xs, axis=1) * xs.dtype.type(1.0 / xs.shape[1]), xs.shape[1]


def _mean_spread(dy: Array, count: int, shape: Shape) -> Array:
    dx = np.empty((shape[0], count, dy.shape[-1]), dy.dtype)
    dx[...] = (dy * dy.dtype.type(1.0 / count))[:, None]
    return dx


def _max_reduce(xs: Array) -> tuple[Array, tuple[Array, int]]:
    arg = np.argmax(xs, axis=1)[:, None]  # the first maximum of each channel
    return np.take_along_axis(xs, arg, axis=1)[:, 0], (arg, xs.shape[1])


def _max_spread(dy: Array, aux: tuple[Array, int], shape: Shape) -> Array:
    arg, count = aux
    dx = np.zeros((shape[0], count, dy.shape[-1]), dy.dtype)
    np.put_along_axis(dx, arg, dy[:, None], axis=1)
    return dx


global_avg_pool: Layer = _global("global_avg_pool", _mean_reduce, _mean_spread)
"""Mean over every spatial axis: ``x (n, …, C) -> y (n, C)``, ``y = (1/S) Σ_s x[:, s, :]``
over the ``S`` spatial cells; backward ``dx[:, s, :] = dy / S``. Params ``()``."""

global_max_pool: Layer = _global("global_max_pool", _max_reduce, _max_spread)
"""Max over every spatial axis: ``x (n, …, C) -> y (n, C)``; backward sends ``dy`` to
the first maximum of each sample's channel in row-major spatial order. Params ``()``."""
