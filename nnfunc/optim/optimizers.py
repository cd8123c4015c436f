"""The optimizers: the formula sheet's six, with its errata, and their common variants.

Each factory returns an :class:`~nnfunc.optim.base.Optimizer` whose state is
an :class:`~nnfunc.optim.base.OptState` with the rule's slots. Notation:
``θ`` params, ``g`` grads, ``η`` the learning rate of this step (a number or
``schedule(step)``), ``t`` the step count after this update (1 on the first).
Every rule keeps the params' dtype in its slots and results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from typing import Any, NamedTuple

import numpy as np

from nnfunc import tree, workspace
from nnfunc._validate import describe, finite_float, flag, type_fail
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
from nnfunc.typing import Array, PyTree, Shape

__all__ = ["AdaDeltaSlots", "AdamSlots", "MomentumSlots", "NoSlots", "SquareSlots", "adadelta",
           "adagrad", "adam", "adamw", "momentum", "rmsprop", "sgd"]

Leaves = list[Array]
Apply = Callable[[Leaves, Leaves, Sequence[Leaves], float, int], tuple[Leaves, list[Leaves]]]


def _zeros(leaves: Leaves) -> Leaves:
    return [np.zeros_like(p) for p in leaves]


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


def _rule(name: str, lr: LearningRate, slot_type: Any, n_slots: int, apply: Apply,
          apply_in_place: Apply | None = None,
          zeros: Callable[[Leaves], Leaves] = _zeros) -> Optimizer:
    """An optimizer from an update rule over leaf lists.

    ``apply(params, grads, slots, lr, t) -> (new_params, new_slots)`` sees
    flat lists of arrays (``slots`` is one list per slot, zeros at first).
    ``apply_in_place``, when given, is the same rule allowed to write its
    results into the arrays of ``params`` and ``slots`` (it backs
    ``Optimizer.update_in_place``); when it returns the very lists it was
    given, the state's trees are reused as they are. ``zeros(leaves)`` makes
    each slot's initial leaves.
    """
    schedule = learning_rate(lr, name)

    def init(params: PyTree) -> OptState:
        leaves, treedef = tree.flatten(params)
        for path, leaf in tree.leaves_with_path(params):
            if not (isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f"):
                raise type_fail(name, tree.keystr(path, "params"),
                                "must be a floating-point array", describe(leaf))
        slots = slot_type(*(tree.unflatten(treedef, zeros(leaves)) for _ in range(n_slots)))
        return OptState(params, 0, current_lr(name, schedule, 0, 1.0), 1.0, slots)

    fixed = None if callable(lr) else float(lr)

    own = workspace.Workspace()  # the update's arrays, reused once the caller drops them
    last_result: list[_Last | None] = [None]  # see _Last

    def updater(rule: Apply) -> Update:
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
            else:
                ps, gs = pair_leaves(name, state.params, grads)
                slot_leaves = [tree.leaves(s) for s in state.slots]
                for i, leaves in enumerate(slot_leaves):
                    check_slot(name, i, ps, leaves, state.slots)
                last = None
            eta = (fixed * state.lr_scale if fixed is not None
                   else current_lr(name, schedule, state.step, state.lr_scale))
            new_p, new_slots = rule(ps, gs, slot_leaves, eta, state.step + 1)
            # leaves updated in place come back as the very lists: reuse their trees
            params, slots = state.params, state.slots
            same_slots = True
            for a, b in zip(new_slots, slot_leaves):
                same_slots = same_slots and a is b
            if last is None or new_p is not ps or not same_slots:
                if last is None:
                    treedef = tree.structure(state.params)
                    build, read = tree.builder(treedef), tree.reader(treedef)
                else:
                    treedef, build, read = last.treedef, last.build, last.read
                if new_p is not ps:
                    params = build(new_p)
                if not same_slots:
                    slots = slot_type(*[build(s) for s in new_slots])
                last_result[0] = (_Last(params, slots, treedef, build, read, new_p,
                                        list(new_slots))
                                  if last is not None or tree.immutable(treedef) else None)
            return OptState(params, state.step + 1, eta, state.lr_scale, slots), params

        return update

    return Optimizer(init, updater(apply), name,
                     None if apply_in_place is None else updater(apply_in_place))


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


# -- Adam and AdamW ------------------------------------------------------------------------

class AdamSlots(NamedTuple):
    """First and second moment estimates ``m`` and ``v``."""

    m: PyTree
    v: PyTree


_CHUNK = 1 << 17
"""Elements per chunk of the fused Adam kernel: each array's chunk (512 KiB in
float32) streams through cache once instead of once per arithmetic op."""

class _AdamScalars(NamedTuple):
    """The step's constants: Python floats from :func:`_adam_scalars`, then, for
    the kernel, 0-d arrays of the leaves' dtype (:func:`_typed`)."""

    b1: Any
    c1: Any  # 1 - β₁
    b2: Any
    c2: Any  # 1 - β₂
    lr_hat: Any  # η √(1-β₂ᵗ) / (1-β₁ᵗ)
    eps_hat: Any  # ε √(1-β₂ᵗ)
    decay: float  # 1 - η λ (AdamW), 1 for Adam (a Python float: the kernel tests it)


def _adam_scalars(b1: float, b2: float, eta: float, eps: float, weight_decay: float,
                  t: int) -> _AdamScalars:
    """The constants of step ``t`` (counted from 1), as Python floats."""
    bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
    return _AdamScalars(b1, 1 - b1, b2, 1 - b2, eta * math.sqrt(bc2) / bc1, eps * math.sqrt(bc2),
                        1 - eta * weight_decay)


@lru_cache(maxsize=64)
def _betas(b1: float, b2: float, dtype: np.dtype[Any]) -> tuple[Array, Array, Array, Array]:
    """``β₁, 1-β₁, β₂, 1-β₂`` as read-only 0-d arrays of ``dtype``, made once."""
    out = []
    for value in (b1, 1 - b1, b2, 1 - b2):
        a = np.array(value, dtype)
        a.flags.writeable = False
        out.append(a)
    return out[0], out[1], out[2], out[3]


def _typed(k: _AdamScalars, dtype: np.dtype[Any]) -> _AdamScalars:
    """``k``'s constants as 0-d arrays of ``dtype`` (β₁, β₂ and their complements
    made once, the two bias-corrected ones per step).

    A 0-d array operand of the array's dtype gives the very numbers a Python
    float does (NumPy applies the float in the array's dtype), but a ufunc takes
    it about 0.9 µs faster per call, which is most of the cost of a small
    model's kernel: on a 2,410-element float32 vector a multiply by a Python
    float took 2.3 µs, by a 0-d array 1.4 µs.
    """
    b1, c1, b2, c2 = _betas(k.b1, k.b2, dtype)
    return _AdamScalars(b1, c1, b2, c2, np.array(k.lr_hat, dtype), np.array(k.eps_hat, dtype),
                        k.decay)


def _adam_chunk(k: _AdamScalars, p: Array, g: Array | _Pieces, m: Array, v: Array, p2: Array,
                m2: Array, v2: Array, tmp: Array) -> None:
    """One chunk of the Adam update into ``p2, m2, v2`` (all 1-D, equal length).

    ``m2 = β₁m + (1-β₁)g``; ``v2 = β₂v + (1-β₂)g²``;
    ``p2 = decay·p - lr_hat · m2 / (√v2 + eps_hat)``, which is the textbook
    ``θ - η m̂/(√v̂ + ε)`` with ``m̂ = m/(1-β₁ᵗ)``, ``v̂ = v/(1-β₂ᵗ)`` rearranged
    so the bias corrections become two scalars. Any output may be its input.
    ``g`` is one 1-D array or pieces ``(lo, hi, g[lo:hi])`` (see :func:`_pieces`).
    """
    if isinstance(g, list):
        for lo, hi, a in g:
            np.multiply(a, k.c1, out=tmp[lo:hi])
    else:
        np.multiply(g, k.c1, out=tmp)
    np.multiply(m, k.b1, out=m2)
    np.add(m2, tmp, out=m2)
    if isinstance(g, list):
        for lo, hi, a in g:
            np.multiply(a, a, out=tmp[lo:hi])
    else:
        np.multiply(g, g, out=tmp)
    np.multiply(tmp, k.c2, out=tmp)
    np.multiply(v, k.b2, out=v2)
    np.add(v2, tmp, out=v2)
    np.sqrt(v2, out=tmp)
    np.add(tmp, k.eps_hat, out=tmp)
    np.divide(m2, tmp, out=tmp)
    np.multiply(tmp, k.lr_hat, out=tmp)
    if k.decay != 1:
        np.multiply(p, k.decay, out=p2)
        np.subtract(p2, tmp, out=p2)
    else:
        np.subtract(p, tmp, out=p2)


_GROUP_MAX = 1 << 14
"""Leaves smaller than this are concatenated and updated in one run of the
kernel: for small arrays each NumPy call's fixed cost (~1 µs) dominates."""


_Pieces = list[tuple[int, int, Array]]


def _pieces(gs: Leaves) -> _Pieces:
    """The grads as the kernel's pieces: each leaf of at least ``_GROUP_MAX``
    elements where it lies, runs of smaller ones concatenated. A small model's
    big grads are then read in place instead of first copied into one vector
    (-14 µs a step on a 784-128-10 MLP, where that copy cost about as much as
    two of the kernel's passes)."""
    runs = _arena.segments(tuple([g.size for g in gs]), _GROUP_MAX)
    return [(run[2], run[3], _arena.gather(gs, run, None)) for run in runs]


Flats = tuple[Array, Array, Array]


def _adam_leaves(k: _AdamScalars, ps: Leaves, gs: Leaves, ms: Leaves, vs: Leaves,
                 in_place: bool = False) -> tuple[Leaves, Leaves, Leaves, Flats | None]:
    """The fused Adam update of every leaf, on the leaves laid end to end.

    The new params, ``m`` and ``v`` are arenas (see
    :mod:`nnfunc.optim._arena`): one flat buffer each, the leaves views into
    it. A pure update writes them into fresh arenas (from the update's
    workspace, so the memory of a state the caller has dropped is used
    again). With ``in_place`` (a donated state) the given params, ``m`` or
    ``v`` that already are such an arena are overwritten instead, and their
    leaf lists come back as given (the caller then reuses their trees). So
    from the second step on, donated or not, the update is one pass over
    flat buffers. Other leaves are read where they lie (small ones
    concatenated), grads likewise. Leaves of several dtypes are updated per
    dtype.

    Returns the new leaf lists and their flat buffers (``None`` for leaves of
    several dtypes). (Given back the lists it returned, the next update
    knows their arenas and runs the kernel itself: see :func:`_adam_like`.)
    """
    if not ps:
        return [], [], [], None
    dtype = ps[0].dtype
    for p in ps:
        if p.dtype != dtype:
            return (*_per_dtype(k, ps, gs, ms, vs, in_place), None)
    sources = p_arena, m_arena, v_arena = (_arena.arena_of(ps), _arena.arena_of(ms),
                                          _arena.arena_of(vs))
    reuse = _overwritable(sources, (ps, ms, vs), gs) if in_place else (False, False, False)
    inputs = (None if p_arena is None else _arena.flat(p_arena),
              None if m_arena is None else _arena.flat(m_arena),
              None if v_arena is None else _arena.flat(v_arena))
    wholes: list[Array] = []
    results: list[Leaves] = []
    shapes = () if reuse == (True, True, True) else tuple([p.shape for p in ps])
    fresh = (iter(_arena.allocate_together(shapes, dtype, 3)) if reuse == (False, False, False)
             else None)  # a pure update's three results: one group
    for leaves, source, keep in zip((ps, ms, vs), inputs, reuse):
        if keep:  # the donated state's own arena: overwritten
            assert source is not None
            wholes.append(source)
            results.append(leaves)
        else:
            whole, views = next(fresh) if fresh is not None else _arena.allocate(shapes, dtype)
            wholes.append(whole)
            results.append(views)
    flats = (wholes[0], wholes[1], wholes[2])
    _run(k, ps, gs, ms, vs, inputs, flats)
    return results[0], results[1], results[2], flats


def _run(k: _AdamScalars, ps: Leaves, gs: Leaves, ms: Leaves, vs: Leaves,
         inputs: tuple[Array | None, Array | None, Array | None],
         wholes: tuple[Array, Array, Array]) -> None:
    """The kernel from the leaves (or their arenas' flat buffers ``inputs``) into
    the flat buffers ``wholes``: one chunk for a small model whose params, ``m``
    and ``v`` are all arenas, else run by run, chunk by chunk."""
    size, dtype = wholes[0].size, wholes[0].dtype
    k = _typed(k, dtype)
    flat_p, flat_m, flat_v = inputs
    if flat_p is not None and flat_m is not None and flat_v is not None and size <= _CHUNK:
        # every step after the first: three arenas read, a small model's update in one chunk
        # (with no leaf of _GROUP_MAX elements, the grads' one copy is cheaper than pieces)
        g = np.concatenate(gs, axis=None) if size < _GROUP_MAX else _pieces(gs)
        _adam_chunk(k, flat_p, g, flat_m, flat_v, wholes[0], wholes[1], wholes[2],
                    _arena.empty(size, dtype))
        return
    runs = _arena.segments(tuple([p.size for p in ps]), _GROUP_MAX)
    longest = 0
    for _, _, lo, hi in runs:
        longest = max(longest, hi - lo)
    tmp = _arena.empty(min(_CHUNK, longest), dtype)
    p2, m2, v2 = wholes
    for run in runs:
        _, _, lo, hi = run
        p, g = _arena.gather(ps, run, inputs[0]), _arena.gather(gs, run, None)
        m, v = _arena.gather(ms, run, inputs[1]), _arena.gather(vs, run, inputs[2])
        for c in range(0, hi - lo, _CHUNK):
            end = min(c + _CHUNK, hi - lo)
            s = slice(c, end)
            _adam_chunk(k, p[s], g[s], m[s], v[s], p2[lo + c:lo + end], m2[lo + c:lo + end],
                        v2[lo + c:lo + end], tmp[:end - c])


def _overwritable(arenas: tuple[Any, Any, Any], leaves: tuple[Leaves, Leaves, Leaves],
                  gs: Leaves) -> tuple[bool, bool, bool]:
    """Which of the params, ``m`` and ``v`` arenas the kernel may write its
    results over: each one that is an arena distinct from the other two,
    provided nothing else the kernel reads (grads, and the leaves of a kind
    that is not overwritten) overlaps what it overwrites."""
    p, m, v = arenas
    reuse = (p is not None and p is not m and p is not v,
             m is not None and m is not p and m is not v,
             v is not None and v is not p and v is not m)
    targets = [a for a, keep in zip(arenas, reuse) if keep]
    read = list(gs)
    for kind, keep in zip(leaves, reuse):
        if not keep:
            read.extend(kind)
    return reuse if _apart(read, targets) else (False, False, False)


def _apart(read: Leaves, targets: Sequence[Array]) -> bool:
    """Whether no array of ``read`` shares memory with any of ``targets``."""
    for a in read:  # an array that owns its memory (as backward's grads do) lies in no arena
        if a.base is not None:
            for target in targets:
                if np.may_share_memory(a, target):
                    return False
    return True


def _writeable(*kinds: Leaves) -> bool:
    for leaves in kinds:
        for a in leaves:
            if not a.flags.writeable:
                return False
    return True


def _per_dtype(k: _AdamScalars, ps: Leaves, gs: Leaves, ms: Leaves, vs: Leaves,
               in_place: bool) -> tuple[Leaves, Leaves, Leaves]:
    """:func:`_adam_leaves` over each dtype's leaves (each gets its own arenas)."""
    results: tuple[Leaves, Leaves, Leaves] = ([], [], [])
    for r in results:
        r.extend(ps)  # placeholders, each overwritten below
    for dtype in {p.dtype for p in ps}:
        idx = [i for i, p in enumerate(ps) if p.dtype == dtype]
        p, g, m, v = ([a[i] for i in idx] for a in (ps, gs, ms, vs))
        part = _adam_leaves(k, p, g, m, v, in_place)[:3]
        for r, new in zip(results, part):
            for i, a in zip(idx, new):
                r[i] = a
    return results


def _adam_like(name: str, lr: LearningRate, b1: float, b2: float, eps: float,
               weight_decay: float) -> Optimizer:
    beta1 = decay_rate(b1, name, "b1")
    beta2 = decay_rate(b2, name, "b2")
    e = positive(eps, name, "eps")
    wd = finite_float(weight_decay, name, "weight_decay", lo=0.0)

    # the leaf lists the last update returned and their flat buffers: given the very
    # lists again (the state it returned, which the optimizer remembers: see _Last),
    # the next update need not recognise the arenas leaf by leaf
    returned: list[tuple[Leaves, Leaves, Leaves, Flats, tuple[Shape, ...]] | None] = [None]

    def step(ps: Leaves, gs: Leaves, slots: Sequence[Leaves], eta: float, t: int,
             in_place: bool) -> tuple[Leaves, list[Leaves]]:
        k = _adam_scalars(beta1, beta2, eta, e, wd, t)
        ms, vs = slots[0], slots[1]
        last = returned[0]
        if last is not None and last[0] is ps and last[1] is ms and last[2] is vs:
            known, shapes = last[3], last[4]
            if not in_place:  # a steady pure loop: three fresh arenas, one group
                (p2, new_p), (m2, new_m), (v2, new_v) = _arena.allocate_together(
                    shapes, known[0].dtype, 3)
                _run(k, ps, gs, ms, vs, known, (p2, m2, v2))
                returned[0] = (new_p, new_m, new_v, (p2, m2, v2), shapes)
                return new_p, [new_m, new_v]
            if _writeable(ps, ms, vs) and _apart(gs, known):
                _run(k, ps, gs, ms, vs, known, known)  # a steady donated loop: overwritten
                return ps, [ms, vs]
            # a leaf made read-only, or grads in the state: recognised afresh below
        new_p, new_m, new_v, flats = _adam_leaves(k, ps, gs, ms, vs, in_place)
        returned[0] = (None if flats is None else
                       (new_p, new_m, new_v, flats, tuple([p.shape for p in new_p])))
        return new_p, [new_m, new_v]

    return _rule(name, lr, AdamSlots, 2, partial(step, in_place=False),
                 partial(step, in_place=True), _arena.zeros_like)


def adam(lr: LearningRate = 0.001, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> Optimizer:
    """Adam (Kingma & Ba, 2015): momentum with per-coordinate RMS scaling.

    With ``t`` counted from 1 on the first update (ERRATA 14: the sheet's
    ``1 - β^t`` with ``t = 0`` divides by zero):
    ``m ← β₁m + (1-β₁)g``;  ``v ← β₂v + (1-β₂)g²``;
    ``m̂ = m/(1-β₁ᵗ)``;  ``v̂ = v/(1-β₂ᵗ)``;  ``θ ← θ - η m̂/(√v̂ + ε)``.

    The update is fused: each array streams through memory once, in chunks
    that stay in cache for the dozen NumPy operations of the rule.

    Raises:
        ValueError: ``lr`` negative or not finite; ``b1``/``b2`` outside [0, 1); ``eps`` not > 0.

    >>> import numpy as np
    >>> opt = adam(0.1)
    >>> _, params = opt.update(opt.init(np.zeros(2)), np.array([3.0, -0.5]))
    >>> np.round(params, 6).tolist()   # the first Adam step is η·sign(g)
    [-0.1, 0.1]
    """
    return _adam_like("adam", lr, b1, b2, eps, 0.0)


def adamw(lr: LearningRate = 0.001, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 0.01) -> Optimizer:
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    As :func:`adam`, but ``θ ← θ - η (m̂/(√v̂ + ε) + λ θ)``: the decay acts on
    the params directly instead of being added to ``g`` (where Adam's scaling
    would distort it, as ``l2`` in a chain does).

    Raises:
        ValueError: as :func:`adam`, and ``weight_decay`` negative or not finite.

    >>> import numpy as np
    >>> opt = adamw(0.1, weight_decay=0.5)
    >>> _, params = opt.update(opt.init(np.ones(1)), np.zeros(1))
    >>> np.round(params, 6).tolist()   # zero gradient: only the decay, θ(1 - ηλ)
    [0.95]
    """
    return _adam_like("adamw", lr, b1, b2, eps, weight_decay)
