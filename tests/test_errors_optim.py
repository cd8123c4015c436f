"""Optimizers, transforms, schedules and tree norms: clear errors and safe accumulation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from nnfunc import optim, tree
from nnfunc.optim import schedules

P = {"w": np.ones(3, np.float32), "b": np.zeros(2, np.float32)}
G = {"w": np.ones(3, np.float32), "b": np.ones(2, np.float32)}


# -- norms that neither overflow nor underflow -------------------------------------------

@pytest.mark.parametrize("value", [1e19, 3e38, 1e-25, 1e-40, 1.0])
def test_global_norm_of_extreme_float32_leaves(value: float) -> None:
    leaf = np.full(4, value, np.float32)
    expected = 2.0 * float(leaf[0])  # sqrt(4 x²) = 2|x|, with x the float32 value itself
    got = tree.global_norm({"a": leaf})
    assert math.isfinite(got)
    assert got > 0
    assert math.isclose(got, expected, rel_tol=1e-6)


def test_global_norm_of_extreme_float64_and_mixed_leaves() -> None:
    assert math.isclose(tree.global_norm([np.full(4, 1e200)]), 2e200, rel_tol=1e-12)
    assert math.isclose(tree.global_norm([np.full(4, 1e-200)]), 2e-200, rel_tol=1e-12)
    # leaves of very different magnitudes and dtypes: sqrt(Σ x²) over all of them
    mixed = [np.full(9, 1e19, np.float32), np.array([3e-30, 4e-30]), np.array([3, 4])]
    expected = math.sqrt(9 * float(np.float32(1e19)) ** 2 + 25)
    assert math.isclose(tree.global_norm(mixed), expected, rel_tol=1e-6)
    assert tree.global_norm([]) == 0.0
    assert tree.global_norm({"z": np.zeros(3, np.float32)}) == 0.0


def test_global_norm_keeps_nan_and_inf() -> None:
    assert math.isnan(tree.global_norm([np.ones(2), np.array([np.nan, 1.0])]))
    assert tree.global_norm([np.ones(2, np.float32), np.array([np.inf], np.float32)]) == math.inf


def test_global_norm_of_a_non_numeric_leaf() -> None:
    with pytest.raises(TypeError, match=r"tree\.global_norm: leaves must be numeric; got a leaf "
                                        r"'x'"):
        tree.global_norm({"a": "x"})


@pytest.mark.parametrize("value", [1e19, 3e38])
def test_clip_by_global_norm_of_huge_float32_grads(value: float) -> None:
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(1.0))
    params = {"w": np.zeros(3, np.float32)}
    _, new = opt.update(opt.init(params), {"w": np.full(3, value, np.float32)})
    assert new["w"].dtype == np.float32
    # equal entries scaled to norm 1: each is -1/sqrt(3)
    np.testing.assert_allclose(new["w"], np.full(3, -1 / math.sqrt(3)), rtol=1e-6)


def test_clip_by_global_norm_leaves_nan_grads_for_skip_nonfinite() -> None:
    opt = optim.chain(optim.skip_nonfinite(), optim.clip_by_global_norm(1.0), optim.sgd(1.0))
    params = {"w": np.zeros(2, np.float32)}
    state, new = opt.update(opt.init(params), {"w": np.array([np.nan, 1e19], np.float32)})
    np.testing.assert_array_equal(new["w"], params["w"])
    assert state.own == 1


# -- one optimizer's state given to another -----------------------------------------------

@pytest.mark.parametrize(("make_state", "opt", "slots"), [
    (lambda: optim.sgd(0.1).init(P), optim.adam(), "AdamSlots"),
    (lambda: optim.adam().init(P), optim.sgd(0.1), "NoSlots"),
    (lambda: optim.momentum().init(P), optim.rmsprop(), "SquareSlots"),
    (lambda: optim.adadelta().init(P), optim.adam(), "AdamSlots"),
    (lambda: optim.adam().init(P), optim.adadelta(), "AdaDeltaSlots"),
])
def test_another_optimizers_state(make_state: Any, opt: optim.Optimizer, slots: str) -> None:
    with pytest.raises(TypeError, match=rf"state\.slots must be {slots} \(a state from this "
                                        r"optimizer's init, not another optimizer's\); got"):
        opt.update(make_state(), G)


def test_donated_update_checks_the_state_too() -> None:
    with pytest.raises(TypeError, match=r"adam: state\.slots must be AdamSlots"):
        optim.update_fn(optim.adam(), True)(optim.sgd(0.1).init(P), G)


WRAPPERS = {
    "clip_by_global_norm(1)": optim.clip_by_global_norm(1.0),
    "freeze": optim.freeze("b"),
    "skip_nonfinite": optim.skip_nonfinite(),
    "accumulate(2)": optim.accumulate(2),
    "l2(0.1)": optim.l2(0.1),
}


@pytest.mark.parametrize("name", WRAPPERS)
def test_a_plain_state_given_to_a_chain(name: str) -> None:
    opt = optim.chain(WRAPPERS[name], optim.adam())
    with pytest.raises(TypeError, match=rf"{re_escape(name)}: state must be this optimizer's "
                                        r"state \(from its init: a WrapperState"):
        opt.update(optim.adam().init(P), G)


@pytest.mark.parametrize(("ours", "theirs", "own"), [
    ("clip_by_global_norm(1)", "accumulate(2)", "a tuple of bools"),
    ("freeze", "skip_nonfinite", "a tuple of bools"),
    ("skip_nonfinite", "freeze", "the count of skipped steps"),
    ("accumulate(2)", "l2(0.1)", r"\(count, summed grads\)"),
])
def test_another_chains_state(ours: str, theirs: str, own: str) -> None:
    state = optim.chain(WRAPPERS[theirs], optim.adam()).init(P)
    with pytest.raises(TypeError, match=rf"{re_escape(ours)}: state\.own must be {own}"):
        optim.chain(WRAPPERS[ours], optim.adam()).update(state, G)


def test_a_mask_for_other_params() -> None:
    state = optim.chain(optim.l2(0.1), optim.adam()).init({"w": np.ones(3, np.float32)})
    state = state._replace(inner=optim.adam().init(P))
    with pytest.raises(ValueError, match=r"l2\(0.1\): state\.own must hold one bool per leaf of "
                                         r"the params \(2\); got 1 entries"):
        optim.chain(optim.l2(0.1), optim.adam()).update(state, G)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


# -- grads of the wrong kind --------------------------------------------------------------

@pytest.mark.parametrize(("grad", "got"), [
    (np.ones(3), "dtype float64"), (np.ones(3, np.int64), "dtype int64"),
    (np.ones(3, np.complex64), "dtype complex64"), (np.ones(4, np.float32), r"shape \(4,\)"),
])
def test_grads_of_the_wrong_dtype_or_shape(grad: np.ndarray, got: str) -> None:
    opt = optim.sgd(0.1)
    with pytest.raises(ValueError, match=r"sgd: grads\['w'\] must be an array of shape \(3,\) "
                                         rf"and dtype float32 like params; got .*{got}"):
        opt.update(opt.init(P), {**G, "w": grad})


# -- schedules ----------------------------------------------------------------------------

@pytest.mark.parametrize(("result", "got"), [
    ("x", "str 'x'"), (None, "NoneType None"), (1j, "complex 1j"), (np.ones(2), "array"),
    (True, "bool True"),
])
def test_a_schedule_that_returns_no_number(result: Any, got: str) -> None:
    with pytest.raises(TypeError, match=rf"sgd: lr schedule must return a real number \(step "
                                        rf"0\); got {got}"):
        optim.sgd(lambda step: result).init(P)


def test_a_schedule_that_overflows_or_gives_nan() -> None:
    opt = optim.sgd(lambda step: 10.0 ** (400 * step))  # OverflowError from step 1
    state = opt.init(P)
    with pytest.raises(ValueError, match=r"sgd: lr schedule must give finite values >= 0 "
                                         r"\(step 1\); got OverflowError"):
        opt.update(opt.update(state, G)[0], G)
    with pytest.raises(ValueError, match=r"sgd: lr schedule must give finite values >= 0 "
                                         r"\(step 0\); got nan"):
        optim.sgd(lambda step: math.nan).init(P)


def test_exponential_decay_at_huge_steps() -> None:
    assert schedules.exponential_decay(1.0, 0.5, 1)(10**6) == 0.0
    assert schedules.exponential_decay(1.0, 0.5, 1)(10**400) == 0.0
    assert schedules.exponential_decay(2.0, 0.5, 3, staircase=True)(10**400) == 0.0
    assert schedules.exponential_decay(1.0, 2.0, 1)(10**6) == math.inf
    assert schedules.exponential_decay(0.1, 1.0, 1)(10**400) == 0.1
    assert schedules.cosine_decay(1.0, 10, alpha=0.5)(10**400) == 0.5
    assert schedules.warmup(schedules.constant(0.3), 4)(10**400) == 0.3
    # a growing schedule reaches the optimizer as a clear error, not an OverflowError
    opt = optim.sgd(schedules.exponential_decay(1.0, 2.0, 1))
    state = opt.init(P)._replace(step=2000)
    with pytest.raises(ValueError, match=r"sgd: lr schedule must give finite values >= 0 "
                                         r"\(step 2000\); got inf"):
        opt.update(state, G)


SCHEDULES = {
    "constant": schedules.constant(0.1),
    "exponential_decay": schedules.exponential_decay(1.0, 0.5, 2),
    "cosine_decay": schedules.cosine_decay(1.0, 10),
    "piecewise_constant": schedules.piecewise_constant([2], [1.0, 0.5]),
    "warmup": schedules.warmup(schedules.constant(1.0), 3),
}


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize(("step", "error", "message"), [
    (-1, ValueError, r"step must be >= 0; got -1"),
    (1.5, TypeError, r"step must be an int >= 0; got float 1.5"),
    ("3", TypeError, r"step must be an int >= 0; got str '3'"),
    (True, TypeError, r"step must be an int >= 0; got bool True"),
])
def test_schedules_check_their_step(name: str, step: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=rf"{name}: {message}"):
        SCHEDULES[name](step)


@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda: schedules.piecewise_constant(["a"], [1.0, 2.0]), TypeError,
     r"piecewise_constant: boundaries\[0\] must be an int >= 0; got str 'a'"),
    (lambda: schedules.piecewise_constant([1.5], [1.0, 2.0]), TypeError,
     r"boundaries\[0\] must be an int >= 0; got float 1.5"),
    (lambda: schedules.piecewise_constant([True], [1.0, 2.0]), TypeError,
     r"boundaries\[0\] must be an int >= 0; got bool True"),
    (lambda: schedules.piecewise_constant([-3], [1.0, 2.0]), ValueError,
     r"boundaries\[0\] must be >= 0; got -3"),
    (lambda: schedules.piecewise_constant(3, [1.0]), TypeError,
     r"piecewise_constant: boundaries must be a sequence \(list or tuple\); got int 3"),
    (lambda: schedules.piecewise_constant([1], "ab"), TypeError,
     r"piecewise_constant: values must be a sequence \(list or tuple\); got str 'ab'"),
    (lambda: schedules.piecewise_constant([1], [1.0, "x"]), TypeError,
     r"piecewise_constant: values\[1\] must be a real number; got str 'x'"),
    (lambda: schedules.piecewise_constant([], []), ValueError,
     r"values must number len\(boundaries\) \+ 1 = 1; got 0"),
    (lambda: schedules.exponential_decay(1.0, 0.5, 2, staircase="no"), TypeError,
     r"exponential_decay: staircase must be a bool \(True or False\); got str 'no'"),
    (lambda: schedules.warmup(0.1, 3), TypeError,
     r"warmup: then must be a schedule step -> lr; got float 0.1"),
    (lambda: schedules.cosine_decay(1.0, 0), ValueError, r"cosine_decay: decay_steps must be > 0"),
])
def test_malformed_schedule_arguments(make: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_flags_must_be_bool(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"sgd: nesterov must be a bool \(True or False\)"):
        optim.sgd(0.1, momentum=0.9, nesterov=bad)
    with pytest.raises(TypeError, match=r"optim\.update_fn: donate must be a bool"):
        optim.update_fn(optim.sgd(), bad)


# -- replace_params: what Decision(params=...) needs --------------------------------------

def test_replace_params_in_any_chain() -> None:
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.accumulate(1), optim.adam(0.1))
    state = opt.init(P)
    new = {"w": np.full(3, 5.0, np.float32), "b": np.full(2, -1.0, np.float32)}
    swapped = optim.replace_params(state, new)
    assert optim.params_of(swapped) is new
    assert optim.step_of(swapped) == optim.step_of(state)
    # the next update starts from the new params: Adam's first step is lr·sign(g)
    _, after = opt.update(swapped, G)
    np.testing.assert_allclose(after["w"], new["w"] - 0.1, rtol=1e-6)
    np.testing.assert_allclose(after["b"], new["b"] - 0.1, rtol=1e-6)


def test_replace_params_of_the_wrong_shape_or_dtype() -> None:
    state = optim.adam().init(P)
    with pytest.raises(ValueError, match=r"optim\.replace_params: params\['w'\] must have the "
                                         r"state's shape \(3,\) and dtype float32; got array of "
                                         r"shape \(3,\) and dtype float64"):
        optim.replace_params(state, {**P, "w": np.ones(3)})
    with pytest.raises(ValueError, match=r"tree: state params and params differ in structure"):
        optim.replace_params(state, {"w": P["w"]})
    with pytest.raises(TypeError, match=r"optim\.replace_params: state must be an optimizer "
                                        r"state"):
        optim.replace_params({"not": "a state"}, P)


def test_warmup_of_a_schedule_that_returns_no_number() -> None:
    sched = schedules.warmup(lambda step: "x", 3)  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match=r"warmup: then must return a real number \(step 0\); "
                                        r"got str 'x'"):
        sched(1)


def test_grads_of_another_structure_name_the_optimizer() -> None:
    opt = optim.sgd(0.1)
    with pytest.raises(ValueError, match=r"sgd: grads must have the params' structure; got "
                                         r"params and grads differ in structure at "
                                         r"params\['w'\]"):
        opt.update(opt.init(P), {**G, "w": [1.0, 2.0, 3.0]})


def test_a_chain_of_wrappers_applied_to_something_else() -> None:
    with pytest.raises(TypeError, match=r"optim\.chain: optimizer must be an nnfunc Optimizer"):
        optim.chain(optim.clip_by_global_norm(1.0))(3)
    with pytest.raises(TypeError, match=r"optim\.chain: optimizer must be an nnfunc Optimizer"):
        optim.chain()("adam")
