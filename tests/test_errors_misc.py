"""tree, metrics, datasets, regularizers and nnfunc.testing: clear errors for bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nnfunc import datasets, metrics, optim, random, testing, tree
from nnfunc.layers import dense
from nnfunc.losses import mse

# -- tree -----------------------------------------------------------------------------------


def test_tree_arithmetic_never_broadcasts() -> None:
    a, b = {"w": np.ones(2)}, {"w": np.ones(3)}
    for f, name in ((tree.add, "add"), (tree.sub, "sub"), (tree.vdot, "vdot")):
        with pytest.raises(ValueError, match=rf"tree\.{name}: b\['w'\] must have the shape of "
                                             r"a\['w'\], \(2,\)"):
            f(a, b)
    np.testing.assert_array_equal(tree.add({"w": np.ones(2)}, {"w": np.full(2, 2.0)})["w"],
                                  [3.0, 3.0])


@pytest.mark.parametrize("f", [tree.add, tree.sub, tree.vdot])
def test_tree_arithmetic_of_non_numeric_leaves(f: Any) -> None:
    with pytest.raises(TypeError, match=r"b\['w'\] must be a numeric array or number; got a "
                                        r"leaf 'x'"):
        f({"w": np.ones(1)}, {"w": "x"})


def test_tree_checks_of_their_other_arguments() -> None:
    with pytest.raises(TypeError, match=r"tree\.scale: factor must be a real number; got str"):
        tree.scale({"a": np.ones(2)}, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"tree\.scale: tree\['a'\] must be a numeric array"):
        tree.scale({"a": "text"}, 2.0)
    with pytest.raises(TypeError, match=r"tree\.astype: dtype must be a floating NumPy dtype "
                                        r"such as np\.float32; got 'blah'"):
        tree.astype({"a": np.ones(2)}, "blah")
    with pytest.raises(TypeError, match=r"tree\.astype: dtype must be a floating NumPy dtype"):
        tree.astype({"a": np.ones(2)}, np.int32)
    with pytest.raises(TypeError, match=r"tree\.unflatten: treedef must be a TreeDef"):
        tree.unflatten(3, [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"tree\.all_finite: tree\['a'\] must be a numeric array"):
        tree.all_finite({"a": "x"})
    with pytest.raises(TypeError, match=r"tree\.where: condition\['a'\] must be a bool \(as "
                                        r"tree\.mask gives\); got a leaf of shape \(2,\)"):
        tree.where({"a": np.ones(2)}, {"a": 1}, {"a": 2})
    assert tree.where({"a": True, "b": False}, {"a": 1, "b": 2}, {"a": 3, "b": 4}) == \
        {"a": 1, "b": 4}


# -- metrics --------------------------------------------------------------------------------

def test_accuracy_of_1d_predictions() -> None:
    with pytest.raises(ValueError, match=r"accuracy: y_pred must have shape \(n, classes\) or "
                                         r"\(n, …, classes\), one score per class \(for one "
                                         r"probability per sample use "
                                         r"binary_accuracy\); got shape \(2,\)"):
        metrics.accuracy(np.array([0.1, 0.9]), np.array([0, 1]))


def test_metrics_of_empty_predictions_or_zero_classes() -> None:
    with pytest.raises(ValueError, match=r"accuracy: y_pred must not be empty; got shape "
                                         r"\(2, 0\)"):
        metrics.accuracy(np.zeros((2, 0)), np.array([0, 1]))
    for m in (metrics.mae, metrics.mse, metrics.binary_accuracy):
        with pytest.raises(ValueError, match=r"y_pred must not be empty; got shape \(0,\)"):
            m(np.zeros(0), np.zeros(0))


@pytest.mark.parametrize("m", [metrics.mae, metrics.mse, metrics.r2, metrics.binary_accuracy,
                               metrics.accuracy])
def test_metrics_of_non_numeric_targets(m: Any) -> None:
    y_pred = np.zeros((2, 2)) if m is metrics.accuracy else np.zeros(2)
    with pytest.raises(TypeError, match=rf"{m.__name__}: y_true must .*; got array of shape "
                                        r"\(2,\) and dtype <U1"):
        m(y_pred, np.array(["a", "b"]))


def test_metrics_of_complex_predictions_and_bad_thresholds() -> None:
    with pytest.raises(TypeError, match=r"accuracy: y_pred must be a real numeric array"):
        metrics.accuracy(np.zeros((2, 2), complex), np.array([0, 1]))
    with pytest.raises(TypeError, match=r"binary_accuracy: threshold must be a real number; "
                                        r"got str 'x'"):
        metrics.binary_accuracy(np.zeros(2), np.array([0, 1]), threshold="x")  # type: ignore[arg-type]


# -- datasets -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [int, np.int64, np.uint8, bool, "blah", object])
def test_load_digits_refuses_dtypes_that_would_truncate(dtype: Any) -> None:
    with pytest.raises(TypeError, match=r"load_digits: dtype must be a floating NumPy dtype "
                                        r"such as np\.float32 \(an integer dtype would truncate "
                                        r"the data\); got"):
        datasets.load_digits(dtype=dtype)


def test_load_digits_float64_keeps_fractions() -> None:
    d = datasets.load_digits(dtype=np.float64)
    assert d.x_train.dtype == np.float64
    # pixels are multiples of 1/16 in [0, 1], and some are strictly between 0 and 1
    assert np.array_equal(d.x_train * 16, np.round(d.x_train * 16))
    assert ((d.x_train > 0) & (d.x_train < 1)).any()


@pytest.mark.parametrize("make", [datasets.two_spirals, datasets.two_moons, datasets.xor,
                                  datasets.noisy_sine])
@pytest.mark.parametrize("dtype", [int, "blah"])
def test_synthetic_data_refuses_non_float_dtypes(make: Any, dtype: Any) -> None:
    with pytest.raises(TypeError, match=rf"{make.__name__}: dtype must be a floating NumPy "
                                        r"dtype"):
        make(random.key(0), 10, dtype=dtype)


def test_load_digits_flat_must_be_bool() -> None:
    with pytest.raises(TypeError, match=r"load_digits: flat must be a bool \(True or False\); "
                                        r"got str 'no'"):
        datasets.load_digits(flat="no")  # type: ignore[arg-type]


# -- regularizers ---------------------------------------------------------------------------

@pytest.mark.parametrize("penalty", [optim.l1_penalty, optim.l2_penalty])
@pytest.mark.parametrize(("leaf", "got"), [([1.0], "float 1.0"), (np.ones(2, int), "dtype int64"),
                                           (3.0, "float 3.0")])
def test_penalties_of_non_float_params(penalty: Any, leaf: Any, got: str) -> None:
    with pytest.raises(TypeError, match=rf"{penalty.__name__}: params\['w'\]\S* must be a "
                                        rf"floating-point array; got .*{got}"):
        penalty({"w": leaf}, 0.1)


# -- testing --------------------------------------------------------------------------------

@pytest.fixture
def layer_params() -> tuple[Any, Any, np.ndarray]:
    layer = dense(3)
    _, params = layer.init(random.key(0), (4,))
    return layer, params, np.linspace(-1, 1, 8).reshape(2, 4)


def test_check_grad_rtol_zero_is_not_the_default(layer_params: tuple[Any, Any, Any]) -> None:
    layer, params, x = layer_params
    # a correct dense gradient differs from finite differences by round-off, > 0:
    # a tolerance of 0 must then fail, where the default tolerance passes
    assert testing.check_grad(layer, params, x).max_error > 0
    with pytest.raises(testing.GradCheckError, match="rtol 0"):
        testing.check_grad(layer, params, x, rtol=0)
    with pytest.raises(testing.GradCheckError, match="rtol 0"):
        testing.check_loss_grad(mse, np.array([[0.3, -1.2]]), np.array([[0.1, 0.0]]), rtol=0.0)
    assert testing.check_loss_grad(mse, np.array([[0.3, -1.2]]),
                                   np.array([[0.1, 0.0]])).rtol == 1e-6


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"rtol": -1}, ValueError, r"check_grad: rtol must be finite and in \[0.0, inf\]; got -1"),
    ({"step": 0}, ValueError, r"check_grad: step must be finite and in \(0.0, inf\]; got 0"),
    ({"atol": 0}, ValueError, r"check_grad: atol must be finite and in \(0.0, inf\]; got 0"),
    ({"atol": "x"}, TypeError, r"check_grad: atol must be a real number"),
    ({"max_entries": 0}, ValueError, r"check_grad: max_entries must be > 0; got 0"),
    ({"seed": -1}, ValueError, r"check_grad: seed must be >= 0; got -1"),
    ({"dtype": "blah"}, TypeError, r"testing: dtype must be np\.float32 or np\.float64"),
    ({"dtype": np.float16}, ValueError, r"testing: dtype must be float32 or float64"),
])
def test_check_grad_arguments(layer_params: tuple[Any, Any, Any], kwargs: dict[str, Any],
                              error: type, message: str) -> None:
    layer, params, x = layer_params
    with pytest.raises(error, match=message):
        testing.check_grad(layer, params, x, **kwargs)


def test_check_grad_of_something_that_is_not_a_layer() -> None:
    with pytest.raises(TypeError, match=r"check_grad: layer must be a layer with apply and grad"):
        testing.check_grad(3, (), np.ones((1, 2)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"check_loss_grad: loss must be a loss with apply and "
                                        r"grad"):
        testing.check_loss_grad(3, np.ones((1, 2)), np.ones((1, 2)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"numerical_grad: step must be finite and in \(0.0"):
        testing.numerical_grad(lambda t: 0.0, np.ones(2), step=0)


# -- initializers ---------------------------------------------------------------------------

INITS = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal", "zeros",
         "ones", "orthogonal"]


@pytest.mark.parametrize("name", INITS)
def test_initializers_check_shape_and_dtype(name: str) -> None:
    from nnfunc import initializers

    init = getattr(initializers, name)
    with pytest.raises(TypeError, match=rf"{name}: shape must be a tuple of ints >= 0; got str"):
        init(random.key(0), "ab", np.float32)
    with pytest.raises(TypeError, match=rf"{name}: shape must be a tuple of ints >= 0"):
        init(random.key(0), (2, -1), np.float32)
    for dtype in (np.int32, "blah"):
        with pytest.raises(TypeError, match=rf"{name}: dtype must be a floating NumPy dtype"):
            init(random.key(0), (2, 3), dtype)


@pytest.mark.parametrize("name", INITS[:7])
def test_initializers_of_empty_kernels(name: str) -> None:
    from nnfunc import initializers

    out = getattr(initializers, name)(random.key(0), (0, 3), np.float64)
    assert out.shape == (0, 3)
    assert out.dtype == np.float64
