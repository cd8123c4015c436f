"""Layers with parameters or structure, one module per family.

=================  ==========================================
module             layers
=================  ==========================================
``dense``          :func:`dense`
``dropout``        :func:`dropout`
``reshape``        :func:`flatten`, :func:`reshape`
``normalization``  :func:`layer_norm`
``embedding``      :func:`embedding`
=================  ==========================================

Each factory returns a :class:`nnfunc.layer.Layer`; its docstring gives the
forward and backward math. Activations live in :mod:`nnfunc.activations`,
combinators in :mod:`nnfunc.combinators`.
"""

from __future__ import annotations

from nnfunc.layers.dense import DenseParams, dense
from nnfunc.layers.dropout import dropout
from nnfunc.layers.embedding import EmbeddingParams, embedding
from nnfunc.layers.normalization import NormParams, layer_norm
from nnfunc.layers.reshape import flatten, reshape

__all__ = ["DenseParams", "EmbeddingParams", "NormParams", "dense", "dropout", "embedding",
           "flatten", "layer_norm", "reshape"]
