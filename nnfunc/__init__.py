"""nnfunc: a pure-functional neural-network toolkit on NumPy.

Params are explicit pytrees; every layer, activation, loss and optimizer is
a ``NamedTuple`` of pure functions; randomness comes from explicit keys.

>>> import numpy as np
>>> import nnfunc as nf
>>> model = nf.serial(nf.dense(32), nf.relu, nf.dense(10))
>>> out_shape, params = model.init(nf.random.key(0), (64,))
>>> loss, grads = nf.value_and_grad(model, nf.softmax_cross_entropy)(
...     params, np.zeros((8, 64), np.float32), np.zeros(8, np.int64))
>>> out_shape, float(loss) > 0
((10,), True)
"""

from __future__ import annotations

import importlib
from typing import Any

from nnfunc import (
    activations,
    callbacks,
    combinators,
    initializers,
    layers,
    losses,
    optim,
    random,
    train,
    tree,
)
from nnfunc.activations import (
    elu,
    gelu,
    leaky_relu,
    linear,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    softplus,
    tanh,
)
from nnfunc.combinators import (
    fanin_concat,
    fanin_sum,
    fanout,
    identity,
    parallel,
    residual,
    serial,
)
from nnfunc.layer import Layer, apply_with_state, is_stateful, vjp, vjp_with_state
from nnfunc.layers import (
    AttentionParams,
    BatchNormState,
    ConvParams,
    DenseParams,
    EmbeddingParams,
    GRUParams,
    LSTMParams,
    NormParams,
    PositionEmbeddingParams,
    SimpleRNNParams,
    avg_pool1d,
    avg_pool2d,
    batch_norm,
    conv1d,
    conv2d,
    dense,
    dropout,
    embedding,
    flatten,
    global_avg_pool,
    global_max_pool,
    gru,
    gru_cell,
    layer_norm,
    lstm,
    lstm_cell,
    max_pool1d,
    max_pool2d,
    multi_head_attention,
    position_embedding,
    reshape,
    scan,
    simple_rnn,
    simple_rnn_cell,
)
from nnfunc.losses import (
    Loss,
    binary_crossentropy,
    categorical_crossentropy,
    huber,
    mae,
    mse,
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
)
from nnfunc.summary import summary
from nnfunc.train import value_and_grad

__version__ = "0.1.0"

# Modules that cost start-up time or pull in optional packages load on first
# use: ``nf.io`` works without ``import nnfunc.io``, and ``import nnfunc``
# stays NumPy and the standard library only.
_LAZY_MODULES = frozenset({"allocator", "datasets", "distributed", "interop", "io", "metrics",
                           "progress", "testing"})


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"nnfunc.{name}")
    raise AttributeError(f"module 'nnfunc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_MODULES})


__all__ = [
    "DenseParams", "Layer", "Loss", "activations", "binary_crossentropy", "callbacks",
    "categorical_crossentropy", "combinators", "dense", "dropout", "elu", "fanin_concat",
    "fanin_sum", "fanout", "flatten", "gelu", "huber", "identity", "initializers", "layers",
    "leaky_relu", "linear", "log_softmax", "losses", "mae", "mse", "optim", "parallel", "random",
    "relu", "reshape", "residual", "serial", "sigmoid", "sigmoid_binary_cross_entropy",
    "softmax", "softmax_cross_entropy", "softplus", "summary", "tanh", "train", "tree",
    "value_and_grad", "vjp",
]
__all__ += ["EmbeddingParams", "NormParams", "embedding", "layer_norm"]
__all__ += ["BatchNormState", "apply_with_state", "batch_norm", "is_stateful", "vjp_with_state"]
__all__ += ["GRUParams", "LSTMParams", "SimpleRNNParams", "gru", "gru_cell", "lstm", "lstm_cell",
            "scan", "simple_rnn", "simple_rnn_cell"]
__all__ += ["AttentionParams", "PositionEmbeddingParams", "multi_head_attention",
            "position_embedding"]
__all__ += ["ConvParams", "avg_pool1d", "avg_pool2d", "conv1d", "conv2d", "global_avg_pool",
            "global_max_pool", "max_pool1d", "max_pool2d"]
