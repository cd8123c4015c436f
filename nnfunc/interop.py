"""Load PyTorch weights into nnfunc params — without importing torch.

nnfunc's recurrent and attention layers keep PyTorch's parameter layouts and gate orders,
transposed for the ``x W`` convention, so a trained ``torch.nn`` module's
weights load by transposing. Each helper takes the module's state dict as
NumPy arrays (any value that ``np.asarray`` takes)::

    state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    params = nnfunc.interop.load_torch_lstm(state)

=====================  =======================================================
helper                 PyTorch module -> nnfunc layer and params
=====================  =======================================================
``load_torch_rnn``     ``nn.RNN`` (tanh) -> :func:`~nnfunc.layers.simple_rnn`
``load_torch_lstm``    ``nn.LSTM`` -> :func:`~nnfunc.layers.lstm`
``load_torch_gru``     ``nn.GRU`` -> :func:`~nnfunc.layers.gru`
``load_torch_multi…``  ``nn.MultiheadAttention`` -> :func:`~nnfunc.layers.multi_head_attention`
=====================  =======================================================

The mapping, for ``k`` gate blocks (1, 4, 3) of ``H`` rows each: ``w_x =
weight_ih_l0ᵀ (D, kH)``, ``w_h = weight_hh_l0ᵀ (H, kH)``, and ``b =
bias_ih_l0 + bias_hh_l0`` where nnfunc keeps one bias (RNN, LSTM; both
biases only ever appear summed), ``b_x = bias_ih_l0``, ``b_h = bias_hh_l0``
for the GRU (whose ``b_hn`` sits inside the reset product). A module built
with ``bias=False`` loads with zero biases. Only what nnfunc's layers
compute loads: one layer (``num_layers=1``), one direction
(``bidirectional=False``), no projection (``proj_size=0``), and for
``nn.RNN`` the default ``nonlinearity="tanh"`` (a state dict cannot tell a
ReLU RNN apart, so that is on you). ``batch_first`` does not change the
weights; nnfunc's input is ``(n, T, D)``, which is ``batch_first=True``.
A state dict of a larger model loads through ``prefix`` (e.g.
``prefix="encoder."`` for the entries ``encoder.weight_ih_l0``, …).

>>> import numpy as np
>>> H, D = 2, 3
>>> state = {"weight_ih_l0": np.ones((4 * H, D)), "weight_hh_l0": np.ones((4 * H, H)),
...          "bias_ih_l0": np.ones(4 * H), "bias_hh_l0": np.ones(4 * H)}
>>> p = load_torch_lstm(state)
>>> p.w_x.shape, p.w_h.shape, p.b[:2].tolist()
((3, 8), (2, 8), [2.0, 2.0])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nnfunc._validate import describe, fail, type_fail
from nnfunc.layers.attention import AttentionParams
from nnfunc.layers.recurrent import GRUParams, LSTMParams, SimpleRNNParams
from nnfunc.typing import Array

__all__ = ["load_torch_gru", "load_torch_lstm", "load_torch_multihead_attention", "load_torch_rnn"]


def _entries(component: str, state_dict: Any, prefix: str) -> dict[str, Any]:
    """The state dict's entries under ``prefix``, with the prefix removed."""
    if not isinstance(state_dict, Mapping):
        raise type_fail(component, "state_dict", "must be a mapping of names to arrays "
                        "({k: v.detach().numpy() for k, v in module.state_dict().items()})",
                        describe(state_dict))
    if not isinstance(prefix, str):
        raise type_fail(component, "prefix", "must be a str", describe(prefix))
    return {k[len(prefix):]: v for k, v in state_dict.items()
            if isinstance(k, str) and k.startswith(prefix)}


def _array(component: str, name: str, value: Any, dtype: Any) -> Array:
    try:
        a = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as err:  # e.g. a tensor that requires grad
        raise type_fail(component, name, "must be an array (pass v.detach().numpy())",
                        f"{type(value).__name__}: {err}") from err
    if a.dtype.kind not in "fiu":
        raise type_fail(component, name, "must be a numeric array", describe(a))
    return np.array(a, dtype=dtype if dtype is not None else (
        a.dtype if a.dtype.kind == "f" else np.float32), order="C")


def _take(component: str, state_dict: Any, prefix: str, required: tuple[str, ...],
          optional: tuple[str, ...], dtype: Any, what: str) -> dict[str, Array | None]:
    """The named arrays (``None`` for an absent optional one), checking that nothing
    else is there, so a model that nnfunc would compute differently never loads."""
    entries = _entries(component, state_dict, prefix)
    missing = [prefix + k for k in required if k not in entries]
    if missing:
        raise fail(component, "state_dict", f"must hold {', '.join(prefix + k for k in required)}"
                   f" ({what})", f"no {', '.join(missing)} among {sorted(state_dict)}")
    extra = sorted(prefix + k for k in entries if k not in required + optional)
    if extra:
        raise fail(component, "state_dict", f"must hold only the entries of {what}",
                   f"also {', '.join(extra)}")
    return {k: (_array(component, prefix + k, entries[k], dtype) if k in entries else None)
            for k in required + optional}


def _recurrent(component: str, state_dict: Any, prefix: str, gates: int,
               dtype: Any, module: str) -> tuple[Array, Array, Array, Array]:
    """``(w_x, w_h, b_ih, b_hh)`` of a one-layer unidirectional recurrent module."""
    what = (f"a one-layer, unidirectional torch.nn.{module}"
            + (" without projection" if module == "LSTM" else ""))
    a = _take(component, state_dict, prefix, ("weight_ih_l0", "weight_hh_l0"),
              ("bias_ih_l0", "bias_hh_l0"), dtype, what)
    w_ih, w_hh = a["weight_ih_l0"], a["weight_hh_l0"]
    assert w_ih is not None
    assert w_hh is not None
    if w_hh.ndim != 2 or w_hh.shape[0] != gates * w_hh.shape[1]:
        raise fail(component, prefix + "weight_hh_l0", f"must have shape ({gates}·H, H)",
                   f"shape {w_hh.shape}")
    rows = w_hh.shape[0]
    if w_ih.ndim != 2 or w_ih.shape[0] != rows:
        raise fail(component, prefix + "weight_ih_l0", f"must have shape ({rows}, D) to match "
                   f"{prefix}weight_hh_l0 {w_hh.shape}", f"shape {w_ih.shape}")
    b_ih, b_hh = a["bias_ih_l0"], a["bias_hh_l0"]
    if (b_ih is None) != (b_hh is None):
        raise fail(component, "state_dict", "must hold both biases or neither",
                   f"only {prefix}{'bias_ih_l0' if b_hh is None else 'bias_hh_l0'}")
    biases = []
    for name, b in (("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)):
        if b is None:
            b = np.zeros(rows, w_hh.dtype)
        elif b.shape != (rows,):
            raise fail(component, prefix + name, f"must have shape ({rows},)", f"shape {b.shape}")
        biases.append(b.astype(w_hh.dtype, copy=False))
    return (np.ascontiguousarray(w_ih.T.astype(w_hh.dtype, copy=False)),
            np.ascontiguousarray(w_hh.T), biases[0], biases[1])


def load_torch_rnn(state_dict: Mapping[str, Any], *, prefix: str = "",
                   dtype: Any = None) -> SimpleRNNParams:
    """:func:`~nnfunc.layers.simple_rnn` params from a ``torch.nn.RNN`` state dict.

    ``w_x = weight_ih_l0ᵀ (D, H)``, ``w_h = weight_hh_l0ᵀ (H, H)``,
    ``b = bias_ih_l0 + bias_hh_l0 (H,)``. ``dtype`` (default: the state
    dict's float dtype) casts every array.

    Raises:
        TypeError: ``state_dict`` not a mapping, or a value not an array.
        ValueError: a missing or unexpected entry (a second layer, the other
            direction), or shapes that do not fit together.
    """
    w_x, w_h, b_ih, b_hh = _recurrent("load_torch_rnn", state_dict, prefix, 1, dtype, "RNN")
    return SimpleRNNParams(w_x, w_h, b_ih + b_hh)


def load_torch_lstm(state_dict: Mapping[str, Any], *, prefix: str = "",
                    dtype: Any = None) -> LSTMParams:
    """:func:`~nnfunc.layers.lstm` params from a ``torch.nn.LSTM`` state dict.

    ``w_x = weight_ih_l0ᵀ (D, 4H)``, ``w_h = weight_hh_l0ᵀ (H, 4H)``,
    ``b = bias_ih_l0 + bias_hh_l0 (4H,)``; PyTorch's gate blocks are nnfunc's,
    ``i, f, g, o``. ``dtype`` (default: the state dict's float dtype) casts
    every array.

    Raises:
        TypeError: ``state_dict`` not a mapping, or a value not an array.
        ValueError: a missing or unexpected entry (a second layer, the other
            direction, ``weight_hr_l0`` of a projection), or shapes that do
            not fit together.
    """
    w_x, w_h, b_ih, b_hh = _recurrent("load_torch_lstm", state_dict, prefix, 4, dtype, "LSTM")
    return LSTMParams(w_x, w_h, b_ih + b_hh)


def load_torch_gru(state_dict: Mapping[str, Any], *, prefix: str = "",
                   dtype: Any = None) -> GRUParams:
    """:func:`~nnfunc.layers.gru` params from a ``torch.nn.GRU`` state dict.

    ``w_x = weight_ih_l0ᵀ (D, 3H)``, ``w_h = weight_hh_l0ᵀ (H, 3H)``,
    ``b_x = bias_ih_l0``, ``b_h = bias_hh_l0`` (kept apart: PyTorch's GRU
    applies the reset gate to ``h W_hn + b_hn``, as nnfunc's does); gate
    blocks ``r, z, n``. ``dtype`` (default: the state dict's float dtype)
    casts every array.

    Raises:
        TypeError: ``state_dict`` not a mapping, or a value not an array.
        ValueError: a missing or unexpected entry, or shapes that do not fit.
    """
    w_x, w_h, b_ih, b_hh = _recurrent("load_torch_gru", state_dict, prefix, 3, dtype, "GRU")
    return GRUParams(w_x, w_h, b_ih, b_hh)


def load_torch_multihead_attention(state_dict: Mapping[str, Any], *, prefix: str = "",
                                   dtype: Any = None) -> AttentionParams:
    """:func:`~nnfunc.layers.multi_head_attention` params from ``torch.nn.MultiheadAttention``.

    ``torch.nn.MultiheadAttention(D, h, batch_first=True)`` called as
    ``mha(x, x, x, need_weights=False)`` computes the same function as
    ``multi_head_attention(h)``; ``causal=True`` is PyTorch's
    ``attn_mask=torch.triu(torch.ones(T, T, dtype=torch.bool), 1)`` (``True``
    masks a key). The mapping, with ``D`` the width:

    ===================  ==================================  =====================
    PyTorch              shape                               nnfunc
    ===================  ==================================  =====================
    ``in_proj_weight``   ``(3D, D)``, row blocks q, k, v     ``w_qkv = Wᵀ (D, 3D)``
    ``in_proj_bias``     ``(3D,)``                           ``b_qkv``
    ``out_proj.weight``  ``(D, D)``                          ``w_o = Wᵀ``
    ``out_proj.bias``    ``(D,)``                            ``b_o``
    ===================  ==================================  =====================

    PyTorch keeps head ``j`` in rows ``j·d:(j+1)·d`` of each block, nnfunc in
    those columns after the transpose, so the number of heads need not be
    given (pass it to the layer). A module built with ``bias=False`` has no
    bias entries and loads with ``None`` biases (build the layer with
    ``use_bias=False``). ``dtype`` (default: the state dict's float dtype)
    casts every array.

    Raises:
        TypeError: ``state_dict`` not a mapping, or a value not an array.
        ValueError: a missing or unexpected entry (``q_proj_weight`` of a
            module with ``kdim``/``vdim`` other than ``embed_dim``, ``bias_k``
            of ``add_bias_kv=True``: not self-attention as nnfunc computes
            it), one bias without the other, or shapes that do not fit.

    >>> import numpy as np
    >>> d = 4
    >>> state = {"in_proj_weight": np.zeros((3 * d, d)), "in_proj_bias": np.zeros(3 * d),
    ...          "out_proj.weight": np.eye(d), "out_proj.bias": np.zeros(d)}
    >>> [p.shape for p in load_torch_multihead_attention(state)]
    [(4, 12), (12,), (4, 4), (4,)]
    """
    name = "load_torch_multihead_attention"
    a = _take(name, state_dict, prefix, ("in_proj_weight", "out_proj.weight"),
              ("in_proj_bias", "out_proj.bias"), dtype,
              "a torch.nn.MultiheadAttention with kdim = vdim = embed_dim, add_bias_kv=False")
    w_in, w_out, b_in, b_out = (a["in_proj_weight"], a["out_proj.weight"], a["in_proj_bias"],
                                a["out_proj.bias"])
    assert w_in is not None
    assert w_out is not None
    if w_in.ndim != 2 or w_in.shape[0] != 3 * w_in.shape[1]:
        raise fail(name, prefix + "in_proj_weight", "must have shape (3·D, D)",
                   f"shape {w_in.shape}")
    width = w_in.shape[1]
    if w_out.shape != (width, width):
        raise fail(name, prefix + "out_proj.weight", f"must have shape ({width}, {width}) to "
                   f"match {prefix}in_proj_weight {w_in.shape}", f"shape {w_out.shape}")
    if (b_in is None) != (b_out is None):
        raise fail(name, "state_dict", "must hold both biases or neither",
                   f"only {prefix}{'in_proj_bias' if b_out is None else 'out_proj.bias'}")
    for key, b, rows in (("in_proj_bias", b_in, 3 * width), ("out_proj.bias", b_out, width)):
        if b is not None and b.shape != (rows,):
            raise fail(name, prefix + key, f"must have shape ({rows},)", f"shape {b.shape}")
    cast = w_in.dtype
    return AttentionParams(
        np.ascontiguousarray(w_in.T), None if b_in is None else b_in.astype(cast, copy=False),
        np.ascontiguousarray(w_out.T.astype(cast, copy=False)),
        None if b_out is None else b_out.astype(cast, copy=False))
