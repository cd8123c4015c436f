"""Bad input gets a clear error naming the component, the argument, expected and actual."""

from __future__ import annotations

import numpy as np
import pytest

from nnfunc import activations, losses, random, tree
from nnfunc.combinators import fanin_concat, fanin_sum, fanout, parallel, residual, serial
from nnfunc.layers import dense, dropout, reshape
from nnfunc.train import value_and_grad


@pytest.fixture
def mlp() -> tuple[object, object]:
    model = serial(dense(5), activations.relu, dense(3))
    _, params = model.init(random.key(0), (4,))
    return model, params


def test_wrong_input_width(mlp: tuple) -> None:
    model, params = mlp
    with pytest.raises(ValueError, match=r"dense\(5\): x must have shape \(batch, 4\); got shape "
                                         r"\(2, 7\)"):
        model.apply(params, np.ones((2, 7), np.float32))


def test_float64_data_into_float32_model(mlp: tuple) -> None:
    model, params = mlp
    with pytest.raises(TypeError, match=r"dense\(5\): x must have the params' dtype float32.*"
                                        r"got dtype float64"):
        model.apply(params, np.ones((2, 4)))


def test_integer_data_is_type_error(mlp: tuple) -> None:
    model, params = mlp
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        model.apply(params, np.ones((2, 4), np.int64))


def test_wrong_label_shape() -> None:
    z = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: y_true integer labels must have "
                                         r"shape \(4,\); got shape \(4, 1\)"):
        losses.softmax_cross_entropy.apply(z, np.zeros((4, 1), np.int64))
    with pytest.raises(ValueError, match=r"one-hot targets must have y_pred's shape \(4, 3\)"):
        losses.softmax_cross_entropy.apply(z, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"mse: y_true must have y_pred's shape \(4, 3\) \(no "
                                         r"broadcasting\); got shape \(4,\)"):
        losses.mse.apply(z, np.zeros(4))


def test_integer_labels_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\); got label 3"):
        losses.softmax_cross_entropy.apply(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\); got label -1"):
        losses.categorical_crossentropy.apply(np.full((2, 3), 1 / 3), np.array([-1, 0]))


def test_nan_where_a_loss_cannot_take_it() -> None:
    with pytest.raises(ValueError, match="mse: y_true must be finite; got NaN or inf"):
        losses.mse.apply(np.zeros((1, 2)), np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match=r"binary_crossentropy: y_pred must hold probabilities in "
                                         r"\[0, 1\].*got a value nan"):
        losses.binary_crossentropy.apply(np.array([[np.nan]]), np.array([[1.0]]))
    with pytest.raises(ValueError, match=r"categorical_crossentropy: y_pred must hold "
                                         r"probabilities.*got a value 1.5"):
        losses.categorical_crossentropy.apply(np.array([[1.5, -0.5]]), np.array([0]))


def test_mismatched_pytrees_name_the_path(mlp: tuple) -> None:
    _, params = mlp
    other = (params[0], (), params[2]._replace(b=None))
    with pytest.raises(ValueError, match=r"params\[2\]\.b"):
        tree.map(np.add, params, other, names=("params", "grads"))


@pytest.mark.parametrize("rate", [1.0, -0.1, float("nan"), 2.0])
def test_dropout_rate_outside_0_1(rate: float) -> None:
    with pytest.raises(ValueError, match=r"dropout: rate must be finite and in \[0.0, 1.0\)"):
        dropout(rate)


def test_dropout_training_without_key() -> None:
    with pytest.raises(ValueError, match=r"dropout\(0.5\): key is required when train=True"):
        dropout(0.5).apply((), np.ones((2, 2)), train=True)


def test_serial_init_names_position_and_shapes() -> None:
    model = serial(dense(4), activations.relu, reshape((3, 3)))
    with pytest.raises(ValueError, match=r"serial: layer 2 \(reshape\(\(3, 3\)\)\) cannot "
                                         r"take input shape \(4,\).*must hold 9 elements"):
        model.init(random.key(0), (8,))


def test_dense_needs_a_feature_axis() -> None:
    with pytest.raises(ValueError, match=r"serial: layer 0 \(dense\(3\)\) cannot take input shape "
                                         r"\(\).*must have a feature axis"):
        serial(dense(3)).init(random.key(0), ())
    _, params = dense(3).init(random.key(0), (2, 4))
    with pytest.raises(ValueError, match=r"dense\(3\): x must have shape \(batch, …, 4\).*"
                                         r"got shape \(1, 2, 5\)"):
        dense(3).apply(params, np.ones((1, 2, 5), np.float32))


def test_combinator_shape_mismatches_fail_at_init() -> None:
    with pytest.raises(ValueError, match=r"residual\(dense\(3\)\): inner layer output shape must "
                                         r"equal its input shape \(4,\).*got \(3,\)"):
        residual(dense(3)).init(random.key(0), (4,))
    with pytest.raises(ValueError, match=r"fanin_sum: input 1 shape must equal input 0's shape "
                                         r"\(3,\); got \(4,\)"):
        serial(fanout(2), parallel(dense(3), dense(4)), fanin_sum).init(random.key(0), (2,))
    with pytest.raises(ValueError, match=r"fanin_concat\(-1\): input 1 shape must match"):
        fanin_concat().init(random.key(0), ((2, 3), (4, 3)))
    with pytest.raises(ValueError, match="fanin_concat: axis must not be the batch axis"):
        fanin_concat(0)


def test_not_a_layer() -> None:
    with pytest.raises(TypeError, match=r"serial: layer 1 must be an nnfunc Layer \(did you forget "
                                        r"to call a factory"):
        serial(dense(2), activations.leaky_relu)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value_and_grad: loss must be an nnfunc Loss"):
        value_and_grad(dense(2), lambda a, b: 0.0)  # type: ignore[arg-type]


def test_params_of_the_wrong_structure(mlp: tuple) -> None:
    model, params = mlp
    with pytest.raises(ValueError, match="serial: params must be a tuple of 3 children's params"):
        model.apply(params[:2], np.ones((1, 4), np.float32))


def test_dense_params_of_the_wrong_kind() -> None:
    layer = dense(3)
    _, params = layer.init(random.key(0), (2,))
    x = np.ones((1, 2), np.float32)
    as_dict = {"w": params.w, "b": params.b}
    with pytest.raises(TypeError, match=r"dense\(3\): params must be DenseParams\(w \(d_in, "
                                        r"d_out\), b \(d_out,\)\) as init returns; got dict"):
        layer.apply(as_dict, x)
    # a plain (w, b) tuple, as nnfunc.io.load returns without like=, works and
    # gets its gradient back as a plain tuple, so grads match params
    plain = (params.w, params.b)
    np.testing.assert_array_equal(layer.apply(plain, x), layer.apply(params, x))
    dy = np.ones((1, 3), np.float32)
    dparams, _ = layer.grad(plain, x, dy)
    assert type(dparams) is tuple
    np.testing.assert_array_equal(dparams[0], layer.grad(params, x, dy)[0].w)


def test_cotangent_of_the_wrong_shape() -> None:
    layer = dense(3)
    _, params = layer.init(random.key(0), (2,))
    with pytest.raises(ValueError, match=r"dense\(3\): dy must have the output's shape \(1, 3\); "
                                         r"got \(1, 2\)"):
        layer.grad(params, np.ones((1, 2), np.float32), np.ones((1, 2), np.float32))


def test_bad_factory_arguments() -> None:
    with pytest.raises(ValueError, match="dense: d_out must be > 0; got 0"):
        dense(0)
    with pytest.raises(TypeError, match="dense: d_out must be a positive int"):
        dense(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"huber: delta must be finite and in \(0.0, inf\]"):
        losses.huber(0.0)
    with pytest.raises(TypeError, match="dense: w_init must be an initializer"):
        dense(3, w_init="glorot")  # type: ignore[arg-type]
