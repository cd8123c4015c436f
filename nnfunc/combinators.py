"""Combinators: layers built from layers, so a whole model is itself a layer.

=====================  ============================================  ===================
combinator             forward                                       params
=====================  ============================================  ===================
``serial(l1, …, lk)``  ``y = lk(…l2(l1(x)))``                        ``(p1, …, pk)``
``parallel(l1, …)``    ``(y1, …) = (l1(x1), …)``                     ``(p1, …, pk)``
``fanout(k)``          ``(x, …, x)`` (k copies)                      ``()``
``fanin_sum``          ``y = Σ_i x_i``                               ``()``
``fanin_concat(axis)`` ``y = concat(x_1, …, x_k; axis)``             ``()``
``residual(l)``        ``y = x + l(x)``                              ``(p,)``
``identity``           ``y = x``                                     ``()``
=====================  ============================================  ===================

Backward passes follow the chain rule: ``serial`` pulls ``dy`` back through
its children in reverse; ``fanout`` sums the branches' ``dx``; ``fanin_sum``
hands ``dy`` to every input; ``fanin_concat`` splits ``dy``; ``residual``
returns ``dy + dx_inner``.

``init`` infers every shape; a mismatch fails there with a ``ValueError``
that names the combinator, the child's position and both shapes. Keys are
split among children, so each child's randomness is independent.

A combinator with a stateful child (see :mod:`nnfunc.layer`) is stateful
itself: its state is a tuple aligned with its params tuple, ``()`` for each
stateless child, and its ``apply`` returns ``(y, new_state)``.

>>> import numpy as np
>>> from nnfunc import random
>>> from nnfunc.layers import dense
>>> from nnfunc.activations import relu
>>> model = serial(dense(8), relu, residual(serial(dense(8), relu)), dense(2))
>>> out_shape, params = model.init(random.key(0), (4,))
>>> out_shape, len(params)
((2,), 4)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnfunc import random
from nnfunc._validate import describe, fail, positive_int, type_fail
from nnfunc.layer import (
    Layer,
    Pullback,
    apply_with_state,
    forward_backward_of,
    from_forward_backward,
    output_like,
    stateful_from_forward_backward,
    uses_key,
    vjp,
    vjp_with_state,
)
from nnfunc.typing import Array, Key, ShapeTree

__all__ = ["fanin_concat", "fanin_sum", "fanout", "identity", "parallel", "residual",
           "serial"]


def _check_layers(name: str, layers: tuple[Any, ...]) -> tuple[Layer, ...]:
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            hint = " (did you forget to call a factory, e.g. dense(10)?)" if callable(layer) else ""
            raise type_fail(name, f"layer {i}", f"must be an nnfunc Layer{hint}",
                            describe(layer))
    return layers


def _keys(key: Key | None, n: int, name: str, keyed: bool = True) -> list[Key | None]:
    """The children's keys: ``key`` split ``n`` ways, or ``None`` for each when there
    is no key or (``keyed`` false) no child reads one (a key given is still checked)."""
    if key is None or n == 0:
        return [None] * n
    k = random.check_key(key, name)
    if not keyed:
        return [None] * n
    return list(random.split(k, n))


def _init_keys(key: Key, n: int, name: str) -> list[Key]:
    """The children's keys for ``init``, which needs one (also for no children)."""
    k = random.check_key(key, name)
    return list(random.split(k, n)) if n else []


def _child_params(name: str, params: Any, n: int) -> tuple[Any, ...]:
    if not isinstance(params, tuple) or len(params) != n:
        raise fail(name, "params", f"must be a tuple of {n} children's params (from init)",
                   describe(params) if not isinstance(params, tuple)
                   else f"a tuple of length {len(params)}")
    return params


def _child_states(name: str, state: Any, n: int) -> tuple[Any, ...]:
    if state is None:  # a stateless combinator: every child's state is ()
        return ((),) * n
    if not isinstance(state, tuple) or len(state) != n:
        raise fail(name, "state", f"must be a tuple of {n} children's states (from "
                   "init_with_state)", describe(state) if not isinstance(state, tuple)
                   else f"a tuple of length {len(state)}")
    return state


def _init_child(name: str, i: int, layer: Layer, key: Key,
                shape: ShapeTree) -> tuple[Any, Any, Any]:
    """``(out_shape, params, state)`` of a child (``()`` state for a stateless one)."""
    try:
        if layer.init_with_state is not None:
            return layer.init_with_state(key, shape)
        return (*layer.init(key, shape), ())
    except (ValueError, TypeError) as err:
        raise type(err)(f"{name}: layer {i} ({layer.name}) cannot take input shape "
                        f"{shape}: {err}") from err


def _combinator(name: str, init_with_state: Any, forward: Any, backward: Any,
                children: tuple[Layer, ...], infer: Any = None) -> Layer:
    """A stateful layer when any child is stateful, else a stateless one.

    ``init_with_state``, ``forward(params, state, x, key, train) -> (y, new_state,
    res)`` and ``infer(params, state, x, key, train) -> (y, new_state)`` are
    written once for both; the stateless layer passes ``state=None`` (every
    child's state ``()``) and drops the states. It reads its key when some child
    does (see :func:`~nnfunc.layer.uses_key`).
    """
    keyed = any(uses_key(c) for c in children)
    if any(c.init_with_state is not None for c in children):
        return stateful_from_forward_backward(name, init_with_state, forward, backward,
                                              children, infer, uses_key=keyed)

    def init(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, Any]:
        out_shape, params, _ = init_with_state(key, in_shape)
        return out_shape, params

    def stateless_forward(params: Any, x: Any, key: Key | None, train: bool) -> tuple[Any, Any]:
        y, _, res = forward(params, None, x, key, train)
        return y, res

    def stateless_infer(params: Any, x: Any, key: Key | None, train: bool) -> Any:
        return infer(params, None, x, key, train)[0]

    return from_forward_backward(name, init, stateless_forward, backward, children,
                                 None if infer is None else stateless_infer, uses_key=keyed)


def _tuple_input(name: str, x: Any, n: int | None = None) -> tuple[Any, ...]:
    if isinstance(x, tuple) and not x and n is None:
        raise fail(name, "x", "must be a non-empty tuple of arrays (e.g. from fanout)",
                   "an empty tuple")
    if not isinstance(x, tuple) or (n is not None and len(x) != n):
        want = f"a tuple of {n} arrays" if n is not None else "a tuple of arrays"
        got = f"a tuple of length {len(x)}" if isinstance(x, tuple) else describe(x)
        raise type_fail(name, "x", f"must be {want} (e.g. from fanout)", got)
    return x


# -- serial ---------------------------------------------------------------------------

def serial(*layers: Layer) -> Layer:
    """Compose layers in sequence: ``y = l_k(… l_2(l_1(x)))``.

    Params ``(p_1, …, p_k)``. Backward runs the children's pullbacks in
    reverse, ``dy_{i-1} = pullback_i(dy_i)`` (a built-in child's forward and
    backward are called directly: see :func:`~nnfunc.layer.forward_backward_of`);
    the first child is asked for no ``dx`` when the caller needs none (the
    whole-model gradient), which skips the input layer's ``dy Wᵀ``.

    Raises:
        TypeError: if an argument is not a layer.
        ValueError: at ``init``, naming the position and shapes of a child
            that cannot take its input.

    >>> from nnfunc.layers import dense
    >>> from nnfunc import random
    >>> serial(dense(3), dense(1)).init(random.key(0), (5,))[0]
    (1,)
    """
    children = _check_layers("serial", layers)
    n = len(children)
    name = "serial"
    keyed = any(uses_key(c) for c in children)  # else no key is split for the children

    def init(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, tuple[Any, ...], tuple[Any, ...]]:
        params, states = [], []
        shape = in_shape
        for i, (layer, k) in enumerate(zip(children, _init_keys(key, n, name))):
            shape, p, st = _init_child(name, i, layer, k, shape)
            params.append(p)
            states.append(st)
        return shape, tuple(params), tuple(states)

    def backward(params: Any, pullbacks: list[Pullback], dy: Any,
                 need_dx: bool) -> tuple[tuple[Any, ...], Any]:
        grads: list[Any] = [None] * n
        for i in range(n - 1, -1, -1):
            grads[i], dy = pullbacks[i](dy, need_dx or i > 0)
        return tuple(grads), dy

    if any(c.init_with_state is not None for c in children):
        return _stateful_serial(init, backward, children, keyed)

    # A child built from forward/backward (every built-in layer) runs them directly:
    # its residuals are kept instead of a pullback closure, and the cotangent its
    # backward gets is checked only where it comes from another kind of child (a
    # built-in backward returns a dx shaped like its x by construction; the last
    # child's comes from serial's own checked pullback).
    parts = [forward_backward_of(c) for c in children]
    checks = [parts[i] is not None and i + 1 < n and parts[i + 1] is None for i in range(n)]

    def forward(params: Any, x: Any, key: Key | None,
                train: bool) -> tuple[Any, list[tuple[Any, Any]]]:
        ps = _child_params(name, params, n)
        saved: list[tuple[Any, Any]] = []  # per child: (residuals, y to check dy by) or pullback
        for i, (layer, part, p, k) in enumerate(zip(children, parts, ps,
                                                    _keys(key, n, name, keyed))):
            if part is not None:
                x, res = part[0](p, x, k, train)
                saved.append((res, x if checks[i] else None))
            elif layer.vjp is not None:  # a layer's own vjp called directly, as nnfunc.vjp does
                x, pb = layer.vjp(p, x, key=k, train=train)
                saved.append((pb, None))
            else:
                x, pb = vjp(layer, p, x, key=k, train=train)
                saved.append((pb, None))
        return x, saved

    def run_backward(params: Any, saved: list[tuple[Any, Any]], dy: Any,
                     need_dx: bool) -> tuple[tuple[Any, ...], Any]:
        grads: list[Any] = [None] * n
        for i in range(n - 1, -1, -1):
            part = parts[i]
            got, y = saved[i]
            if part is None:
                grads[i], dy = got(dy, need_dx or i > 0)
            else:
                if y is not None:
                    output_like(children[i].name, dy, y)
                grads[i], dy = part[1](params[i], got, dy, need_dx or i > 0)
        return tuple(grads), dy

    def infer(params: Any, x: Any, key: Key | None, train: bool) -> Any:
        ps = _child_params(name, params, n)
        for layer, p, k in zip(children, ps, _keys(key, n, name, keyed)):
            x = layer.apply(p, x, key=k, train=train)
        return x

    def init_params(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, tuple[Any, ...]]:
        out_shape, params, _ = init(key, in_shape)
        return out_shape, params

    return from_forward_backward(name, init_params, forward, run_backward, children, infer,
                                 uses_key=keyed)


def _stateful_serial(init: Any, backward: Any, children: tuple[Layer, ...],
                     keyed: bool) -> Layer:
    """``serial`` threading each child's state (``()`` for a stateless child).

    Kept apart from the stateless ``serial``, whose forward runs every step of
    every model without batch norm and so does no state bookkeeping at all.
    """
    n = len(children)
    name = "serial"

    def forward(params: Any, state: Any, x: Any, key: Key | None,
                train: bool) -> tuple[Any, tuple[Any, ...], list[Pullback]]:
        ps = _child_params(name, params, n)
        ss = _child_states(name, state, n)
        pullbacks, states = [], []
        for layer, p, st, k in zip(children, ps, ss, _keys(key, n, name, keyed)):
            x, st, pb = vjp_with_state(layer, p, x, st, key=k, train=train)
            pullbacks.append(pb)
            states.append(st)
        return x, tuple(states), pullbacks

    def infer(params: Any, state: Any, x: Any, key: Key | None,
              train: bool) -> tuple[Any, tuple[Any, ...]]:
        ps = _child_params(name, params, n)
        ss = _child_states(name, state, n)
        states = []
        for layer, p, st, k in zip(children, ps, ss, _keys(key, n, name, keyed)):
            x, st = apply_with_state(layer, p, x, st, key=k, train=train)
            states.append(st)
        return x, tuple(states)

    return stateful_from_forward_backward(name, init, forward, backward, children, infer,
                                          uses_key=keyed)


# -- parallel -------------------------------------------------------------------------

def parallel(*layers: Layer) -> Layer:
    """Apply the i-th layer to the i-th input: ``(x_1, …) -> (l_1(x_1), …)``.

    Params ``(p_1, …, p_k)``; ``dx_i = pullback_i(dy_i)``. Input and output
    are tuples of k arrays; ``in_shape`` is a tuple of k shapes.

    Raises:
        ValueError: at ``init`` if ``in_shape`` is not a tuple of k shapes.

    >>> from nnfunc.layers import dense
    >>> from nnfunc import random
    >>> parallel(dense(2), dense(3)).init(random.key(0), ((4,), (5,)))[0]
    ((2,), (3,))
    """
    children = _check_layers("parallel", layers)
    n = len(children)
    name = "parallel"
    keyed = any(uses_key(c) for c in children)

    def init(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, tuple[Any, ...], tuple[Any, ...]]:
        if not (isinstance(in_shape, tuple) and len(in_shape) == n
                and all(isinstance(s, tuple) for s in in_shape)):
            raise fail(name, "in_shape", f"must be a tuple of {n} shapes (one per branch)",
                       in_shape)
        outs, params, states = [], [], []
        for i, (layer, k, s) in enumerate(zip(children, _init_keys(key, n, name), in_shape)):
            o, p, st = _init_child(name, i, layer, k, s)
            outs.append(o)
            params.append(p)
            states.append(st)
        return tuple(outs), tuple(params), tuple(states)

    def forward(params: Any, state: Any, x: Any, key: Key | None,
                train: bool) -> tuple[tuple[Any, ...], tuple[Any, ...], list[Pullback]]:
        ps = _child_params(name, params, n)
        ss = _child_states(name, state, n)
        xs = _tuple_input(name, x, n)
        ys, states, pbs = [], [], []
        for layer, p, st, xi, k in zip(children, ps, ss, xs, _keys(key, n, name, keyed)):
            y, st, pb = vjp_with_state(layer, p, xi, st, key=k, train=train)
            ys.append(y)
            states.append(st)
            pbs.append(pb)
        return tuple(ys), tuple(states), pbs

    def backward(params: Any, pbs: list[Pullback], dy: Any,
                 need_dx: bool) -> tuple[tuple[Any, ...], Any]:
        pairs = [pb(d, need_dx) for pb, d in zip(pbs, dy)]
        grads = tuple(g for g, _ in pairs)
        return grads, (tuple(d for _, d in pairs) if need_dx else None)

    return _combinator(name, init, forward, backward, children)


# -- fanout / fanin -------------------------------------------------------------------

def _no_params(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, tuple[()]]:
    return in_shape, ()


def fanout(num: int) -> Layer:
    """Copy the input ``num`` times: ``x -> (x, …, x)``; backward ``dx = Σ_i dy_i``.

    >>> import numpy as np
    >>> len(fanout(3).apply((), np.zeros((2, 4))))
    3
    """
    num = positive_int(num, "fanout", "num")
    name = f"fanout({num})"

    def init(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, tuple[()]]:
        return tuple(in_shape for _ in range(num)), ()

    def forward(params: Any, x: Any, key: Key | None, train: bool) -> tuple[Any, None]:
        if not isinstance(x, np.ndarray):
            raise type_fail(name, "x", "must be an array", describe(x))
        return tuple(x for _ in range(num)), None

    def backward(params: Any, res: None, dy: Any, need_dx: bool) -> tuple[tuple[()], Any]:
        if not need_dx:
            return (), None
        total = dy[0].copy()
        for d in dy[1:]:
            total += d
        return (), total

    return from_forward_backward(name, init, forward, backward, uses_key=False)


def _equal_shapes(name: str, in_shape: ShapeTree) -> tuple[ShapeTree, ...]:
    if not (isinstance(in_shape, tuple) and in_shape and all(isinstance(s, tuple)
                                                              for s in in_shape)):
        raise fail(name, "in_shape", "must be a tuple of input shapes (e.g. from fanout)",
                   in_shape)
    return in_shape


def _sum_init(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, tuple[()]]:
    shapes = _equal_shapes("fanin_sum", in_shape)
    for i, s in enumerate(shapes[1:], start=1):
        if s != shapes[0]:
            raise fail("fanin_sum", f"input {i} shape", f"must equal input 0's shape {shapes[0]}",
                       s)
    return shapes[0], ()


def _sum_forward(params: Any, x: Any, key: Key | None, train: bool) -> tuple[Array, int]:
    xs = _tuple_input("fanin_sum", x)
    for i, xi in enumerate(xs[1:], start=1):
        if np.shape(xi) != np.shape(xs[0]):
            raise fail("fanin_sum", f"x[{i}]", f"must have x[0]'s shape {np.shape(xs[0])}",
                       f"shape {np.shape(xi)}")
    total = np.array(xs[0], copy=True)
    for xi in xs[1:]:
        total += xi
    return total, len(xs)


fanin_sum: Layer = from_forward_backward(
    "fanin_sum", _sum_init, _sum_forward,
    lambda params, k, dy, need_dx: ((), tuple(dy for _ in range(k)) if need_dx else None),
    uses_key=False,
)
"""Sum a tuple of equally shaped inputs: ``y = Σ_i x_i``; backward ``dx_i = dy``."""


def fanin_concat(axis: int = -1) -> Layer:
    """Concatenate a tuple of inputs along a feature axis; backward splits ``dy``.

    ``axis`` indexes the batch array (``-1`` is the last feature axis); the
    batch axis itself cannot be concatenated. Shapes must agree on every
    other axis.

    Raises:
        ValueError: ``axis`` is the batch axis or out of range; input shapes disagree.

    >>> import numpy as np
    >>> fanin_concat().apply((), (np.zeros((2, 3)), np.zeros((2, 4)))).shape
    (2, 7)
    """
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise type_fail("fanin_concat", "axis", "must be an int", describe(axis))
    if axis == 0:
        raise fail("fanin_concat", "axis", "must not be the batch axis 0", axis)
    name = f"fanin_concat({axis})"

    def feature_axis(ndim: int) -> int:
        a = axis if axis < 0 else axis - 1
        if not -ndim <= a < ndim:
            raise fail(name, "axis", f"must index one of the {ndim} feature axes", axis)
        return a % ndim

    def init(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, tuple[()]]:
        shapes = _equal_shapes(name, in_shape)
        first: Any = shapes[0]
        a = feature_axis(len(first))
        for i, s in enumerate(shapes[1:], start=1):
            other: Any = s
            if len(other) != len(first) or any(
                d != e for j, (d, e) in enumerate(zip(other, first)) if j != a
            ):
                raise fail(name, f"input {i} shape", f"must match input 0's shape {first} "
                           f"except on axis {axis}", s)
        total = sum(int(s[a]) for s in shapes)
        return (*first[:a], total, *first[a + 1:]), ()

    def forward(params: Any, x: Any, key: Key | None, train: bool) -> tuple[Array, list[int]]:
        xs = _tuple_input(name, x)
        a = feature_axis(np.ndim(xs[0]) - 1) + 1
        try:
            y = np.concatenate(xs, axis=a)
        except ValueError as err:
            shapes = [np.shape(xi) for xi in xs]
            raise fail(name, "x", f"must have equal shapes except on axis {axis}",
                       shapes) from err
        sizes = [int(np.shape(xi)[a]) for xi in xs]
        return y, [a, *sizes]

    def backward(params: Any, res: list[int], dy: Array,
                 need_dx: bool) -> tuple[tuple[()], Any]:
        if not need_dx:
            return (), None
        a, sizes = res[0], res[1:]
        return (), tuple(np.split(dy, np.cumsum(sizes)[:-1], axis=a))

    return from_forward_backward(name, init, forward, backward, uses_key=False)


# -- residual / identity --------------------------------------------------------------

def residual(layer: Layer) -> Layer:
    """Skip connection ``y = x + l(x)``; backward ``dx = dy + pullback_l(dy)``.

    Params ``(p,)``, the wrapped layer's params in a 1-tuple.

    Raises:
        ValueError: at ``init`` if the layer changes the shape.

    >>> from nnfunc.layers import dense
    >>> from nnfunc import random
    >>> residual(dense(4)).init(random.key(0), (4,))[0]
    (4,)
    """
    (inner,) = _check_layers("residual", (layer,))
    name = f"residual({inner.name})"

    def init(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, tuple[Any], tuple[Any]]:
        out, p, st = _init_child(name, 0, inner, key, in_shape)
        if out != in_shape:
            raise fail(name, "inner layer output shape", f"must equal its input shape "
                       f"{in_shape} to be added back", out)
        return in_shape, (p,), (st,)

    def forward(params: Any, state: Any, x: Any, key: Key | None,
                train: bool) -> tuple[Any, tuple[Any], Pullback]:
        (p,) = _child_params(name, params, 1)
        (st,) = _child_states(name, state, 1)
        y, st, pb = vjp_with_state(inner, p, x, st, key=key, train=train)
        if np.shape(y) != np.shape(x):
            raise fail(name, "inner layer output", f"must have the input's shape {np.shape(x)}",
                       f"shape {np.shape(y)}")
        return x + y, (st,), pb

    def backward(params: Any, pb: Pullback, dy: Any, need_dx: bool) -> tuple[tuple[Any], Any]:
        g, dx = pb(dy, need_dx)
        return (g,), (dy + dx if need_dx else None)

    return _combinator(name, init, forward, backward, (inner,))


identity: Layer = from_forward_backward(
    "identity", _no_params, lambda params, x, key, train: (x, None),
    lambda params, res, dy, need_dx: ((), dy if need_dx else None), uses_key=False,
)
"""The identity layer ``y = x``; backward ``dx = dy``. Params ``()``."""
