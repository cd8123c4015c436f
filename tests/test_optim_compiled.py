"""Adam's compiled loop (nnfunc.optim._compiled: the C extension _fused) against its NumPy kernel.

The two must give the same bits: the compiled loop is only a faster way of
doing the NumPy kernel's float operations in the NumPy kernel's order. The
extension is built wherever the suite runs (a C compiler is part of every
machine the project is tested on), so these tests always compare the two.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import optim, tree
from nnfunc.optim import _adam, _compiled
from nnfunc.optim.base import update_fn


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and bool(
        np.array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}")))


def test_the_extension_is_built_and_on() -> None:
    # without it every other test here would compare NumPy to itself
    assert _compiled.available(), ("nnfunc.optim._fused was not built: reinstall nnfunc "
                                   "with a C compiler at hand (pip install -e .)")
    assert _compiled.kernels() is not None


floats = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@given(n=st.integers(0, 300), seed=st.integers(0, 2**32 - 1),
       dtype=st.sampled_from(["float32", "float64"]),
       b1=st.floats(0.0, 0.999), b2=st.floats(0.0, 0.9999), eta=st.floats(0.0, 1.0),
       eps=st.floats(1e-12, 1.0), wd=st.sampled_from([0.0, 1e-4, 0.3]), t=st.integers(1, 10_000),
       scale=st.sampled_from([1e-30, 1e-3, 1.0, 1e3, 1e19]))
def test_the_compiled_loop_gives_the_numpy_kernels_bits(
        n: int, seed: int, dtype: str, b1: float, b2: float, eta: float, eps: float, wd: float,
        t: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    p, g, m = (rng.standard_normal(n) * s for s in (1.0, scale, scale))
    v = (rng.standard_normal(n) * scale) ** 2
    with np.errstate(over="ignore"):  # v beyond float32's range: inf
        p, g, m, v = (a.astype(dtype) for a in (p, g, m, v))
    if n:
        g[0] = 0.0  # a zero gradient on zero moments: 0 / (0 + ε)
        m[0] = v[0] = 0.0
    k = _adam._adam_constants(b1, b2, eta, eps, wd, t)
    want = [np.empty_like(p) for _ in range(3)]
    with np.errstate(all="ignore"):  # huge grads overflow g² to inf in both
        _adam._adam_chunk(_adam._adam_scalars(k, np.dtype(dtype)), p, g, m, v, *want,
                          np.empty_like(p))
    kernels = _compiled.kernels()
    assert kernels is not None
    into = [np.empty_like(p) for _ in range(3)]
    kernels.into(p, g, m, v, *into, np.array(k, dtype))
    in_place = [p.copy(), m.copy(), v.copy()]
    kernels.in_place(in_place[0], g, in_place[1], in_place[2], np.array(k, dtype))
    # strided g, m and v, and p2 written over p itself: the element-by-element loop
    own_p = p.copy()
    g2, m2, v2 = (np.repeat(a, 2)[::2] for a in (g, m, v))
    general = [own_p, np.empty_like(p), np.empty_like(p)]
    kernels.into(own_p, g2, m2, v2, *general, np.array(k, dtype))
    for w, a, b, c in zip(want, into, in_place, general):
        assert _same_bits(w, a)
        assert _same_bits(w, b)
        assert _same_bits(w, c)


@given(shapes=st.lists(st.lists(st.integers(0, 9), max_size=3).map(tuple), max_size=6),
       seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from(["float32", "float64"]),
       t=st.integers(1, 1000))
def test_grads_given_as_pieces_are_read_as_if_laid_end_to_end(
        shapes: list[tuple[int, ...]], seed: int, dtype: str, t: int) -> None:
    # the leaves' grads read where they lie give the bits of their concatenation
    rng = np.random.default_rng(seed)
    gs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    n = sum(g.size for g in gs)
    p, m = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    v = (rng.standard_normal(n) ** 2).astype(dtype)
    k = np.array(_adam._adam_constants(0.9, 0.999, 1e-2, 1e-8, 0.0, t), dtype)
    kernels = _compiled.kernels()
    assert kernels is not None
    whole = np.concatenate(gs, axis=None) if gs else np.zeros(0, dtype)
    want = [np.empty_like(p) for _ in range(3)]
    kernels.into(p, whole, m, v, *want, k)
    into = [np.empty_like(p) for _ in range(3)]
    assert kernels.into(p, gs, m, v, *into, k) is None
    in_place = [p.copy(), m.copy(), v.copy()]
    assert kernels.in_place(in_place[0], gs, in_place[1], in_place[2], k) is None
    for w, a, b in zip(want, into, in_place):
        assert _same_bits(w, a)
        assert _same_bits(w, b)


def test_pieces_the_vectorised_loop_cannot_take_are_declined_untouched() -> None:
    kernels = _compiled.kernels()
    assert kernels is not None
    rng = np.random.default_rng(1)
    gs = [rng.standard_normal((4, 3)).astype(np.float32), np.ones(2, np.float32)]
    p, m, v = (rng.random(14).astype(np.float32) for _ in range(3))
    k = np.array(_adam._adam_constants(0.9, 0.999, 1e-2, 1e-8, 0.0, 1), np.float32)
    outs = [np.zeros(14, np.float32) for _ in range(3)]
    declined = {
        "a transposed grad": [np.ascontiguousarray(gs[0].T).T, gs[1]],
        "a grad inside an output": [outs[1][:12].reshape(4, 3), gs[1]],
    }
    for pieces in declined.values():
        assert kernels.into(p, pieces, m, v, *outs, k) is NotImplemented
        assert all(not o.any() for o in outs)
    before = p.copy()
    assert kernels.in_place(p, [p[:12].reshape(4, 3), gs[1]], m, v, k) is NotImplemented
    assert kernels.into(p, gs, m, v, p, outs[1], outs[2], k) is NotImplemented  # p2 is p
    assert _same_bits(p, before)
    with pytest.raises(ValueError, match="must add up to p's length 14"):
        kernels.into(p, gs[:1], m, v, *outs, k)
    with pytest.raises(ValueError, match="must have p's format"):
        kernels.in_place(p, [gs[0].astype(np.float64), gs[1]], m, v, k)


def _leaves(dtype: str, rows: int = 300) -> dict[str, Any]:
    # big leaves (read where they lie) beside small ones (concatenated), and a
    # non-contiguous gradient leaf below; 75,102 params with rows=300
    rng = np.random.default_rng(0)
    return {"w": rng.standard_normal((200, 90)).astype(dtype),
            "b": rng.standard_normal(90).astype(dtype),
            "u": rng.standard_normal((rows, 190)).astype(dtype),
            "c": rng.standard_normal((3, 4)).astype(dtype)}


def _train(make: Any, donate: bool, dtype: str, steps: int = 4,
           rows: int = 300) -> tuple[Any, Any]:
    opt = make()
    params = _leaves(dtype, rows)
    state = opt.init({k: a.copy() for k, a in params.items()} if donate else params)
    update = update_fn(opt, donate)
    for i in range(steps):
        grads = {k: np.cos(a * (i + 1)).astype(dtype) for k, a in params.items()}
        grads["u"] = np.asfortranarray(grads["u"])
        state, new = update(state, grads)
    return state, new


OPTIMIZERS = [pytest.param(lambda: optim.adam(0.01), id="adam"),
              pytest.param(lambda: optim.adamw(0.01, weight_decay=0.1), id="adamw")]


@pytest.mark.parametrize("make", OPTIMIZERS)
@pytest.mark.parametrize("donate", [False, True])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_training_gives_the_same_bits_with_and_without_the_loop(
        make: Any, donate: bool, dtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = _train(make, donate, dtype)
    with monkeypatch.context() as patch:
        patch.setattr(_compiled, "kernels", lambda: None)
        plain = _train(make, donate, dtype)
    flat_a, flat_b = tree.leaves(compiled), tree.leaves(plain)
    assert len(flat_a) == len(flat_b)
    for a, b in zip(flat_a, flat_b):
        assert _same_bits(np.asarray(a), np.asarray(b))


def _recording(calls: list[str], inner: _compiled.Kernels | None) -> _compiled.Kernels:
    assert inner is not None  # the extension is built (test_the_extension_is_built_and_on)

    def in_place(*args: Any) -> Any:
        calls.append("in_place")
        return inner.in_place(*args)

    def into(*args: Any) -> Any:
        calls.append("into")
        return inner.into(*args)

    return _compiled.Kernels(in_place, into)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_updates_go_through_the_compiled_loops(dtype: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # what the bit-for-bit comparison above compares: donated steps overwrite in
    # place, pure ones write into fresh arenas
    real = _compiled.kernels()
    for donate, loop in ((True, "in_place"), (False, "into")):
        calls: list[str] = []
        with monkeypatch.context() as patch:
            patch.setattr(_compiled, "kernels", lambda c=calls: _recording(c, real))
            _train(OPTIMIZERS[0].values[0], donate, dtype, steps=3)
        assert loop in calls


def test_a_small_update_takes_the_loop_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # the extension costs nothing to load, so even a 2-leaf, 19-param update takes it
    real = _compiled.kernels()
    calls: list[str] = []
    monkeypatch.setattr(_compiled, "kernels", lambda: _recording(calls, real))
    opt = optim.adam(0.1)
    params = {"w": np.ones((3, 5), np.float32), "b": np.zeros(4, np.float32)}
    _, new = opt.update(opt.init(params), {"w": np.ones((3, 5), np.float32),
                                           "b": np.ones(4, np.float32)})
    assert calls == ["into"]
    # the first step is θ - η·g/(|g| + ε) ≈ θ - η·sign(g)
    np.testing.assert_allclose(new["b"], np.full(4, -0.1, np.float32), rtol=1e-6)


@pytest.mark.parametrize(("args", "match"), [
    ((np.zeros(3, np.float32),) * 4 + (np.zeros(6, np.float32),), "k must hold 7"),
    ((np.zeros(3, np.float32),) * 3 + (np.zeros(4, np.float32), np.zeros(7, np.float32)),
     "v must all have p's length"),
    ((np.zeros(3, np.float32), np.zeros(3), np.zeros(3, np.float32), np.zeros(3, np.float32),
      np.zeros(7, np.float32)), "g must be float32 or float64"),
    ((np.zeros((3, 1), np.float32),) * 4 + (np.zeros(7, np.float32),), "one-dimensional"),
    ((np.zeros(6, np.float32)[::2],) + (np.zeros(3, np.float32),) * 3
     + (np.zeros(7, np.float32),), "p must be contiguous"),
    ((np.zeros(3, np.int32),) * 4 + (np.zeros(7, np.int32),), "float32 or float64"),
])
def test_the_loops_refuse_arrays_they_cannot_take(args: tuple[Any, ...], match: str) -> None:
    # nnfunc never passes such arrays; a mistake inside nnfunc must not write out of bounds
    kernels = _compiled.kernels()
    assert kernels is not None
    with pytest.raises(ValueError, match=match):
        kernels.in_place(*args)


def test_the_loops_refuse_a_wrong_number_of_arguments() -> None:
    kernels = _compiled.kernels()
    assert kernels is not None
    a = np.zeros(3, np.float32)
    with pytest.raises(TypeError, match="adam_in_place takes 5 arguments, got 4"):
        kernels.in_place(a, a, a, a)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="adam_into takes 8 arguments, got 5"):
        kernels.into(a, a, a, a, a)  # type: ignore[call-arg]


def test_a_read_only_output_is_refused() -> None:
    kernels = _compiled.kernels()
    assert kernels is not None
    p = np.zeros(3, np.float32)
    p.flags.writeable = False
    with pytest.raises((BufferError, ValueError, TypeError)):
        kernels.in_place(p, *(np.zeros(3, np.float32),) * 3, np.zeros(7, np.float32))


def test_float16_params_are_updated_in_float32_through_the_loops(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # float16 params are widened to float32 for the update (see optimizers._in_float32),
    # so a big float16 model takes the float32 loop
    real = _compiled.kernels()
    for donate in (True, False):
        calls: list[str] = []
        with monkeypatch.context() as patch:
            patch.setattr(_compiled, "kernels", lambda c=calls: _recording(c, real))
            state, params = _train(OPTIMIZERS[0].values[0], donate, "float16", steps=2)
        assert calls
        assert params["w"].dtype == np.float16
        assert np.isfinite(params["w"]).all()
        assert {a.dtype for a in tree.leaves(state.slots)} == {np.dtype(np.float32)}


def test_nnfunc_compiled_0_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNFUNC_COMPILED", "0")
    _compiled.kernels.cache_clear()
    try:
        assert _compiled.kernels() is None
        assert _compiled.available()
    finally:
        monkeypatch.delenv("NNFUNC_COMPILED")
        _compiled.kernels.cache_clear()
    assert _compiled.kernels() is not None


def test_without_the_extension_adam_keeps_to_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    # an install made without a C compiler: importing the extension raises ImportError
    monkeypatch.setitem(sys.modules, "nnfunc.optim._fused", None)
    _compiled._module.cache_clear()
    _compiled.kernels.cache_clear()
    try:
        assert not _compiled.available()
        assert _compiled.kernels() is None
        _, params = _train(OPTIMIZERS[0].values[0], False, "float32", steps=2)
        assert np.isfinite(params["w"]).all()
    finally:
        _compiled._module.cache_clear()
        _compiled.kernels.cache_clear()
