"""The RNN, LSTM and GRU recurrences, time-major: each family's forward steps and their
backward (backpropagation through time) side by side, for :mod:`nnfunc.layers.recurrent`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nnfunc import _kernels
from nnfunc.typing import Array

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
        _kernels.add_bias(g, b_h)
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
