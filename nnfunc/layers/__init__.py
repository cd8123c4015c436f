"""Layers with parameters or structure, one module per family.

=================  ==========================================
module             layers
=================  ==========================================
``dense``          :func:`dense`
``attention``      :func:`multi_head_attention`, :func:`position_embedding`
``dropout``        :func:`dropout`
``reshape``        :func:`flatten`, :func:`reshape`
=================  ==========================================

Each factory returns a :class:`nnfunc.layer.Layer`; its docstring gives the
forward and backward math. Activations live in :mod:`nnfunc.activations`,
combinators in :mod:`nnfunc.combinators`.
"""

from __future__ import annotations

from nnfunc.layers.attention import (
    AttentionParams,
    PositionEmbeddingParams,
    multi_head_attention,
    position_embedding,
)
from nnfunc.layers.dense import DenseParams, dense
from nnfunc.layers.dropout import dropout
from nnfunc.layers.reshape import flatten, reshape

__all__ = ["DenseParams", "dense", "dropout", "flatten", "reshape"]
__all__ += ["AttentionParams", "PositionEmbeddingParams", "multi_head_attention",
            "position_embedding"]
