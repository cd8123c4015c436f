"""Property tests over the registry of losses, and their numerics."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import losses
from nnfunc.losses import _CLASS_MAJOR_MAX
from nnfunc.testing import check_loss_grad

from registry import LOSSES, LossEntry

ids = [e.id for e in LOSSES]


@pytest.mark.parametrize("entry", LOSSES, ids=ids)
@given(data=st.data())
def test_grad_matches_finite_differences(entry: LossEntry, data: st.DataObject) -> None:
    y_pred, y_true = data.draw(entry.cases(np.float64))
    report = check_loss_grad(entry.loss, y_pred, y_true)
    assert report.max_error <= 1e-6
    assert report.transpose_error <= 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("entry", LOSSES, ids=ids)
@given(data=st.data())
def test_dtype_kept_and_inputs_unmodified(entry: LossEntry, dtype: Any,
                                          data: st.DataObject) -> None:
    y_pred, y_true = data.draw(entry.cases(dtype))
    before = (y_pred.copy(), np.array(y_true, copy=True))
    value, grad = entry.loss.value_and_grad(y_pred, y_true)  # type: ignore[misc]
    assert value.dtype == dtype
    assert np.ndim(value) == 0
    assert grad.dtype == dtype
    assert grad.shape == y_pred.shape
    assert value == entry.loss.apply(y_pred, y_true)
    np.testing.assert_array_equal(grad, entry.loss.grad(y_pred, y_true))
    np.testing.assert_array_equal(before[0], y_pred)
    np.testing.assert_array_equal(before[1], y_true)


@given(st.integers(1, 6), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_integer_and_one_hot_labels_agree(n: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * 3
    labels = rng.integers(0, c, size=n)
    onehot = np.eye(c)[labels]
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    for loss, pred in [(losses.softmax_cross_entropy, z), (losses.categorical_crossentropy, p)]:
        assert loss.apply(pred, labels) == pytest.approx(loss.apply(pred, onehot), rel=1e-12)
        # where p ≈ y the gradient (p - y)/n cancels: the two formulas then differ by
        # a few ulps of the O(1) terms, not of the tiny result (seen: 2e-17 at 3e-6)
        np.testing.assert_allclose(loss.grad(pred, labels), loss.grad(pred, onehot),
                                   rtol=1e-12, atol=1e-15)


def test_logit_losses_are_finite_at_plus_minus_1e4_without_warnings() -> None:
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, g = losses.softmax_cross_entropy.value_and_grad(z, np.array([1, 1]))  # type: ignore[misc]
        # row 0 has its target 2e4 below the max: loss 2e4; row 1 predicts its target: loss 0
        assert v == pytest.approx((2e4 + 0.0) / 2)
        assert np.isfinite(g).all()
        v, g = losses.sigmoid_binary_cross_entropy.value_and_grad(  # type: ignore[misc]
            z, np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 0.0]], np.float32))
        # max(z,0) - z*y + log1p(exp(-|z|)): 1e4, 1e4, log 2, 1e4, 0, 5 + log1p(e^-5)
        expected = (3e4 + np.log(2) + 5 + np.log1p(np.exp(-5))) / 6
        assert v == pytest.approx(expected, rel=1e-6)
        assert np.isfinite(g).all()


def test_probability_losses_never_take_log_zero() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = np.array([[0.0, 1.0]])
        y = np.array([[1.0, 0.0]])
        v = losses.binary_crossentropy.apply(p, y)
        # both entries clipped to eps away from the truth: -log(1e-7) each
        assert v == pytest.approx(-np.log(1e-7), rel=1e-6)
        v = losses.categorical_crossentropy.apply(np.array([[0.0, 1.0]]), np.array([0]))
        assert v == pytest.approx(-np.log(1e-7), rel=1e-6)


def test_huber_matches_mse_half_inside_and_mae_outside() -> None:
    r_small = np.array([[0.3, -0.2]])
    r_big = np.array([[5.0, -7.0]])
    zero = np.zeros((1, 2))
    assert losses.huber(1.0).apply(r_small, zero) == pytest.approx(
        0.5 * losses.mse.apply(r_small, zero))
    # δ(|r| - δ/2) with δ = 1: 4.5 and 6.5, mean 5.5
    assert losses.huber(1.0).apply(r_big, zero) == pytest.approx(5.5)


@pytest.mark.parametrize("entry", LOSSES, ids=ids)
@given(data=st.data())
def test_per_sample_losses_average_to_the_loss(entry: LossEntry, data: st.DataObject) -> None:
    y_pred, y_true = data.draw(entry.cases(np.float64))
    per = entry.loss.per_sample(y_pred, y_true)  # type: ignore[misc]
    assert per.shape == (y_pred.shape[0],)
    assert per.mean() == pytest.approx(entry.loss.apply(y_pred, y_true), rel=1e-12, abs=1e-15)
    # each sample's loss is the loss of that sample alone
    i = data.draw(st.integers(0, y_pred.shape[0] - 1))
    alone = entry.loss.apply(y_pred[i:i + 1], np.asarray(y_true)[i:i + 1])
    assert per[i] == pytest.approx(alone, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("classes", [4, _CLASS_MAJOR_MAX + 8])  # class-major, row-major
@pytest.mark.parametrize("labels_shape", [(6,), (2, 3)])
def test_softmax_cross_entropy_same_for_any_memory_layout_of_the_logits(
        labels_shape: tuple[int, ...], classes: int) -> None:
    # the label lookup indexes C-ordered work arrays; a Fortran-ordered or
    # strided z (and strided labels) must give exactly the same loss and gradient
    rng = np.random.default_rng(5)
    z = rng.standard_normal((*labels_shape, classes)).astype(np.float32)
    y = rng.integers(0, classes, (*labels_shape, 2))[..., 0]  # a strided view
    value, grad = losses.softmax_cross_entropy.value_and_grad(z, y)
    for other in (np.asfortranarray(z), np.repeat(z, 2, axis=-1)[..., ::2]):
        v2, g2 = losses.softmax_cross_entropy.value_and_grad(other, y)
        assert v2 == value
        np.testing.assert_array_equal(g2, grad)
    # and it is the gradient: the one-hot and the float64 formula give the same
    onehot = np.eye(classes, dtype=np.float32)[y]
    _, g3 = losses.softmax_cross_entropy.value_and_grad(z, onehot)
    np.testing.assert_allclose(g3, grad, rtol=1e-6, atol=1e-7)
    z64 = z.astype(np.float64)
    p = np.exp(z64 - z64.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    n = y.size
    np.testing.assert_allclose(grad, (p - np.eye(classes)[y]) / n, rtol=1e-5, atol=1e-8)
    assert value == pytest.approx(-np.log(np.take_along_axis(p, y[..., None], -1)).mean(),
                                  rel=1e-6)


@pytest.mark.parametrize("classes", [10, _CLASS_MAJOR_MAX + 8])  # class-major, row-major
@pytest.mark.parametrize("label_dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32,
                                         np.uint64])
def test_softmax_cross_entropy_any_integer_label_dtype_gives_the_same(
        label_dtype: Any, classes: int) -> None:
    # 300 samples: a label's flat position y_i * n + i overflows 8-bit labels
    # unless it is computed in intp; the compiled loop reads every integer format
    rng = np.random.default_rng(11)
    z = rng.standard_normal((300, classes)).astype(np.float32)
    y = rng.integers(0, min(classes, 127), 300)
    small = y.astype(label_dtype)
    for loss in (losses.softmax_cross_entropy, losses._sce_loss):  # compiled, NumPy's
        assert loss.value_and_grad is not None
        value, grad = loss.value_and_grad(z, y)
        v2, g2 = loss.value_and_grad(z, small)
        assert v2 == value
        np.testing.assert_array_equal(g2, grad)
        assert loss.apply(z, small) == value
        np.testing.assert_array_equal(loss.grad(z, small), grad)


def _sce_exact(z: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """Softmax cross-entropy's loss, gradient and per-position terms in extended
    precision (x86's 80-bit long double: 11 more bits than float64), with the
    label's gradient from the other classes' sum, so nothing cancels."""
    c = z.shape[-1]
    rows = z.reshape(-1, c).astype(np.longdouble)
    labels = y.reshape(-1)
    at = (np.arange(rows.shape[0]), labels)
    x = rows - rows.max(axis=1, keepdims=True)  # exact: 64-bit significands
    e = np.exp(x)
    others = e.copy()
    others[at] = 0
    o = others.sum(axis=1)
    s = o + e[at]
    # -log softmax_y = log(s) - x_y, as log1p(o / e_y) where it is near 0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # np.where's other side
        terms = np.where(x[at] >= -1, np.log1p(o / e[at]), np.log(s) - x[at])
    n = rows.shape[0]
    g = e / (s[:, None] * n)
    g[at] = -o / (s * n)
    return terms.mean(), g.reshape(z.shape), terms.reshape(y.shape)


@given(n=st.integers(1, 40), c=st.integers(1, 40),
       scale=st.sampled_from([1e-3, 1.0, 30.0, 1e4]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1),
       label_dtype=st.sampled_from([np.int64, np.int32, np.uint8]),
       steps=st.sampled_from([(), (1,), (3,)]),
       layout=st.sampled_from(["C", "F", "strided"]))
def test_softmax_cross_entropy_compiled_loop_rounds_once(
        n: int, c: int, scale: float, dtype: Any, seed: int, label_dtype: Any,
        steps: tuple[int, ...], layout: str) -> None:
    # The compiled loop (integer labels) works in double precision and rounds each
    # output once: for float32 logits its double-precision error (< 1e-13 relative)
    # is far below half a float32 ulp, so every output is within 1 ulp of the exact
    # value. For float64 the bound of _xent.c's arithmetic is about (c/8 + 8) ulps
    # (exp's, the eight-lane row sum's, a division's); the loss and the terms
    # (compensated sum, log1p near 0) well within it.
    from nnfunc.losses import _sce_loss
    assert losses._compiled_sce() is not None, "nnfunc._xent was not built"
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, *steps, c)) * scale).astype(dtype)
    y = rng.integers(0, c, (n, *steps)).astype(label_dtype)
    if layout == "F":
        z = np.asfortranarray(z)
    elif layout == "strided":
        z = np.repeat(z, 2, axis=-1)[..., ::2]
        y = np.repeat(y, 2, axis=0)[::2]
    value, grad = losses.softmax_cross_entropy.value_and_grad(z, y)
    assert value.dtype == grad.dtype == dtype
    assert grad.shape == z.shape
    assert value == losses.softmax_cross_entropy.apply(z, y)
    np.testing.assert_array_equal(losses.softmax_cross_entropy.grad(z, y), grad)
    want_value, want_grad, want_terms = _sce_exact(z, y)
    per = losses.softmax_cross_entropy.per_sample(z, y)  # type: ignore[misc]
    if dtype == np.float32:
        np.testing.assert_array_max_ulp(grad, want_grad.astype(dtype), maxulp=1)
        np.testing.assert_array_max_ulp(value, want_value.astype(dtype), maxulp=1)
        if not steps or steps == (1,):  # one position per sample: the terms themselves
            np.testing.assert_array_max_ulp(per, want_terms.reshape(n).astype(dtype), maxulp=1)
    else:
        eps = np.finfo(np.float64).eps
        bound = (c / 8 + 8) * eps
        # (below float64's smallest normal, 2.2e-308, precision is absolute)
        np.testing.assert_allclose(grad, want_grad.astype(dtype), rtol=bound,
                                   atol=4 * np.finfo(np.float64).smallest_subnormal)
        np.testing.assert_allclose(value, want_value.astype(dtype), rtol=8 * eps, atol=0)
    np.testing.assert_allclose(per, want_terms.reshape(n, -1).mean(axis=1).astype(dtype),
                               rtol=8 * np.finfo(dtype).eps, atol=0)
    # NumPy's path (one-hot targets, no extension) agrees to float rounding: its
    # label gradient, softmax - 1, cancels, so that is held to an absolute bound
    tiny = float(np.finfo(dtype).eps)
    assert _sce_loss.value_and_grad is not None
    v2, g2 = _sce_loss.value_and_grad(z, y)
    assert v2 == pytest.approx(value, rel=16 * tiny, abs=16 * tiny)
    np.testing.assert_allclose(g2, grad, rtol=16 * tiny, atol=4 * tiny / y.size)


def test_softmax_cross_entropy_nan_or_inf_logits_give_nan_not_a_number_that_looks_fine(
) -> None:
    # the compiled loop leaves non-finite maxima to NumPy's path: NaN in, NaN out
    for bad in (np.nan, np.inf):
        z = np.array([[0.0, 1.0, bad], [0.5, 0.0, 0.0]], np.float32)
        with np.errstate(invalid="ignore"):
            value, grad = losses.softmax_cross_entropy.value_and_grad(z, np.array([0, 1]))
        assert np.isnan(value)
        assert np.isnan(grad[0]).all()
    # -inf is a logit of probability 0: finite gradient, infinite loss only if labelled
    z = np.array([[0.0, -np.inf, 1.0]], np.float32)
    value, grad = losses.softmax_cross_entropy.value_and_grad(z, np.array([0]))
    assert np.isfinite(value)
    assert grad[0, 1] == 0
    assert losses.softmax_cross_entropy.apply(z, np.array([1])) == np.inf


def test_softmax_cross_entropy_without_the_extension_is_numpys_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from nnfunc.losses import _sce_loss
    rng = np.random.default_rng(2)
    z = rng.standard_normal((5, 7)).astype(np.float32)
    y = rng.integers(0, 7, 5)
    monkeypatch.setattr(losses, "_compiled_sce", lambda: None)
    assert _sce_loss.value_and_grad is not None
    v, g = losses.softmax_cross_entropy.value_and_grad(z, y)
    v2, g2 = _sce_loss.value_and_grad(z, y)
    assert v == v2
    np.testing.assert_array_equal(g, g2)


def test_nnfunc_compiled_0_turns_the_loss_loop_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNFUNC_COMPILED", "0")
    losses._compiled_sce.cache_clear()
    try:
        assert losses._compiled_sce() is None
    finally:
        monkeypatch.delenv("NNFUNC_COMPILED")
        losses._compiled_sce.cache_clear()
    assert losses._compiled_sce() is not None


def test_softmax_cross_entropy_fast_path_still_rejects_bad_labels() -> None:
    z = np.zeros((3, 4), np.float32)
    for bad in (np.array([0, 4, 1]), np.array([0, -1, 1])):
        with pytest.raises(ValueError, match=r"softmax_cross_entropy: y_true labels must be in "
                                             r"\[0, 4\)"):
            losses.softmax_cross_entropy.value_and_grad(z, bad)


@given(n=st.integers(1, 4), steps=st.integers(1, 5), c=st.sampled_from([2, 3, 7,
                                                                       _CLASS_MAJOR_MAX + 2]),
       seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]))
def test_sequence_softmax_cross_entropy_is_the_mean_over_all_positions(
        n: int, steps: int, c: int, seed: int, dtype: Any) -> None:
    # L = -(1/(n T)) Σ_{i,t} log softmax(z_it)[y_it], dL/dz_it = (softmax(z_it) - e_{y_it})/(n T),
    # written out one position at a time in float64
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, steps, c)) * 3).astype(dtype)
    y = rng.integers(0, c, (n, steps))
    want_value, want_grad = 0.0, np.zeros((n, steps, c))
    for i in range(n):
        for t in range(steps):
            row = z[i, t].astype(np.float64)
            p = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
            want_value -= np.log(p[y[i, t]]) / (n * steps)
            want_grad[i, t] = (p - np.eye(c)[y[i, t]]) / (n * steps)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for target in (y, np.eye(c, dtype=dtype)[y]):
        value, grad = losses.softmax_cross_entropy.value_and_grad(z, target)
        assert value.dtype == dtype
        assert grad.dtype == dtype
        assert grad.shape == z.shape
        assert value == pytest.approx(want_value, rel=rtol)
        np.testing.assert_allclose(grad, want_grad, rtol=rtol, atol=rtol * 1e-2)
        assert losses.softmax_cross_entropy.apply(z, target) == value
    per = losses.softmax_cross_entropy.per_sample(z, y)  # type: ignore[misc]
    assert per.shape == (n,)


def test_sequence_accuracy_counts_every_position() -> None:
    from nnfunc import metrics
    rng = np.random.default_rng(3)
    z = rng.standard_normal((3, 5, 4))
    y = rng.integers(0, 4, (3, 5))
    hits = sum(int(np.argmax(z[i, t]) == y[i, t]) for i in range(3) for t in range(5))
    assert metrics.accuracy(z, y) == hits / 15
    assert metrics.accuracy(z, np.eye(4)[y]) == hits / 15
    with pytest.raises(ValueError, match=r"accuracy: y_true integer labels must have shape "
                                         r"\(3, 5\); got shape \(3,\)"):
        metrics.accuracy(z, y[:, 0])
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: y_true integer labels must have "
                                         r"shape \(3, 5\); got shape \(3, 4\)"):
        losses.softmax_cross_entropy.value_and_grad(z, y[:, :4])
