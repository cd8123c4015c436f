"""The one registry of nnfunc components that the property tests run over.

A new layer, activation, combinator or loss gets a line here and is then
gradient-checked, dtype-checked, mutation-checked and key-checked by
``test_components.py`` and ``test_losses.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st

from nnfunc import activations as act
from nnfunc import losses
from nnfunc.combinators import (
    fanin_concat,
    fanin_sum,
    fanout,
    identity,
    parallel,
    residual,
    serial,
)
from nnfunc.layer import Layer
from nnfunc.layers import (
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
    layer_norm,
    max_pool1d,
    max_pool2d,
    multi_head_attention,
    position_embedding,
    reshape,
)
from nnfunc.layers import recurrent as rnn
from nnfunc.losses import _CLASS_MAJOR_MAX, Loss
from nnfunc.testing import strategies as nst


class Entry(NamedTuple):
    """A layer under test, the input shapes it takes, and where its kinks are.

    Composite entries use smooth activations: finite differences of a kinked
    function inside a model would straddle kinks the input strategy cannot
    steer clear of. Kinked activations are tested alone, away from the kink.
    """

    id: str
    layer: Layer
    in_shapes: Any = None  # None: any 1-D feature shape
    kinks: tuple[float, ...] = ()
    train: bool = False
    random: bool = False  # output depends on the key
    ids: int | None = None  # the input is integer ids in [0, ids)
    x_map: Callable[[Any], Any] | None = None  # applied to each drawn input batch


def _vec(lo: int = 1, hi: int = 6) -> st.SearchStrategy[tuple[int, ...]]:
    return nst.feature_shapes(1, 1, lo, hi)


LAYERS: list[Entry] = [
    Entry("dense", dense(3)),
    Entry("dense_wide", dense(7), _vec(5, 9)),
    Entry("dense_no_bias", dense(2, use_bias=False)),
    # dense on the last axis of (n, …, d_in): inputs of rank 2–4
    Entry("dense_any_rank", dense(3), nst.feature_shapes(1, 3, 1, 4)),
    Entry("dense_any_rank_no_bias", dense(5, use_bias=False), nst.feature_shapes(2, 3, 1, 3)),
    Entry("dropout_train", dropout(0.3), nst.feature_shapes(1, 2), train=True, random=True),
    Entry("dropout_eval", dropout(0.5), nst.feature_shapes(1, 2)),
    Entry("dropout_zero_rate", dropout(0.0), train=True),
    Entry("flatten", flatten, nst.feature_shapes(1, 3, 1, 4)),
    Entry("reshape", reshape((3, 2)), (6,)),
    # activations
    Entry("linear", act.linear, nst.feature_shapes(1, 2)),
    Entry("sigmoid", act.sigmoid, nst.feature_shapes(1, 2)),
    Entry("relu", act.relu, nst.feature_shapes(1, 2), kinks=(0.0,)),
    Entry("tanh", act.tanh),
    Entry("leaky_relu", act.leaky_relu(0.1), kinks=(0.0,)),
    Entry("elu", act.elu(0.7), kinks=(0.0,)),
    Entry("gelu", act.gelu),
    Entry("softplus", act.softplus),
    Entry("softmax", act.softmax, nst.feature_shapes(1, 2)),
    Entry("log_softmax", act.log_softmax),
    # combinators
    Entry("serial", serial(dense(4), act.tanh, dense(3), act.sigmoid)),
    Entry("serial_empty", serial()),
    Entry("parallel", parallel(dense(2), act.tanh), st.tuples(_vec(), _vec())),
    Entry("fanout", fanout(3)),
    Entry("fanin_sum", fanin_sum, _vec().map(lambda s: (s, s, s))),
    Entry("fanin_concat", fanin_concat(), st.tuples(_vec(), _vec())),
    Entry("fanin_concat_axis", fanin_concat(-2),
          st.tuples(_vec(1, 3), _vec(1, 3), _vec(1, 3)).map(lambda s: ((s[0][0], 2),
                                                                        (s[1][0], 2)))),
    Entry("residual", residual(serial(dense(5), act.tanh, dense(5))), (5,)),
    Entry("identity", identity),
    Entry("branches", serial(dense(4), fanout(2), parallel(dense(3), serial(dense(3), act.gelu)),
                             fanin_sum, act.softplus)),
    # attention: (T, D) sequences, T = 1 and odd widths included
    Entry("multi_head_attention", multi_head_attention(2),
          st.tuples(st.integers(1, 4), st.sampled_from([2, 4, 6]))),
    Entry("multi_head_attention_causal", multi_head_attention(1, causal=True),
          nst.feature_shapes(2, 2, 1, 5)),
    Entry("multi_head_attention_causal_no_bias",
          multi_head_attention(3, d_head=1, causal=True, use_bias=False),
          nst.feature_shapes(2, 2, 1, 5)),
    Entry("multi_head_attention_d_head", multi_head_attention(2, d_head=3),
          st.tuples(st.integers(1, 4), st.sampled_from([1, 3, 5]))),
    Entry("position_embedding", position_embedding(5), nst.feature_shapes(2, 2, 1, 5)),
    Entry("transformer_block",
          serial(position_embedding(3), residual(multi_head_attention(2, causal=True)),
                 residual(serial(dense(3), act.gelu, dense(2)))),
          st.tuples(st.integers(1, 3), st.just(2))),
    Entry("mlp_with_dropout", serial(dense(6), act.tanh, dropout(0.4), dense(3)), train=True,
          random=True),
]

# normalisation (1-, 2- and 4-D samples; batch 1 and odd sizes drawn). eps is 1e-3 here:
# where two of a few drawn values nearly coincide, σ² ≈ eps and the curvature scale is
# √eps, so the default 1e-5 puts it (3e-3) within reach of the finite-difference step; the
# formula is the same for every eps, and test_normalization checks the default against
# values written out by hand.
_EPS = 1e-3
LAYERS += [
    Entry("layer_norm", layer_norm(eps=_EPS), nst.feature_shapes(1, 1, 2, 6)),
    Entry("layer_norm_nd", layer_norm(eps=_EPS), nst.feature_shapes(2, 4, 1, 3)),
    Entry("layer_norm_one_channel", layer_norm(eps=_EPS), nst.feature_shapes(1, 3, 1, 1)),
    Entry("layer_norm_no_scale", layer_norm(eps=_EPS, use_scale=False),
          nst.feature_shapes(1, 2, 2, 5)),
    Entry("layer_norm_no_bias", layer_norm(eps=_EPS, use_bias=False),
          nst.feature_shapes(1, 2, 2, 5)),
    Entry("layer_norm_plain", layer_norm(eps=_EPS, use_scale=False, use_bias=False)),
    Entry("norm_residual_block", serial(residual(serial(layer_norm(eps=_EPS), dense(3), act.tanh)),
                                        layer_norm(eps=_EPS)), (3,)),
]

# batch norm, stateful, in both modes (a training step has moved the drawn state); alone and
# inside every combinator
LAYERS += [
    Entry("batch_norm_train", batch_norm(eps=_EPS), nst.feature_shapes(1, 1, 1, 5),
          train=True),
    Entry("batch_norm_eval", batch_norm(eps=_EPS), nst.feature_shapes(1, 1, 1, 5)),
    Entry("batch_norm_train_nd", batch_norm(eps=_EPS), nst.feature_shapes(2, 4, 1, 3),
          train=True),
    Entry("batch_norm_eval_nd", batch_norm(eps=_EPS), nst.feature_shapes(2, 4, 1, 3)),
    Entry("batch_norm_plain_train", batch_norm(eps=_EPS, use_scale=False, use_bias=False,
                                               momentum=0.5), train=True),
    Entry("batch_norm_no_bias_eval", batch_norm(eps=_EPS, use_bias=False)),
    Entry("serial_bn_train", serial(dense(4), batch_norm(eps=_EPS), act.tanh, dense(2)),
          train=True),
    Entry("serial_bn_eval", serial(dense(4), batch_norm(eps=_EPS), act.tanh, dense(2))),
    Entry("nested_bn_dropout", serial(serial(dense(3), batch_norm(eps=_EPS)), act.tanh,
                                      dropout(0.3), residual(batch_norm(eps=_EPS))),
          train=True, random=True),
    Entry("parallel_bn", parallel(batch_norm(eps=_EPS), act.tanh), st.tuples(_vec(), _vec()),
          train=True),
    Entry("branches_bn", serial(fanout(2), parallel(batch_norm(eps=_EPS), dense(3)),
                                fanin_sum), (3,), train=True),
]

# embeddings: ids of rank 0 to 2 per sample, small vocabularies so that ids repeat
LAYERS += [
    Entry("embedding", embedding(5, 3), nst.feature_shapes(0, 2, 1, 4), ids=5),
    Entry("embedding_one_id", embedding(1, 2), nst.feature_shapes(1, 1, 1, 3), ids=1),
    Entry("embedding_model", serial(embedding(7, 3), layer_norm(eps=_EPS), flatten, dense(2)),
          nst.feature_shapes(1, 1, 1, 4), ids=7),
]

# -- sequences (n, T, D): T = 1 and odd widths drawn -------------------------------------
_seq = st.tuples(st.integers(1, 3), st.integers(1, 4))  # (T, D)


def _cell_in(carry: Any) -> st.SearchStrategy[Any]:
    return st.integers(1, 4).map(lambda d: (carry, (d,)))


LAYERS += [
    Entry("scan_user_cell", rnn.scan(serial(fanin_concat(), dense(3), act.tanh, fanout(2)),
                                     (3,)), _seq),
    Entry("simple_rnn", rnn.simple_rnn(3), _seq),
    Entry("simple_rnn_last", rnn.simple_rnn(5, return_sequences=False), _seq),
    Entry("lstm", rnn.lstm(3), _seq),
    Entry("lstm_last", rnn.lstm(3, return_sequences=False), _seq),
    Entry("gru", rnn.gru(3), _seq),
    Entry("gru_last", rnn.gru(3, return_sequences=False), _seq),
    Entry("simple_rnn_cell", rnn.simple_rnn_cell(3), _cell_in((3,))),
    Entry("lstm_cell", rnn.lstm_cell(3), _cell_in(((3,), (3,)))),
    Entry("gru_cell", rnn.gru_cell(3), _cell_in((3,))),
]


# -- convolution and pooling (conv) ----------------------------------------------------

def _image(lo: int = 1, hi: int = 5, channels: int = 2) -> st.SearchStrategy[tuple[int, ...]]:
    """``(H, W, C)``: odd and even sides in ``[lo, hi]``, one to ``channels`` channels."""
    return st.tuples(st.integers(lo, hi), st.integers(lo, hi), st.integers(1, channels))


def _sequence(lo: int = 1, hi: int = 7, channels: int = 3) -> st.SearchStrategy[tuple[int, ...]]:
    """``(T, C)``."""
    return st.tuples(st.integers(lo, hi), st.integers(1, channels))


def _distinct(x: Any) -> Any:
    """The batch's values replaced by their ranks, spaced 0.1 apart and never 0.

    Order (hence each window's argmax) is kept, but no two values are closer
    than the finite-difference stencil's reach, so a max is differentiable
    wherever it is probed: a tie has no derivative (its one-sided slopes are 0
    and 1); the tie rule is tested against a loop in ``test_pooling.py``.
    """
    ranks = np.argsort(np.argsort(x, axis=None), axis=None).reshape(x.shape)
    return ((ranks - x.size // 2 + 0.5) * 0.1).astype(x.dtype)


LAYERS += [
    Entry("conv2d_valid", conv2d(2, 3), _image(3)),
    Entry("conv2d_same_stride2", conv2d(3, (3, 2), stride=2, padding="same"), _image()),
    Entry("conv2d_dilated_strided", conv2d(2, 2, dilation=2, stride=(1, 2)), _image(3)),
    Entry("conv2d_pairs_no_bias",
          conv2d(2, (2, 3), padding=((1, 0), (0, 2)), use_bias=False), _image()),
    Entry("conv2d_int_pad", conv2d(1, 3, padding=1, stride=(2, 1), dilation=(1, 2)),
          _image(3)),
    Entry("conv1d_same_dilated", conv1d(3, 3, padding="same", dilation=2), _sequence()),
    Entry("conv1d_strided", conv1d(2, 2, stride=2, padding=(0, 1)), _sequence()),
    Entry("max_pool2d", max_pool2d(2), _image(2), x_map=_distinct),
    Entry("max_pool2d_same_overlap", max_pool2d(3, stride=2, padding="same"), _image(),
          x_map=_distinct),
    Entry("max_pool2d_pairs", max_pool2d((2, 3), stride=(1, 2), padding=((1, 0), (0, 2))),
          _image(), x_map=_distinct),
    # after ReLU whole windows tie at 0: their gradient is 0 either way, so the
    # finite differences stay valid
    Entry("relu_max_pool2d_ties", serial(act.relu, max_pool2d(2, stride=1)), _image(2),
          kinks=(0.0,), x_map=_distinct),
    Entry("max_pool1d", max_pool1d(3, stride=2, padding=1), _sequence(), x_map=_distinct),
    Entry("avg_pool2d_same", avg_pool2d((2, 3), stride=(1, 2), padding="same"), _image()),
    Entry("avg_pool2d_pairs", avg_pool2d(3, stride=1, padding=((2, 0), (1, 1))), _image()),
    Entry("avg_pool1d", avg_pool1d(2), _sequence(2)),
    Entry("global_avg_pool", global_avg_pool, nst.feature_shapes(2, 3, 1, 4)),
    Entry("global_max_pool", global_max_pool, nst.feature_shapes(2, 3, 1, 4), x_map=_distinct),
    Entry("small_cnn", serial(conv2d(2, 2, padding="same"), act.tanh, avg_pool2d(2),
                              conv2d(2, 1), flatten, dense(2)), _image(2, 4, 1)),
]


class LossEntry(NamedTuple):
    """A loss under test and a strategy of ``(y_pred, y_true)`` pairs."""

    id: str
    loss: Loss
    cases: Callable[[Any], st.SearchStrategy[tuple[Any, Any]]]  # dtype -> strategy


_shape2 = st.tuples(st.integers(1, 5), st.integers(1, 5))
# up to _CLASS_MAJOR_MAX classes softmax cross-entropy works class-major, above it
# row-major: draw class counts on both sides
_classes = st.tuples(st.integers(1, 5), st.integers(2, 5)
                     | st.integers(_CLASS_MAJOR_MAX + 1, _CLASS_MAJOR_MAX + 3))


def _regression(kinks: tuple[float, ...]) -> Callable[[Any], st.SearchStrategy[Any]]:
    @st.composite
    def cases(draw: st.DrawFn, dtype: Any) -> tuple[Any, Any]:
        shape = draw(_shape2)
        y = draw(nst.arrays(shape, dtype, scale=3.0))
        r = draw(nst.arrays(shape, np.float64, scale=2.0, kinks=kinks, margin=1e-2))
        return (y + r).astype(dtype), y

    return lambda dtype: cases(dtype)


@st.composite
def _probability_pairs(draw: st.DrawFn, dtype: Any) -> tuple[Any, Any]:
    shape = draw(_shape2)
    p = draw(nst.probabilities(shape, rows=False, dtype=dtype))
    y = draw(nst.probabilities(shape, rows=False, min_prob=0.0, dtype=dtype))
    return p, y


@st.composite
def _class_pairs(draw: st.DrawFn, dtype: Any, logits: bool) -> tuple[Any, Any]:
    n, c = draw(_classes)
    pred = (draw(nst.arrays((n, c), dtype, scale=st.sampled_from([1.0, 5.0]))) if logits
            else draw(nst.probabilities((n, c), dtype=dtype)))
    kind = draw(st.sampled_from(["int", "onehot", "soft"] if logits else ["int", "onehot"]))
    if kind == "int":
        return pred, draw(nst.int_labels(n, c))
    if kind == "onehot":
        return pred, draw(nst.one_hot_labels(n, c, dtype))
    return pred, draw(nst.probabilities((n, c), min_prob=0.0, dtype=dtype))


@st.composite
def _logit_pairs(draw: st.DrawFn, dtype: Any) -> tuple[Any, Any]:
    shape = draw(_shape2)
    z = draw(nst.arrays(shape, dtype, scale=st.sampled_from([1.0, 6.0])))
    y = draw(nst.probabilities(shape, rows=False, min_prob=0.0, dtype=dtype))
    return z, y


@st.composite
def _sequence_class_pairs(draw: st.DrawFn, dtype: Any) -> tuple[Any, Any]:
    n, steps, c = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(2, 5))
    z = draw(nst.arrays((n, steps, c), dtype, scale=st.sampled_from([1.0, 5.0])))
    labels = draw(nst.int_labels(n * steps, c)).reshape(n, steps)
    return z, (labels if draw(st.booleans()) else np.eye(c, dtype=dtype)[labels])


LOSSES: list[LossEntry] = [
    LossEntry("mae", losses.mae, _regression((0.0,))),
    LossEntry("mse", losses.mse, _regression(())),
    LossEntry("huber", losses.huber(0.5), _regression((-0.5, 0.5))),
    LossEntry("binary_crossentropy", losses.binary_crossentropy, _probability_pairs),
    LossEntry("categorical_crossentropy", losses.categorical_crossentropy,
              lambda dtype: _class_pairs(dtype, logits=False)),
    LossEntry("softmax_cross_entropy", losses.softmax_cross_entropy,
              lambda dtype: _class_pairs(dtype, logits=True)),
    LossEntry("sigmoid_binary_cross_entropy", losses.sigmoid_binary_cross_entropy,
              _logit_pairs),
    LossEntry("softmax_cross_entropy_sequences", losses.softmax_cross_entropy,
              _sequence_class_pairs),
]
