"""nnfunc.testing keeps its promises: strategies draw what they say, checks catch bugs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import losses, random, tree
from nnfunc.layers import dense
from nnfunc.losses import Loss
from nnfunc.testing import GradCheckError, check_grad, check_loss_grad, numerical_grad, tolerance
from nnfunc.testing import strategies as nst


@given(nst.probabilities(st.tuples(st.integers(1, 5), st.integers(1, 6))))
def test_probability_rows_sum_to_one_and_stay_inside(p: Any) -> None:
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    assert (p > 0).all()
    assert (p < 1).all() or p.shape[-1] == 1


@given(nst.arrays(st.just((50,)), kinks=(0.0, 1.0), margin=0.05, scale=2.0))
def test_arrays_keep_their_margin_from_kinks(x: Any) -> None:
    assert (np.abs(x) >= 0.05 - 1e-15).all()
    assert (np.abs(x - 1.0) >= 0.05 - 1e-15).all()
    assert (np.abs(x) <= 2.0).all()


@given(nst.one_hot_labels(st.integers(1, 5), 4), nst.int_labels(7, 3))
def test_labels(onehot: Any, labels: Any) -> None:
    assert onehot.shape[1] == 4
    np.testing.assert_array_equal(onehot.sum(axis=1), 1.0)
    assert labels.shape == (7,)
    assert labels.dtype == np.int64
    assert ((labels >= 0) & (labels < 3)).all()


@given(nst.layer_inputs(dense(3), in_shapes=(4,), batch=st.integers(1, 3)))
def test_layer_inputs_match_the_layer(case: Any) -> None:
    assert case.in_shape == (4,)
    assert case.out_shape == (3,)
    assert case.x.shape[1:] == (4,)
    assert case.dy.shape == (case.x.shape[0], 3)
    assert case.params.w.dtype == np.float64


@given(nst.pytrees())
def test_pytrees_are_trees_of_arrays(t: Any) -> None:
    for leaf in tree.leaves(t):
        assert isinstance(leaf, np.ndarray)
    leaves, td = tree.flatten(t)
    assert tree.structure(tree.unflatten(td, leaves)) == td


def test_numerical_grad_probes_a_subset_of_big_leaves() -> None:
    x = np.linspace(-1, 1, 50)
    g = numerical_grad(lambda v: float((v ** 3).sum()), x, max_entries=10)
    probed = ~np.isnan(g)
    assert probed.sum() == 10
    # round-off of the stencil is about eps·|f|/h = 2e-16 · 10 / 1e-4 = 2e-11 absolute
    np.testing.assert_allclose(g[probed], 3 * x[probed] ** 2, rtol=1e-9, atol=1e-10)


def test_check_loss_grad_catches_a_missing_batch_mean() -> None:
    # the formula sheet's softmax cross-entropy gradient, ŷ - y, without the 1/n
    broken = Loss(losses.softmax_cross_entropy.apply,
                  lambda z, y: losses.softmax_cross_entropy.grad(z, y) * z.shape[0],
                  name="sheet_sce")
    z = np.array([[0.2, -0.4, 1.0], [0.5, 0.1, -0.3]])
    with pytest.raises(GradCheckError, match=r"sheet_sce: gradient check failed: .*y_pred\["):
        check_loss_grad(broken, z, np.array([2, 0]))


def test_check_loss_grad_catches_the_sheets_mse_sign() -> None:
    broken = Loss(losses.mse.apply, lambda p, y: -losses.mse.grad(p, y), name="sheet_mse")
    with pytest.raises(GradCheckError, match="sheet_mse"):
        check_loss_grad(broken, np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))


def test_check_grad_reports_pass_details() -> None:
    layer = dense(2)
    _, params = layer.init(random.key(0), (3,))
    report = check_grad(layer, params, np.ones((2, 3)))
    assert report.ok
    assert report.checked == 3 * 2 + 2 + 2 * 3
    assert report.rtol == tolerance(np.float64).rtol
    assert "max error" in str(report)


def test_tolerance_rejects_other_dtypes() -> None:
    with pytest.raises(ValueError, match="float32 or float64"):
        tolerance(np.float16)
