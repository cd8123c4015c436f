"""Wrappers: gradient transforms and guards that compose in front of an optimizer.

Each factory returns a :data:`~nnfunc.optim.base.Wrapper` (``Optimizer ->
Optimizer``); use them with :func:`~nnfunc.optim.base.chain`, e.g.
``chain(clip_by_global_norm(1.0), l2(1e-4, where="w"), adam(1e-3))``.

``where`` picks the leaves a transform acts on: ``None`` (all), a glob
pattern for the leaf's own name (``"w"``: every kernel, no bias), a
predicate ``(path, leaf) -> bool``, or a pytree of ``bool`` shaped like the
params (see :func:`nnfunc.tree.mask`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from nnfunc import tree
from nnfunc._validate import describe, fail, finite_float, positive_int, type_fail
from nnfunc.optim.base import (
    Optimizer,
    Update,
    Wrapper,
    WrapperState,
    _inner_state,
    _replace_inner,
    flat_pair,
    params_of,
)
from nnfunc.typing import Array, PyTree

__all__ = ["Where", "accumulate", "clip_by_global_norm", "clip_by_value", "freeze", "l1", "l2",
           "select", "skip_nonfinite"]

Where = Any
"""``None``, a glob pattern, a predicate ``(path, leaf) -> bool``, or a bool pytree."""


def select(params: PyTree, where: Where, component: str = "optim") -> list[bool]:
    """The leaves of ``params`` that ``where`` picks, as a flat list of bools."""
    if where is None:
        return [True] * tree.num_leaves(params)
    if isinstance(where, str) or callable(where):
        return [bool(b) for b in tree.leaves(tree.mask(params, where))]
    try:
        tree.assert_same_structure(params, where, ("params", "where"))
    except ValueError as err:
        raise fail(component, "where", "must be a pattern, a predicate or a bool pytree "
                   "shaped like params", err) from None
    return [bool(b) for b in tree.leaves(where)]


def wrapper_state(name: str, state: Any, own_ok: Callable[[Any], bool],
                  own: str) -> WrapperState:
    """``state``, checked to be a :class:`WrapperState` whose own part suits wrapper ``name``
    (O(1): it runs every step)."""
    if not isinstance(state, WrapperState):
        raise type_fail(name, "state", f"must be this optimizer's state (from its init: a "
                        f"WrapperState for {name})", describe(state))
    if not own_ok(state.own):
        raise type_fail(name, "state.own", f"must be {own} (a state from this chain's init, "
                        f"not another's)", describe(state.own))
    return state


def _is_mask(own: Any) -> bool:
    return type(own) is tuple and (not own or type(own[0]) is bool)


def _with_in_place(opt: Optimizer, init: Callable[[PyTree], Any],
                   updater: Callable[[Update], Update], name: str) -> Optimizer:
    """The wrapped optimizer, ``update`` built on ``opt.update`` and, when ``opt``
    has one, ``update_in_place`` on ``opt.update_in_place``: for wrappers that
    never hold on to the inner state's arrays, so they may pass a donated state on."""
    in_place = getattr(opt, "update_in_place", None)
    return Optimizer(init, updater(opt.update), f"{name} | {opt.name}",
                     None if in_place is None else updater(in_place))


def _grad_wrapper(name: str, transform: Callable[[list[Array], list[Array], list[bool]],
                                                 list[Array]], where: Where = None) -> Wrapper:
    """A wrapper that rewrites the grads (leaf lists) before the inner optimizer sees them."""

    def wrap(opt: Optimizer) -> Optimizer:
        def init(params: PyTree) -> WrapperState:
            return WrapperState(tuple(select(params, where, name)), opt.init(params))

        def updater(inner_update: Update) -> Update:
            def update(state: WrapperState, grads: PyTree) -> tuple[WrapperState, PyTree]:
                wrapper_state(name, state, _is_mask, "a tuple of bools, one per leaf")
                leaves = flat_pair(name, params_of(state.inner), grads)
                if len(state.own) != len(leaves.params):
                    raise fail(name, "state.own", f"must hold one bool per leaf of the params "
                               f"({len(leaves.params)})", f"{len(state.own)} entries")
                new = transform(leaves.grads, leaves.params, list(state.own))
                inner, params = inner_update(state.inner, tree.unflatten(leaves.treedef, new))
                return WrapperState(state.own, inner), params

            return update

        return _with_in_place(opt, init, updater, name)

    return wrap


def clip_by_global_norm(max_norm: float) -> Wrapper:
    """Rescale all grads together so their global norm is at most ``max_norm``.

    ``g ← g · min(1, c / ‖g‖)`` with ``‖g‖ = sqrt(Σ_leaves Σ g²)``
    (Pascanu et al., 2013). Directions are kept; only the length is capped.
    The norm is accumulated safely (see :func:`nnfunc.tree.global_norm`), so
    float32 grads of 1e19 are scaled down, not zeroed.

    Raises:
        ValueError: ``max_norm`` not finite and > 0.

    >>> import numpy as np
    >>> from nnfunc.optim import chain, sgd
    >>> opt = chain(clip_by_global_norm(1.0), sgd(1.0))
    >>> _, params = opt.update(opt.init(np.zeros(2)), np.array([3.0, 4.0]))
    >>> np.round(params, 12).tolist()
    [-0.6, -0.8]
    """
    c = finite_float(max_norm, "clip_by_global_norm", "max_norm", lo=0.0, lo_open=True)

    def transform(gs: list[Array], ps: list[Array], on: list[bool]) -> list[Array]:
        norm = tree.leaves_norm(gs)  # safe from overflow: float32 grads of 1e19 have a norm
        if not norm > c:  # also leaves NaN grads alone, for skip_nonfinite to see
            return gs
        return [_scaled(g, c / norm) for g in gs]

    return _grad_wrapper(f"clip_by_global_norm({c:g})", transform)


def _scaled(g: Array, factor: float) -> Array:
    """``g · factor`` in ``g``'s dtype, in two steps when ``factor`` is subnormal there."""
    if factor >= np.finfo(g.dtype).tiny:
        return g * g.dtype.type(factor)  # type: ignore[no-any-return]
    half = g.dtype.type(math.sqrt(factor))
    return (g * half) * half  # type: ignore[no-any-return]


def clip_by_value(limit: float) -> Wrapper:
    """Clip every gradient entry to ``[-limit, limit]``.

    Raises:
        ValueError: ``limit`` not finite and > 0.

    >>> import numpy as np
    >>> from nnfunc.optim import chain, sgd
    >>> opt = chain(clip_by_value(0.5), sgd(1.0))
    >>> _, params = opt.update(opt.init(np.zeros(2)), np.array([3.0, -0.2]))
    >>> params.tolist()
    [-0.5, 0.2]
    """
    a = finite_float(limit, "clip_by_value", "limit", lo=0.0, lo_open=True)

    def transform(gs: list[Array], ps: list[Array], on: list[bool]) -> list[Array]:
        return [np.clip(g, -a, a) for g in gs]

    return _grad_wrapper(f"clip_by_value({a:g})", transform)


def l1(lam: float, where: Where = None) -> Wrapper:
    """Add the L1 penalty's gradient: ``g ← g + λ sign(θ)`` (``sign(0) = 0``).

    The penalty is ``λ Σ |θ|`` over the selected leaves (``where``; e.g.
    ``where="w"`` for weights but not biases). Use
    :func:`~nnfunc.optim.regularizers.l1_penalty` to report its value.

    Raises:
        ValueError: ``lam`` negative or not finite.

    >>> import numpy as np
    >>> from nnfunc.optim import chain, sgd
    >>> opt = chain(l1(0.1), sgd(1.0))
    >>> _, params = opt.update(opt.init(np.array([2.0, -3.0, 0.0])), np.zeros(3))
    >>> params.tolist()
    [1.9, -2.9, 0.0]
    """
    lam_ = finite_float(lam, "l1", "lam", lo=0.0)

    def transform(gs: list[Array], ps: list[Array], on: list[bool]) -> list[Array]:
        return [g + g.dtype.type(lam_) * np.sign(p) if sel else g
                for g, p, sel in zip(gs, ps, on)]

    return _grad_wrapper(f"l1({lam_:g})", transform, where)


def l2(lam: float, where: Where = None) -> Wrapper:
    """Add the L2 penalty's gradient: ``g ← g + 2λθ``.

    The penalty is ``λ Σ θ²`` over the selected leaves (the formula sheet's
    convention, ERRATA 15). In front of Adam this is not weight decay (Adam
    rescales it); for decoupled decay use :func:`~nnfunc.optim.adamw`.

    Raises:
        ValueError: ``lam`` negative or not finite.

    >>> import numpy as np
    >>> from nnfunc.optim import chain, sgd
    >>> opt = chain(l2(0.25), sgd(1.0))
    >>> _, params = opt.update(opt.init(np.array([2.0])), np.zeros(1))
    >>> params.tolist()
    [1.0]
    """
    lam_ = finite_float(lam, "l2", "lam", lo=0.0)

    def transform(gs: list[Array], ps: list[Array], on: list[bool]) -> list[Array]:
        return [g + p * p.dtype.type(2 * lam_) if sel else g for g, p, sel in zip(gs, ps, on)]

    return _grad_wrapper(f"l2({lam_:g})", transform, where)


def freeze(where: Where) -> Wrapper:
    """Keep the selected leaves fixed: they are never updated.

    Their grads are zeroed before the inner optimizer (so its slots stay
    unchanged there) and their params are restored after it (so momentum or
    decay cannot move them either).

    >>> import numpy as np
    >>> from nnfunc.optim import chain, adamw
    >>> opt = chain(freeze("b"), adamw(0.1))
    >>> _, params = opt.update(opt.init({"w": np.ones(1), "b": np.ones(1)}),
    ...                        {"w": np.ones(1), "b": np.ones(1)})
    >>> params["b"].tolist(), bool(params["w"][0] < 1)
    ([1.0], True)
    """

    def wrap(opt: Optimizer) -> Optimizer:
        name = "freeze"

        def init(params: PyTree) -> WrapperState:
            return WrapperState(tuple(select(params, where, name)), opt.init(params))

        def update(state: WrapperState, grads: PyTree) -> tuple[WrapperState, PyTree]:
            wrapper_state(name, state, _is_mask, "a tuple of bools, one per leaf")
            old = flat_pair(name, params_of(state.inner), grads)
            if len(state.own) != len(old.params):
                raise fail(name, "state.own", f"must hold one bool per leaf of the params "
                           f"({len(old.params)})", f"{len(state.own)} entries")
            frozen = list(state.own)
            gs = [np.zeros_like(g) if f else g for g, f in zip(old.grads, frozen)]
            inner, params = opt.update(state.inner, tree.unflatten(old.treedef, gs))
            kept = [p_old if f else p_new
                    for p_old, p_new, f in zip(old.params, tree.leaves(params), frozen)]
            params = tree.unflatten(old.treedef, kept)
            inner = _replace_inner(inner, _inner_state(inner, name)._replace(params=params))
            return WrapperState(state.own, inner), params

        return Optimizer(init, update, f"{name} | {opt.name}")

    return wrap


def skip_nonfinite() -> Wrapper:
    """Skip any step whose grads hold a NaN or an infinity.

    The params and the inner state are left exactly as they were; the
    wrapper's own state counts the skipped steps.

    >>> import numpy as np
    >>> from nnfunc.optim import chain, sgd
    >>> opt = chain(skip_nonfinite(), sgd(1.0))
    >>> state, params = opt.update(opt.init(np.zeros(1)), np.array([np.nan]))
    >>> params.tolist(), state.own
    ([0.0], 1)
    """

    def wrap(opt: Optimizer) -> Optimizer:
        name = "skip_nonfinite"

        def init(params: PyTree) -> WrapperState:
            return WrapperState(0, opt.init(params))

        def updater(inner_update: Update) -> Update:
            def update(state: WrapperState, grads: PyTree) -> tuple[WrapperState, PyTree]:
                wrapper_state(name, state, _is_count, "the count of skipped steps (an int)")
                leaves = flat_pair(name, params_of(state.inner), grads)
                if all(bool(np.isfinite(g).all()) for g in leaves.grads):
                    inner, params = inner_update(state.inner, grads)
                    return WrapperState(state.own, inner), params
                return WrapperState(state.own + 1, state.inner), params_of(state.inner)

            return update

        return _with_in_place(opt, init, updater, name)

    return wrap


def _is_count(own: Any) -> bool:
    return isinstance(own, (int, np.integer)) and not isinstance(own, bool)


def _is_accumulation(own: Any) -> bool:
    return type(own) is tuple and len(own) == 2 and _is_count(own[0])


def accumulate(every: int) -> Wrapper:
    """Accumulate grads over ``every`` calls and update once with their mean.

    Calls 1 … k-1 of each group only add their grads (params unchanged); call
    k hands ``(1/k) Σ g`` to the inner optimizer. With equal micro-batches
    this equals one step on their union for mean losses.

    Raises:
        ValueError: ``every`` not a positive int.

    >>> import numpy as np
    >>> from nnfunc.optim import chain, sgd
    >>> opt = chain(accumulate(2), sgd(1.0))
    >>> s, p = opt.update(opt.init(np.zeros(1)), np.array([1.0]))
    >>> p.tolist()
    [0.0]
    >>> s, p = opt.update(s, np.array([3.0]))
    >>> p.tolist()
    [-2.0]
    """
    k = positive_int(every, "accumulate", "every")

    def wrap(opt: Optimizer) -> Optimizer:
        name = f"accumulate({k})"

        def init(params: PyTree) -> WrapperState:
            return WrapperState((0, tree.zeros_like(params)), opt.init(params))

        def updater(inner_update: Update) -> Update:
            def update(state: WrapperState, grads: PyTree) -> tuple[WrapperState, PyTree]:
                wrapper_state(name, state, _is_accumulation,
                              "(count, summed grads) as this wrapper's init makes")
                count, total = state.own
                leaves = flat_pair(name, params_of(state.inner), grads)
                summed = [t + g for t, g in zip(tree.leaves(total), leaves.grads)]
                if count + 1 < k:
                    own = (count + 1, tree.unflatten(leaves.treedef, summed))
                    return WrapperState(own, state.inner), params_of(state.inner)
                mean = [s * s.dtype.type(1.0 / k) for s in summed]
                inner, params = inner_update(state.inner, tree.unflatten(leaves.treedef, mean))
                return WrapperState((0, tree.zeros_like(total)), inner), params

            return update

        return _with_in_place(opt, init, updater, name)

    return wrap
