"""scan and the recurrent layers: each fused layer equals scan of its own cell, the
forward passes match the equations written out here, and bad input is named."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnfunc as nf
from nnfunc import random, tree
from nnfunc.initializers import orthogonal
from nnfunc.testing import check_grad

FAMILIES = {
    "simple_rnn": (nf.simple_rnn, nf.simple_rnn_cell, lambda h: (h,)),
    "lstm": (nf.lstm, nf.lstm_cell, lambda h: ((h,), (h,))),
    "gru": (nf.gru, nf.gru_cell, lambda h: (h,)),
}


def _random_params(params: Any, k: Any) -> Any:
    """The init params with every leaf (biases too) redrawn, so no term is zero."""
    leaves, treedef = tree.flatten(params)
    keys = random.split(k, len(leaves))
    return tree.unflatten(treedef, [random.normal(kk, a.shape, a.dtype, std=0.7)
                                    for kk, a in zip(keys, leaves)])


def _sigmoid(a: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-a))


def _reference(kind: str, p: Any, x: Any) -> Any:
    """Every h_t by the DESIGN.md equations, one sample and one step at a time."""
    n, steps, _ = x.shape
    hidden = p.w_h.shape[0]
    out = np.zeros((n, steps, hidden))
    for i in range(n):
        h, c = np.zeros(hidden), np.zeros(hidden)
        for t in range(steps):
            xt = x[i, t]
            if kind == "simple_rnn":
                h = np.tanh(xt @ p.w_x + h @ p.w_h + p.b)
            elif kind == "lstm":
                a = xt @ p.w_x + h @ p.w_h + p.b
                gi, gf, gg, go = np.split(a, 4)
                c = _sigmoid(gf) * c + _sigmoid(gi) * np.tanh(gg)
                h = _sigmoid(go) * np.tanh(c)
            else:
                gx, gh = xt @ p.w_x + p.b_x, h @ p.w_h + p.b_h
                r = _sigmoid(gx[:hidden] + gh[:hidden])
                z = _sigmoid(gx[hidden:2 * hidden] + gh[hidden:2 * hidden])
                new = np.tanh(gx[2 * hidden:] + r * gh[2 * hidden:])
                h = (1 - z) * new + z * h
            out[i, t] = h
    return out


@st.composite
def _problems(draw: st.DrawFn) -> tuple[str, int, Any, Any, Any]:
    kind = draw(st.sampled_from(sorted(FAMILIES)))
    n, steps, d, hidden = (draw(st.integers(1, 3)), draw(st.integers(1, 5)),
                           draw(st.integers(1, 4)), draw(st.integers(1, 5)))
    k = random.key(draw(st.integers(0, 2**32 - 1)))
    k_p, k_x, k_dy = random.split(k, 3)
    _, params = FAMILIES[kind][0](hidden, dtype=np.float64).init(k_p, (steps, d))
    x = random.normal(k_x, (n, steps, d), np.float64)
    dy = random.normal(k_dy, (n, steps, hidden), np.float64)
    return kind, hidden, _random_params(params, k_p), x, dy


@given(_problems())
def test_forward_matches_the_equations(problem: tuple[str, int, Any, Any, Any]) -> None:
    kind, hidden, params, x, _ = problem
    y = FAMILIES[kind][0](hidden, dtype=np.float64).apply(params, x)
    np.testing.assert_allclose(y, _reference(kind, params, x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("return_sequences", [True, False])
@given(problem=_problems())
def test_fused_layer_equals_scan_of_its_cell(return_sequences: bool,
                                             problem: tuple[str, int, Any, Any, Any]) -> None:
    kind, hidden, params, x, dy = problem
    fused_factory, cell_factory, carry = FAMILIES[kind]
    fused = fused_factory(hidden, return_sequences=return_sequences, dtype=np.float64)
    scanned = nf.scan(cell_factory(hidden, dtype=np.float64), carry(hidden))
    ys = scanned.apply(params, x)
    dy_seq = dy if return_sequences else np.zeros_like(dy)
    if not return_sequences:
        dy_seq[:, -1] = dy[:, -1]
    y = fused.apply(params, x)
    np.testing.assert_allclose(y, ys if return_sequences else ys[:, -1], rtol=1e-13, atol=1e-15)
    dparams, dx = fused.grad(params, x, dy_seq if return_sequences else dy[:, -1])
    dparams_s, dx_s = scanned.grad(params, x, dy_seq)
    assert type(dparams) is type(params)
    np.testing.assert_allclose(dx, dx_s, rtol=1e-11, atol=1e-13)
    for a, b in zip(dparams, dparams_s):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


def test_scan_with_a_tuple_carry_passes_check_grad() -> None:
    layer = nf.scan(nf.lstm_cell(3), ((3,), (3,)))
    _, params = layer.init(random.key(1), (4, 2))
    x = random.normal(random.key(2), (2, 4, 2), np.float64)
    report = check_grad(layer, _random_params(params, random.key(3)), x)
    assert report.max_error <= 1e-6
    assert report.transpose_error <= 1e-6


def test_scan_gives_each_step_its_own_key() -> None:
    cell = nf.serial(nf.parallel(nf.identity, nf.dropout(0.5)), nf.fanin_sum, nf.fanout(2))
    layer = nf.scan(cell, (6,))
    _, params = layer.init(random.key(0), (5, 6))
    x = np.ones((1, 5, 6))
    y = layer.apply(params, x, key=random.key(4), train=True)
    kept = np.diff(y[0], axis=0, prepend=0.0)  # h_t - h_{t-1}: step t's kept units, times 2
    assert set(np.unique(kept)) <= {0.0, 2.0}
    assert len({tuple(row) for row in kept}) > 1  # not one mask repeated over time
    np.testing.assert_array_equal(y, layer.apply(params, x, key=random.key(4), train=True))
    report = check_grad(layer, params, x, key=random.key(4), train=True)
    assert report.max_error <= 1e-6


def test_gates_do_not_overflow() -> None:
    for kind, (factory, _, _) in FAMILIES.items():
        layer = factory(4)
        _, params = layer.init(random.key(0), (3, 2))
        x = np.array([[[1e4, -1e4], [-3e4, 3e4], [1e30, -1e30]]], np.float32)
        y = layer.apply(params, x)  # RuntimeWarnings are errors in the test run
        dparams, dx = layer.grad(params, x, np.ones_like(y))
        assert np.isfinite(y).all(), kind
        assert np.isfinite(dx).all(), kind
        assert all(np.isfinite(g).all() for g in dparams), kind


def test_sigmoid_saturates_exactly() -> None:
    layer = nf.lstm(1, dtype=np.float64)
    _, p = layer.init(random.key(0), (1, 1))
    p = nf.LSTMParams(np.zeros((1, 4)), np.zeros((1, 4)), np.array([-800.0, 0.0, 800.0, 800.0]))
    # i = σ(-800) = 0: c = 0, h = 0 exactly; with i = σ(800) = 1: c = g = tanh(800) = 1,
    # h = σ(800) tanh(1); computed from exp, σ(±800) would overflow
    assert layer.apply(p, np.zeros((1, 1, 1)))[0, 0, 0] == 0.0
    p2 = p._replace(b=np.array([800.0, 0.0, 800.0, 800.0]))
    assert layer.apply(p2, np.zeros((1, 1, 1)))[0, 0, 0] == pytest.approx(np.tanh(1.0), rel=1e-15)


def test_params_layout_and_dtype() -> None:
    _, p = nf.gru(5, dtype=np.float64).init(random.key(0), (7, 3))
    assert [a.shape for a in p] == [(3, 15), (5, 15), (15,), (15,)]
    assert all(a.dtype == np.float64 for a in p)
    _, p = nf.simple_rnn(5).init(random.key(0), (7, 3))
    assert [a.shape for a in p] == [(3, 5), (5, 5), (5,)]
    assert p.w_x.dtype == np.float32


def test_plain_tuple_params_are_accepted() -> None:
    layer = nf.lstm(3, dtype=np.float64)
    _, p = layer.init(random.key(0), (2, 2))
    x = random.normal(random.key(1), (2, 2, 2), np.float64)
    np.testing.assert_array_equal(layer.apply(tuple(p), x), layer.apply(p, x))
    grads, _ = layer.grad(tuple(p), x, np.ones((2, 2, 3)))
    assert type(grads) is tuple
    assert len(grads) == 3


@pytest.mark.parametrize("shape", [(3, 3), (4, 12), (12, 4), (2, 3, 5)])
def test_orthogonal(shape: tuple[int, ...]) -> None:
    w = orthogonal(random.key(0), shape, np.float64).reshape(-1, shape[-1])
    small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    np.testing.assert_allclose(small, np.eye(small.shape[0]), atol=1e-12)
    assert orthogonal(random.key(0), shape).dtype == np.float32


# -- errors ----------------------------------------------------------------------------------

def test_init_with_a_bad_rank_names_the_layer_and_shape() -> None:
    with pytest.raises(ValueError, match=r"lstm\(4\): in_shape must be \(T, d_in\).*; got \(5,\)"):
        nf.lstm(4).init(random.key(0), (5,))
    with pytest.raises(ValueError, match=r"gru\(4, return_sequences=False\): in_shape must be "
                                         r"\(T, d_in\).*; got \(2, 3, 4\)"):
        nf.gru(4, return_sequences=False).init(random.key(0), (2, 3, 4))
    model = nf.serial(nf.dense(3), nf.simple_rnn(2))
    with pytest.raises(ValueError, match=r"serial: layer 1 \(simple_rnn\(2\)\) cannot take "
                                         r"input shape \(3,\)"):
        model.init(random.key(0), (4,))


def test_cell_init_with_a_wrong_carry_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"lstm_cell\(4\): in_shape carry must be "
                                         r"\(\(4,\), \(4,\)\).*got carry \(4,\)"):
        nf.lstm_cell(4).init(random.key(0), ((4,), (3,)))
    with pytest.raises(ValueError, match=r"scan\(gru_cell\(4\)\): the cell cannot take "
                                         r"\(carry \(3,\), x_t \(2,\)\)"):
        nf.scan(nf.gru_cell(4), (3,)).init(random.key(0), (5, 2))
    with pytest.raises(ValueError, match=r"scan\(dense\(3\)\): in_shape must be \(T, \*x_shape\)"):
        nf.scan(nf.dense(3), (3,)).init(random.key(0), (5,))


def test_scan_rejects_a_cell_that_changes_its_carry() -> None:
    cell = nf.serial(nf.fanin_concat(), nf.dense(5), nf.fanout(2))
    with pytest.raises(ValueError, match=r"cell output shape must be \(carry \(3,\), y_t "
                                         r"shape\).*; got \(\(5,\), \(5,\)\)"):
        nf.scan(cell, (3,)).init(random.key(0), (4, 2))
    with pytest.raises(TypeError, match=r"scan: carry_shape must be a shape"):
        nf.scan(cell, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"scan: cell must be an nnfunc Layer"):
        nf.scan(nf.lstm_cell, (3,))  # type: ignore[arg-type]


def test_apply_with_a_wrong_width_names_both_shapes() -> None:
    layer = nf.lstm(4)
    _, p = layer.init(random.key(0), (5, 3))
    with pytest.raises(ValueError, match=r"lstm\(4\): x must have shape \(batch, T, 3\) with "
                                         r"T >= 1; got shape \(2, 5, 7\)"):
        layer.apply(p, np.ones((2, 5, 7), np.float32))
    with pytest.raises(ValueError, match=r"got shape \(2, 3\)"):
        layer.apply(p, np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match=r"lstm\(4\): x must have the params' dtype float32"):
        layer.apply(p, np.ones((2, 5, 3)))
    with pytest.raises(TypeError, match=r"lstm\(4\): params must be LSTMParams\(w_x \(D, 4H\)"):
        layer.apply(p[:2], np.ones((2, 5, 3), np.float32))
    cell = nf.lstm_cell(4)
    _, pc = cell.init(random.key(0), (((4,), (4,)), (3,)))
    h = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"lstm_cell\(4\): c must have shape \(batch, 4\); got "
                                         r"shape \(2, 5\)"):
        cell.apply(pc, ((h, np.zeros((2, 5), np.float32)), np.ones((2, 3), np.float32)))
    with pytest.raises(TypeError, match=r"lstm_cell\(4\): carry must be \(h, c\)"):
        cell.apply(pc, (h, np.ones((2, 3), np.float32)))


def test_bad_factory_arguments() -> None:
    with pytest.raises(ValueError, match=r"lstm: d_hidden must be > 0; got 0"):
        nf.lstm(0)
    with pytest.raises(TypeError, match=r"gru: return_sequences must be a bool"):
        nf.gru(3, return_sequences="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"simple_rnn: h_init must be an initializer"):
        nf.simple_rnn(3, h_init=3)  # type: ignore[arg-type]


def test_scan_of_a_stateful_cell_is_a_clear_error() -> None:
    cell = nf.serial(nf.fanin_concat(), nf.dense(3), nf.batch_norm(), nf.fanout(2))
    layer = nf.scan(cell, (3,))
    _, params = layer.init(random.key(0), (4, 2))
    with pytest.raises(TypeError, match=r"serial: state is required"):
        layer.apply(params, np.ones((2, 4, 2), np.float32))
