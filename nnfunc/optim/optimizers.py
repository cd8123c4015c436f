"""The optimizers: the formula sheet's six, with its errata, and their common variants
(Adam and AdamW in :mod:`nnfunc.optim._adam`, whose names :mod:`nnfunc.optim` exports).

Each factory returns an :class:`~nnfunc.optim.base.Optimizer` whose state is
an :class:`~nnfunc.optim.base.OptState` with the rule's slots. Notation:
``θ`` params, ``g`` grads, ``η`` the learning rate of this step (a number or
``schedule(step)``), ``t`` the step count after this update (1 on the first).
Every rule keeps the params' dtype in its slots and results, except for params
narrower than float32 (float16), whose update is computed in float32 with float32
slots (see :func:`_in_float32`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from functools import lru_cache, partial
from typing import Any, NamedTuple

import numpy as np

from nnfunc import tree, workspace
from nnfunc._validate import describe, flag, type_fail
from nnfunc.optim import _arena
from nnfunc.optim.base import (
    LearningRate,
    Optimizer,
    OptState,
    Update,
    check_slot,
    current_lr,
    decay_rate,
    learning_rate,
    pair_leaves,
    positive,
    same_shapes,
)
from nnfunc.typing import Array, PyTree

__all__ = ["AdaDeltaSlots", "MomentumSlots", "NoSlots", "SquareSlots", "adadelta", "adagrad",
           "momentum", "rmsprop", "sgd"]

Leaves = list[Array]
Apply = Callable[[Leaves, Leaves, Sequence[Leaves], float, int], tuple[Leaves, list[Leaves]]]
Dressed = Callable[[Leaves, Leaves, Sequence[Leaves], float, int, Any],
                   tuple[Leaves, list[Leaves], Any]]
"""A rule that may give back its result trees too: ``(params, grads, slots, lr, t, dress)
-> (new_params, new_slots, (params_tree, slots_tree) or None)`` (see :func:`_dresser`)."""


def _zeros(leaves: Leaves) -> Leaves:
    return [np.zeros_like(p) for p in leaves]


_F32 = np.dtype(np.float32)


def _narrow(leaves: Leaves) -> bool:
    """Whether any leaf is a float narrower than float32 (float16)."""
    for a in leaves:  # noqa: SIM110 (a loop: no generator's frame, once per new state)
        if a.dtype.itemsize < 4:
            return True
    return False


def _widened(leaves: Leaves) -> Leaves:
    """``leaves`` with each narrower than float32 as a float32 copy (the rest as they are)."""
    return [a.astype(_F32) if a.dtype.itemsize < 4 else a for a in leaves]


def _in_float32(rule: Apply, ps: Leaves, gs: Leaves, slots: Sequence[Leaves], eta: float,
                t: int) -> tuple[Leaves, list[Leaves]]:
    """``rule`` for params some of which are float16: those params and their grads
    are widened to float32, the rule runs in float32 (slots included), and its
    new params are rounded back to each param's dtype once.

    In float16 the rules' arithmetic breaks down: ``ε = 1e-8`` rounds to 0,
    and ``g²`` underflows to 0 for ``|g| < 2.4e-4`` (float16's smallest
    subnormal is 6e-8), so AdaGrad, RMSProp and Adam divide ``0/0`` for a
    zero gradient and ``m/0`` for a small one: NaN and inf params after one
    step. (Mixed-precision training keeps its optimizer state in float32 for
    the same reason.) The slots are float32 from ``init``; float16 slots of a
    state made before are widened here, and come back float32. The new params
    are always fresh arrays: the widened ones are copies, which no rule keeps
    (a donated Adam update overwrites only arenas), so a donated update
    overwrites the float32 slots but not the float16 params.
    """
    # a slot list with nothing to widen is passed as it is: an in-place rule gives
    # the very list back, and the state's slot tree is reused
    wide_slots = [_widened(s) if _narrow(s) else s for s in slots]
    new_p, new_slots = rule(_widened(ps), _widened(gs), wide_slots, eta, t)
    return [a if a.dtype == p.dtype else a.astype(p.dtype) for a, p in zip(new_p, ps)], new_slots


class _Last(NamedTuple):
    """What an optimizer's last update returned, which the next update is usually
    given back: then it knows the leaves and structure without walking the trees.

    Kept only for trees of tuples, NamedTuples and ``None`` (which cannot change
    in place); recognised by identity. The optimizer holds these trees until its
    next update.
    """

    params: PyTree
    slots: Any
    treedef: tree.TreeDef
    build: Callable[[Sequence[Any]], Any]  # tree.builder(treedef)
    read: Callable[[Any], Leaves | None]  # tree.reader(treedef): the grads' leaves
    ps: Leaves
    slot_leaves: list[Leaves]
    narrow: bool  # some leaf is float16: the rule runs in float32 (_in_float32)
    dress: Any  # _dresser(build, slot type), or None: see _dressable


@lru_cache(maxsize=512)
def _dressable(td: tree.TreeDef) -> bool:
    """Whether result trees of this structure may be made once and handed out again
    (:func:`_dresser`): built only of tuples, NamedTuples and ``None`` (nothing can
    change in place), and of NamedTuples whose instances take no attributes (no
    ``__dict__``: a typing ``NamedTuple``, not a class derived from one without
    ``__slots__``), so a tree handed out again is exactly the tree first made."""
    kind = td.kind
    if kind in ("leaf", "none"):
        return True
    if not (isinstance(kind, type) and issubclass(kind, tuple)) or kind.__dictoffset__:
        return False
    return all(_dressable(c) for c in td.children)


@lru_cache(maxsize=512)
def _dresser(build: Callable[[Sequence[Any]], Any], slot_type: Any) -> _arena.Dress:
    """The dressing of a pure update's result arenas (see
    :func:`nnfunc.optim._arena.plan`): from the params' and each slot's
    leaves, the params tree and the slots, and every node below them, as the
    workspace group's members; made once per group instead of once per step.

    Memoized per structure's builder and slot type: the workspace files the
    groups under it."""
    return partial(_dress, build, slot_type)


def _dress(build: Callable[[Sequence[Any]], Any], slot_type: Any,
           lists: list[tuple[Array, ...]]) -> tuple[Any, ...]:
    params = build(lists[0])
    slots = slot_type(*[build(s) for s in lists[1:]])
    nodes: list[Any] = [params, slots]
    for root in nodes[:2]:
        _add_nodes(root, nodes)
    return tuple(nodes)


def _add_nodes(node: tuple[Any, ...], out: list[Any]) -> None:
    """Append every node with children below ``node`` (tuples; leaves are arrays)."""
    for child in node:
        if isinstance(child, tuple) and child:
            out.append(child)
            _add_nodes(child, out)


def _undressed(rule: Dressed) -> Apply:
    """``rule`` as a plain :data:`Apply`: passed no dressing, its trees dropped."""
    def plain(ps: Leaves, gs: Leaves, slots: Sequence[Leaves], eta: float,
              t: int) -> tuple[Leaves, list[Leaves]]:
        new_p, new_slots, _ = rule(ps, gs, slots, eta, t, None)
        return new_p, new_slots

    return plain


def _rule(name: str, lr: LearningRate, slot_type: Any, n_slots: int, apply: Any,
          apply_in_place: Any = None, zeros: Callable[[Leaves], Leaves] = _zeros, *,
          dresses: bool = False) -> Optimizer:
    """An optimizer from an update rule over leaf lists.

    ``apply(params, grads, slots, lr, t) -> (new_params, new_slots)`` sees
    flat lists of arrays (``slots`` is one list per slot, zeros at first).
    ``apply_in_place``, when given, is the same rule allowed to write its
    results into the arrays of ``params`` and ``slots`` (it backs
    ``Optimizer.update_in_place``); when it returns the very lists it was
    given, the state's trees are reused as they are. ``zeros(leaves)`` makes
    each slot's initial leaves.

    With ``dresses`` both are :data:`Dressed` rules: the pure update passes
    them a dressing (for a structure :func:`_dressable`) and uses the trees
    they give back instead of building its own; the in-place one passes
    ``None``.
    """
    schedule = learning_rate(lr, name)

    def init(params: PyTree) -> OptState:
        leaves, treedef = tree.flatten(params)
        for path, leaf in tree.leaves_with_path(params):
            if not (isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f"):
                raise type_fail(name, tree.keystr(path, "params"),
                                "must be a floating-point array", describe(leaf))
        like = _widened(leaves)  # float16 params get float32 slots (see _in_float32)
        slots = slot_type(*(tree.unflatten(treedef, zeros(like)) for _ in range(n_slots)))
        return OptState(params, 0, current_lr(name, schedule, 0, 1.0), 1.0, slots)

    fixed = None if callable(lr) else float(lr)

    own = workspace.Workspace()  # the update's arrays, reused once the caller drops them
    slots_kind: Hashable = slot_type
    last_result: list[_Last | None] = [None]  # see _Last

    def updater(rule: Any, dressing: bool) -> Update:
        def update(state: OptState, grads: PyTree) -> tuple[OptState, PyTree]:
            token = workspace.enter(own)
            try:
                return updated(state, grads)
            finally:
                workspace.leave(token)

        def updated(state: OptState, grads: PyTree) -> tuple[OptState, PyTree]:
            if not isinstance(state, OptState):
                raise type_fail(name, "state", "must be this optimizer's state (from init)",
                                describe(state))
            if type(state.slots) is not slot_type:
                raise type_fail(name, "state.slots", f"must be {slot_type.__name__} (a state "
                                f"from this optimizer's init, not another optimizer's)",
                                type(state.slots).__name__)
            last = last_result[0]
            if last is not None and state.params is last.params and state.slots is last.slots:
                # the trees the last update returned (immutable): their leaves are known,
                # and the grads' are read by the structure's compiled reader
                ps, slot_leaves = last.ps, last.slot_leaves
                gs = last.read(grads)
                if gs is None or not same_shapes(ps, gs):
                    gs = pair_leaves(name, state.params, grads)[1]  # raises the clear error
                narrow = last.narrow
                treedef, build, read, dress = last.treedef, last.build, last.read, last.dress
            else:
                ps, gs = pair_leaves(name, state.params, grads)
                slot_leaves = [tree.leaves(s) for s in state.slots]
                for i, leaves in enumerate(slot_leaves):
                    check_slot(name, i, ps, leaves, state.slots)
                narrow = _narrow(ps)
                last = None
                treedef = tree.structure(state.params)
                build, read = tree.builder(treedef), tree.reader(treedef)
                dress = _dresser(build, slots_kind) if dresses and _dressable(treedef) else None
            eta = (fixed * state.lr_scale if fixed is not None
                   else current_lr(name, schedule, state.step, state.lr_scale))
            trees = None
            if narrow:
                new_p, new_slots = _in_float32(_undressed(rule) if dresses else rule,
                                               ps, gs, slot_leaves, eta, state.step + 1)
            elif dresses:
                new_p, new_slots, trees = rule(ps, gs, slot_leaves, eta, state.step + 1,
                                               dress if dressing else None)
            else:
                new_p, new_slots = rule(ps, gs, slot_leaves, eta, state.step + 1)
            # leaves updated in place come back as the very lists: reuse their trees
            params, slots = state.params, state.slots
            same_slots = True
            for a, b in zip(new_slots, slot_leaves):
                same_slots = same_slots and a is b
            if last is None or new_p is not ps or not same_slots:
                if trees is not None:  # made with the result arenas, once per group
                    params, slots = trees
                else:
                    if new_p is not ps:
                        params = build(new_p)
                    if not same_slots:
                        slots = slot_type(*[build(s) for s in new_slots])
                last_result[0] = (_Last(params, slots, treedef, build, read, new_p,
                                        list(new_slots), narrow, dress)
                                  if last is not None or tree.immutable(treedef) else None)
            return OptState(params, state.step + 1, eta, state.lr_scale, slots), params

        return update

    return Optimizer(init, updater(apply, True), name,
                     None if apply_in_place is None else updater(apply_in_place, False))


def _c(x: Array, value: float) -> Any:
    """``value`` as a scalar of ``x``'s dtype, so float32 stays float32."""
    return x.dtype.type(value)


def _ema(average: Array, x: Array, rate: float) -> Array:
    """An exponential moving average step ``rate · average + (1 - rate) · x``."""
    return _c(average, rate) * average + _c(x, 1 - rate) * x  # type: ignore[no-any-return]


def _rms_scaled(p: Array, g: Array, v: Array, eta: float, eps: float) -> Array:
    """The AdaGrad/RMSProp step ``θ - η g / (√v + ε)``."""
    return p - _c(p, eta) * g / (np.sqrt(v) + _c(v, eps))  # type: ignore[no-any-return]


# -- SGD and momentum -------------------------------------------------------------------

class NoSlots(NamedTuple):
    """Plain SGD keeps no slots."""


class MomentumSlots(NamedTuple):
    """The velocity ``v`` (shaped like params)."""

    v: PyTree


def sgd(lr: LearningRate = 0.01, *, momentum: float = 0.0, nesterov: bool = False) -> Optimizer:
    """Stochastic gradient descent, optionally with heavy-ball or Nesterov momentum.

    Plain (``momentum=0``): ``θ ← θ - η g``.
    Heavy-ball (Polyak, 1964): ``v ← μ v + g``; ``θ ← θ - η v``.
    Nesterov (Sutskever et al., 2013): ``v ← μ v + g``; ``θ ← θ - η (g + μ v)``.
    (For the formula sheet's averaged form ``v ← γv + (1-γ)g`` see :func:`momentum`.)

    Args:
        lr: learning rate ``η``, a number or a schedule ``step -> η``.
        momentum: ``μ`` in ``[0, 1)``.
        nesterov: use the Nesterov look-ahead (needs ``momentum > 0``).

    Raises:
        ValueError: ``lr`` negative or not finite; ``momentum`` outside [0, 1).

    >>> import numpy as np
    >>> opt = sgd(0.1)
    >>> state, params = opt.update(opt.init({"w": np.ones(2)}), {"w": np.ones(2)})
    >>> params["w"].tolist()
    [0.9, 0.9]
    """
    mu = decay_rate(momentum, "sgd", "momentum")
    nesterov = flag(nesterov, "sgd", "nesterov")
    if nesterov and mu == 0:
        raise ValueError("sgd: nesterov=True needs momentum > 0; got momentum 0.0")
    if mu == 0:
        def plain(ps: Leaves, gs: Leaves, slots: Sequence[Leaves], eta: float,
                  t: int) -> tuple[Leaves, list[Leaves]]:
            return [p - _c(p, eta) * g for p, g in zip(ps, gs)], []

        return _rule("sgd", lr, NoSlots, 0, plain)

    def heavy_ball(ps: Leaves, gs: Leaves, slots: Sequence[Leaves], eta: float,
                   t: int) -> tuple[Leaves, list[Leaves]]:
        new_p, new_v = [], []
        for p, g, v in zip(ps, gs, slots[0]):
            v2 = _c(v, mu) * v + g
            step = g + _c(v, mu) * v2 if nesterov else v2
            new_p.append(p - _c(p, eta) * step)
            new_v.append(v2)
        return new_p, [new_v]

    return _rule("sgd_nesterov" if nesterov else "sgd_momentum", lr, MomentumSlots, 1,
                 heavy_ball)


def momentum(lr: LearningRate = 0.01, gamma: float = 0.9) -> Optimizer:
    """Momentum as on the formula sheet: an exponential average of the gradients.

    ``v ← γ v + (1 - γ) g``;  ``θ ← θ - η v``. The average damps ``v`` by
    ``1 - γ`` compared with heavy-ball momentum (``sgd(lr, momentum=γ)``),
    so it needs a ``1/(1-γ)`` larger ``η`` for the same step (ERRATA 11).

    Args:
        lr: learning rate ``η`` (number or schedule).
        gamma: ``γ`` in ``[0, 1)``.

    Raises:
        ValueError: ``lr`` negative or not finite; ``gamma`` outside [0, 1).

    >>> import numpy as np
    >>> opt = momentum(1.0, gamma=0.5)
    >>> _, params = opt.update(opt.init(np.zeros(1)), np.ones(1))
    >>> params.tolist()
    [-0.5]
    """
    gam = decay_rate(gamma, "momentum", "gamma")

    def apply(ps: Leaves, gs: Leaves, slots: Sequence[Leaves], eta: float,
              t: int) -> tuple[Leaves, list[Leaves]]:
        new_v = [_ema(v, g, gam) for g, v in zip(gs, slots[0])]
        return [p - _c(p, eta) * v for p, v in zip(ps, new_v)], [new_v]

    return _rule("momentum", lr, MomentumSlots, 1, apply)


# -- AdaGrad, RMSProp, AdaDelta -----------------------------------------------------------

class SquareSlots(NamedTuple):
    """The accumulated squared gradients ``v``."""

    v: PyTree


def adagrad(lr: LearningRate = 0.01, eps: float = 1e-8) -> Optimizer:
    """AdaGrad (Duchi et al., 2011): per-coordinate steps shrink with the gradient history.

    ``v ← v + g²``;  ``θ ← θ - η g / (√v + ε)``  (ε ≈ 1e-8; the sheet's
    "10^8" is a typo, ERRATA 12).

    Raises:
        ValueError: ``lr`` negative or not finite; ``eps`` not > 0.

    >>> import numpy as np
    >>> opt = adagrad(0.1)
    >>> _, params = opt.update(opt.init(np.zeros(1)), np.full(1, 3.0))
    >>> np.round(params, 6).tolist()
    [-0.1]
    """
    e = positive(eps, "adagrad", "eps")

    def apply(ps: Leaves, gs: Leaves, slots: Sequence[Leaves], eta: float,
              t: int) -> tuple[Leaves, list[Leaves]]:
        new_v = [v + g * g for g, v in zip(gs, slots[0])]
        new_p = [_rms_scaled(p, g, v, eta, e) for p, g, v in zip(ps, gs, new_v)]
        return new_p, [new_v]

    return _rule("adagrad", lr, SquareSlots, 1, apply)


def rmsprop(lr: LearningRate = 0.001, rho: float = 0.9, eps: float = 1e-8) -> Optimizer:
    """RMSProp (Tieleman & Hinton, 2012): steps scaled by a moving RMS of the gradients.

    ``v ← ρ v + (1 - ρ) g²``;  ``θ ← θ - η g / (√v + ε)``.

    Raises:
        ValueError: ``lr`` negative or not finite; ``rho`` outside [0, 1); ``eps`` not > 0.

    >>> import numpy as np
    >>> opt = rmsprop(0.01, rho=0.0)
    >>> _, params = opt.update(opt.init(np.zeros(1)), np.full(1, 2.0))
    >>> np.round(params, 6).tolist()
    [-0.01]
    """
    r = decay_rate(rho, "rmsprop", "rho")
    e = positive(eps, "rmsprop", "eps")

    def apply(ps: Leaves, gs: Leaves, slots: Sequence[Leaves], eta: float,
              t: int) -> tuple[Leaves, list[Leaves]]:
        new_v = [_ema(v, g * g, r) for g, v in zip(gs, slots[0])]
        new_p = [_rms_scaled(p, g, v, eta, e) for p, g, v in zip(ps, gs, new_v)]
        return new_p, [new_v]

    return _rule("rmsprop", lr, SquareSlots, 1, apply)


class AdaDeltaSlots(NamedTuple):
    """Running averages of squared gradients ``eg2`` and squared updates ``edx2``."""

    eg2: PyTree
    edx2: PyTree


def adadelta(rho: float = 0.95, eps: float = 1e-6, lr: LearningRate = 1.0) -> Optimizer:
    """AdaDelta (Zeiler, 2012): unit-consistent steps from two running averages.

    ``E[g²] ← ρ E[g²] + (1 - ρ) g²``;
    ``Δ = -(√(E[Δ²] + ε) / √(E[g²] + ε)) g``;
    ``E[Δ²] ← ρ E[Δ²] + (1 - ρ) Δ²``;  ``θ ← θ + η Δ`` (``η = 1`` in the paper).
    The formula sheet's ``-(√Δθ_t + ε)/(√v + ε)`` is garbled (ERRATA 13).

    Raises:
        ValueError: ``rho`` outside [0, 1); ``eps`` not > 0; ``lr`` negative or not finite.

    >>> import numpy as np
    >>> opt = adadelta(rho=0.0, eps=1e-6)
    >>> _, params = opt.update(opt.init(np.zeros(1)), np.ones(1))
    >>> np.round(params, 6).tolist()
    [-0.001]
    """
    r = decay_rate(rho, "adadelta", "rho")
    e = positive(eps, "adadelta", "eps")

    def apply(ps: Leaves, gs: Leaves, slots: Sequence[Leaves], eta: float,
              t: int) -> tuple[Leaves, list[Leaves]]:
        new_p, new_eg2, new_edx2 = [], [], []
        for p, g, eg2, edx2 in zip(ps, gs, slots[0], slots[1]):
            eg2_2 = _ema(eg2, g * g, r)
            delta = -np.sqrt(edx2 + _c(edx2, e)) / np.sqrt(eg2_2 + _c(eg2, e)) * g
            new_edx2.append(_ema(edx2, delta * delta, r))
            new_eg2.append(eg2_2)
            new_p.append(p + _c(p, eta) * delta)
        return new_p, [new_eg2, new_edx2]

    return _rule("adadelta", lr, AdaDeltaSlots, 2, apply)
