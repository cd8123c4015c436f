"""``scan``: any one-step cell ``(carry, x_t) -> (carry, y_t)`` run over a sequence batch
(re-exported by :mod:`nnfunc.layers.recurrent`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from nnfunc import random, tree
from nnfunc._validate import describe, fail, type_fail
from nnfunc.layer import Layer, batch_array, from_forward_backward, uses_key, vjp
from nnfunc.layers._shapes import feature_shape
from nnfunc.typing import Array, Key, ShapeTree


def _is_shape(s: Any) -> bool:
    return isinstance(s, tuple) and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in s)


def _check_shape_tree(name: str, arg: str, s: Any) -> None:
    if _is_shape(s):
        return
    if isinstance(s, tuple) and s and all(isinstance(c, tuple) for c in s):
        for c in s:
            _check_shape_tree(name, arg, c)
        return
    raise type_fail(name, arg, "must be a shape (a tuple of positive ints, batch axis "
                    "excluded) or a tuple of shapes", describe(s))


def _zeros_tree(shape: Any, n: int, dtype: Any) -> Any:
    if _is_shape(shape):
        return np.zeros((n, *shape), dtype)
    return tuple(_zeros_tree(s, n, dtype) for s in shape)


def _accumulate(total: Any, more: Any) -> Any:
    """``total += more`` leaf-wise, in place (``total`` holds this scan's own copies)."""
    return tree.map(lambda a, b: a if a is None else np.add(a, b, out=a), total, more)


def scan(cell: Layer, carry_shape: ShapeTree) -> Layer:
    """Run a one-step layer over the time axis: ``(carry, y_t) = cell((carry, x_t))``.

    Forward: ``carry_0 = 0`` (zeros of ``carry_shape`` for every sample), then
    for ``t = 0 … T-1``: ``(carry_{t+1}, y_t) = cell(params, (carry_t, x[:, t]))``;
    the output stacks ``y_t`` on axis 1.
    Backward (backpropagation through time): ``dcarry_T = 0``; for ``t = T-1 …
    0`` the cell's pullback maps ``(dcarry_{t+1}, dy[:, t])`` to
    ``(dparams_t, (dcarry_t, dx[:, t]))``; ``dparams = Σ_t dparams_t``.

    Shapes: ``x (n, T, *x_shape) -> y (n, T, *y_shape)``; ``init`` takes
    ``(T, *x_shape)`` and calls ``cell.init`` with ``(carry_shape, x_shape)``,
    which must give ``(carry_shape, y_shape)``. Params are the cell's. When a
    ``key`` is given, step ``t`` gets ``random.fold_in(key, t)`` (e.g. a
    dropout inside the cell draws a fresh mask per step).

    Args:
        cell: any layer taking ``(carry, x_t)`` and giving ``(carry, y_t)``: a
            built-in cell, a combinator model (below) or your own
            ``Layer(init, apply, grad)``.
        carry_shape: the carry's per-sample shape, or a tuple of shapes for a
            tuple carry (``((H,), (H,))`` for :func:`lstm_cell`).

    Raises:
        TypeError: ``cell`` not a layer, ``carry_shape`` not a shape tree, a
            cell whose output is not a ``(carry, y_t)`` pair, or a stateful
            cell (``batch_norm`` inside): ``scan`` threads no model state, and
            the cell's own error says so at the first call.
        ValueError: at ``init``, an ``in_shape`` without a time axis or a cell
            that does not return its carry's shape; a ``T = 0`` input.

    >>> import numpy as np
    >>> from nnfunc import random
    >>> from nnfunc.activations import tanh
    >>> from nnfunc.combinators import fanin_concat, fanout, serial
    >>> from nnfunc.layers import dense
    >>> cell = serial(fanin_concat(), dense(4), tanh, fanout(2))  # h' = tanh([h, x] W + b)
    >>> rnn = scan(cell, (4,))
    >>> out_shape, params = rnn.init(random.key(0), (7, 3))
    >>> out_shape, rnn.apply(params, np.ones((2, 7, 3), np.float32)).shape
    ((7, 4), (2, 7, 4))
    """
    if not isinstance(cell, Layer):
        raise type_fail("scan", "cell", "must be an nnfunc Layer taking (carry, x_t)",
                        describe(cell))
    _check_shape_tree("scan", "carry_shape", carry_shape)
    carry = tree.map(int, carry_shape) if not _is_shape(carry_shape) else tuple(
        int(d) for d in carry_shape)
    name = f"scan({cell.name})"
    keyed = uses_key(cell)  # else no per-step key is derived for it

    def init(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, Any]:
        shape = feature_shape(name, in_shape)
        if len(shape) < 2:
            raise fail(name, "in_shape", "must be (T, *x_shape), the time axis first (batch "
                       "axis excluded)", shape)
        try:
            out, params = cell.init(key, (carry, shape[1:]))
        except (ValueError, TypeError) as err:
            raise type(err)(f"{name}: the cell cannot take (carry {carry}, x_t {shape[1:]}): "
                            f"{err}") from err
        if not (isinstance(out, tuple) and len(out) == 2 and out[0] == carry
                and _is_shape(out[1])):
            raise fail(name, "cell output shape", f"must be (carry {carry}, y_t shape) to run "
                       "over time", out)
        return (shape[0], *out[1]), params

    def forward(params: Any, x: Any, key: Key | None,
                train: bool) -> tuple[Array, tuple[list[Any], Any]]:
        x = batch_array(name, x)
        if x.ndim < 3 or x.shape[1] == 0:
            raise fail(name, "x", "must be a sequence batch (n, T, *x_shape) with T >= 1",
                       f"shape {x.shape}")
        if key is not None:
            random.check_key(key, name)
        state = _zeros_tree(carry, x.shape[0], x.dtype)
        ys, pullbacks = [], []
        for t in range(x.shape[1]):
            k = None if key is None or not keyed else random.fold_in(key, t)
            out, pb = vjp(cell, params, (state, x[:, t]), key=k, train=train)
            if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], np.ndarray)):
                raise type_fail(name, "cell output", "must be a pair (carry, y_t array)",
                                describe(out))
            state, y_t = out
            ys.append(y_t)
            pullbacks.append(pb)
        return np.stack(ys, axis=1), (pullbacks, state)

    def backward(params: Any, res: tuple[list[Any], Any], dy: Array,
                 need_dx: bool) -> tuple[Any, Array | None]:
        pullbacks, last = res
        dstate = tree.map(np.zeros_like, last)
        total: Any = None
        dxs: list[Array] = [dy] * len(pullbacks)
        for t in range(len(pullbacks) - 1, -1, -1):
            dp, (dstate, dxs[t]) = pullbacks[t]((dstate, dy[:, t]), True)
            total = (tree.map(lambda a: None if a is None else np.array(a, copy=True), dp)
                     if total is None else _accumulate(total, dp))
        return total, (np.stack(dxs, axis=1) if need_dx else None)

    return from_forward_backward(name, init, forward, backward, (cell,), uses_key=keyed)
