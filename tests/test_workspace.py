"""Workspaces reuse an array only once nothing else references it.

* a free array comes back; one still held — itself, a view of it, a
  memoryview, an element of a list — never does;
* small requests, requests past ``KEEP`` and requests with no workspace
  active are plain fresh arrays; every workspace array is aligned;
* an active workspace serves nested calls (it is not replaced);
* ``matmul`` gives the bits of ``@``;
* through the public API: results held by the caller are never overwritten
  by later steps (pure ``value_and_grad`` + ``opt.update``, ``train_step``),
  and a loop that drops its old results stops allocating after two steps.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import optim, random, tree, workspace
from nnfunc.activations import relu
from nnfunc.combinators import serial
from nnfunc.layers import dense
from nnfunc.losses import softmax_cross_entropy
from nnfunc.train import train_step, value_and_grad

BIG = (128, 256)  # 128 KiB in float32: above MIN_BYTES
F32 = np.dtype(np.float32)


def _addr(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def test_a_free_array_comes_back_and_a_held_one_never_does() -> None:
    ws = workspace.Workspace()
    a = ws.empty(BIG, F32)
    at = _addr(a)
    b = ws.empty(BIG, F32)
    assert _addr(b) != at  # a is held by this test
    del a
    c = ws.empty(BIG, F32)
    assert _addr(c) == at
    assert c.shape == BIG
    assert c.dtype == F32
    assert c.flags.c_contiguous
    assert c.flags.writeable


@pytest.mark.parametrize("hold", ["view", "transpose", "reshape", "memoryview", "list"])
def test_anything_derived_from_an_array_keeps_it_out_of_reuse(hold: str) -> None:
    ws = workspace.Workspace()
    a = ws.empty(BIG, F32)
    a.fill(1.0)
    at = _addr(a)
    keep: Any = {"view": a[3:], "transpose": a.T, "reshape": a.reshape(-1),
                 "memoryview": memoryview(a), "list": [a]}[hold]
    del a
    others = [ws.empty(BIG, F32) for _ in range(3)]
    assert all(_addr(o) != at for o in others)
    for o in others:
        o.fill(2.0)
    assert np.all(np.asarray(keep if hold != "list" else keep[0]) == 1.0)


def test_small_requests_and_requests_past_keep_are_untracked() -> None:
    ws = workspace.Workspace()
    small = ws.empty((4, 4), F32)
    assert ws.nbytes() == 0
    assert small.shape == (4, 4)
    held = [ws.empty(BIG, F32) for _ in range(workspace.KEEP + 3)]
    assert len({_addr(a) for a in held}) == len(held)
    # the kept memory: KEEP buffers, each the array and its alignment padding
    assert ws.nbytes() == workspace.KEEP * (held[0].nbytes + workspace.ALIGN)


def test_every_kept_array_is_aligned() -> None:
    ws = workspace.Workspace()
    for shape in [(16385,), (129, 255), (3, 7, 1001)]:
        for dtype in (np.float32, np.float64, np.int8):
            a = ws.empty(shape, np.dtype(dtype))
            if a.nbytes >= workspace.MIN_BYTES:
                assert _addr(a) % workspace.ALIGN == 0


def test_empty_without_an_active_workspace_is_fresh_and_an_active_one_serves_nested_calls(
) -> None:
    assert workspace.current() is None
    a, b = workspace.empty(BIG, np.float32), workspace.empty(BIG, np.float32)
    assert a.shape == BIG
    assert a.dtype == F32
    assert _addr(a) != _addr(b)
    outer, inner = workspace.Workspace(), workspace.Workspace()
    with workspace.active(outer):
        with workspace.active(inner):
            assert workspace.current() is outer
            workspace.empty(BIG, np.float32)
        assert workspace.current() is outer
    assert workspace.current() is None
    assert outer.nbytes() > 0
    assert inner.nbytes() == 0


@pytest.mark.parametrize("shapes", [((64, 300), (300, 200)), ((300, 64), (300, 200)),
                                    ((2, 40, 300), (300, 100))])
def test_matmul_gives_the_bits_of_the_operator(shapes: Any) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shapes[0]).astype(np.float32)
    b = rng.standard_normal(shapes[1]).astype(np.float32)
    if a.shape[-1] != b.shape[0]:
        a = a.T  # a transposed (Fortran-ordered) operand, as dense's xᵀ dy
    with workspace.active(workspace.Workspace()):
        got = workspace.matmul(a, b)
        mixed = workspace.matmul(a.astype(np.float64), b)
    assert got.dtype == np.float32
    assert mixed.dtype == np.float64
    np.testing.assert_array_equal(got, a @ b)
    np.testing.assert_array_equal(mixed, a.astype(np.float64) @ b)


def _mlp() -> tuple[Any, Any, np.ndarray, np.ndarray]:
    model = serial(dense(300), relu, dense(10))
    _, params = model.init(random.key(1), (200,))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 200)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    return model, params, x, y


def test_results_the_caller_holds_are_never_overwritten_by_later_steps() -> None:
    model, params, x, y = _mlp()
    opt = optim.adam(1e-2)
    f = value_and_grad(model, softmax_cross_entropy)
    state = opt.init(params)
    kept, copies = [], []
    for _ in range(4):  # pure: every grads and state kept
        _, grads = f(state.params, x, y)
        state, _ = opt.update(state, grads)
        kept.append((grads, state))
        copies.append(tree.map(np.copy, (grads, state.params, state.slots)))
    step = train_step(model, softmax_cross_entropy, opt)
    carry = (params, opt.init(params))
    for _ in range(3):
        p, s, _ = step(carry[0], carry[1], x, y)
        kept.append((p, s))
        copies.append(tree.map(np.copy, (p, s.params, s.slots)))
        carry = (p, s)
    for (first, s), (c_first, c_params, c_slots) in zip(kept, copies):
        for got, want in zip(tree.leaves((first, s.params, s.slots)),
                             tree.leaves((c_first, c_params, c_slots))):
            np.testing.assert_array_equal(got, want)


_HOLD = {  # a part of a pure update's result, as a caller might keep it
    "params": lambda s: s.params,
    "a layer's params": lambda s: s.params[2],
    "a param": lambda s: s.params[0].b,
    "a view of a param": lambda s: s.params[2].w[1:, ::2],
    "slots": lambda s: s.slots,
    "a moment tree": lambda s: s.slots.v,
    "a layer's moments": lambda s: s.slots.m[0],
    "a moment": lambda s: s.slots.v[2].w,
    "the state": lambda s: s,
}


@pytest.mark.parametrize("hold", list(_HOLD))
def test_a_pure_loop_reuses_its_result_trees_only_once_nothing_of_them_is_held(
        hold: str) -> None:
    # the result arenas of a pure Adam update come with their params and slots trees,
    # made once per workspace group (a tree of tuples and NamedTuples): the group and
    # its trees come back two steps later, unless the caller still holds any part
    model, params, x, y = _mlp()
    opt = optim.adam(1e-2)
    f = value_and_grad(model, softmax_cross_entropy)
    state = opt.init(params)
    seen = []
    for _ in range(3):
        _, grads = f(state.params, x, y)
        state, _ = opt.update(state, grads)
        seen.append((id(state.params), id(state.slots), id(state.slots.m[0])))
    assert seen[2] == seen[0]  # nothing held: the trees of two steps ago came back
    kept = _HOLD[hold](state)
    copy = tree.map(np.copy, kept)
    held_nodes = {id(state.params), id(state.slots)}
    reference = train_step(model, softmax_cross_entropy, opt, donate=True)
    ref = (tree.map(np.copy, state.params), _copied_state(state))
    for _ in range(6):  # every step drops the last state, keeping only `kept`
        _, grads = f(state.params, x, y)
        state, _ = opt.update(state, grads)
        assert id(state.params) not in held_nodes  # the held group is never handed out
        ref = reference(ref[0], ref[1], x, y)[:2]
    for got, want in zip(tree.leaves(kept), tree.leaves(copy)):
        np.testing.assert_array_equal(got, want)
    # the loop's results are the donated loop's, bit for bit
    for got, want in zip(tree.leaves((state.params, state.slots)),
                         tree.leaves((ref[0], ref[1].slots))):
        np.testing.assert_array_equal(got, want)


def _copied_state(state: Any) -> Any:
    """An optimizer state with copies of every array (a donated loop may overwrite it)."""
    return state._replace(params=tree.map(np.copy, state.params),
                          slots=tree.map(np.copy, state.slots))


class _Loose(NamedTuple):
    w: Any


class _LooseChild(_Loose):
    """Derived without ``__slots__``: its instances take attributes."""


def test_result_trees_are_made_afresh_for_nodes_that_take_attributes() -> None:
    # a node that can carry an attribute must not be handed out again: the attribute a
    # caller set on a dropped result would reappear on a later one
    opt = optim.adam(1e-2)
    state = opt.init((_LooseChild(np.ones(3)),))
    for step in range(4):
        state, params = opt.update(state, (_LooseChild(np.full(3, 0.5)),))
        node: Any = params[0]  # type: ignore[index]
        assert not hasattr(node, "note")
        node.note = step
        del params, node
    assert type(state.params[0]) is _LooseChild


def test_a_loop_that_drops_its_old_results_stops_allocating() -> None:
    model, params, x, y = _mlp()
    opt = optim.adam(1e-2)
    f = value_and_grad(model, softmax_cross_entropy)
    ws = workspace.Workspace()
    state = opt.init(params)
    sizes = []
    with workspace.active(ws):  # serves f's and update's arrays alike
        for _ in range(5):
            _, grads = f(state.params, x, y)
            state, _ = opt.update(state, grads)
            del grads
            sizes.append(ws.nbytes())
    assert sizes[1] > 0
    assert sizes[1] == sizes[-1]


def test_a_donated_loop_through_workspaces_matches_the_formulas_written_out() -> None:
    model, params, x, y = _mlp()
    params, x = tree.astype(params, np.float64), x.astype(np.float64)  # Adam's ±η at g≈0
    opt = optim.adam(1e-2)
    step = train_step(model, softmax_cross_entropy, opt, donate=True)
    carry = (tree.map(np.copy, params), opt.init(tree.map(np.copy, params)))
    for _ in range(3):
        p, s, _ = step(carry[0], carry[1], x, y)
        carry = (p, s)
    # the reference: the layers' formulas written out, Adam as in its docstring
    ps = [params[0].w, params[0].b, params[2].w, params[2].b]
    ms = [np.zeros_like(a) for a in ps]
    vs = [np.zeros_like(a) for a in ps]
    for t in range(1, 4):
        h = np.maximum(x @ ps[0] + ps[1], 0)
        z = h @ ps[2] + ps[3]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        dz = e / e.sum(axis=1, keepdims=True)
        dz[np.arange(64), y] -= 1
        dz /= 64
        dh = (dz @ ps[2].T) * (h > 0)
        gs = [x.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0)]
        for i, g in enumerate(gs):
            ms[i] = 0.9 * ms[i] + 0.1 * g
            vs[i] = 0.999 * vs[i] + 0.001 * g * g
            ps[i] = ps[i] - 1e-2 * (ms[i] / (1 - 0.9 ** t)) / (
                np.sqrt(vs[i] / (1 - 0.999 ** t)) + 1e-8)
    got = [carry[0][0].w, carry[0][0].b, carry[0][2].w, carry[0][2].b]
    for g, want in zip(got, ps):
        np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-12)


def test_two_threads_sharing_an_optimizer_get_their_own_results() -> None:
    # one optimizer (one workspace) updating two states at once, in two threads
    import threading

    rng = np.random.default_rng(3)
    opt = optim.adam(1e-2)
    starts = [(rng.standard_normal((64, 32)).astype(np.float32),
               rng.standard_normal(32).astype(np.float32)) for _ in range(2)]
    grads = [[(rng.standard_normal((64, 32)).astype(np.float32),
               rng.standard_normal(32).astype(np.float32)) for _ in range(30)] for _ in range(2)]

    def run(i: int, out: list[Any]) -> None:
        state = opt.init(starts[i])
        for g in grads[i]:
            state, _ = opt.update(state, g)
        out.append(state)

    alone: list[list[Any]] = [[], []]
    for i in range(2):
        run(i, alone[i])
    together: list[list[Any]] = [[], []]
    threads = [threading.Thread(target=run, args=(i, together[i])) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        for got, want in zip(tree.leaves(together[i][0]), tree.leaves(alone[i][0])):
            np.testing.assert_array_equal(got, want)


def test_pure_updates_branching_from_one_state_agree_and_keep_each_other_intact() -> None:
    # two updates of the same state (the second is not the last update's result) while
    # the first one's result is still held: equal results in separate memory
    model, params, x, y = _mlp()
    opt = optim.adam(1e-2)
    f = value_and_grad(model, softmax_cross_entropy)
    state = opt.init(params)
    for _ in range(3):
        _, grads = f(state.params, x, y)
        state, _ = opt.update(state, grads)
    _, grads = f(state.params, x, y)
    first, _ = opt.update(state, grads)
    kept = tree.map(np.copy, (first.params, first.slots))
    second, _ = opt.update(state, grads)
    third, _ = opt.update(first, grads)  # moves on from the first branch
    for a, b in zip(tree.leaves((first.params, first.slots)), tree.leaves(kept)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(tree.leaves((second.params, second.slots)), tree.leaves(kept)):
        np.testing.assert_array_equal(a, b)
    assert not any(np.shares_memory(a, b) for a, b in
                   zip(tree.leaves(first.params), tree.leaves(second.params)))
    assert not any(np.shares_memory(a, b) for a, b in
                   zip(tree.leaves(third.params), tree.leaves(first.params)))


@given(rows=st.integers(0, 300), cols=st.integers(1, 40),
       dtype=st.sampled_from([np.float32, np.float64, np.float16]), seed=st.integers(0, 2**32 - 1),
       transposed=st.booleans())
def test_column_sums_is_the_sum_over_rows(rows: int, cols: int, dtype: Any, seed: int,
                                          transposed: bool) -> None:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((cols, rows) if transposed else (rows, cols)).astype(dtype)
    a = a.T if transposed else a  # an F-ordered view, as softmax's gradient is
    got = workspace.column_sums(a)
    assert got.shape == (cols,)
    assert got.dtype == dtype
    exact = a.astype(np.float64).sum(axis=0)
    # any summation order is within rows · eps · Σ|a| of the exact sum (plus the final rounding)
    bound = (rows + 1) * np.finfo(dtype).eps * np.abs(a.astype(np.float64)).sum(axis=0)
    assert np.all(np.abs(got.astype(np.float64) - exact) <= bound)
    if dtype == np.float16:  # not a BLAS type: NumPy's own reduction
        np.testing.assert_array_equal(got, np.add.reduce(a, axis=0))
