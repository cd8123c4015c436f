"""Convolution layers ``conv1d`` and ``conv2d`` (channels last, cross-correlation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from nnfunc import _kernels, random, workspace
from nnfunc._validate import describe, fail, positive_int, type_fail
from nnfunc.initializers import Initializer, check_initializer, glorot_uniform, zeros
from nnfunc.layer import Layer, batch_array, from_forward_backward
from nnfunc.layers import _patches
from nnfunc.layers._shapes import feature_shape
from nnfunc.typing import Array, FloatArray, Key, Shape, ShapeTree

__all__ = ["ConvParams", "conv1d", "conv2d"]


class ConvParams(NamedTuple):
    """Parameters of a convolution: kernel ``w`` and bias ``b (c_out,)``.

    ``w`` is ``(kh, kw, c_in, c_out)`` (HWIO) for :func:`conv2d` and
    ``(k, c_in, c_out)`` for :func:`conv1d`; ``b`` is ``None`` without bias.
    """

    w: FloatArray
    b: FloatArray | None


class _Residuals(NamedTuple):
    cols: Array            # (n·OH·OW, kh·kw·c_in) patch matrix
    win: _patches.Window
    x_shape: Shape


def _conv_params(name: str, params: Any, rank: int, use_bias: bool) -> ConvParams:
    """``params`` as :class:`ConvParams`; a plain ``(w, b)`` tuple (as
    ``nnfunc.io.load`` returns without ``like=``) is accepted."""
    if type(params) is ConvParams or (type(params) is tuple and len(params) == 2):
        w, b = params
        if isinstance(w, np.ndarray) and w.ndim == rank and (
                (use_bias and isinstance(b, np.ndarray) and b.shape == w.shape[-1:])
                or (not use_bias and b is None)):
            return ConvParams(w, b)
    kernel = "(kh, kw, c_in, c_out)" if rank == 4 else "(k, c_in, c_out)"
    bias = "b (c_out,)" if use_bias else "None"
    raise type_fail(name, "params", f"must be ConvParams(w {kernel}, {bias}) as init returns",
                    describe(params))


def _dx_adder(w: Array, dy2: Array, win: _patches.Window,
              n: int) -> Callable[[Array, int, int], None]:
    """What kernel offset ``(i, j)`` adds to ``dx``: ``dY W[i, j]ᵀ`` in its input positions.

    With several input channels, one product per offset, added as it comes
    (``python -m benchmarks.conv_parts``: 0.40x the time of one big product
    followed by strided adds of its column blocks for the (64, 13, 13, 32)
    -> 64 layer of cnn_mnist, 0.71x for cnn_digits' second layer); with one
    channel the products are too thin and the big product wins (2.4x faster
    on (64, 28, 28, 1) -> 32).
    """
    w4 = w if w.ndim == 4 else w[None]  # conv1d's (k, c_in, c_out) as (1, k, c_in, c_out)
    kh, kw, c_in, c_out = w4.shape
    if c_in == 1:
        dcols = (dy2 @ w4.reshape(-1, c_out).T).reshape(n, *win.out_hw, kh, kw, 1)

        def add_block(view: Array, i: int, j: int) -> None:
            np.add(view, dcols[:, :, :, i, j], out=view)

        return add_block

    def add_product(view: Array, i: int, j: int) -> None:
        np.add(view, (dy2 @ w4[i, j].T).reshape(view.shape), out=view)

    return add_product


def _conv(ndim: int, c_out: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
          use_bias: bool, w_init: Initializer, b_init: Initializer, dtype: Any) -> Layer:
    """The layer behind :func:`conv1d` (``ndim=1``) and :func:`conv2d` (``ndim=2``).

    A 1-D convolution runs as a 2-D one over ``(n, 1, T, C)`` with a
    ``(1, k)`` kernel: both are views, nothing is copied for it.
    """
    family = f"conv{ndim}d"
    c_out = positive_int(c_out, family, "c_out")
    size = _patches.int_tuple(kernel_size, ndim, family, "kernel_size")
    strides = _patches.int_tuple(stride, ndim, family, "stride")
    dilations = _patches.int_tuple(dilation, ndim, family, "dilation")
    spec = _patches.padding_spec(padding, ndim, family)
    check_initializer(w_init, family, "w_init")
    check_initializer(b_init, family, "b_init")
    name = f"{family}({c_out}, {'x'.join(map(str, size))})"
    lead = (1,) * (2 - ndim)  # the dummy H axis of a 1-D convolution
    size2, stride2, dilation2 = (*lead, *size), (*lead, *strides), (*lead, *dilations)
    spec2 = spec if isinstance(spec, str) else ((0, 0),) * (2 - ndim) + spec
    axes = "T" if ndim == 1 else "H, W"

    def window(in_spatial: tuple[int, ...]) -> _patches.Window:
        return _patches.resolve(spec2, size2, stride2, dilation2, (*lead, *in_spatial), name)

    def init(key: Key, in_shape: ShapeTree) -> tuple[Shape, ConvParams]:
        shape = feature_shape(name, in_shape)
        if len(shape) != ndim + 1:
            raise fail(name, "in_shape", f"must be ({axes}, C) (channels last, batch axis "
                       "excluded)", shape)
        win = window(shape[:-1])
        c_in = shape[-1]
        k_w, k_b = random.split(random.check_key(key, name))
        w = w_init(k_w, (*size, c_in, c_out), dtype)
        b = b_init(k_b, (c_out,), dtype) if use_bias else None
        return (*win.out_hw[2 - ndim:], c_out), ConvParams(w, b)

    def forward(params: ConvParams, x: Any, key: Key | None,
                train: bool) -> tuple[Array, _Residuals]:
        if type(params) is not ConvParams:
            params = _conv_params(name, params, ndim + 2, use_bias)
        w = params.w
        c_in = w.shape[-2]
        if not (type(x) is np.ndarray and x.dtype is w.dtype and x.ndim == ndim + 2
                and x.shape[-1] == c_in):
            x = batch_array(name, x, dtype=w.dtype)
            if x.ndim != ndim + 2 or x.shape[-1] != c_in:
                raise fail(name, "x", f"must have shape (batch, {axes}, {c_in}) "
                           f"(channels last; the kernel {w.shape} takes {c_in} channels)",
                           f"shape {x.shape}")
        win = window(x.shape[1:-1])
        x4 = x[:, None] if ndim == 1 else x
        cols = _patches.patches(_patches.pad(x4, win), win)
        y = cols @ w.reshape(-1, c_out)
        if params.b is not None:
            _kernels.add_bias(y, params.b)  # y += b, one compiled pass
        return y.reshape(x.shape[0], *win.out_hw[2 - ndim:], c_out), _Residuals(cols, win,
                                                                                x.shape)

    def backward(params: ConvParams, res: _Residuals, dy: Array,
                 need_dx: bool) -> tuple[ConvParams, Array | None]:
        plain = type(params) is not ConvParams
        w, b = params
        cols, win, x_shape = res
        dy2 = dy.reshape(-1, c_out)
        dw = (cols.T @ dy2).reshape(w.shape)
        db = workspace.column_sums(dy2) if b is not None else None
        dx = None
        if need_dx:
            n, c_in = x_shape[0], x_shape[-1]
            dx4 = _patches.scatter(win, n, c_in, w.dtype, _dx_adder(w, dy2, win, n))
            dx = dx4[:, 0] if ndim == 1 else dx4
        return ((dw, db) if plain else ConvParams(dw, db)), dx  # type: ignore[return-value]

    return from_forward_backward(name, init, forward, backward, uses_key=False)


def conv2d(c_out: int, kernel_size: int | tuple[int, int], *, stride: int | tuple[int, int] = 1,
           padding: Any = "valid", dilation: int | tuple[int, int] = 1, use_bias: bool = True,
           w_init: Initializer = glorot_uniform, b_init: Initializer = zeros,
           dtype: Any = np.float32) -> Layer:
    """2-D convolution (cross-correlation, the kernel is not flipped), channels last.

    Shapes: ``x (n, H, W, c_in) -> y (n, OH, OW, c_out)``; ``W (kh, kw, c_in, c_out)``
    (HWIO); ``b (c_out,)``. With padding ``(p₀, p₁)`` on an axis of size ``H``,
    kernel ``k``, stride ``s`` and dilation ``d``:
    ``OH = ⌊(H + p₀ + p₁ − d(k−1) − 1)/s⌋ + 1``.

    Forward, with ``xp`` the zero-padded input:
    ``y[b, o, p, f] = b_f + Σ_{i,j,c} xp[b, o·sh + i·dh, p·sw + j·dw, c] · W[i, j, c, f]``,
    computed as one product ``P Ŵ`` of the patch matrix ``P (n·OH·OW, kh·kw·c_in)``
    with ``Ŵ = W`` reshaped to ``(kh·kw·c_in, c_out)``.
    Backward, with ``dY = dy`` as ``(n·OH·OW, c_out)``: ``dŴ = Pᵀ dY``,
    ``db = Σ_rows dY``, and ``dx``: for each kernel offset ``(i, j)``,
    ``dY W[i, j]ᵀ (n·OH·OW, c_in)`` added into the input positions that offset
    read (the transpose of building ``P``; with one input channel, one
    product ``dY Ŵᵀ`` whose column blocks are added); the input layer of a
    model skips ``dx``.

    Args:
        c_out: number of output channels (filters).
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: ``s`` or ``(sh, sw)``.
        padding: ``"valid"`` (none), ``"same"`` (``OH = ⌈H/sh⌉``; the odd extra
            cell at the bottom/right, as in JAX and TensorFlow), an int for
            every side, or ``((top, bottom), (left, right))``.
        dilation: ``d`` or ``(dh, dw)``: the kernel's taps are ``d`` apart.
        use_bias: whether to add ``b``; without it ``params.b`` is ``None``.
        w_init, b_init: initializers; ``w_init`` sees the HWIO shape, so the
            Glorot/He fans are ``kh·kw·c_in`` and ``kh·kw·c_out``.
        dtype: dtype of the params made by ``init`` (float32 by default).

    Raises:
        ValueError: at ``init``, an ``in_shape`` that is not ``(H, W, C)`` or is
            smaller than the dilated kernel after padding; at ``apply``, an ``x``
            whose channels differ from the kernel's ``c_in``.
        TypeError: bad settings; ``x`` not a float array of the params' dtype.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> layer = conv2d(4, 3, padding="same", stride=2)
    >>> out_shape, params = layer.init(random.key(0), (7, 8, 2))
    >>> out_shape, params.w.shape, layer.apply(params, np.ones((1, 7, 8, 2), np.float32)).shape
    ((4, 4, 4), (3, 3, 2, 4), (1, 4, 4, 4))
    """
    return _conv(2, c_out, kernel_size, stride, padding, dilation, use_bias, w_init, b_init,
                 dtype)


def conv1d(c_out: int, kernel_size: int | tuple[int], *, stride: int | tuple[int] = 1,
           padding: Any = "valid", dilation: int | tuple[int] = 1, use_bias: bool = True,
           w_init: Initializer = glorot_uniform, b_init: Initializer = zeros,
           dtype: Any = np.float32) -> Layer:
    """1-D convolution (cross-correlation) over a sequence, channels last.

    Shapes: ``x (n, T, c_in) -> y (n, OT, c_out)``; ``W (k, c_in, c_out)``;
    ``b (c_out,)``; ``OT = ⌊(T + p₀ + p₁ − d(k−1) − 1)/s⌋ + 1``.
    Forward: ``y[b, t, f] = b_f + Σ_{i,c} xp[b, t·s + i·d, c] · W[i, c, f]``;
    backward as :func:`conv2d` (it is the 2-D case with ``H = 1``).

    Args:
        c_out, kernel_size, stride, dilation, use_bias, w_init, b_init, dtype:
            as :func:`conv2d`, with ints (or 1-tuples) for the one axis.
        padding: ``"valid"``, ``"same"`` (extra cell at the end), an int, or
            ``(before, after)``.

    Raises:
        ValueError, TypeError: as :func:`conv2d`, for ``in_shape (T, C)``.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> layer = conv1d(3, 5, dilation=2)
    >>> out_shape, params = layer.init(random.key(0), (20, 2))
    >>> out_shape, params.w.shape
    ((12, 3), (5, 2, 3))
    """
    return _conv(1, c_out, kernel_size, stride, padding, dilation, use_bias, w_init, b_init,
                 dtype)
