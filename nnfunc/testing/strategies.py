"""Hypothesis strategies for property tests of layers, losses and pytrees.

A property test of your own layer takes a few lines:

.. code-block:: python

    from hypothesis import given
    from nnfunc.testing import check_grad
    from nnfunc.testing.strategies import layer_inputs

    @given(layer_inputs(my_layer, in_shapes=feature_shapes(max_side=8)))
    def test_my_layer_grad(case):
        check_grad(my_layer, case.params, case.x, dy=case.dy, key=case.key, train=case.train)

Values are drawn from an :mod:`nnfunc.random` key chosen by hypothesis (fast,
and reproducible from the printed example), shapes are drawn by hypothesis
(so failures shrink to small shapes, batch 1 and odd widths included).
Requires ``hypothesis`` (the ``test`` extra).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st

from nnfunc import random, tree
from nnfunc.layer import Layer, apply_with_state, is_stateful
from nnfunc.typing import Array, Key, ShapeTree

__all__ = ["LayerCase", "arrays", "feature_shapes", "int_labels", "keys", "layer_inputs",
           "one_hot_labels", "probabilities", "pytrees"]


def keys() -> st.SearchStrategy[Key]:
    """Random keys (``nnfunc.random.key`` of a drawn seed)."""
    return st.integers(0, 2**32 - 1).map(random.key)


def feature_shapes(min_dims: int = 1, max_dims: int = 1, min_side: int = 1,
                   max_side: int = 6) -> st.SearchStrategy[tuple[int, ...]]:
    """Per-sample shapes (batch axis excluded), e.g. ``(5,)`` or ``(2, 3)``."""
    return st.lists(st.integers(min_side, max_side), min_size=min_dims,
                    max_size=max_dims).map(tuple)


def _values(k: Key, shape: tuple[int, ...], dtype: Any, scale: float,
            kinks: tuple[float, ...], margin: float) -> Array:
    x = random.uniform(k, shape, np.float64, low=-scale, high=scale)
    for kink in kinks:
        near = np.abs(x - kink) < margin
        x = np.where(near, kink + np.where(x >= kink, margin, -margin), x)
    return x.astype(dtype)


@st.composite
def arrays(draw: st.DrawFn, shape: tuple[int, ...] | st.SearchStrategy[tuple[int, ...]],
           dtype: Any = np.float64, scale: float | st.SearchStrategy[float] = 2.0,
           kinks: tuple[float, ...] = (), margin: float = 1e-2) -> Array:
    """Float arrays of ``shape`` with values in ``[-scale, scale]``.

    Values within ``margin`` of any of ``kinks`` are pushed to ``kink ± margin``,
    so finite differences never straddle a kink.
    """
    s = draw(shape) if isinstance(shape, st.SearchStrategy) else shape
    sc = draw(scale) if isinstance(scale, st.SearchStrategy) else scale
    return _values(draw(keys()), s, dtype, sc, kinks, margin)


class LayerCase(NamedTuple):
    """One drawn test case for a layer: everything ``check_grad`` needs."""

    params: Any
    x: Any
    dy: Any
    key: Key
    train: bool
    in_shape: ShapeTree
    out_shape: ShapeTree
    state: Any = None  # a stateful layer's model state (None for a stateless one)


def _is_shape(s: Any) -> bool:
    return isinstance(s, tuple) and all(isinstance(d, (int, np.integer)) for d in s)


def _batch_tree(k: Key, batch: int, shape: ShapeTree, dtype: Any, scale: float,
                kinks: tuple[float, ...], margin: float) -> Any:
    if _is_shape(shape):
        return _values(k, (batch, *shape), dtype, scale, kinks, margin)
    ks = random.split(k, len(shape))
    return tuple(_batch_tree(ks[i], batch, s, dtype, scale, kinks, margin)
                 for i, s in enumerate(shape))


@st.composite
def layer_inputs(draw: st.DrawFn, layer: Layer,
                 in_shapes: ShapeTree | st.SearchStrategy[Any] | None = None,
                 batch: st.SearchStrategy[int] | int | None = None, dtype: Any = np.float64,
                 scale: st.SearchStrategy[float] | float | None = None,
                 kinks: tuple[float, ...] = (), margin: float = 1e-2,
                 train: bool = False, ids: int | None = None) -> LayerCase:
    """Draw an input shape, params from ``layer.init``, an input batch and a cotangent.

    For a stateful layer the params come from ``init_with_state`` and the
    case's ``state`` is the initial state after one training step on another
    drawn batch (so that inference does not see the trivial initial state).

    Args:
        layer: the layer under test.
        in_shapes: a fixed per-sample shape, or a strategy of them
            (default :func:`feature_shapes`). Multi-input layers take a tuple
            of shapes.
        batch: batch size or strategy (default 1–4).
        dtype: dtype of params, ``x`` and ``dy`` (float64 for gradient checks).
        scale: magnitude of ``x`` (default drawn from 0.1, 1 and 3).
        kinks, margin: keep ``x`` at least ``margin`` from these points.
        train: sets ``LayerCase.train`` (e.g. to check dropout's mask).
        ids: draw ``x`` as ``int64`` ids in ``[0, ids)`` instead of floats
            (for an embedding; ``in_shapes`` is then the ids' shape).
    """
    shape_s = feature_shapes() if in_shapes is None else in_shapes
    in_shape = draw(shape_s) if isinstance(shape_s, st.SearchStrategy) else shape_s
    n = batch if isinstance(batch, int) else draw(st.integers(1, 4) if batch is None else batch)
    sc = scale if isinstance(scale, float) else draw(
        st.sampled_from([0.1, 1.0, 3.0]) if scale is None else scale)
    k_init, k_x, k_dy, k_call = random.split(draw(keys()), 4)
    def inputs(k: Key) -> Any:
        if ids is None:
            return _batch_tree(k, n, in_shape, dtype, sc, kinks, margin)
        return random.generator(k).integers(0, ids, size=(n, *in_shape)).astype(np.int64)

    state = None
    if is_stateful(layer):
        assert layer.init_with_state is not None
        out_shape, params, state = layer.init_with_state(k_init, in_shape)
    else:
        out_shape, params = layer.init(k_init, in_shape)
    params = tree.astype(params, dtype)
    x = inputs(k_x)
    dy = _batch_tree(k_dy, n, out_shape, dtype, 1.0, (), 0.0)
    if state is not None:
        # one training step on another batch moves the state off its initial value
        _, state = apply_with_state(layer, params, inputs(random.fold_in(k_x, 1)),
                                    tree.astype(state, dtype), key=k_call, train=True)
    return LayerCase(params, x, dy, k_call, train, in_shape, out_shape, state)


def pytrees(leaves: st.SearchStrategy[Any] | None = None,
            max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Nested dicts, lists, tuples and ``None`` with array leaves."""
    leaf = leaves if leaves is not None else arrays(feature_shapes(0, 2, 1, 4))
    return st.recursive(
        leaf | st.none(),
        lambda kids: st.lists(kids, max_size=3) | st.tuples(kids, kids)
        | st.dictionaries(st.text("abcdwxyz", min_size=1, max_size=3), kids, max_size=3),
        max_leaves=max_leaves,
    )


@st.composite
def probabilities(draw: st.DrawFn, shape: tuple[int, ...] | st.SearchStrategy[tuple[int, ...]],
                  rows: bool = True, min_prob: float = 0.02,
                  dtype: Any = np.float64) -> Array:
    """Probabilities of ``shape``, each at least ``min_prob`` from 0 and 1.

    With ``rows=True`` each row (last axis) sums to 1, like a softmax output;
    otherwise entries are independent (like sigmoid outputs).
    """
    s = draw(shape) if isinstance(shape, st.SearchStrategy) else shape
    k = draw(keys())
    if not rows:
        return random.uniform(k, s, np.float64, low=min_prob, high=1 - min_prob).astype(dtype)
    c = s[-1]
    lo = min(min_prob, 0.5 / c)
    raw = random.uniform(k, s, np.float64, low=0.0, high=1.0) + 1e-3
    p: Array = lo + (1 - c * lo) * raw / raw.sum(axis=-1, keepdims=True)
    return p.astype(dtype)


@st.composite
def int_labels(draw: st.DrawFn, n: int | st.SearchStrategy[int],
               classes: int | st.SearchStrategy[int]) -> Array:
    """Integer class labels of shape ``(n,)`` in ``[0, classes)``."""
    nn = draw(n) if isinstance(n, st.SearchStrategy) else n
    c = draw(classes) if isinstance(classes, st.SearchStrategy) else classes
    return random.generator(draw(keys())).integers(0, c, size=nn).astype(np.int64)


@st.composite
def one_hot_labels(draw: st.DrawFn, n: int | st.SearchStrategy[int],
                   classes: int | st.SearchStrategy[int], dtype: Any = np.float64) -> Array:
    """One-hot rows of shape ``(n, classes)``."""
    c = draw(classes) if isinstance(classes, st.SearchStrategy) else classes
    labels = draw(int_labels(n, c))
    onehot: Array = np.eye(c, dtype=dtype)[labels]
    return onehot


