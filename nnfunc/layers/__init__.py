"""Layers with parameters or structure, one module per family.

=================  ==========================================
module             layers
=================  ==========================================
``dense``          :func:`dense`
``dropout``        :func:`dropout`
``reshape``        :func:`flatten`, :func:`reshape`
``normalization``  :func:`layer_norm`, :func:`batch_norm`
``embedding``      :func:`embedding`
``recurrent``      :func:`scan`, :func:`simple_rnn`, :func:`lstm`, :func:`gru`, and their cells
=================  ==========================================

Each factory returns a :class:`nnfunc.layer.Layer`; its docstring gives the
forward and backward math. Activations live in :mod:`nnfunc.activations`,
combinators in :mod:`nnfunc.combinators`.
"""

from __future__ import annotations

from nnfunc.layers.dense import DenseParams, dense
from nnfunc.layers.dropout import dropout
from nnfunc.layers.embedding import EmbeddingParams, embedding
from nnfunc.layers.normalization import BatchNormState, NormParams, batch_norm, layer_norm
from nnfunc.layers.recurrent import (
    GRUParams,
    LSTMParams,
    SimpleRNNParams,
    gru,
    gru_cell,
    lstm,
    lstm_cell,
    scan,
    simple_rnn,
    simple_rnn_cell,
)
from nnfunc.layers.reshape import flatten, reshape

__all__ = ["DenseParams", "dense", "dropout", "flatten", "reshape"]
__all__ += ["EmbeddingParams", "NormParams", "embedding", "layer_norm"]
__all__ += ["GRUParams", "LSTMParams", "SimpleRNNParams", "gru", "gru_cell", "lstm", "lstm_cell",
            "scan", "simple_rnn", "simple_rnn_cell"]
__all__ += ["BatchNormState", "batch_norm"]
