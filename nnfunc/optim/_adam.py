"""Adam and AdamW: the fused update over the leaves laid end to end.

The rule is :func:`~nnfunc.optim.optimizers._rule`'s, like every optimizer's;
what is particular here is how it runs. The new params, ``m`` and ``v`` are
*arenas* (:mod:`nnfunc.optim._arena`: one flat buffer each, the leaves views
into it), so an update is a dozen NumPy calls over three flat buffers in
cache-sized chunks whatever the number of leaves (or one compiled loop, where
the C extension was built: :mod:`nnfunc.optim._compiled`); a donated state's arenas
are overwritten in place, a pure update's results come from the optimizer's
workspace; and given back the very lists it returned, an update knows their
arenas without recognising them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache, partial
from typing import Any, NamedTuple

import numpy as np

from nnfunc._validate import finite_float
from nnfunc.optim import _arena, _compiled
from nnfunc.optim.base import LearningRate, Optimizer, decay_rate, positive
from nnfunc.optim.optimizers import Leaves, _rule
from nnfunc.typing import Array, PyTree

__all__ = ["AdamSlots", "adam", "adamw"]


class AdamSlots(NamedTuple):
    """First and second moment estimates ``m`` and ``v``."""

    m: PyTree
    v: PyTree


_CHUNK = 1 << 17
"""Elements per chunk of the fused Adam kernel: each array's chunk (512 KiB in
float32) streams through cache once instead of once per arithmetic op."""


Constants = tuple[float, float, float, float, float, float, float]
"""One step's ``(β₁, 1-β₁, β₂, 1-β₂, lr_hat, eps_hat, decay)``: ``lr_hat = η √(1-β₂ᵗ) /
(1-β₁ᵗ)``, ``eps_hat = ε √(1-β₂ᵗ)``, ``decay = 1 - η λ`` (AdamW; 1 for Adam)."""


def _adam_constants(b1: float, b2: float, eta: float, eps: float, weight_decay: float,
                    t: int) -> Constants:
    """The :data:`Constants` of step ``t`` (counted from 1)."""
    bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
    root = math.sqrt(bc2)
    return b1, 1 - b1, b2, 1 - b2, eta * root / bc1, eps * root, 1 - eta * weight_decay


class _AdamScalars(NamedTuple):
    """The NumPy kernel's operands: a step's constants in the leaves' dtype (see
    :func:`_adam_scalars`)."""

    b1: Array
    c1: Array  # 1 - β₁
    b2: Array
    c2: Array  # 1 - β₂
    lr_hat: Array
    eps_hat: Array
    decay: float  # a Python float: the kernel tests it


def _adam_scalars(k: Constants, dtype: np.dtype[Any]) -> _AdamScalars:
    """The constants ``k`` as 0-d arrays of ``dtype`` (β₁, β₂ and their
    complements made once, the two bias-corrected ones per step).

    A 0-d array operand of the array's dtype gives the very numbers a Python
    float does (NumPy applies the float in the array's dtype), but a ufunc takes
    it about 0.9 µs faster per call, which is most of the cost of a small
    model's kernel: on a 2,410-element float32 vector a multiply by a Python
    float took 2.3 µs, by a 0-d array 1.4 µs. (The compiled loop takes all
    seven as one array of the dtype instead.)
    """
    beta1, c1, beta2, c2 = _betas(k[0], k[2], dtype)
    return _AdamScalars(beta1, c1, beta2, c2, np.array(k[4], dtype), np.array(k[5], dtype),
                        k[6])


@lru_cache(maxsize=64)
def _betas(b1: float, b2: float, dtype: np.dtype[Any]) -> tuple[Array, Array, Array, Array]:
    """``β₁, 1-β₁, β₂, 1-β₂`` as read-only 0-d arrays of ``dtype``, made once."""
    out = []
    for value in (b1, 1 - b1, b2, 1 - b2):
        a = np.array(value, dtype)
        a.flags.writeable = False
        out.append(a)
    return out[0], out[1], out[2], out[3]


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
Trees = tuple[PyTree, Any]
"""A pure update's new params and slots trees, made with its arenas (see :func:`_adam_leaves`)."""


def _adam_leaves(k: Constants, ps: Leaves, gs: Leaves, ms: Leaves, vs: Leaves,
                 in_place: bool = False, dress: _arena.Dress | None = None
                 ) -> tuple[Leaves, Leaves, Leaves, Flats | None, Trees | None]:
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
    dtype, each with the constants ``k`` in its dtype.

    Returns the new leaf lists, their flat buffers (``None`` for leaves of
    several dtypes), and, where three fresh arenas were dressed by ``dress``
    (see :func:`_arena.plan`), the params and slots trees it made
    over them. (Given back the lists it returned, the next update knows their
    arenas and runs the kernel itself: see :func:`_adam_like`.)
    """
    if not ps:
        return [], [], [], None, None
    dtype = ps[0].dtype
    for p in ps:
        if p.dtype != dtype:
            return (*_per_dtype(k, ps, gs, ms, vs, in_place), None, None)
    sources = p_arena, m_arena, v_arena = (_arena.arena_of(ps), _arena.arena_of(ms),
                                          _arena.arena_of(vs))
    reuse = _overwritable(sources, (ps, ms, vs), gs) if in_place else (False, False, False)
    inputs = (None if p_arena is None else _arena.flat(p_arena),
              None if m_arena is None else _arena.flat(m_arena),
              None if v_arena is None else _arena.flat(v_arena))
    wholes: list[Array] = []
    results: list[Leaves] = []
    shapes = () if reuse == (True, True, True) else tuple([p.shape for p in ps])
    fresh, trees = None, None
    if reuse == (False, False, False):  # a pure update's three results: one group
        group = _arena.take(_arena.plan(shapes, dtype, 3, dress))
        fresh = iter([(group[0], group[3]), (group[1], group[4]), (group[2], group[5])])
        trees = None if dress is None else (group[6], group[7])
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
    return results[0], results[1], results[2], flats, trees


def _run(k: Constants, ps: Leaves, gs: Leaves, ms: Leaves, vs: Leaves,
         inputs: tuple[Array | None, Array | None, Array | None],
         wholes: tuple[Array, Array, Array]) -> None:
    """The kernel from the leaves (or their arenas' flat buffers ``inputs``) into
    the flat buffers ``wholes``: one chunk for a small model whose params, ``m``
    and ``v`` are all arenas, else run by run, chunk by chunk; or, where the C
    extension was built (:mod:`~nnfunc.optim._compiled`), one compiled loop per run."""
    size, dtype = wholes[0].size, wholes[0].dtype
    flat_p, flat_m, flat_v = inputs
    compiled = _compiled.kernels() if dtype in _compiled.DTYPES else None
    in_place = wholes[0] is flat_p and wholes[1] is flat_m and wholes[2] is flat_v
    if flat_p is not None and flat_m is not None and flat_v is not None and (
            size <= _CHUNK or compiled is not None):
        # every step after the first: three arenas read, a small model's update in one chunk
        if compiled is not None:
            packed = np.array(k, dtype)
            # the grads read where they lie, C-contiguous as backward makes them (a
            # tiny MLP's four took 6.5 us to concatenate, the whole loop 2.7 us)
            done = (compiled.in_place(flat_p, gs, flat_m, flat_v, packed) if in_place
                    else compiled.into(flat_p, gs, flat_m, flat_v, *wholes, packed))
            if done is NotImplemented:  # a grad of another layout, or in the state
                _loop(compiled, in_place, packed, flat_p, _pieces(gs), flat_m, flat_v, *wholes)
            return
        # with no leaf of _GROUP_MAX elements, the grads' one copy is cheaper than pieces
        g = np.concatenate(gs, axis=None) if size < _GROUP_MAX else _pieces(gs)
        _adam_chunk(_adam_scalars(k, dtype), flat_p, g, flat_m, flat_v, *wholes,
                    _arena.empty(size, dtype))
        return
    runs = _arena.segments(tuple([p.size for p in ps]), _GROUP_MAX)
    p2, m2, v2 = wholes
    if compiled is not None:
        packed = np.array(k, dtype)
        for run in runs:
            lo, hi = run[2], run[3]
            _loop(compiled, in_place, packed, *_gathered(run, ps, gs, ms, vs, inputs),
                  p2[lo:hi], m2[lo:hi], v2[lo:hi])
        return
    longest = 0
    for _, _, lo, hi in runs:
        longest = max(longest, hi - lo)
    tmp = _arena.empty(min(_CHUNK, longest), dtype)
    scalars = _adam_scalars(k, dtype)
    for run in runs:
        lo, hi = run[2], run[3]
        p, g, m, v = _gathered(run, ps, gs, ms, vs, inputs)
        for c in range(0, hi - lo, _CHUNK):
            end = min(c + _CHUNK, hi - lo)
            s = slice(c, end)
            _adam_chunk(scalars, p[s], g[s], m[s], v[s], p2[lo + c:lo + end], m2[lo + c:lo + end],
                        v2[lo + c:lo + end], tmp[:end - c])


def _gathered(run: tuple[int, int, int, int], ps: Leaves, gs: Leaves, ms: Leaves, vs: Leaves,
              inputs: tuple[Array | None, Array | None, Array | None]
              ) -> tuple[Array, Array, Array, Array]:
    """Run ``run`` of the params, grads, ``m`` and ``v`` as 1-D arrays (:func:`_arena.gather`)."""
    return (_arena.gather(ps, run, inputs[0]), _arena.gather(gs, run, None),
            _arena.gather(ms, run, inputs[1]), _arena.gather(vs, run, inputs[2]))


def _loop(compiled: _compiled.Kernels, in_place: bool, k: Array, p: Array, g: Array | _Pieces,
          m: Array, v: Array, p2: Array, m2: Array, v2: Array) -> None:
    """:func:`_adam_chunk`'s update by a compiled loop, over all of ``p`` at
    once (or piece by piece of ``g``): ``in_place`` when ``p2, m2, v2`` are
    ``p, m, v`` themselves. (Where only some of them are, ``into`` is still
    right: it reads every input of an element before it writes any output.)"""
    if isinstance(g, list):
        for lo, hi, a in g:
            _loop(compiled, in_place, k, p[lo:hi], a, m[lo:hi], v[lo:hi], p2[lo:hi],
                  m2[lo:hi], v2[lo:hi])
    elif in_place:
        compiled.in_place(p, g, m, v, k)
    else:
        compiled.into(p, g, m, v, p2, m2, v2, k)


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


def _per_dtype(k: Constants, ps: Leaves, gs: Leaves, ms: Leaves, vs: Leaves,
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
    returned: list[tuple[Leaves, Leaves, Leaves, Flats, _arena.Plan] | None] = [None]

    def step(ps: Leaves, gs: Leaves, slots: Sequence[Leaves], eta: float, t: int,
             dress: _arena.Dress | None, in_place: bool
             ) -> tuple[Leaves, list[Leaves], Trees | None]:
        ms, vs = slots[0], slots[1]
        last = returned[0]
        if last is not None and last[0] is ps and last[1] is ms and last[2] is vs:
            known, plan = last[3], last[4]
            k = _adam_constants(beta1, beta2, eta, e, wd, t)
            if not in_place:  # a steady pure loop: three fresh arenas, one group
                if plan.dress is not dress:
                    plan = _arena.plan(plan.shapes, known[0].dtype, 3, dress)
                group = _arena.take(plan)  # flats, leaves, trees: see _arena.plan
                outs = group[0], group[1], group[2]
                new_p, new_m, new_v = group[3], group[4], group[5]
                _run(k, ps, gs, ms, vs, known, outs)
                returned[0] = (new_p, new_m, new_v, outs, plan)
                return new_p, [new_m, new_v], None if dress is None else (group[6], group[7])
            if _writeable(ps, ms, vs) and _apart(gs, known):
                _run(k, ps, gs, ms, vs, known, known)  # a steady donated loop: overwritten
                return ps, [ms, vs], None
            # a leaf made read-only, or grads in the state: recognised afresh below
        new_p, new_m, new_v, flats, trees = _adam_leaves(
            _adam_constants(beta1, beta2, eta, e, wd, t), ps, gs, ms, vs, in_place, dress)
        returned[0] = (None if flats is None else (new_p, new_m, new_v, flats, _arena.plan(
            tuple([p.shape for p in new_p]), flats[0].dtype, 3, dress)))
        return new_p, [new_m, new_v], trees

    return _rule(name, lr, AdamSlots, 2, partial(step, in_place=False),
                 partial(step, in_place=True), _arena.zeros_like, dresses=True)


def adam(lr: LearningRate = 0.001, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> Optimizer:
    """Adam (Kingma & Ba, 2015): momentum with per-coordinate RMS scaling.

    With ``t`` counted from 1 on the first update (ERRATA 14: the sheet's
    ``1 - β^t`` with ``t = 0`` divides by zero):
    ``m ← β₁m + (1-β₁)g``;  ``v ← β₂v + (1-β₂)g²``;
    ``m̂ = m/(1-β₁ᵗ)``;  ``v̂ = v/(1-β₂ᵗ)``;  ``θ ← θ - η m̂/(√v̂ + ε)``.

    The update is fused: each array streams through memory once, in chunks
    that stay in cache for the dozen NumPy operations of the rule — or, where
    ``pip install`` found a C compiler, as one compiled loop that gives the
    same bits (:mod:`nnfunc.optim._compiled`).

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
