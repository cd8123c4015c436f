"""The optimizer contract, its state, and ``chain``.

An :class:`Optimizer` is ``init(params) -> state`` and ``update(state, grads)
-> (state, params)``. Every optimizer's state is an :class:`OptState`: the
params, the step count, the learning rate of the last step, a learning-rate
scale (for plateau schedules) and the rule's own slots (moments, ...), each a
pytree. Nothing is updated in place: the caller's params, grads and old state
are untouched by ``update``.

A :data:`Wrapper` turns an optimizer into another: gradient transforms
(clipping, L1/L2, ...) act on the grads before the inner optimizer sees them;
``freeze``, ``skip_nonfinite`` and ``accumulate`` act around its update.
``chain(w1, w2, opt)`` is ``w1(w2(opt))``: the grads pass through ``w1``
first. A wrapper's state is ``WrapperState(own, inner)``;
:func:`params_of`, :func:`step_of`, :func:`lr_of` and :func:`scale_lr` reach
the :class:`OptState` inside any chain.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from nnfunc import tree
from nnfunc._validate import describe, fail, finite_float, flag, real_number, type_fail
from nnfunc.typing import Array, PyTree

__all__ = [
    "OptState",
    "Optimizer",
    "Schedule",
    "Update",
    "Wrapper",
    "WrapperState",
    "chain",
    "lr_of",
    "params_of",
    "replace_params",
    "scale_lr",
    "state_params",
    "step_of",
    "update_fn",
]

Schedule = Callable[[int], float]
"""A learning-rate schedule: step (0-based) -> learning rate."""

LearningRate = float | Schedule


Update = Callable[[Any, PyTree], tuple[Any, PyTree]]
"""``update(state, grads) -> (state, params)``."""


class Optimizer(NamedTuple):
    """``init(params) -> state``; ``update(state, grads) -> (state, params)``.

    ``update`` is pure: the old state (with its params) and the grads are
    untouched. ``update_in_place``, where an optimizer offers it (Adam and
    AdamW do), computes the same new state but may write it into the old
    state's arrays, sparing the copy: the old state, and the params it
    holds, must not be used afterwards (JAX calls this donating a buffer).
    ``train_step(..., donate=True)`` and ``fit`` use it; see
    :func:`update_fn`.
    """

    init: Callable[[PyTree], Any]
    update: Update
    name: str = "optimizer"
    update_in_place: Update | None = None


def update_fn(optimizer: Any, donate: bool) -> Update:
    """``optimizer.update``, or with ``donate`` its ``update_in_place`` when it has one.

    Raises:
        TypeError: ``optimizer`` has no callable ``update``.
    """
    if not callable(getattr(optimizer, "update", None)):
        raise type_fail("optim.update_fn", "optimizer", "must have update(state, grads) "
                        "(e.g. nnfunc.optim.adam(1e-3))", describe(optimizer))
    in_place = getattr(optimizer, "update_in_place", None) if flag(
        donate, "optim.update_fn", "donate") else None
    return in_place if in_place is not None else optimizer.update  # type: ignore[no-any-return]


class OptState(NamedTuple):
    """The state of every optimizer rule.

    ``step`` counts the updates applied; ``lr`` is the learning rate the last
    update used (before any), ``schedule(0)`` scaled; ``lr_scale``
    multiplies the rule's learning rate or schedule (``reduce_lr_on_plateau``
    changes it); ``slots`` holds the rule's accumulators as pytrees shaped
    like ``params``.
    """

    params: PyTree
    step: int
    lr: float
    lr_scale: float
    slots: Any


class WrapperState(NamedTuple):
    """The state of a wrapped optimizer: the wrapper's own and the inner one's."""

    own: Any
    inner: Any


Wrapper = Callable[[Optimizer], Optimizer]


def _inner_state(state: Any, component: str) -> OptState:
    while isinstance(state, WrapperState):
        state = state.inner
    if not isinstance(state, OptState):
        raise type_fail(component, "state", "must be an optimizer state from init",
                        describe(state))
    return state


def _replace_inner(state: Any, new: OptState) -> Any:
    if isinstance(state, WrapperState):
        return state._replace(inner=_replace_inner(state.inner, new))
    return new


def state_params(state: Any) -> PyTree:
    """The params an optimizer state holds: an nnfunc state's (of any chain), or the
    ``params`` field of another optimizer's ``NamedTuple`` state; ``None`` if neither."""
    inner: Any = state
    while isinstance(inner, WrapperState):
        inner = inner.inner
    if not (isinstance(inner, tuple) and "params" in getattr(type(inner), "_fields", ())):
        return None
    named: Any = inner
    held: PyTree = named.params
    return held


def replace_params(state: Any, params: PyTree) -> Any:
    """``state`` (of any chain) holding ``params`` instead of its own.

    What a callback's ``Decision(params=...)`` needs: the optimizer's next
    update starts from the params its state holds, so replacing the params
    means replacing them inside the state. The new params must have the
    structure, shapes and dtypes of the old (the slots are shaped like them).
    Another optimizer's ``NamedTuple`` state with a ``params`` field works too.

    Raises:
        ValueError: ``params`` shaped or typed unlike the state's.
        TypeError: a state that holds no params this function can find.

    >>> import numpy as np
    >>> from nnfunc.optim import sgd
    >>> state = replace_params(sgd(0.1).init({"w": np.zeros(2)}), {"w": np.ones(2)})
    >>> params_of(state)["w"].tolist()
    [1.0, 1.0]
    """
    inner: Any = state
    while isinstance(inner, WrapperState):
        inner = inner.inner
    if not (isinstance(inner, tuple) and "params" in getattr(type(inner), "_fields", ())):
        raise type_fail("optim.replace_params", "state", "must be an optimizer state holding "
                        "its params (an OptState, or a NamedTuple with a params field)",
                        describe(inner))
    named: Any = inner  # a NamedTuple with a params field, as checked above
    old = named.params
    if tree.structure(old) != tree.structure(params):
        tree.assert_same_structure(old, params, ("state params", "params"))
    for (path, a), b in zip(tree.leaves_with_path(old), tree.leaves(params)):
        if np.shape(a) != np.shape(b) or np.asarray(a).dtype != np.asarray(b).dtype:
            raise fail("optim.replace_params", tree.keystr(path, "params"),
                       f"must have the state's shape {np.shape(a)} and dtype "
                       f"{np.asarray(a).dtype}", describe(b))
    return _replace_inner(state, named._replace(params=params))


def params_of(state: Any) -> PyTree:
    """The params held by an optimizer state (of any chain)."""
    return _inner_state(state, "optim.params_of").params


def step_of(state: Any) -> int:
    """How many updates the optimizer has applied."""
    return int(_inner_state(state, "optim.step_of").step)


def lr_of(state: Any) -> float:
    """The learning rate of the last update (before any: the first one's)."""
    return float(_inner_state(state, "optim.lr_of").lr)


def scale_lr(state: Any, factor: float) -> Any:
    """A state whose future learning rates are multiplied by ``factor``.

    >>> import numpy as np
    >>> from nnfunc.optim import sgd
    >>> state = scale_lr(sgd(0.1).init({"w": np.zeros(2)}), 0.5)
    >>> lr_of(state)
    0.05
    """
    f = finite_float(factor, "optim.scale_lr", "factor", lo=0.0, lo_open=True)
    inner = _inner_state(state, "optim.scale_lr")
    new = inner._replace(lr_scale=inner.lr_scale * f, lr=inner.lr * f)
    return _replace_inner(state, new)


def learning_rate(lr: Any, component: str) -> Schedule:
    """Validate a number or schedule and return it as a schedule."""
    if callable(lr):
        return lr  # type: ignore[no-any-return]
    value = finite_float(lr, component, "lr", lo=0.0)
    return lambda step: value


def current_lr(component: str, schedule: Schedule, step: int, scale: float) -> float:
    """``scale · schedule(step)``, checked to be a finite real number >= 0."""
    try:
        raw = schedule(step)
    except OverflowError as err:
        raise fail(component, "lr", f"schedule must give finite values >= 0 (step {step})",
                   f"OverflowError: {err}") from None
    if not real_number(raw):
        raise type_fail(component, "lr", f"schedule must return a real number (step {step})",
                        describe(raw))
    value = float(raw) * scale
    if not math.isfinite(value) or value < 0:
        raise fail(component, "lr", f"schedule must give finite values >= 0 (step {step})",
                   value)
    return value


def decay_rate(value: Any, component: str, arg: str) -> float:
    """A decay rate in ``[0, 1)``."""
    return finite_float(value, component, arg, lo=0.0, hi=1.0, hi_open=True)


def positive(value: Any, component: str, arg: str) -> float:
    """A finite value > 0."""
    return finite_float(value, component, arg, lo=0.0, lo_open=True)


class Leaves(NamedTuple):
    """``params`` and ``grads`` flattened once, with the structure to rebuild them."""

    params: list[Array]
    grads: list[Array]
    treedef: tree.TreeDef


def flat_pair(component: str, params: PyTree, grads: PyTree) -> Leaves:
    """Flatten params and grads; a structure, shape or dtype mismatch is a clear error."""
    p_leaves, p_def = tree.flatten(params)
    g_leaves, g_def = tree.flatten(grads)
    if g_def != p_def:
        try:
            tree.assert_same_structure(params, grads, ("params", "grads"))
        except ValueError as err:
            raise fail(component, "grads", "must have the params' structure",
                       str(err).removeprefix("tree: ")) from None
    for i, (p, g) in enumerate(zip(p_leaves, g_leaves)):
        if type(g) is not np.ndarray or g.shape != p.shape or g.dtype != p.dtype:
            path = tree.keystr(tree.leaves_with_path(grads)[i][0], "grads")
            raise fail(component, path, f"must be an array of shape {np.shape(p)} and dtype "
                       f"{np.asarray(p).dtype} like params", describe(g))
    return Leaves(p_leaves, g_leaves, p_def)


def pair_leaves(component: str, params: PyTree, grads: PyTree) -> tuple[list[Array], list[Array]]:
    """The leaves of params and grads, checked as :func:`flat_pair` checks them.

    One walk over both trees and no :class:`~nnfunc.tree.TreeDef` when all is
    well (the per-step fast path); anything unusual takes :func:`flat_pair`,
    which raises the clear error or handles the rarer node types.
    """
    got = tree.paired_leaves(params, grads)
    if got is not None and same_shapes(*got):
        return got
    both = flat_pair(component, params, grads)
    return both.params, both.grads


def same_shapes(ps: list[Array], gs: list[Array]) -> bool:
    """Whether each grad has its param's shape and dtype (the leaves paired)."""
    for p, g in zip(ps, gs):
        if g.shape != p.shape or (g.dtype is not p.dtype and g.dtype != p.dtype):
            return False
    return True


def check_slot(component: str, index: int, ps: list[Array], leaves: list[Any],
               slots: Any) -> None:
    """Raise a clear error unless slot ``index``'s leaves match the params' in number and shape.

    (Say a state mixed from two models: elementwise rules would otherwise
    fail with a raw broadcasting error, or, on flat buffers, not fail at all.)
    """
    if len(leaves) == len(ps):
        for p, a in zip(ps, leaves):
            if (a.shape if type(a) is np.ndarray else np.shape(a)) != p.shape:
                break
        else:
            return
    raise fail(component, f"state.slots[{index}]", "must have the params' structure and shapes "
               "(a state from this optimizer's init for these params)",
               f"structure {tree.structure(slots[index])!r} with shapes "
               f"{[np.shape(a) for a in leaves]}")


def chain(*parts: Any) -> Any:
    """Compose wrappers (gradient transforms) in front of an optimizer.

    ``chain(w1, ..., wk, opt)`` is the optimizer ``w1(...(wk(opt)))``: grads
    go through ``w1`` first, then ``w2``, ..., then ``opt`` updates the
    params. ``chain(w1, ..., wk)`` (no optimizer) is itself a wrapper, and
    ``chain()`` is the identity wrapper.

    Raises:
        TypeError: if a part is neither a wrapper nor (last) an optimizer.

    >>> from nnfunc.optim import adam, clip_by_global_norm, l2
    >>> opt = chain(clip_by_global_norm(1.0), l2(1e-4), adam(1e-3))
    >>> opt.name
    'clip_by_global_norm(1) | l2(0.0001) | adam'
    """
    *wrappers, last = parts if parts else (None,)
    if isinstance(last, Optimizer):
        base: Optimizer | None = last
    else:
        base = None
        wrappers = list(parts)
    for i, w in enumerate(wrappers):
        if isinstance(w, Optimizer) or not callable(w):
            where = "only the last part may be an optimizer" if isinstance(w, Optimizer) \
                else "must be a wrapper such as clip_by_global_norm(1.0)"
            raise type_fail("optim.chain", f"part {i}", where, describe(w))

    def wrap(opt: Optimizer) -> Optimizer:
        if not isinstance(opt, Optimizer):
            raise type_fail("optim.chain", "optimizer", "must be an nnfunc Optimizer (e.g. "
                            "nnfunc.optim.adam(1e-3))", describe(opt))
        for w in reversed(wrappers):
            opt = w(opt)
        return opt

    return wrap(base) if base is not None else wrap
