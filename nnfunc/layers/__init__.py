"""Layers with parameters or structure, one module per family.

=================  ==========================================
module             layers
=================  ==========================================
``dense``          :func:`dense`
``conv``           :func:`conv1d`, :func:`conv2d`
``pooling``        :func:`max_pool1d`, :func:`max_pool2d`, :func:`avg_pool1d`,
                   :func:`avg_pool2d`, :data:`global_avg_pool`, :data:`global_max_pool`
``dropout``        :func:`dropout`
``reshape``        :func:`flatten`, :func:`reshape`
=================  ==========================================

Each factory returns a :class:`nnfunc.layer.Layer`; its docstring gives the
forward and backward math. Activations live in :mod:`nnfunc.activations`,
combinators in :mod:`nnfunc.combinators`.
"""

from __future__ import annotations

from nnfunc.layers.conv import ConvParams, conv1d, conv2d
from nnfunc.layers.dense import DenseParams, dense
from nnfunc.layers.dropout import dropout
from nnfunc.layers.pooling import (
    avg_pool1d,
    avg_pool2d,
    global_avg_pool,
    global_max_pool,
    max_pool1d,
    max_pool2d,
)
from nnfunc.layers.reshape import flatten, reshape

__all__ = ["DenseParams", "dense", "dropout", "flatten", "reshape"]
__all__ += ["ConvParams", "avg_pool1d", "avg_pool2d", "conv1d", "conv2d", "global_avg_pool",
            "global_max_pool", "max_pool1d", "max_pool2d"]
