"""Attention over sequences: ``multi_head_attention`` and ``position_embedding``.

Both take a sequence batch ``(n, T, D)`` (channels last, time on axis 1) and
return one of the same shape. The parameter layout of
:func:`multi_head_attention` is PyTorch's ``nn.MultiheadAttention``
transposed for the ``x W`` convention, so its weights load by transposing
(see :func:`nnfunc.interop.load_torch_multihead_attention`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from nnfunc import _kernels, random, workspace
from nnfunc._validate import describe, fail, positive_int, type_fail
from nnfunc.initializers import Initializer, check_initializer, glorot_uniform, normal, zeros
from nnfunc.layer import Layer, batch_array, from_forward_backward
from nnfunc.layers._shapes import feature_shape
from nnfunc.typing import Array, FloatArray, Key, Shape, ShapeTree

__all__ = ["AttentionParams", "PositionEmbeddingParams", "multi_head_attention",
           "position_embedding"]


class AttentionParams(NamedTuple):
    """Parameters of :func:`multi_head_attention` (``h`` heads of width ``d``).

    ``w_qkv (D, 3·h·d)``: the query, key and value projections side by side,
    head ``j`` in columns ``j·d:(j+1)·d`` of each block; ``b_qkv (3·h·d,)``;
    ``w_o (h·d, D)``, ``b_o (D,)``. Both biases are ``None`` without bias.
    """

    w_qkv: FloatArray
    b_qkv: FloatArray | None
    w_o: FloatArray
    b_o: FloatArray | None


class PositionEmbeddingParams(NamedTuple):
    """Parameters of :func:`position_embedding`: the table ``w (max_len, D)``."""

    w: FloatArray


def _sequence_input(name: str, x: Any, width: int, dtype: np.dtype[Any]) -> Array:
    """``x`` checked as a float sequence batch ``(n, T, width)`` of ``dtype``."""
    checked = batch_array(name, x, None, dtype)
    if checked.ndim != 3 or checked.shape[2] != width:
        raise fail(name, "x", f"must have shape (batch, T, {width})", f"shape {checked.shape}")
    return checked


def _sequence_shape(name: str, in_shape: ShapeTree) -> tuple[int, int]:
    shape = feature_shape(name, in_shape)
    if len(shape) != 2:
        raise fail(name, "in_shape", "must be (T, D), a sequence of D-wide steps", shape)
    return shape[0], shape[1]


def _attention_params(name: str, params: Any, use_bias: bool) -> AttentionParams:
    """``params`` as :class:`AttentionParams`, accepting a plain 4-tuple (as
    ``nnfunc.io.load`` returns without ``like=``); anything else is a ``TypeError``."""
    if isinstance(params, tuple) and len(params) == 4:
        w_qkv, b_qkv, w_o, b_o = params
        if (isinstance(w_qkv, np.ndarray) and isinstance(w_o, np.ndarray) and w_qkv.ndim == 2
                and w_o.ndim == 2 and w_qkv.shape[1] == 3 * w_o.shape[0]
                and w_o.shape[1] == w_qkv.shape[0] and w_o.dtype == w_qkv.dtype):
            biases_ok = (
                isinstance(b_qkv, np.ndarray) and b_qkv.shape == (w_qkv.shape[1],)
                and isinstance(b_o, np.ndarray) and b_o.shape == (w_o.shape[1],)
            ) if use_bias else (b_qkv is None and b_o is None)
            if biases_ok:
                return AttentionParams(w_qkv, b_qkv, w_o, b_o)
    bias = "b_qkv (3·h·d,)" if use_bias else "None"
    bias_o = "b_o (D,)" if use_bias else "None"
    raise type_fail(name, "params", f"must be AttentionParams(w_qkv (D, 3·h·d), {bias}, "
                    f"w_o (h·d, D), {bias_o}) as init returns", describe(params))


class _Residuals(NamedTuple):
    x: Array  # (n·T, D)
    q: Array  # (n, h, T, d), already scaled by 1/√d
    k: Array  # (n, h, T, d)
    v: Array  # (n, h, T, d)
    p: Array  # (n, h, T, T) attention weights
    o: Array  # (n·T, h·d) the heads' outputs side by side
    shape: tuple[int, int, int]  # (n, T, D)


def _softmax_rows(s: Array, causal: bool) -> Array:
    """Softmax over the last axis of the scores ``s`` (in place), max-shifted.

    With ``causal``, entries above the diagonal (key after query) get weight
    0: they are set to ``-inf`` before the shift, and every row keeps its
    finite diagonal, so the row maximum is finite and ``exp`` sees ``-inf``
    (giving 0) but never ``inf - inf``.
    """
    if causal:
        t_q, t_k = s.shape[-2:]
        np.copyto(s, -np.inf, where=~np.tri(t_q, t_k, dtype=bool))
    s -= s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    return s


def multi_head_attention(num_heads: int, *, d_head: int | None = None, causal: bool = False,
                         use_bias: bool = True, w_init: Initializer = glorot_uniform,
                         b_init: Initializer = zeros, dtype: Any = np.float32) -> Layer:
    """Multi-head scaled dot-product self-attention (Vaswani et al., 2017).

    Shapes: ``x (n, T, D) -> y (n, T, D)``; ``h = num_heads`` heads of width
    ``d = d_head`` (default ``D // h``); params :class:`AttentionParams`
    ``(w_qkv (D, 3·h·d), b_qkv (3·h·d,), w_o (h·d, D), b_o (D,))``.

    Forward, per sequence and head ``j`` (``X`` is ``(T, D)``)::

        [Q | K | V] = X w_qkv + b_qkv        Q_j, K_j, V_j (T, d): columns j·d:(j+1)·d of a block
        S_j = Q_j K_jᵀ / √d                  (T, T); causal: S_j[t, u] = -inf for u > t
        P_j = softmax(S_j) over keys u       max-shifted
        O_j = P_j V_j                        (T, d)
        y   = [O_0 | … | O_{h-1}] w_o + b_o  (T, D)

    Backward (``dO = dy w_oᵀ`` split into heads)::

        dw_o = Oᵀ dy,  db_o = Σ dy,  dV_j = P_jᵀ dO_j,  dP_j = dO_j V_jᵀ
        dS_j = P_j ⊙ (dP_j − rowsum(dP_j ⊙ P_j))      (softmax backward; 0 where masked)
        dQ_j = dS_j K_j / √d,  dK_j = dS_jᵀ Q_j / √d
        dw_qkv = Xᵀ [dQ | dK | dV],  db_qkv = Σ [dQ | dK | dV],  dx = [dQ | dK | dV] w_qkvᵀ

    Sums run over every sequence and step. All heads run in batched products
    on ``(n, h, T, ·)`` arrays; the projections are one product over all
    ``n·T`` rows. With ``causal=True`` step ``t`` attends to steps ``0..t``
    only (the diagonal is kept), so its output depends on inputs ``0..t``.

    Args:
        num_heads: ``h``.
        d_head: width of each head; default ``D // h`` (then ``D`` must be
            divisible by ``h``).
        causal: mask keys after the query.
        use_bias: whether to add ``b_qkv`` and ``b_o``; without, both are ``None``.
        w_init, b_init: initializers of the two kernels and the two biases.
        dtype: dtype of the params made by ``init`` (float32 by default).

    Raises:
        ValueError: ``init`` with an ``in_shape`` other than ``(T, D)``, or
            ``D`` not divisible by ``num_heads`` without ``d_head``;
            ``apply``/``grad`` with ``x`` not ``(n, T, D)``.
        TypeError: ``x`` not a float array of the params' dtype, or malformed params.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> layer = multi_head_attention(2, causal=True)
    >>> out_shape, params = layer.init(random.key(0), (5, 8))
    >>> [p.shape for p in params]
    [(8, 24), (24,), (8, 8), (8,)]
    >>> out_shape, layer.apply(params, np.ones((3, 5, 8), np.float32)).shape
    ((5, 8), (3, 5, 8))
    """
    h = positive_int(num_heads, "multi_head_attention", "num_heads")
    d_fixed = None if d_head is None else positive_int(d_head, "multi_head_attention", "d_head")
    check_initializer(w_init, "multi_head_attention", "w_init")
    check_initializer(b_init, "multi_head_attention", "b_init")
    name = f"multi_head_attention({h}{', causal' if causal else ''})"

    def init(key: Key, in_shape: ShapeTree) -> tuple[Shape, AttentionParams]:
        t, width = _sequence_shape(name, in_shape)
        if d_fixed is None and width % h:
            raise fail(name, "in_shape", f"must have a width D divisible by num_heads={h} "
                       "(or pass d_head)", (t, width))
        d = d_fixed if d_fixed is not None else width // h
        k_qkv, k_o, k_bqkv, k_bo = random.split(random.check_key(key, name), 4)
        params = AttentionParams(
            w_init(k_qkv, (width, 3 * h * d), dtype),
            b_init(k_bqkv, (3 * h * d,), dtype) if use_bias else None,
            w_init(k_o, (h * d, width), dtype),
            b_init(k_bo, (width,), dtype) if use_bias else None,
        )
        return (t, width), params

    def forward(params: AttentionParams, x: Any, key: Key | None,
                train: bool) -> tuple[Array, _Residuals]:
        if type(params) is not AttentionParams:
            params = _attention_params(name, params, use_bias)
        w_qkv, b_qkv, w_o, b_o = params
        x = _sequence_input(name, x, w_qkv.shape[0], w_qkv.dtype)
        n, t, width = x.shape
        d = w_o.shape[0] // h
        x2 = x.reshape(n * t, width)
        qkv = x2 @ w_qkv
        if b_qkv is not None:
            _kernels.add_bias(qkv, b_qkv)
        # (n·T, 3·h·d) -> (3, n, h, T, d): block, sequence, head, step, feature
        q, k, v = qkv.reshape(n, t, 3, h, d).transpose(2, 0, 3, 1, 4)
        q = q * x.dtype.type(1.0 / math.sqrt(d))
        p = _softmax_rows(q @ k.swapaxes(-1, -2), causal)
        o = (p @ v).transpose(0, 2, 1, 3).reshape(n * t, h * d)
        y = o @ w_o
        if b_o is not None:
            _kernels.add_bias(y, b_o)
        return y.reshape(n, t, width), _Residuals(x2, q, k, v, p, o, (n, t, width))

    def backward(params: AttentionParams, res: _Residuals, dy: Array,
                 need_dx: bool) -> tuple[AttentionParams, Array | None]:
        plain = type(params) is not AttentionParams
        w_qkv, b_qkv, w_o, b_o = params
        n, t, width = res.shape
        d = w_o.shape[0] // h
        dy2 = dy.reshape(n * t, width)
        dw_o = res.o.T @ dy2
        db_o = workspace.column_sums(dy2) if b_o is not None else None
        do = (dy2 @ w_o.T).reshape(n, t, h, d).transpose(0, 2, 1, 3)
        dqkv = np.empty((n, t, 3, h, d), dy.dtype)
        dq, dk, dv = dqkv.transpose(2, 0, 3, 1, 4)  # views into dqkv, written below
        np.matmul(res.p.swapaxes(-1, -2), do, out=dv)
        ds = do @ res.v.swapaxes(-1, -2)
        ds -= np.einsum("nhtu,nhtu->nht", ds, res.p)[..., None]
        ds *= res.p
        scale = dy.dtype.type(1.0 / math.sqrt(d))
        np.matmul(ds, res.k, out=dq)
        dq *= scale
        np.matmul(ds.swapaxes(-1, -2), res.q, out=dk)  # res.q carries the 1/√d
        dqkv2 = dqkv.reshape(n * t, 3 * h * d)
        dw_qkv = res.x.T @ dqkv2
        db_qkv = workspace.column_sums(dqkv2) if b_qkv is not None else None
        dx = (dqkv2 @ w_qkv.T).reshape(n, t, width) if need_dx else None
        grads = (dw_qkv, db_qkv, dw_o, db_o)
        return (grads if plain else AttentionParams(*grads)), dx  # type: ignore[return-value]

    return from_forward_backward(name, init, forward, backward, uses_key=False)


_TABLE_INIT: Initializer = normal(0.02)


def position_embedding(max_len: int, *, w_init: Initializer = _TABLE_INIT,
                       dtype: Any = np.float32) -> Layer:
    """Learned position embedding, added: ``y[:, t] = x[:, t] + w[t]``.

    Shapes: ``x (n, T, D) -> y (n, T, D)`` for any ``T <= max_len``; params
    :class:`PositionEmbeddingParams` ``(w (max_len, D),)``.
    Forward:  ``y_ntk = x_ntk + w_tk``.
    Backward: ``dx = dy``; ``dw_t = Σ_n dy_nt`` for ``t < T``, and 0 for the
    rows ``T..max_len-1`` the input did not reach.

    Args:
        max_len: the longest sequence the table covers.
        w_init: initializer of the table (default ``N(0, 0.02²)``, as in GPT-2).
        dtype: dtype of the params made by ``init`` (float32 by default).

    Raises:
        ValueError: ``init``/``apply`` with a sequence longer than ``max_len``
            or an ``in_shape`` other than ``(T, D)``; ``x`` of the wrong width.
        TypeError: ``x`` not a float array of the params' dtype.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> layer = position_embedding(16)
    >>> out_shape, params = layer.init(random.key(0), (10, 4))
    >>> params.w.shape, layer.apply(params, np.zeros((2, 7, 4), np.float32)).shape
    ((16, 4), (2, 7, 4))
    """
    length = positive_int(max_len, "position_embedding", "max_len")
    check_initializer(w_init, "position_embedding", "w_init")
    name = f"position_embedding({length})"

    def check_length(t: int, arg: str) -> None:
        if t > length:
            raise fail(name, arg, f"must have at most max_len={length} steps (build the layer "
                       "with a larger max_len, or feed shorter sequences)", f"T = {t}")

    def init(key: Key, in_shape: ShapeTree) -> tuple[Shape, PositionEmbeddingParams]:
        t, width = _sequence_shape(name, in_shape)
        check_length(t, "in_shape")
        w = w_init(random.check_key(key, name), (length, width), dtype)
        return (t, width), PositionEmbeddingParams(w)

    def forward(params: PositionEmbeddingParams, x: Any, key: Key | None,
                train: bool) -> tuple[Array, None]:
        if not (isinstance(params, tuple) and len(params) == 1
                and isinstance(params[0], np.ndarray) and params[0].shape[:1] == (length,)
                and params[0].ndim == 2):
            raise type_fail(name, "params", f"must be PositionEmbeddingParams(w ({length}, D)) "
                            "as init returns", describe(params))
        w = params[0]
        x = _sequence_input(name, x, w.shape[1], w.dtype)
        check_length(x.shape[1], "x")
        return x + w[:x.shape[1]], None

    def backward(params: PositionEmbeddingParams, res: None, dy: Array,
                 need_dx: bool) -> tuple[PositionEmbeddingParams, Array | None]:
        w = params[0]
        dw = np.zeros_like(w)
        np.add.reduce(dy, axis=0, out=dw[:dy.shape[1]])
        grads = (dw,) if type(params) is not PositionEmbeddingParams else (
            PositionEmbeddingParams(dw))
        return grads, (dy if need_dx else None)  # type: ignore[return-value]

    return from_forward_backward(name, init, forward, backward, uses_key=False)
