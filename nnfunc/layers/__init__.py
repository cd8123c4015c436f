"""Layers with parameters or structure, one module per family.

=================  ==========================================
module             layers
=================  ==========================================
``dense``          :func:`dense`
``attention``      :func:`multi_head_attention`, :func:`position_embedding`
``conv``           :func:`conv1d`, :func:`conv2d`
``pooling``        :func:`max_pool1d`, :func:`max_pool2d`, :func:`avg_pool1d`,
                   :func:`avg_pool2d`, :data:`global_avg_pool`, :data:`global_max_pool`
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

from nnfunc.layers.attention import (
    AttentionParams,
    PositionEmbeddingParams,
    multi_head_attention,
    position_embedding,
)
from nnfunc.layers.conv import ConvParams, conv1d, conv2d
from nnfunc.layers.dense import DenseParams, dense
from nnfunc.layers.dropout import dropout
from nnfunc.layers.embedding import EmbeddingParams, embedding
from nnfunc.layers.normalization import BatchNormState, NormParams, batch_norm, layer_norm
from nnfunc.layers.pooling import (
    avg_pool1d,
    avg_pool2d,
    global_avg_pool,
    global_max_pool,
    max_pool1d,
    max_pool2d,
)
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
__all__ += ["AttentionParams", "PositionEmbeddingParams", "multi_head_attention",
            "position_embedding"]
__all__ += ["ConvParams", "avg_pool1d", "avg_pool2d", "conv1d", "conv2d", "global_avg_pool",
            "global_max_pool", "max_pool1d", "max_pool2d"]
__all__ += ["BatchNormState", "batch_norm"]
