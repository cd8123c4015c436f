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

from typing import Any, NamedTuple

import numpy as np

from nnfunc import _kernels, random, workspace
from nnfunc._validate import describe, fail, positive_int, type_fail
from nnfunc.initializers import Initializer, check_initializer, glorot_uniform, orthogonal, zeros
from nnfunc.layer import Layer, batch_array, from_forward_backward
from nnfunc.layers._recurrences import (
    Back,
    Steps,
    _gru_back,
    _gru_steps,
    _lstm_back,
    _lstm_steps,
    _rnn_back,
    _rnn_steps,
)
from nnfunc.layers._scan import _is_shape, scan
from nnfunc.layers._shapes import feature_shape
from nnfunc.typing import Array, FloatArray, Key, ShapeTree

__all__ = ["GRUParams", "LSTMParams", "SimpleRNNParams", "gru", "gru_cell", "lstm",
           "lstm_cell", "scan", "simple_rnn", "simple_rnn_cell"]


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
    _kernels.add_bias(gx, b_x)
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

    return from_forward_backward(name, init, forward, backward, uses_key=False)


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

    return from_forward_backward(name, init, forward, backward, uses_key=False)


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
