"""Loading PyTorch weights into nnfunc params, by transposing (never importing torch).

nnfunc's layouts are PyTorch's transposed for the ``x W`` convention (see
DESIGN.md, *Sequences*), so a state dict's tensors become params with a
``.T``. The helpers take any mapping of names to arrays or tensors
(``module.state_dict()`` works as it is: its tensors convert with
``np.asarray``) and return params of the given dtype.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nnfunc._validate import describe, fail, type_fail
from nnfunc.layers.attention import AttentionParams
from nnfunc.typing import Array

__all__ = ["load_torch_multihead_attention"]


def _tensor(component: str, state: Mapping[str, Any], prefix: str, name: str,
            shape: tuple[int, ...], dtype: Any) -> Array:
    """``state[prefix + name]`` as a NumPy array of ``shape`` and ``dtype``, or a clear error."""
    key = prefix + name
    if key not in state:
        raise fail(component, "state_dict", f"must hold {key!r}", f"keys {sorted(state)}")
    value = np.asarray(state[key], dtype=dtype)
    if value.shape != shape:
        raise fail(component, f"state_dict[{key!r}]", f"must have shape {shape}",
                   f"shape {value.shape}")
    return value


def load_torch_multihead_attention(state_dict: Mapping[str, Any], *, prefix: str = "",
                                   dtype: Any = np.float32) -> AttentionParams:
    """Params for :func:`nnfunc.multi_head_attention` from ``torch.nn.MultiheadAttention``.

    ``torch.nn.MultiheadAttention(D, h, batch_first=True)`` computes, for
    ``query = key = value = x``, the same function as
    ``multi_head_attention(h)``; ``causal=True`` is PyTorch's
    ``attn_mask=torch.triu(torch.ones(T, T, dtype=torch.bool), 1)`` (``True``
    masks a key). The mapping, with ``D`` the width:

    ===========================  =========================  =====================
    PyTorch                      shape                      nnfunc
    ===========================  =========================  =====================
    ``in_proj_weight``           ``(3D, D)``, rows q, k, v   ``w_qkv = Wᵀ (D, 3D)``
    ``in_proj_bias``             ``(3D,)``                  ``b_qkv``
    ``out_proj.weight``          ``(D, D)``                 ``w_o = Wᵀ``
    ``out_proj.bias``            ``(D,)``                   ``b_o``
    ===========================  =========================  =====================

    PyTorch keeps head ``j`` in rows ``j·d:(j+1)·d`` of each block, nnfunc in
    the same columns after the transpose, so the number of heads need not be
    given. A module built with ``bias=False`` has no bias entries; the
    params' biases are then ``None`` (build the layer with ``use_bias=False``).

    Args:
        state_dict: ``module.state_dict()``, or any mapping of those names
            (after ``prefix``) to arrays or tensors.
        prefix: prepended to every name, e.g. ``"encoder.attn."`` to read
            one module out of a whole model's state dict.
        dtype: dtype of the returned params.

    Raises:
        ValueError: a missing entry or a wrong shape, naming the entry;
            separate ``q_proj_weight``/``k_proj_weight`` (a module with
            ``kdim``/``vdim`` different from ``embed_dim``, which self-attention
            never needs) or ``bias_k``/``bias_v`` (``add_bias_kv=True``).
        TypeError: ``state_dict`` not a mapping.

    >>> import numpy as np
    >>> d = 4
    >>> state = {"in_proj_weight": np.zeros((3 * d, d)), "in_proj_bias": np.zeros(3 * d),
    ...          "out_proj.weight": np.eye(d), "out_proj.bias": np.zeros(d)}
    >>> [p.shape for p in load_torch_multihead_attention(state)]
    [(4, 12), (12,), (4, 4), (4,)]
    """
    name = "load_torch_multihead_attention"
    if not isinstance(state_dict, Mapping):
        raise type_fail(name, "state_dict", "must be a mapping of names to arrays "
                        "(module.state_dict())", describe(state_dict))
    for unsupported, why in (("q_proj_weight", "kdim/vdim different from embed_dim"),
                             ("bias_k", "add_bias_kv=True")):
        if prefix + unsupported in state_dict:
            raise fail(name, "state_dict", f"must come from a self-attention module without "
                       f"{why}", f"an entry {prefix + unsupported!r}")
    w_key = prefix + "in_proj_weight"
    if w_key not in state_dict:
        raise fail(name, "state_dict", f"must hold {w_key!r}", f"keys {sorted(state_dict)}")
    w_in = np.asarray(state_dict[w_key], dtype=dtype)
    if w_in.ndim != 2 or w_in.shape[0] != 3 * w_in.shape[1]:
        raise fail(name, f"state_dict[{w_key!r}]", "must have shape (3·D, D)",
                   f"shape {w_in.shape}")
    width = w_in.shape[1]
    w_out = _tensor(name, state_dict, prefix, "out_proj.weight", (width, width), dtype)
    has_bias = prefix + "in_proj_bias" in state_dict or prefix + "out_proj.bias" in state_dict
    b_in = (_tensor(name, state_dict, prefix, "in_proj_bias", (3 * width,), dtype)
            if has_bias else None)
    b_out = (_tensor(name, state_dict, prefix, "out_proj.bias", (width,), dtype)
             if has_bias else None)
    return AttentionParams(np.ascontiguousarray(w_in.T), b_in, np.ascontiguousarray(w_out.T),
                           b_out)
