"""Tests of nnfunc.optim: update rules against their formulas, shared properties, errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import optim, tree
from nnfunc.optim import schedules

# -- the first three steps, each rule written out from its formula -------------------------

P0 = {"w": np.array([[0.5, -1.0], [2.0, 0.0]]), "b": np.array([0.1, -0.3])}
GRADS = [
    {"w": np.array([[1.0, -2.0], [0.5, 0.0]]), "b": np.array([0.3, -0.1])},
    {"w": np.array([[0.2, 0.4], [-1.0, 3.0]]), "b": np.array([-0.5, 0.2])},
    {"w": np.array([[-0.7, 1.1], [0.0, -0.4]]), "b": np.array([0.05, 0.9])},
]
Rule = Callable[[np.ndarray, list[np.ndarray]], np.ndarray]  # (θ0, [g1, g2, g3]) -> θ3


def _sgd(lr: float) -> Rule:
    def run(th: np.ndarray, gs: list[np.ndarray]) -> np.ndarray:
        for g in gs:
            th = th - lr * g
        return th
    return run


def _heavy_ball(lr: float, mu: float, nesterov: bool) -> Rule:
    def run(th: np.ndarray, gs: list[np.ndarray]) -> np.ndarray:
        v = np.zeros_like(th)
        for g in gs:
            v = mu * v + g
            th = th - lr * (g + mu * v if nesterov else v)
        return th
    return run


def _ema_momentum(lr: float, gamma: float) -> Rule:
    def run(th: np.ndarray, gs: list[np.ndarray]) -> np.ndarray:
        v = np.zeros_like(th)
        for g in gs:
            v = gamma * v + (1 - gamma) * g
            th = th - lr * v
        return th
    return run


def _adagrad(lr: float, eps: float) -> Rule:
    def run(th: np.ndarray, gs: list[np.ndarray]) -> np.ndarray:
        v = np.zeros_like(th)
        for g in gs:
            v = v + g ** 2
            th = th - lr / (np.sqrt(v) + eps) * g
        return th
    return run


def _rmsprop(lr: float, rho: float, eps: float) -> Rule:
    def run(th: np.ndarray, gs: list[np.ndarray]) -> np.ndarray:
        v = np.zeros_like(th)
        for g in gs:
            v = rho * v + (1 - rho) * g ** 2
            th = th - lr / (np.sqrt(v) + eps) * g
        return th
    return run


def _adadelta(rho: float, eps: float, lr: float) -> Rule:
    def run(th: np.ndarray, gs: list[np.ndarray]) -> np.ndarray:
        eg2 = np.zeros_like(th)
        edx2 = np.zeros_like(th)
        for g in gs:
            eg2 = rho * eg2 + (1 - rho) * g ** 2
            dx = -np.sqrt(edx2 + eps) / np.sqrt(eg2 + eps) * g
            edx2 = rho * edx2 + (1 - rho) * dx ** 2
            th = th + lr * dx
        return th
    return run


def _adam(lr: float, b1: float, b2: float, eps: float, wd: float = 0.0) -> Rule:
    def run(th: np.ndarray, gs: list[np.ndarray]) -> np.ndarray:
        m = np.zeros_like(th)
        v = np.zeros_like(th)
        for t, g in enumerate(gs, start=1):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g ** 2
            m_hat = m / (1 - b1 ** t)
            v_hat = v / (1 - b2 ** t)
            th = th - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * th)
        return th
    return run


class Case(NamedTuple):
    id: str
    make: Callable[[], optim.Optimizer]
    rule: Rule


CASES = [
    Case("sgd", lambda: optim.sgd(0.1), _sgd(0.1)),
    Case("heavy_ball", lambda: optim.sgd(0.1, momentum=0.9), _heavy_ball(0.1, 0.9, False)),
    Case("nesterov", lambda: optim.sgd(0.1, momentum=0.8, nesterov=True),
         _heavy_ball(0.1, 0.8, True)),
    Case("momentum", lambda: optim.momentum(0.2, gamma=0.7), _ema_momentum(0.2, 0.7)),
    Case("adagrad", lambda: optim.adagrad(0.3, eps=1e-8), _adagrad(0.3, 1e-8)),
    Case("rmsprop", lambda: optim.rmsprop(0.01, rho=0.9, eps=1e-8), _rmsprop(0.01, 0.9, 1e-8)),
    Case("adadelta", lambda: optim.adadelta(rho=0.9, eps=1e-6, lr=1.0),
         _adadelta(0.9, 1e-6, 1.0)),
    Case("adam", lambda: optim.adam(0.05, b1=0.9, b2=0.999, eps=1e-8),
         _adam(0.05, 0.9, 0.999, 1e-8)),
    Case("adamw", lambda: optim.adamw(0.05, weight_decay=0.1), _adam(0.05, 0.9, 0.999, 1e-8, 0.1)),
]
ids = [c.id for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_first_three_steps_match_the_formula(case: Case) -> None:
    opt = case.make()
    state = opt.init(P0)
    for g in GRADS:
        state, params = opt.update(state, g)
    for name in ("w", "b"):
        expected = case.rule(P0[name], [g[name] for g in GRADS])
        np.testing.assert_allclose(params[name], expected, rtol=1e-12, atol=1e-15)
    assert optim.step_of(state) == 3
    tree.map(np.testing.assert_array_equal, optim.params_of(state), params)


# -- shared properties over the table -----------------------------------------------------

def _quadratic_grad(p: Any) -> Any:
    # f(θ) = ½ Σ a_i (θ_i - c_i)², a convex quadratic with condition number 10
    a = np.array([1.0, 4.0, 10.0])
    c = np.array([1.0, -2.0, 0.5])
    return {"x": a * (p["x"] - c)}


CONVERGE = {  # hyperparameters that suit each rule on this problem
    "sgd": lambda: optim.sgd(0.15), "heavy_ball": lambda: optim.sgd(0.05, momentum=0.8),
    "nesterov": lambda: optim.sgd(0.05, momentum=0.8, nesterov=True),
    "momentum": lambda: optim.momentum(0.15, gamma=0.5), "adagrad": lambda: optim.adagrad(1.0),
    "rmsprop": lambda: optim.rmsprop(0.01), "adadelta": lambda: optim.adadelta(rho=0.9, lr=20.0),
    "adam": lambda: optim.adam(0.05), "adamw": lambda: optim.adamw(0.05, weight_decay=0.0),
}


@pytest.mark.parametrize("name", list(CONVERGE))
def test_converges_on_a_convex_quadratic(name: str) -> None:
    opt = CONVERGE[name]()
    state = opt.init({"x": np.zeros(3)})
    params = optim.params_of(state)
    for _ in range(3000):
        state, params = opt.update(state, _quadratic_grad(params))
    np.testing.assert_allclose(params["x"], [1.0, -2.0, 0.5], atol=5e-2)


def _rosenbrock(p: Any) -> tuple[float, Any]:
    x, y = p["xy"]
    value = (1 - x) ** 2 + 100 * (y - x * x) ** 2
    grad = np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
    return value, {"xy": grad}


ROSENBROCK = {
    "sgd": lambda: optim.sgd(1e-3), "heavy_ball": lambda: optim.sgd(5e-4, momentum=0.9),
    "nesterov": lambda: optim.sgd(5e-4, momentum=0.9, nesterov=True),
    "momentum": lambda: optim.momentum(5e-3, gamma=0.9), "adagrad": lambda: optim.adagrad(0.1),
    "rmsprop": lambda: optim.rmsprop(1e-3), "adadelta": lambda: optim.adadelta(lr=1.0),
    "adam": lambda: optim.adam(0.02), "adamw": lambda: optim.adamw(0.02, weight_decay=1e-4),
}


@pytest.mark.parametrize("name", list(ROSENBROCK))
def test_makes_progress_on_rosenbrock(name: str) -> None:
    opt = ROSENBROCK[name]()
    start = {"xy": np.array([-1.2, 1.0])}
    state = opt.init(start)
    params = start
    for _ in range(2000):
        state, params = opt.update(state, _rosenbrock(params)[1])
    # f(-1.2, 1) = 24.2; each rule must at least halve it
    assert _rosenbrock(params)[0] < 0.5 * _rosenbrock(start)[0]


trees = st.builds(
    lambda w, b: {"layer": {"w": w, "b": b}, "scale": np.array(1.5)},
    st.integers(1, 4).flatmap(lambda n: st.lists(st.floats(-3, 3), min_size=n, max_size=n)
                              ).map(np.array),
    st.lists(st.floats(-3, 3), min_size=2, max_size=2).map(np.array),
)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=ids)
@given(params=trees, seed=st.integers(0, 2**32 - 1))
def test_state_structure_dtype_and_purity(case: Case, dtype: Any, params: Any,
                                          seed: int) -> None:
    params = tree.astype(params, dtype)
    rng = np.random.default_rng(seed)
    opt = case.make()
    state = opt.init(params)
    structure = tree.structure(state)
    for _ in range(3):
        grads = tree.map(lambda p: rng.normal(size=p.shape).astype(dtype), params)
        before = tree.map(np.copy, (state, grads))
        new_state, params = opt.update(state, grads)
        tree.map(np.testing.assert_array_equal, before, (state, grads))  # nothing mutated
        assert tree.structure(new_state) == structure
        for leaf in tree.leaves((new_state.params, new_state.slots, params)):
            assert leaf.dtype == dtype
        state = new_state


@pytest.mark.parametrize("donate", [False, True])
@pytest.mark.parametrize("case", CASES, ids=ids)
@given(params=trees, seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([0.0, 1e-6, 1e-4, 1e-2, 1.0, 100.0]))
def test_float16_params_are_updated_in_float32_and_rounded_once(
        case: Case, donate: bool, params: Any, seed: int, scale: float) -> None:
    # the definition: each step is the float32 rule on the float16 params and grads
    # widened, its slots float32, its new params rounded to float16
    rng = np.random.default_rng(seed)
    half = tree.astype(params, np.float16)
    opt, ref = case.make(), case.make()
    state = opt.init(tree.map(np.copy, half))
    ref_state = ref.init(tree.astype(half, np.float32))
    update = optim.update_fn(opt, donate)
    for _ in range(3):
        grads = tree.map(lambda p: np.asarray(rng.normal(size=p.shape) * scale, np.float16),
                         half)
        state, half = update(state, grads)
        ref_state, wide = ref.update(ref_state, tree.astype(grads, np.float32))
        for got, want in zip(tree.leaves(half), tree.leaves(wide)):
            assert got.dtype == np.float16
            np.testing.assert_array_equal(got, want.astype(np.float16))
        for got, want in zip(tree.leaves(state.slots), tree.leaves(ref_state.slots)):
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want)
        ref_state = optim.replace_params(ref_state, tree.astype(half, np.float32))


@pytest.mark.parametrize("case", [c for c in CASES if c.id in ("adagrad", "rmsprop", "adam",
                                                               "adamw")], ids=lambda c: c.id)
def test_float16_zero_and_small_grads_give_finite_steps(case: Case) -> None:
    # in float16 itself ε = 1e-8 is 0 and (1e-4)² underflows: 0/0 and m/0 (NaN, -inf)
    opt = case.make()
    params = {"w": np.ones(4, np.float16)}
    grads = {"w": np.array([0.0, 1e-4, 1e-2, 1.0], np.float16)}
    _, new = opt.update(opt.init(params), grads)
    assert np.isfinite(new["w"]).all()
    assert new["w"][0] == (1.0 if case.id != "adamw" else np.float16(1 - 0.05 * 0.1))
    if case.id == "adam":  # Adam's first step is η·sign(g) whatever |g| is
        np.testing.assert_array_equal(new["w"][1:], np.float16(1 - 0.05))


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_a_tree_of_float16_and_float32_leaves(case: Case) -> None:
    # each leaf as its own dtype's rule: the float32 leaf exactly as in a float32 tree
    rng = np.random.default_rng(3)
    params = {"h": rng.normal(size=5).astype(np.float16),
              "s": rng.normal(size=3).astype(np.float32)}
    opt, ref = case.make(), case.make()
    state = opt.init(params)
    ref_state = ref.init(tree.astype(params, np.float32))
    for _ in range(3):
        grads = tree.map(lambda p: rng.normal(size=p.shape).astype(p.dtype), params)
        state, params = opt.update(state, grads)
        ref_state, wide = ref.update(ref_state, tree.astype(grads, np.float32))
        assert (params["h"].dtype, params["s"].dtype) == (np.float16, np.float32)
        np.testing.assert_array_equal(params["h"], wide["h"].astype(np.float16))
        np.testing.assert_array_equal(params["s"], wide["s"])
        ref_state = optim.replace_params(ref_state, tree.astype(params, np.float32))


def test_a_float16_state_with_float16_slots_still_works() -> None:
    # a state saved before float16 slots became float32: its slots are widened
    opt = optim.adam(0.05)
    params = {"w": np.ones(3, np.float16)}
    state = opt.init(params)
    old = state._replace(slots=tree.astype(state.slots, np.float16))
    new_state, new = opt.update(old, {"w": np.array([0.0, 1e-4, 1.0], np.float16)})
    assert new["w"].dtype == np.float16
    assert np.isfinite(new["w"]).all()
    assert {a.dtype for a in tree.leaves(new_state.slots)} == {np.dtype(np.float32)}


@pytest.mark.parametrize("case", [c for c in CASES if c.id != "adamw"], ids=lambda c: c.id)
@given(params=trees)
def test_zero_gradients_leave_params_unchanged(case: Case, params: Any) -> None:
    opt = case.make()
    state = opt.init(params)
    for _ in range(2):
        state, new = opt.update(state, tree.zeros_like(params))
    tree.map(np.testing.assert_array_equal, new, params)


@given(params=trees)
def test_adamw_with_zero_gradients_only_decays(params: Any) -> None:
    opt = optim.adamw(0.1, weight_decay=0.2)
    _, new = opt.update(opt.init(params), tree.zeros_like(params))
    tree.map(lambda a, b: np.testing.assert_allclose(a, b * (1 - 0.1 * 0.2), rtol=1e-12),
             new, params)


# -- equivalences -------------------------------------------------------------------------

def _run(opt: optim.Optimizer, n: int = 4) -> Any:
    state = opt.init(P0)
    params = P0
    for i in range(n):
        state, params = opt.update(state, GRADS[i % 3])
    return params


@pytest.mark.parametrize("pair", [
    (lambda: optim.sgd(0.1, momentum=0.0), lambda: optim.sgd(0.1)),
    (lambda: optim.momentum(0.1, gamma=0.0), lambda: optim.sgd(0.1)),
    (lambda: optim.adamw(0.01, weight_decay=0.0), lambda: optim.adam(0.01)),
    (lambda: optim.chain()(optim.adam(0.01)), lambda: optim.adam(0.01)),
    (lambda: optim.chain(optim.accumulate(1), optim.rmsprop(0.01)), lambda: optim.rmsprop(0.01)),
    (lambda: optim.chain(optim.chain(optim.l2(0.1), optim.l1(0.2)), optim.sgd(0.1)),
     lambda: optim.chain(optim.l2(0.1), optim.l1(0.2), optim.sgd(0.1))),
    (lambda: optim.chain(optim.freeze(lambda path, leaf: False), optim.adam(0.01)),
     lambda: optim.adam(0.01)),
], ids=["momentum0-sgd", "ema0-sgd", "adamw0-adam", "chain()-identity", "accumulate1",
        "nested-chain", "freeze-nothing"])
def test_equivalences(pair: tuple[Callable[[], Any], Callable[[], Any]]) -> None:
    tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15),
             _run(pair[0]()), _run(pair[1]()))


def test_chain_of_nothing_is_the_identity_wrapper() -> None:
    ident = optim.chain()
    opt = optim.sgd(0.5)
    assert ident(opt) is opt


# -- transforms ---------------------------------------------------------------------------

def test_l2_on_weights_only_by_pattern() -> None:
    opt = optim.chain(optim.l2(0.5, where="w"), optim.sgd(1.0))
    _, params = opt.update(opt.init(P0), tree.zeros_like(P0))
    np.testing.assert_allclose(params["w"], P0["w"] - 2 * 0.5 * P0["w"])
    np.testing.assert_array_equal(params["b"], P0["b"])
    penalty, grads = optim.l2_penalty(P0, 0.5, where="w")
    assert penalty == pytest.approx(0.5 * float((P0["w"] ** 2).sum()))
    np.testing.assert_allclose(grads["w"], 2 * 0.5 * P0["w"])


def test_l1_with_a_mask_tree() -> None:
    mask = {"w": False, "b": True}
    opt = optim.chain(optim.l1(0.1, where=mask), optim.sgd(1.0))
    _, params = opt.update(opt.init(P0), tree.zeros_like(P0))
    np.testing.assert_allclose(params["b"], P0["b"] - 0.1 * np.sign(P0["b"]))
    np.testing.assert_array_equal(params["w"], P0["w"])
    penalty, _ = optim.l1_penalty(P0, 0.1, where=mask)
    assert penalty == pytest.approx(0.1 * 0.4)


def test_clip_by_global_norm_caps_the_norm_and_keeps_direction() -> None:
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(1.0))
    _, params = opt.update(opt.init(tree.zeros_like(P0)), GRADS[0])
    step = tree.scale(params, -1.0)
    assert tree.global_norm(step) == pytest.approx(1.0)
    norm = tree.global_norm(GRADS[0])
    tree.map(lambda s, g: np.testing.assert_allclose(s, g / norm), step, GRADS[0])


def test_freeze_keeps_leaves_fixed_even_with_momentum() -> None:
    opt = optim.chain(optim.freeze("b"), optim.sgd(0.1, momentum=0.9))
    state = opt.init(P0)
    for g in GRADS:
        state, params = opt.update(state, g)
    np.testing.assert_array_equal(params["b"], P0["b"])
    assert not np.array_equal(params["w"], P0["w"])
    np.testing.assert_array_equal(optim.params_of(state)["b"], P0["b"])


def test_skip_nonfinite_skips_and_counts() -> None:
    opt = optim.chain(optim.skip_nonfinite(), optim.adam(0.1))
    state = opt.init(P0)
    bad = {"w": np.full((2, 2), np.nan), "b": np.zeros(2)}
    new_state, params = opt.update(state, bad)
    tree.map(np.testing.assert_array_equal, params, P0)
    assert new_state.own == 1
    assert optim.step_of(new_state) == 0


def test_accumulate_equals_the_mean_gradient_step() -> None:
    opt = optim.chain(optim.accumulate(3), optim.adam(0.1))
    state = opt.init(P0)
    for g in GRADS:
        state, params = opt.update(state, g)
    mean = tree.scale(tree.add(tree.add(GRADS[0], GRADS[1]), GRADS[2]), 1 / 3)
    ref = optim.adam(0.1)
    _, expected = ref.update(ref.init(P0), mean)
    tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), params, expected)


# -- schedules, learning rate in the state --------------------------------------------------

def test_schedule_drives_lr_and_state_reports_it() -> None:
    sched = schedules.piecewise_constant([2], [0.1, 0.01])
    opt = optim.sgd(sched)
    state = opt.init(P0)
    lrs = []
    for g in GRADS:
        state, _ = opt.update(state, g)
        lrs.append(optim.lr_of(state))
    assert lrs == [0.1, 0.1, 0.01]
    state = optim.scale_lr(state, 0.5)
    state, _ = opt.update(state, GRADS[0])
    assert optim.lr_of(state) == pytest.approx(0.005)


def test_schedules_follow_their_formulas() -> None:
    assert schedules.constant(0.3)(99) == 0.3
    assert schedules.exponential_decay(1.0, 0.5, 4)(6) == pytest.approx(0.5 ** 1.5)
    assert schedules.exponential_decay(1.0, 0.5, 4, staircase=True)(6) == 0.5
    assert schedules.step_decay(2.0, 0.1, 10)(25) == pytest.approx(0.02)
    cos = schedules.cosine_decay(1.0, 8, alpha=0.1)
    assert cos(0) == pytest.approx(1.0)
    assert cos(4) == pytest.approx(0.9 * 0.5 + 0.1)
    assert cos(100) == pytest.approx(0.1)
    w = schedules.warmup(schedules.constant(0.4), 4, start=0.2)
    assert [w(s) for s in (0, 2, 4, 9)] == pytest.approx([0.2, 0.3, 0.4, 0.4])
    assert math.isclose(schedules.piecewise_constant([5, 10], [3, 2, 1])(10), 1)


# -- the chunked Adam kernel ---------------------------------------------------------------

def test_chunked_adam_matches_the_formula_on_large_leaves() -> None:
    rng = np.random.default_rng(0)
    shapes = [(700, 500), (300,), (513, 257)]  # several 2^17 chunks, odd chunk edges
    params = [rng.normal(size=s) for s in shapes]
    grads = [[rng.normal(size=s) for s in shapes] for _ in range(3)]
    opt = optim.adam(0.01)
    state = opt.init(params)
    for g in grads:
        state, out = opt.update(state, g)
    rule = _adam(0.01, 0.9, 0.999, 1e-8)
    for i in range(3):
        np.testing.assert_allclose(out[i], rule(params[i], [g[i] for g in grads]), rtol=1e-12,
                                   atol=1e-15)


# -- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize(("make", "message"), [
    (lambda: optim.sgd(-0.1), r"sgd: lr must be finite and in \[0.0, inf\]; got -0.1"),
    (lambda: optim.adam(float("nan")), "adam: lr must be finite"),
    (lambda: optim.adam(1e-3, b1=1.0), r"adam: b1 must be finite and in \[0.0, 1.0\); got 1.0"),
    (lambda: optim.adamw(1e-3, b2=-0.1), "adamw: b2 must be finite and in"),
    (lambda: optim.rmsprop(1e-3, rho=1.5), "rmsprop: rho must be finite and in"),
    (lambda: optim.adadelta(rho=1.0), "adadelta: rho must be finite and in"),
    (lambda: optim.momentum(0.1, gamma=1.0), "momentum: gamma must be finite and in"),
    (lambda: optim.adagrad(0.1, eps=0.0), "adagrad: eps must be finite and in"),
    (lambda: optim.sgd(0.1, nesterov=True), "sgd: nesterov=True needs momentum > 0"),
    (lambda: optim.clip_by_global_norm(0.0), "clip_by_global_norm: max_norm must be"),
    (lambda: optim.l2(-1.0), "l2: lam must be finite and in"),
    (lambda: optim.accumulate(0), "accumulate: every must be > 0"),
])
def test_bad_hyperparameters(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_grads_that_do_not_match_params() -> None:
    opt = optim.adam(1e-3)
    state = opt.init(P0)
    with pytest.raises(ValueError, match=r"params and grads differ in structure at params: "
                                         r"params has dict with keys \['b', 'w'\]"):
        opt.update(state, {"w": P0["w"]})
    with pytest.raises(ValueError, match=r"adam: grads\['w'\] must be an array of shape \(2, 2\) "
                                         r"and dtype float64 like params; got array of shape "
                                         r"\(2, 3\)"):
        opt.update(state, {"w": np.zeros((2, 3)), "b": P0["b"]})
    with pytest.raises(ValueError, match=r"grads\['b'\] must be an array of shape \(2,\) and "
                                         r"dtype float64 like params; got array of shape \(2,\) "
                                         r"and dtype float32"):
        opt.update(state, {"w": P0["w"], "b": P0["b"].astype(np.float32)})


def test_schedule_giving_a_negative_rate_is_caught() -> None:
    opt = optim.sgd(lambda step: -1.0)
    with pytest.raises(ValueError, match=r"sgd: lr schedule must give finite values >= 0"):
        opt.init(P0)


def test_integer_params_are_rejected() -> None:
    with pytest.raises(TypeError, match=r"adam: params\['n'\] must be a floating-point array"):
        optim.adam().init({"n": np.arange(3)})


@pytest.mark.parametrize("make", [lambda: optim.adam(0.05),
                                  lambda: optim.adamw(0.05, weight_decay=0.1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_update_in_place_equals_update_and_overwrites_the_state(make: Any, dtype: Any) -> None:
    rng = np.random.default_rng(0)
    shapes = {"big": (130, 130), "small": (7, 3), "bias": (130,)}  # 16,900 >= the group limit
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    opt = make()
    pure, donated = opt.init(params), opt.init(tree.map(np.copy, params))
    for step in range(3):
        grads = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
        kept = tree.map(np.copy, grads)
        old = donated
        pure, _ = opt.update(pure, grads)
        donated, p_don = opt.update_in_place(donated, grads)
        tree.map(np.testing.assert_array_equal, pure, donated)
        tree.map(np.testing.assert_array_equal, kept, grads)  # grads are never written
        assert all(p.dtype == dtype for p in p_don.values())
        # the slots from init are overwritten from the first step; the caller's
        # own params only from the second, once they are the update's arrays
        assert donated.slots is old.slots
        assert (p_don is old.params) == (step > 0)
        assert all(np.shares_memory(a, b) == (step > 0)
                   for a, b in zip(old.params.values(), p_don.values()))


def _arena_state(opt: optim.Optimizer, shapes: list[tuple[int, ...]]) -> Any:
    """A state one donated update in: params and slots are the update's own
    arrays, which the next donated update overwrites (checked)."""
    rng = np.random.default_rng(3)
    state = opt.init([rng.standard_normal(s) for s in shapes])
    assert opt.update_in_place is not None
    state = opt.update_in_place(state, [rng.standard_normal(s) for s in shapes])[0]
    before = state
    state, _ = opt.update_in_place(state, [rng.standard_normal(s) for s in shapes])
    assert state.params is before.params  # written in place: the same trees come back
    assert state.slots is before.slots
    return state


@pytest.mark.parametrize("case", ["read-only leaf", "copied leaf", "m is params", "grads in m",
                                  "grads in params", "m in params", "rebuilt tree"])
def test_update_in_place_writes_only_what_it_may(case: str) -> None:
    # whatever cannot be overwritten safely is left as it is, and the result
    # is still exactly the pure update's
    opt = optim.adam(0.1)
    shapes = [(130, 130), (3,), (4, 2)]
    state = _arena_state(opt, shapes)
    grads = [np.full(s, 0.5) for s in shapes]
    params, m, v = state.params, state.slots.m, state.slots.v
    if case == "read-only leaf":
        params[1].flags.writeable = False
    elif case == "copied leaf":
        params = [params[0], params[1].copy(), params[2]]
    elif case == "m is params":
        m = params
    elif case == "grads in m":
        grads = m
    elif case == "grads in params":
        grads = [p[::-1] for p in params]  # views of the params, reversed
    elif case == "m in params":  # the moments read from the first param's memory,
        flat = params[0].reshape(-1)  # which the update writes before it reaches leaf 1
        m = [params[0][::-1], flat[:3], flat[3:11].reshape(4, 2)]
    else:
        params, m, v = (tree.map(np.copy, a) for a in (params, m, v))
    state = state._replace(params=params, slots=optim.AdamSlots(m, v))
    snapshot = tree.map(np.copy, (state, grads))
    expected, _ = opt.update(snapshot[0], snapshot[1])
    new, _ = opt.update_in_place(state, grads)
    tree.map(np.testing.assert_array_equal, expected, new)
    tree.map(np.testing.assert_array_equal, snapshot[1], grads)  # grads are never written
    kept = {"read-only leaf": params, "copied leaf": params, "m is params": m,
            "grads in m": m, "grads in params": params, "m in params": params,
            "rebuilt tree": (params, m, v)}[case]
    before = {"read-only leaf": snapshot[0].params, "copied leaf": snapshot[0].params,
              "m is params": snapshot[0].params, "grads in m": snapshot[0].slots.m,
              "grads in params": snapshot[0].params, "m in params": snapshot[0].params,
              "rebuilt tree": (snapshot[0].params, snapshot[0].slots.m,
                               snapshot[0].slots.v)}[case]
    tree.map(np.testing.assert_array_equal, before, kept)


def test_adam_keeps_each_leaf_dtype_in_a_mixed_tree() -> None:
    opt = optim.adam(0.1)
    params = {"a": np.ones(3, np.float32), "b": np.ones((2, 2)), "c": np.ones(5, np.float32)}
    grads = tree.map(np.ones_like, params)
    state = opt.init(params)
    alone = {k: opt.init({k: a}) for k, a in params.items()}  # each leaf on its own
    for update in (opt.update, opt.update_in_place, opt.update_in_place):
        state, new = update(state, grads)
        for tr in (new, state.slots.m, state.slots.v):
            assert {k: a.dtype for k, a in tr.items()} == {k: a.dtype for k, a in params.items()}
        for k in params:
            alone[k], expected = opt.update(alone[k], {k: grads[k]})
            np.testing.assert_array_equal(new[k], expected[k])


def test_update_fn_picks_the_in_place_update() -> None:
    assert optim.sgd(0.1).update_in_place is None
    sgd = optim.sgd(0.1)
    assert optim.update_fn(sgd, donate=True) is sgd.update
    adam = optim.adam(0.1)
    assert optim.update_fn(adam, donate=True) is adam.update_in_place
    assert optim.update_fn(adam, donate=False) is adam.update
    with pytest.raises(TypeError, match=r"optim.update_fn: optimizer must have update\(state, "
                                        r"grads\) .*; got object"):
        optim.update_fn(object(), donate=True)


def test_wrappers_pass_the_donated_state_on_and_freeze_does_not() -> None:
    rng = np.random.default_rng(1)
    params = {"w": rng.standard_normal((130, 130)), "b": rng.standard_normal(130)}
    opt = optim.chain(optim.skip_nonfinite(), optim.accumulate(2),
                      optim.clip_by_global_norm(1.0), optim.l2(1e-3, where="w"),
                      optim.adam(0.05))
    assert opt.update_in_place is not None
    pure, donated = opt.init(params), opt.init(tree.map(np.copy, params))
    for step in range(6):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        if step == 3:
            grads["b"][0] = np.nan  # skipped, by both
        old_w = optim.params_of(donated)["w"]
        pure, _ = opt.update(pure, grads)
        donated, new = opt.update_in_place(donated, grads)
        tree.map(np.testing.assert_array_equal, pure, donated)
        # Adam runs on the accumulated steps 1 and 4 (3 is skipped); from its
        # second update on, it overwrites the params its first one made
        if step in (1, 4):
            assert np.shares_memory(old_w, new["w"]) == (step == 4)
    assert optim.step_of(donated) == 2
    # freeze restores the old arrays of frozen leaves, which an in-place inner
    # update would have overwritten: it offers no in-place update
    assert optim.chain(optim.freeze("b"), optim.adam(0.1)).update_in_place is None


@pytest.mark.parametrize("make", [lambda: optim.adam(0.05),
                                  lambda: optim.adamw(0.05, weight_decay=0.1)])
@given(rows=st.integers(1, 300), cols=st.sampled_from([1, 7, 64, 129]),
       small=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_update_in_place_property(make: Any, rows: int, cols: int, small: int, seed: int,
                                  dtype: Any) -> None:
    # trees with leaves on both sides of the group limit (2^14 elements);
    # in place or not, every step's state is the same, and grads are never written
    rng = np.random.default_rng(seed)
    shapes = [(rows * 64, cols), (small,), (cols,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    opt = make()
    pure, donated = opt.init(params), opt.init([p.copy() for p in params])
    for _ in range(3):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        kept = [g.copy() for g in grads]
        pure, _ = opt.update(pure, grads)
        donated, _ = opt.update_in_place(donated, grads)
        tree.map(np.testing.assert_array_equal, pure, donated)
        tree.map(np.testing.assert_array_equal, kept, grads)


@pytest.mark.parametrize("make", [lambda: optim.adam(0.1), lambda: optim.momentum(0.1)])
def test_slots_not_matching_the_params_are_a_clear_error(make: Any) -> None:
    # e.g. an optimizer state mixed from two models: never a silent update, never a raw error
    opt = make()
    state = opt.init({"w": np.ones((2, 3)), "b": np.zeros(3)})
    other = opt.init({"w": np.ones((3, 2)), "b": np.zeros(3)}).slots
    mixed = state._replace(slots=other)
    grads = {"w": np.ones((2, 3)), "b": np.ones(3)}
    for update in (opt.update, opt.update_in_place or opt.update):
        with pytest.raises(ValueError, match=r"state\.slots\[0\] must have the params' "
                                             r"structure and shapes"):
            update(mixed, grads)


class _Layer(NamedTuple):
    w: Any
    b: Any


def test_tree_immutable_only_for_tuples_namedtuples_and_none() -> None:
    a = np.zeros(2)
    assert tree.immutable(tree.structure((_Layer(a, None), (), (a,))))
    assert not tree.immutable(tree.structure([a]))
    assert not tree.immutable(tree.structure((_Layer(a, {"x": a}),)))


@pytest.mark.parametrize("make", [lambda a, b: (_Layer(a, b),), lambda a, b: [a, b],
                                  lambda a, b: {"w": a, "b": b}])
def test_a_pure_update_returns_the_structure_it_is_given_step_after_step(make: Any) -> None:
    # the optimizer remembers the params tree it built last (to skip a walk next time);
    # a tree given in its place, or one changed in place, must still be followed
    rng = np.random.default_rng(0)
    opt, opt_ref = optim.adam(0.1), optim.adam(0.1)
    state = opt.init(make(rng.standard_normal(3), rng.standard_normal(2)))
    reference = opt_ref.init(tree.map(np.copy, state.params))
    for step in range(4):
        grads = tree.map(lambda p, s=step: np.full_like(p, s + 1.0), state.params)
        state, params = opt.update(state, grads)
        # the reference is given freshly built trees: never the one its optimizer built
        reference, expected = opt_ref.update(tree.map(lambda a: a, reference), grads)
        assert tree.structure(params) == tree.structure(expected)
        for got, want in zip(tree.leaves(params), tree.leaves(expected)):
            np.testing.assert_array_equal(got, want)
        if step == 1:  # the same leaves in a rebuilt tree of the caller's
            state = state._replace(params=tree.unflatten(tree.structure(state.params),
                                                         tree.leaves(state.params)))
        if step == 2 and isinstance(params, dict):  # a dict changed in place: a key renamed
            params["v"] = params.pop("w")
            for slot in state.slots:
                slot["v"] = slot.pop("w")
            reference.params["v"] = reference.params.pop("w")
            for slot in reference.slots:
                slot["v"] = slot.pop("w")
    assert tree.structure(state.params) == tree.structure(reference.params)


@pytest.mark.parametrize("case", ["read-only param", "read-only moment", "grads in m",
                                  "grads in params"])
def test_a_donated_loop_of_remembered_states_still_writes_only_what_it_may(case: str) -> None:
    # a steady donated loop over a NamedTuple tree (the optimizer remembers its results
    # and their arenas); then something that forbids overwriting in place
    opt = optim.adam(0.1)
    rng = np.random.default_rng(5)
    params = (_Layer(rng.standard_normal((40, 30)), rng.standard_normal(30)),
              _Layer(rng.standard_normal((30, 3)), None))
    state = opt.init(params)
    for _ in range(3):
        grads = tree.map(lambda p: rng.standard_normal(p.shape), state.params)
        state, _ = opt.update_in_place(state, grads)
    grads = tree.map(lambda p: rng.standard_normal(p.shape), state.params)
    if case == "read-only param":
        state.params[1].w.flags.writeable = False
    elif case == "read-only moment":
        state.slots.v[0].b.flags.writeable = False
    elif case == "grads in m":
        grads = tree.map(lambda a: a[::-1], state.slots.m)
    else:
        grads = tree.map(lambda a: a[::-1], state.params)
    snapshot = tree.map(np.copy, (state, grads))
    # the expected result from another optimizer: this one's memory stays on the loop
    expected, _ = optim.adam(0.1).update(snapshot[0], snapshot[1])
    new, _ = opt.update_in_place(state, grads)
    tree.map(np.testing.assert_array_equal, expected, new)
    tree.map(np.testing.assert_array_equal, snapshot[1], grads)  # grads never written
    if case.startswith("read-only"):  # the read-only leaf's values are as they were
        leaf = (state.params[1].w, snapshot[0].params[1].w) if case == "read-only param" \
            else (state.slots.v[0].b, snapshot[0].slots.v[0].b)
        np.testing.assert_array_equal(*leaf)


@pytest.mark.parametrize("donate", [False, True])
@pytest.mark.parametrize("case", ["structure", "node type", "shape", "dtype", "not an array"])
def test_a_loop_of_remembered_states_still_checks_every_grads_tree(donate: bool,
                                                                  case: str) -> None:
    # once the optimizer knows the params' structure, the grads are read by a compiled
    # reader: a grads tree that does not fit must still get flat_pair's clear error
    opt = optim.adam(0.1)
    update = opt.update_in_place if donate else opt.update
    rng = np.random.default_rng(6)
    state = opt.init((_Layer(rng.standard_normal((4, 3)), rng.standard_normal(3)), ()))
    for _ in range(3):
        state, _ = update(state, tree.map(np.ones_like, state.params))
    w, b = state.params[0]
    bad = {"structure": (_Layer(np.ones_like(w), np.ones_like(b)),),
           "node type": ((np.ones_like(w), np.ones_like(b)), ()),
           "shape": (_Layer(np.ones_like(w), np.ones(4)), ()),
           "dtype": (_Layer(np.ones_like(w), np.ones(3, np.float32)), ()),
           "not an array": (_Layer(np.ones_like(w), [1.0, 1.0, 1.0]), ())}[case]
    message = {"structure": r"adam: grads must have the params' structure",
               "node type": r"adam: grads must have the params' structure",
               "shape": r"adam: grads\[0\]\.b must be an array of shape \(3,\) and dtype "
                        r"float64 like params; got",
               "dtype": r"adam: grads\[0\]\.b must be an array of shape \(3,\) and dtype "
                        r"float64 like params; got",
               "not an array": r"adam: grads must have the params' structure; got .* at "
                                r"params\[0\]\.b: params has a leaf of shape \(3,\), grads has "
                                r"list"}[case]
    before = tree.map(np.copy, state)
    with pytest.raises(ValueError, match=message):
        update(state, bad)
    tree.map(np.testing.assert_array_equal, before, state)  # nothing written
    state, _ = update(state, tree.map(np.ones_like, state.params))  # and the loop goes on
