"""Recurrent layers over sequence batches ``(n, T, d_in)``: ``scan`` and the RNN family.

=================  ======================  ============================================
factory            carry (no batch axis)   params
=================  ======================  ============================================
``scan(cell, s)``  any shape tree ``s``    the cell's
``simple_rnn(H)``  ``h (H,)``              ``w_x (D, H), w_h (H, H), b (H,)``
``lstm(H)``        ``(h (H,), c (H,))``    ``w_x (D, 4H), w_h (H, 4H), b (4H,)``
``gru(H)``         ``h (H,)``              ``w_x (D, 3H), w_h (H, 3H), b_x, b_h (3H,)``
=================  ======================  ============================================

The layouts are PyTorch's transposed for the ``x W`` convention (gate blocks
``i, f, g, o`` for the LSTM, ``r, z, n`` for the GRU), so a PyTorch model's
weights load by transposing (:mod:`nnfunc.interop`). The initial state is
zero. ``simple_rnn_cell``, ``lstm_cell`` and ``gru_cell`` are the same
recurrences as one-step layers on ``(carry, x_t)``, for :func:`scan`.

The fused layers run the input projection as ONE product over all ``n·T``
rows, ``G = X W_x + b`` (time-major, ``(T·n, D) @ (D, k·H)``); only
``h_{t-1} W_h`` runs per step. Their backward pass (backpropagation through
time) walks the steps in reverse, storing each step's gate pre-activation
gradients ``dG_t``, of which only ``dh_{t-1} = dG_t W_hᵀ`` is needed per step;
it finishes with three large products, ``dW_x = Xᵀ dG``, ``dW_h = H_prevᵀ dG``
and ``dx = dG W_xᵀ``. The cells share every formula with the fused layers:
a cell is the fused recurrence run for ``T = 1`` from the given carry.

Gate sigmoids are computed as ``σ(a) = ½ + ½ tanh(a/2)``, which never
overflows (no ``exp`` of a large argument) and costs one ``tanh``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from nnfunc import random, tree, workspace
from nnfunc._validate import describe, fail, positive_int, type_fail
from nnfunc.initializers import Initializer, check_initializer, glorot_uniform, orthogonal, zeros
from nnfunc.layer import Layer, batch_array, from_forward_backward, vjp
from nnfunc.layers._shapes import feature_shape
from nnfunc.typing import Array, FloatArray, Key, ShapeTree

__all__ = ["GRUParams", "LSTMParams", "SimpleRNNParams", "gru", "gru_cell", "lstm",
           "lstm_cell", "scan", "simple_rnn", "simple_rnn_cell"]


# -- scan -------------------------------------------------------------------------------

def _is_shape(s: Any) -> bool:
    return isinstance(s, tuple) and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in s)


def _check_shape_tree(name: str, arg: str, s: Any) -> None:
    if _is_shape(s):
        return
    if isinstance(s, tuple) and s and all(isinstance(c, tuple) for c in s):
        for c in s:
            _check_shape_tree(name, arg, c)
        return
    raise type_fail(name, arg, "must be a shape (a tuple of positive ints, batch axis "
                    "excluded) or a tuple of shapes", describe(s))


def _zeros_tree(shape: Any, n: int, dtype: Any) -> Any:
    if _is_shape(shape):
        return np.zeros((n, *shape), dtype)
    return tuple(_zeros_tree(s, n, dtype) for s in shape)


def _accumulate(total: Any, more: Any) -> Any:
    """``total += more`` leaf-wise, in place (``total`` holds this scan's own copies)."""
    return tree.map(lambda a, b: a if a is None else np.add(a, b, out=a), total, more)


def scan(cell: Layer, carry_shape: ShapeTree) -> Layer:
    """Run a one-step layer over the time axis: ``(carry, y_t) = cell((carry, x_t))``.

    Forward: ``carry_0 = 0`` (zeros of ``carry_shape`` for every sample), then
    for ``t = 0 … T-1``: ``(carry_{t+1}, y_t) = cell(params, (carry_t, x[:, t]))``;
    the output stacks ``y_t`` on axis 1.
    Backward (backpropagation through time): ``dcarry_T = 0``; for ``t = T-1 …
    0`` the cell's pullback maps ``(dcarry_{t+1}, dy[:, t])`` to
    ``(dparams_t, (dcarry_t, dx[:, t]))``; ``dparams = Σ_t dparams_t``.

    Shapes: ``x (n, T, *x_shape) -> y (n, T, *y_shape)``; ``init`` takes
    ``(T, *x_shape)`` and calls ``cell.init`` with ``(carry_shape, x_shape)``,
    which must give ``(carry_shape, y_shape)``. Params are the cell's. When a
    ``key`` is given, step ``t`` gets ``random.fold_in(key, t)`` (e.g. a
    dropout inside the cell draws a fresh mask per step).

    Args:
        cell: any layer taking ``(carry, x_t)`` and giving ``(carry, y_t)``: a
            built-in cell, a combinator model (below) or your own
            ``Layer(init, apply, grad)``.
        carry_shape: the carry's per-sample shape, or a tuple of shapes for a
            tuple carry (``((H,), (H,))`` for :func:`lstm_cell`).

    Raises:
        TypeError: ``cell`` not a layer, ``carry_shape`` not a shape tree, a
            cell whose output is not a ``(carry, y_t)`` pair, or a stateful
            cell (``batch_norm`` inside): ``scan`` threads no model state, and
            the cell's own error says so at the first call.
        ValueError: at ``init``, an ``in_shape`` without a time axis or a cell
            that does not return its carry's shape; a ``T = 0`` input.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> from nnfunc.activations import tanh
    >>> from nnfunc.combinators import fanin_concat, fanout, serial
    >>> from nnfunc.layers import dense
    >>> cell = serial(fanin_concat(), dense(4), tanh, fanout(2))  # h' = tanh([h, x] W + b)
    >>> rnn = scan(cell, (4,))
    >>> out_shape, params = rnn.init(random.key(0), (7, 3))
    >>> out_shape, rnn.apply(params, np.ones((2, 7, 3), np.float32)).shape
    ((7, 4), (2, 7, 4))
    """
    if not isinstance(cell, Layer):
        raise type_fail("scan", "cell", "must be an nnfunc Layer taking (carry, x_t)",
                        describe(cell))
    _check_shape_tree("scan", "carry_shape", carry_shape)
    carry = tree.map(int, carry_shape) if not _is_shape(carry_shape) else tuple(
        int(d) for d in carry_shape)
    name = f"scan({cell.name})"

    def init(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, Any]:
        shape = feature_shape(name, in_shape)
        if len(shape) < 2:
            raise fail(name, "in_shape", "must be (T, *x_shape), the time axis first (batch "
                       "axis excluded)", shape)
        try:
            out, params = cell.init(key, (carry, shape[1:]))
        except (ValueError, TypeError) as err:
            raise type(err)(f"{name}: the cell cannot take (carry {carry}, x_t {shape[1:]}): "
                            f"{err}") from err
        if not (isinstance(out, tuple) and len(out) == 2 and out[0] == carry
                and _is_shape(out[1])):
            raise fail(name, "cell output shape", f"must be (carry {carry}, y_t shape) to run "
                       "over time", out)
        return (shape[0], *out[1]), params

    def forward(params: Any, x: Any, key: Key | None,
                train: bool) -> tuple[Array, tuple[list[Any], Any]]:
        x = batch_array(name, x)
        if x.ndim < 3 or x.shape[1] == 0:
            raise fail(name, "x", "must be a sequence batch (n, T, *x_shape) with T >= 1",
                       f"shape {x.shape}")
        state = _zeros_tree(carry, x.shape[0], x.dtype)
        ys, pullbacks = [], []
        for t in range(x.shape[1]):
            k = None if key is None else random.fold_in(key, t)
            out, pb = vjp(cell, params, (state, x[:, t]), key=k, train=train)
            if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], np.ndarray)):
                raise type_fail(name, "cell output", "must be a pair (carry, y_t array)",
                                describe(out))
            state, y_t = out
            ys.append(y_t)
            pullbacks.append(pb)
        return np.stack(ys, axis=1), (pullbacks, state)

    def backward(params: Any, res: tuple[list[Any], Any], dy: Array,
                 need_dx: bool) -> tuple[Any, Array | None]:
        pullbacks, last = res
        dstate = tree.map(np.zeros_like, last)
        total: Any = None
        dxs: list[Array] = [dy] * len(pullbacks)
        for t in range(len(pullbacks) - 1, -1, -1):
            dp, (dstate, dxs[t]) = pullbacks[t]((dstate, dy[:, t]), True)
            total = (tree.map(lambda a: None if a is None else np.array(a, copy=True), dp)
                     if total is None else _accumulate(total, dp))
        return total, (np.stack(dxs, axis=1) if need_dx else None)

    return from_forward_backward(name, init, forward, backward, (cell,))


# -- params -------------------------------------------------------------------------------

class SimpleRNNParams(NamedTuple):
    """Params of :func:`simple_rnn`: ``w_x (D, H)``, ``w_h (H, H)``, ``b (H,)``."""

    w_x: FloatArray
    w_h: FloatArray
    b: FloatArray


class LSTMParams(NamedTuple):
    """Params of :func:`lstm`: ``w_x (D, 4H)``, ``w_h (H, 4H)``, ``b (4H,)``.

    Gate blocks (columns) in the order ``i, f, g, o``."""

    w_x: FloatArray
    w_h: FloatArray
    b: FloatArray


class GRUParams(NamedTuple):
    """Params of :func:`gru`: ``w_x (D, 3H)``, ``w_h (H, 3H)``, ``b_x (3H,)``, ``b_h (3H,)``.

    Gate blocks (columns) in the order ``r, z, n``."""

    w_x: FloatArray
    w_h: FloatArray
    b_x: FloatArray
    b_h: FloatArray


# -- the recurrences, time-major ------------------------------------------------------------
#
# Each family gives ``steps(w_h, b_h, gx, carry0) -> (hs, carry_T, res)`` running the
# recurrence over the projected inputs ``gx (T, n, k·H)`` (``x_t W_x + b_x``), with
# ``hs (T+1, n, H)`` holding ``h_0 … h_T``; and ``back(w_h, res, hs, dhs, dcarry) ->
# (dgx, dgh, dcarry_0)``: the gate pre-activation gradients for the input side
# ``dgx (T, n, k·H)`` and for the recurrent side ``dgh`` (the same array except in the
# GRU, where the reset gate multiplies the recurrent product), given ``dhs (T, n, H)``
# (or None) and the carry's cotangent after the last step.

Steps = Callable[[Array, Array | None, Array, tuple[Array, ...]],
                 tuple[Array, tuple[Array, ...], Any]]
Back = Callable[[Array, Any, Array, Array | None, tuple[Array, ...]],
                tuple[Array, Array, tuple[Array, ...]]]


def _gate_scale(h: int, blocks: str, dtype: Any) -> Array:
    """Per-column ``s``: ½ for a sigmoid block (``"s"``), 1 for a tanh block (``"t"``).

    ``act(a) = s·tanh(s·a) + (1 - s)`` is then σ(a) or tanh(a) by block, and
    its slope ``s²(1 - tanh²(s·a))`` is σ(1 - σ) or 1 - tanh².
    """
    return np.repeat(np.array([0.5 if b == "s" else 1.0 for b in blocks], dtype), h)


def _slope(act: Array, s: Array, out: Array) -> Array:
    """``act'(a)`` from ``act = s·tanh(s·a) + (1 - s)``, into ``out``: with
    ``u = tanh(s·a) = (act - 1 + s)/s`` it is ``s²(1 - u²) = s² - (act - 1 + s)²``,
    i.e. ``σ(1 - σ)`` or ``1 - tanh²`` by block. Per step, on data still in cache."""
    np.subtract(act, 1 - s, out=out)
    out *= out
    np.subtract(s * s, out, out=out)
    return out


def _rnn_steps(w_h: Array, b_h: Array | None, gx: Array,
               carry0: tuple[Array, ...]) -> tuple[Array, tuple[Array, ...], None]:
    """``h_t = tanh(g_t + h_{t-1} W_h)``."""
    hs = np.empty((gx.shape[0] + 1, *carry0[0].shape), gx.dtype)
    hs[0] = carry0[0]
    for t in range(gx.shape[0]):
        h = np.matmul(hs[t], w_h, out=hs[t + 1])
        h += gx[t]
        np.tanh(h, out=h)
    return hs, (hs[-1],), None


def _rnn_back(w_h: Array, res: None, hs: Array, dhs: Array | None,
              dcarry: tuple[Array, ...]) -> tuple[Array, Array, tuple[Array, ...]]:
    """``da_t = dh_t ⊙ (1 - h_t²)``; ``dh_{t-1} = da_t W_hᵀ`` (+ the output's ``dy_{t-1}``)."""
    dg = hs[1:] * hs[1:]
    np.subtract(1, dg, out=dg)  # the slopes 1 - h_t², overwritten by da_t step by step
    w_ht = w_h.T
    dh = dcarry[0]
    for t in range(dg.shape[0] - 1, -1, -1):
        if dhs is not None:
            dh = dh + dhs[t]
        dg[t] *= dh
        dh = dg[t] @ w_ht
    return dg, dg, (dh,)


_LSTM_BLOCKS = "ssts"  # i, f, g, o


def _lstm_steps(w_h: Array, b_h: Array | None, gx: Array,
                carry0: tuple[Array, ...]) -> tuple[Array, tuple[Array, ...], Any]:
    """``(i, f, g, o) = act(g_t + h_{t-1} W_h)``; ``c_t = f⊙c_{t-1} + i⊙g``;
    ``h_t = o⊙tanh c_t``."""
    steps, n, h4 = gx.shape
    h = h4 // 4
    s = _gate_scale(h, _LSTM_BLOCKS, gx.dtype)
    w_hs = w_h * s  # act's inner scale folded into the products
    acts = np.multiply(gx, s)
    hs = np.empty((steps + 1, n, h), gx.dtype)
    cs = np.empty((steps + 1, n, h), gx.dtype)
    tcs = np.empty((steps, n, h), gx.dtype)
    hs[0], cs[0] = carry0
    ig = np.empty((n, h), gx.dtype)
    rec = np.empty((n, h4), gx.dtype)
    add = 1 - s
    for t in range(steps):
        a = acts[t]
        a += np.matmul(hs[t], w_hs, out=rec)
        np.tanh(a, out=a)
        a *= s
        a += add
        i, f, g, o = a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h], a[:, 3 * h:]
        np.multiply(f, cs[t], out=cs[t + 1])
        cs[t + 1] += np.multiply(i, g, out=ig)
        np.tanh(cs[t + 1], out=tcs[t])
        np.multiply(o, tcs[t], out=hs[t + 1])
    return hs, (hs[-1], cs[-1]), (acts, cs, tcs, s)


def _lstm_back(w_h: Array, res: Any, hs: Array, dhs: Array | None,
               dcarry: tuple[Array, ...]) -> tuple[Array, Array, tuple[Array, ...]]:
    """Per step, from ``dh_t`` and ``dc_t`` (carried back):

    ``do = dh ⊙ tanh c_t``; ``dc ← dc + dh ⊙ o ⊙ (1 - tanh² c_t)``;
    ``di = dc ⊙ g``, ``df = dc ⊙ c_{t-1}``, ``dg = dc ⊙ i``; each times its
    gate's slope gives ``dG_t``; ``dc_{t-1} = dc ⊙ f``, ``dh_{t-1} = dG_t W_hᵀ``.
    """
    acts, cs, tcs, s = res
    h = hs.shape[-1]
    o_slope = 1 - tcs * tcs
    o_slope *= acts[:, :, 3 * h:]  # o ⊙ (1 - tanh² c_t), for every step at once
    dgates = np.empty_like(acts)
    w_ht = w_h.T
    dh, dc = dcarry
    dc = dc.copy()
    tmp = np.empty_like(dc)
    slope = np.empty_like(acts[0])
    for t in range(acts.shape[0] - 1, -1, -1):
        if dhs is not None:
            dh = dh + dhs[t]
        a, d = acts[t], dgates[t]
        np.multiply(dh, tcs[t], out=d[:, 3 * h:])
        dc += np.multiply(dh, o_slope[t], out=tmp)
        np.multiply(dc, a[:, 2 * h:3 * h], out=d[:, :h])
        np.multiply(dc, cs[t], out=d[:, h:2 * h])
        np.multiply(dc, a[:, :h], out=d[:, 2 * h:3 * h])
        d *= _slope(a, s, slope)
        dc *= a[:, h:2 * h]
        dh = d @ w_ht
    return dgates, dgates, (dh, dc)


def _gru_steps(w_h: Array, b_h: Array | None, gx: Array,
               carry0: tuple[Array, ...]) -> tuple[Array, tuple[Array, ...], Any]:
    """``(r, z) = σ(gx_rz + (h W_h + b_h)_rz)``; ``n = tanh(gx_n + r ⊙ (h W_hn + b_hn))``;
    ``h_t = (1 - z) ⊙ n + z ⊙ h_{t-1} = n + z ⊙ (h_{t-1} - n)``."""
    steps, n_rows, h3 = gx.shape
    h = h3 // 3
    assert b_h is not None
    hs = np.empty((steps + 1, n_rows, h), gx.dtype)
    hs[0] = carry0[0]
    gh = np.empty_like(gx)  # h_{t-1} W_h + b_h per step; its n block is kept for the backward
    acts = np.empty_like(gx)
    for t in range(steps):
        g = np.matmul(hs[t], w_h, out=gh[t])
        g += b_h
        rz = np.add(gx[t, :, :2 * h], g[:, :2 * h], out=acts[t, :, :2 * h])
        rz *= 0.5
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5
        r, z = rz[:, :h], rz[:, h:]
        new = np.multiply(r, g[:, 2 * h:], out=acts[t, :, 2 * h:])
        new += gx[t, :, 2 * h:]
        np.tanh(new, out=new)
        out = np.subtract(hs[t], new, out=hs[t + 1])
        out *= z
        out += new
    return hs, (hs[-1],), (acts, gh)


def _gru_back(w_h: Array, res: Any, hs: Array, dhs: Array | None,
              dcarry: tuple[Array, ...]) -> tuple[Array, Array, tuple[Array, ...]]:
    """Per step, from ``dh_t``: ``dn = dh ⊙ (1 - z)``, ``dz = dh ⊙ (h_{t-1} - n)``;
    ``dgx_n = dn ⊙ (1 - n²)``, ``dgh_n = dgx_n ⊙ r``, ``dr = dgx_n ⊙ (h W_hn + b_hn)``;
    ``dg_r = dr ⊙ r(1-r)``, ``dg_z = dz ⊙ z(1-z)`` (the same on both sides);
    ``dh_{t-1} = dh ⊙ z + dgh_t W_hᵀ``."""
    acts, gh = res
    h = hs.shape[-1]
    s = _gate_scale(h, "sst", acts.dtype)
    slopes = np.empty_like(acts[0])
    z_all = acts[:, :, h:2 * h]
    keep = 1 - z_all  # 1 - z, and h_{t-1} - n, for every step at once
    gap = hs[:-1] - acts[:, :, 2 * h:]
    dgx = np.empty_like(acts)
    dgh = np.empty_like(acts)
    w_ht = w_h.T
    dh = dcarry[0]
    for t in range(acts.shape[0] - 1, -1, -1):
        if dhs is not None:
            dh = dh + dhs[t]
        a, dx_t, dh_t = acts[t], dgx[t], dgh[t]
        _slope(a, s, slopes)
        dn = np.multiply(dh, keep[t], out=dx_t[:, 2 * h:])
        np.multiply(dh, gap[t], out=dx_t[:, h:2 * h])
        dx_t[:, h:] *= slopes[:, h:]
        np.multiply(dn, gh[t, :, 2 * h:], out=dx_t[:, :h])
        dx_t[:, :h] *= slopes[:, :h]
        dh_t[:, :2 * h] = dx_t[:, :2 * h]
        np.multiply(dn, a[:, :h], out=dh_t[:, 2 * h:])
        prev = dh * z_all[t]
        prev += dh_t @ w_ht
        dh = prev
    return dgx, dgh, (dh,)


# -- the shared layer machinery --------------------------------------------------------------

class _Family(NamedTuple):
    kind: str  # "simple_rnn", "lstm", "gru"
    gates: int
    carries: int  # 1 (h) or 2 (h, c)
    params: Any  # the NamedTuple class
    steps: Steps
    back: Back


_RNN = _Family("simple_rnn", 1, 1, SimpleRNNParams, _rnn_steps, _rnn_back)
_LSTM = _Family("lstm", 4, 2, LSTMParams, _lstm_steps, _lstm_back)
_GRU = _Family("gru", 3, 1, GRUParams, _gru_steps, _gru_back)


def _layout(family: _Family) -> str:
    k = f"{family.gates}H" if family.gates > 1 else "H"
    bias = f"b_x ({k},), b_h ({k},)" if family is _GRU else f"b ({k},)"
    return f"{family.params.__name__}(w_x (D, {k}), w_h (H, {k}), {bias})"


def _as_params(name: str, family: _Family, params: Any) -> tuple[Any, bool]:
    """``params`` as the family's NamedTuple (a plain tuple of the right arrays is
    accepted, as ``nnfunc.io.load`` returns without ``like=``); and whether it was plain."""
    if type(params) is family.params:
        return params, False
    if type(params) is tuple and len(params) == len(family.params._fields):
        w_x, w_h, *bs = params
        if (all(isinstance(a, np.ndarray) for a in params) and w_x.ndim == 2 and w_h.ndim == 2
                and w_h.shape[1] == w_x.shape[1] == family.gates * w_h.shape[0]
                and all(b.shape == (w_x.shape[1],) for b in bs)):
            return family.params(*params), True
    got = (f"{type(params).__name__} of {[describe(a) for a in params]}"
           if isinstance(params, tuple) else describe(params))
    raise type_fail(name, "params", f"must be {_layout(family)} as init returns", got)


def _biases(family: _Family, p: Any) -> tuple[Array, Array | None]:
    return (p.b_x, p.b_h) if family is _GRU else (p.b, None)


def _grads(family: _Family, plain: bool, dw_x: Array, dw_h: Array, dgx: Array,
           dgh: Array) -> Any:
    db_x = workspace.column_sums(dgx)
    parts = (dw_x, dw_h, db_x, workspace.column_sums(dgh)) if family is _GRU else (
        dw_x, dw_h, db_x)
    return parts if plain else family.params(*parts)


class _Run(NamedTuple):
    """What a forward pass keeps for its backward pass."""

    params: Any
    plain: bool
    xt: Array  # time-major input rows (T·n, D)
    hs: Array  # h_0 … h_T, (T+1, n, H)
    res: Any  # the family's residuals


def _run(family: _Family, p: Any, plain: bool, xt: Array, steps: int,
         carry0: tuple[Array, ...]) -> tuple[_Run, tuple[Array, ...]]:
    """The projection ``G = X W_x + b_x`` (one product), then the recurrence."""
    b_x, b_h = _biases(family, p)
    gx = xt @ p.w_x
    gx += b_x
    hs, carry, res = family.steps(p.w_h, b_h, gx.reshape(steps, -1, gx.shape[1]), carry0)
    return _Run(p, plain, xt, hs, res), carry


def _run_back(family: _Family, run: _Run, dhs: Array | None, dcarry: tuple[Array, ...],
              need_dx: bool) -> tuple[Any, Array | None, tuple[Array, ...]]:
    """BPTT, then the three large products ``dW_x = Xᵀ dG``, ``dW_h = H_prevᵀ dG``,
    ``dx = dG W_xᵀ``. Returns ``(dparams, dx rows (T·n, D) or None, dcarry_0)``."""
    dgx, dgh, dcarry0 = family.back(run.params.w_h, run.res, run.hs, dhs, dcarry)
    dgx = dgx.reshape(-1, dgx.shape[-1])
    dgh = dgx if family is not _GRU else dgh.reshape(-1, dgh.shape[-1])
    h_prev = run.hs[:-1].reshape(-1, run.hs.shape[-1])
    grads = _grads(family, run.plain, run.xt.T @ dgx, h_prev.T @ dgh, dgx, dgh)
    return grads, (dgx @ run.params.w_x.T if need_dx else None), dcarry0


def _init_params(family: _Family, name: str, key: Key, d_in: int, d_hidden: int, dtype: Any,
                 w_init: Initializer, h_init: Initializer, b_init: Initializer) -> Any:
    k = family.gates * d_hidden
    k_x, k_h, k_b, k_bh = random.split(random.check_key(key, name), 4)
    w_x = w_init(k_x, (d_in, k), dtype)
    w_h = h_init(k_h, (d_hidden, k), dtype)
    b = b_init(k_b, (k,), dtype)
    if family is _GRU:
        return GRUParams(w_x, w_h, b, b_init(k_bh, (k,), dtype))
    return family.params(w_x, w_h, b)


def _check_inits(name: str, w_init: Any, h_init: Any, b_init: Any) -> None:
    check_initializer(w_init, name, "w_init")
    check_initializer(h_init, name, "h_init")
    check_initializer(b_init, name, "b_init")


def _sequence_layer(family: _Family, d_hidden: int, return_sequences: bool,
                    w_init: Initializer, h_init: Initializer, b_init: Initializer,
                    dtype: Any) -> Layer:
    d_hidden = positive_int(d_hidden, family.kind, "d_hidden")
    if not isinstance(return_sequences, bool):
        raise type_fail(family.kind, "return_sequences", "must be a bool",
                        describe(return_sequences))
    _check_inits(family.kind, w_init, h_init, b_init)
    name = f"{family.kind}({d_hidden})" if return_sequences else (
        f"{family.kind}({d_hidden}, return_sequences=False)")

    def init(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, Any]:
        shape = feature_shape(name, in_shape)
        if len(shape) != 2:
            raise fail(name, "in_shape", "must be (T, d_in): T steps of d_in features (batch "
                       "axis excluded)", shape)
        params = _init_params(family, name, key, shape[1], d_hidden, dtype, w_init, h_init,
                              b_init)
        return ((shape[0], d_hidden) if return_sequences else (d_hidden,)), params

    def forward(params: Any, x: Any, key: Key | None, train: bool) -> tuple[Array, Any]:
        p, plain = _as_params(name, family, params)
        d_in = p.w_x.shape[0]
        if not (type(x) is np.ndarray and x.dtype == p.w_x.dtype and x.ndim == 3
                and x.shape[2] == d_in and x.shape[1] > 0):
            x = batch_array(name, x, dtype=p.w_x.dtype)
            raise fail(name, "x", f"must have shape (batch, T, {d_in}) with T >= 1",
                       f"shape {x.shape}")
        n, steps, _ = x.shape
        xt = x.transpose(1, 0, 2).reshape(steps * n, d_in)  # time-major rows: one copy
        carry0 = tuple(np.zeros((n, d_hidden), x.dtype) for _ in range(family.carries))
        run, _ = _run(family, p, plain, xt, steps, carry0)
        y = run.hs[1:].transpose(1, 0, 2) if return_sequences else run.hs[-1]
        return np.array(y, order="C"), (run, n, steps)

    def backward(params: Any, res: tuple[_Run, int, int], dy: Array,
                 need_dx: bool) -> tuple[Any, Array | None]:
        run, n, steps = res
        zero = np.zeros((n, d_hidden), dy.dtype)
        if return_sequences:
            dhs, dh_last = dy.transpose(1, 0, 2), zero
        else:
            dhs, dh_last = None, dy
        dcarry = (dh_last, zero)[:family.carries]
        grads, dx, _ = _run_back(family, run, dhs, dcarry, need_dx)
        if dx is None:
            return grads, None
        return grads, np.array(dx.reshape(steps, n, -1).transpose(1, 0, 2), order="C")

    return from_forward_backward(name, init, forward, backward)


def _cell_layer(family: _Family, d_hidden: int, w_init: Initializer, h_init: Initializer,
                b_init: Initializer, dtype: Any) -> Layer:
    d_hidden = positive_int(d_hidden, f"{family.kind}_cell", "d_hidden")
    _check_inits(f"{family.kind}_cell", w_init, h_init, b_init)
    name = f"{family.kind}_cell({d_hidden})"
    h_shape = (d_hidden,)
    carry_shape: Any = (h_shape, h_shape) if family.carries == 2 else h_shape

    def init(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, Any]:
        if not (isinstance(in_shape, tuple) and len(in_shape) == 2
                and _is_shape(in_shape[1]) and len(in_shape[1]) == 1):
            raise fail(name, "in_shape", f"must be (carry {carry_shape}, x_t (d_in,))", in_shape)
        if in_shape[0] != carry_shape:
            raise fail(name, "in_shape", f"carry must be {carry_shape} for d_hidden = "
                       f"{d_hidden}", f"carry {in_shape[0]} in {in_shape}")
        params = _init_params(family, name, key, int(in_shape[1][0]), d_hidden, dtype, w_init,
                              h_init, b_init)
        return (carry_shape, h_shape), params

    def check_input(x: Any, p: Any) -> tuple[tuple[Array, ...], Array]:
        if not (isinstance(x, tuple) and len(x) == 2):
            raise type_fail(name, "x", "must be a pair (carry, x_t)", describe(x))
        state, x_t = x
        carry = state if family.carries == 2 else (state,)
        if not (isinstance(carry, tuple) and len(carry) == family.carries):
            raise type_fail(name, "carry", f"must be {'(h, c)' if family.carries == 2 else 'h'}"
                            , describe(state))
        dt = p.w_x.dtype
        x_t = batch_array(name, x_t, (p.w_x.shape[0],), dt, arg="x_t")
        for c, arg in zip(carry, ("h", "c")):
            batch_array(name, c, (d_hidden,), dt, arg=arg)
            if c.shape[0] != x_t.shape[0]:
                raise fail(name, arg, f"must have x_t's batch size {x_t.shape[0]}",
                           f"shape {c.shape}")
        return carry, x_t

    def forward(params: Any, x: Any, key: Key | None, train: bool) -> tuple[Any, _Run]:
        p, plain = _as_params(name, family, params)
        carry, x_t = check_input(x, p)
        run, out = _run(family, p, plain, x_t, 1, carry)
        h = run.hs[1]
        return ((out if family.carries == 2 else h), h), run

    def backward(params: Any, run: _Run, dy: Any, need_dx: bool) -> tuple[Any, Any]:
        dstate, dh_out = dy
        dcarry = (dstate if family.carries == 2 else (dstate,))
        dcarry = (dcarry[0] + dh_out, *dcarry[1:])
        grads, dx, dcarry0 = _run_back(family, run, None, dcarry, need_dx)
        if not need_dx:
            return grads, None
        return grads, ((dcarry0 if family.carries == 2 else dcarry0[0]), dx)

    return from_forward_backward(name, init, forward, backward)


# -- public factories ------------------------------------------------------------------------

def simple_rnn(d_hidden: int, *, return_sequences: bool = True,
               w_init: Initializer = glorot_uniform, h_init: Initializer = orthogonal,
               b_init: Initializer = zeros, dtype: Any = np.float32) -> Layer:
    """Elman RNN over a sequence batch: ``h_t = tanh(x_t W_x + h_{t-1} W_h + b)``, ``h_0 = 0``.

    Shapes: ``x (n, T, D) -> y (n, T, H)`` (every ``h_t``) or ``(n, H)`` (``h_T``
    only, ``return_sequences=False``); ``W_x (D, H)``, ``W_h (H, H)``, ``b (H,)``.
    Forward: ``A = X W_x + b`` (one product over all ``n·T`` rows), then
    per step ``h_t = tanh(A_t + h_{t-1} W_h)``.
    Backward (BPTT): ``dh_t = dy_t + da_{t+1} W_hᵀ``, ``da_t = dh_t ⊙ (1 - h_t²)``;
    ``dW_x = Xᵀ dA``, ``dW_h = H_prevᵀ dA``, ``db = Σ dA``, ``dx = dA W_xᵀ``.

    Args:
        d_hidden: ``H``, the hidden state's width.
        return_sequences: output every step (default) or the last one.
        w_init, h_init, b_init: initializers of ``W_x`` (Glorot uniform),
            ``W_h`` (orthogonal, which keeps the recurrence's gain at 1 at
            the start) and ``b`` (zeros).
        dtype: dtype of the params (float32 by default).

    Raises:
        ValueError: ``init`` with an ``in_shape`` other than ``(T, D)``;
            ``apply``/``grad`` with ``x`` not ``(n, T, D)``.
        TypeError: ``x`` not a float array of the params' dtype.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> layer = simple_rnn(5, return_sequences=False)
    >>> out_shape, params = layer.init(random.key(0), (7, 3))
    >>> out_shape, layer.apply(params, np.ones((2, 7, 3), np.float32)).shape
    ((5,), (2, 5))
    """
    return _sequence_layer(_RNN, d_hidden, return_sequences, w_init, h_init, b_init, dtype)


def lstm(d_hidden: int, *, return_sequences: bool = True,
         w_init: Initializer = glorot_uniform, h_init: Initializer = orthogonal,
         b_init: Initializer = zeros, dtype: Any = np.float32) -> Layer:
    """Long short-term memory (Hochreiter & Schmidhuber, 1997), PyTorch's gate order.

    Forward, with ``G = X W_x + b`` computed once over all ``n·T`` rows and
    ``h_0 = c_0 = 0``::

        a_t = G_t + h_{t-1} W_h                        (n, 4H): blocks i, f, g, o
        i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
        c_t = f ⊙ c_{t-1} + i ⊙ g;          h_t = o ⊙ tanh(c_t)

    Backward (BPTT), ``dh_t = dy_t + dA_{t+1} W_hᵀ`` and ``dc`` carried back::

        do = dh_t ⊙ tanh c_t;   dc_t = dc_{t+1}' + dh_t ⊙ o ⊙ (1 - tanh² c_t)
        di = dc_t ⊙ g;  df = dc_t ⊙ c_{t-1};  dg = dc_t ⊙ i;   dc_{t}' = dc_t ⊙ f
        dA_t = (di, df, dg, do) ⊙ (σ'(a_i), σ'(a_f), 1 - g², σ'(a_o))
        dW_x = Xᵀ dA,  dW_h = H_prevᵀ dA,  db = Σ dA,  dx = dA W_xᵀ

    Shapes: ``x (n, T, D) -> y (n, T, H)`` or ``(n, H)`` with
    ``return_sequences=False``; ``W_x (D, 4H)``, ``W_h (H, 4H)``, ``b (4H,)``.
    One bias (PyTorch's ``bias_ih + bias_hh``).

    Args:
        d_hidden: ``H``.
        return_sequences: output every ``h_t`` (default) or ``h_T`` only.
        w_init, h_init, b_init: initializers of ``W_x`` (Glorot uniform),
            ``W_h`` (orthogonal) and ``b`` (zeros).
        dtype: dtype of the params (float32 by default).

    Raises:
        ValueError: ``init`` with an ``in_shape`` other than ``(T, D)``;
            ``apply``/``grad`` with ``x`` not ``(n, T, D)``.
        TypeError: ``x`` not a float array of the params' dtype.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> layer = lstm(4)
    >>> out_shape, params = layer.init(random.key(0), (6, 3))
    >>> out_shape, params.w_x.shape, params.w_h.shape, params.b.shape
    ((6, 4), (3, 16), (4, 16), (16,))
    >>> layer.apply(params, np.ones((2, 6, 3), np.float32)).shape
    (2, 6, 4)
    """
    return _sequence_layer(_LSTM, d_hidden, return_sequences, w_init, h_init, b_init, dtype)


def gru(d_hidden: int, *, return_sequences: bool = True,
        w_init: Initializer = glorot_uniform, h_init: Initializer = orthogonal,
        b_init: Initializer = zeros, dtype: Any = np.float32) -> Layer:
    """Gated recurrent unit (Cho et al., 2014), PyTorch's form: reset after the product.

    Forward, with ``G = X W_x + b_x`` computed once over all ``n·T`` rows and
    ``h_0 = 0``::

        q_t = h_{t-1} W_h + b_h                        (n, 3H): blocks r, z, n
        r = σ(G_r + q_r),  z = σ(G_z + q_z),  n = tanh(G_n + r ⊙ q_n)
        h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

    Backward (BPTT), ``dh_t = dy_t + (carried back)``::

        dn = dh_t ⊙ (1 - z);  dz = dh_t ⊙ (h_{t-1} - n)
        dG_n = dn ⊙ (1 - n²);  dQ_n = dG_n ⊙ r;  dr = dG_n ⊙ q_n
        dG_r = dQ_r = dr ⊙ σ'(·);  dG_z = dQ_z = dz ⊙ σ'(·)
        dh_{t-1} = dh_t ⊙ z + dQ_t W_hᵀ
        dW_x = Xᵀ dG,  dW_h = H_prevᵀ dQ,  db_x = Σ dG,  db_h = Σ dQ,  dx = dG W_xᵀ

    Shapes: ``x (n, T, D) -> y (n, T, H)`` or ``(n, H)``; ``W_x (D, 3H)``,
    ``W_h (H, 3H)``, ``b_x (3H,)``, ``b_h (3H,)`` (kept apart: ``b_hn`` sits
    inside the reset product).

    Args:
        d_hidden: ``H``.
        return_sequences: output every ``h_t`` (default) or ``h_T`` only.
        w_init, h_init, b_init: initializers of ``W_x`` (Glorot uniform),
            ``W_h`` (orthogonal) and both biases (zeros).
        dtype: dtype of the params (float32 by default).

    Raises:
        ValueError: ``init`` with an ``in_shape`` other than ``(T, D)``;
            ``apply``/``grad`` with ``x`` not ``(n, T, D)``.
        TypeError: ``x`` not a float array of the params' dtype.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> layer = gru(4, return_sequences=False)
    >>> out_shape, params = layer.init(random.key(0), (6, 3))
    >>> out_shape, params.w_h.shape, layer.apply(params, np.ones((2, 6, 3), np.float32)).shape
    ((4,), (4, 12), (2, 4))
    """
    return _sequence_layer(_GRU, d_hidden, return_sequences, w_init, h_init, b_init, dtype)


def simple_rnn_cell(d_hidden: int, *, w_init: Initializer = glorot_uniform,
                    h_init: Initializer = orthogonal, b_init: Initializer = zeros,
                    dtype: Any = np.float32) -> Layer:
    """One step of :func:`simple_rnn` as a layer on ``(h, x_t)``, for :func:`scan`.

    ``(h, x_t) -> (h', h')`` with ``h' = tanh(x_t W_x + h W_h + b)``; backward
    ``da = (dh'_carry + dh'_out) ⊙ (1 - h'²)``, ``dh = da W_hᵀ``,
    ``dx_t = da W_xᵀ``, ``dW_x = x_tᵀ da``, ``dW_h = hᵀ da``, ``db = Σ da``.
    Shapes: ``init`` takes ``((H,), (D,))`` and gives ``((H,), (H,))``; params
    as :func:`simple_rnn`'s. ``scan(simple_rnn_cell(H), (H,))`` equals
    ``simple_rnn(H)``.

    >>> from nnfunc import random
    >>> simple_rnn_cell(3).init(random.key(0), ((3,), (2,)))[0]
    ((3,), (3,))
    """
    return _cell_layer(_RNN, d_hidden, w_init, h_init, b_init, dtype)


def lstm_cell(d_hidden: int, *, w_init: Initializer = glorot_uniform,
              h_init: Initializer = orthogonal, b_init: Initializer = zeros,
              dtype: Any = np.float32) -> Layer:
    """One step of :func:`lstm` as a layer on ``((h, c), x_t)``, for :func:`scan`.

    ``((h, c), x_t) -> ((h', c'), h')`` with :func:`lstm`'s gate equations;
    backward as :func:`lstm`'s for ``T = 1``, taking ``((dh', dc'), dy)`` and
    giving ``((dh, dc), dx_t)``. Shapes: ``init`` takes ``(((H,), (H,)),
    (D,))``; params as :func:`lstm`'s. ``scan(lstm_cell(H), ((H,), (H,)))``
    equals ``lstm(H)``.

    >>> from nnfunc import random
    >>> lstm_cell(3).init(random.key(0), (((3,), (3,)), (2,)))[0]
    (((3,), (3,)), (3,))
    """
    return _cell_layer(_LSTM, d_hidden, w_init, h_init, b_init, dtype)


def gru_cell(d_hidden: int, *, w_init: Initializer = glorot_uniform,
             h_init: Initializer = orthogonal, b_init: Initializer = zeros,
             dtype: Any = np.float32) -> Layer:
    """One step of :func:`gru` as a layer on ``(h, x_t)``, for :func:`scan`.

    ``(h, x_t) -> (h', h')`` with :func:`gru`'s equations; backward as
    :func:`gru`'s for ``T = 1``. Shapes: ``init`` takes ``((H,), (D,))``;
    params as :func:`gru`'s. ``scan(gru_cell(H), (H,))`` equals ``gru(H)``.

    >>> from nnfunc import random
    >>> gru_cell(3).init(random.key(0), ((3,), (2,)))[0]
    ((3,), (3,))
    """
    return _cell_layer(_GRU, d_hidden, w_init, h_init, b_init, dtype)
