"""Whole models: value_and_grad against finite differences, one forward pass, summary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from nnfunc import activations, losses, random, tree
from nnfunc.combinators import serial
from nnfunc.layer import Layer, from_forward_backward
from nnfunc.layers import dense, dropout
from nnfunc.summary import summary
from nnfunc.testing import GradCheckError, check_grad, numerical_grad
from nnfunc.train import value_and_grad


def _compare_to_fd(model: Layer, loss: Any, params: Any, x: Any, y: Any,
                   key: Any = None) -> None:
    value, grads = value_and_grad(model, loss)(params, x, y, key=key)
    assert value == loss.apply(model.apply(params, x, key=key, train=True), y)
    tree.assert_same_structure(params, grads, ("params", "grads"), shapes=True)

    def f(p: Any) -> float:
        return float(loss.apply(model.apply(p, x, key=key, train=True), y))

    numeric = numerical_grad(f, params)
    for (path, a), n in zip(tree.leaves_with_path(grads), tree.leaves(numeric)):
        err = np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), 1e-3)
        assert err.max() < 1e-6, (tree.keystr(path, "grads"), float(err.max()))


@given(st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_three_layer_relu_mlp_gradients_match_finite_differences(n: int, seed: int) -> None:
    model = serial(dense(7), activations.relu, dense(5), activations.relu, dense(3))
    k_init, k_x, k_y = random.split(random.key(seed), 3)
    _, params = model.init(k_init, (4,))
    params = tree.astype(params, np.float64)
    x = random.normal(k_x, (n, 4), np.float64)
    y = random.generator(k_y).integers(0, 3, n)
    # keep every pre-activation clear of ReLU's kink, so finite differences are valid
    h1 = x @ params[0].w + params[0].b
    h2 = np.maximum(h1, 0) @ params[2].w + params[2].b
    assume(min(np.abs(h1).min(), np.abs(h2).min()) > 1e-3)
    _compare_to_fd(model, losses.softmax_cross_entropy, params, x, y)


@given(st.integers(0, 2**32 - 1))
def test_mlp_with_dropout_and_regression_loss(seed: int) -> None:
    model = serial(dense(6), activations.tanh, dropout(0.3), dense(2))
    k_init, k_x, k_y, k_drop = random.split(random.key(seed), 4)
    _, params = model.init(k_init, (3,))
    params = tree.astype(params, np.float64)
    x = random.normal(k_x, (5, 3), np.float64)
    y = random.normal(k_y, (5, 2), np.float64)
    _compare_to_fd(model, losses.mse, params, x, y, key=k_drop)


def test_no_layer_runs_its_forward_twice() -> None:
    calls: list[str] = []

    def counted(layer: Layer, label: str) -> Layer:
        def forward(p: Any, x: Any, key: Any, train: bool) -> tuple[Any, Any]:
            calls.append(label)
            assert layer.vjp is not None
            return layer.vjp(p, x, key=key, train=train)

        def backward(p: Any, pullback: Any, dy: Any, need_dx: bool) -> tuple[Any, Any]:
            return pullback(dy, need_dx)  # type: ignore[no-any-return]

        return from_forward_backward(label, layer.init, forward, backward)

    model = serial(counted(dense(8), "d1"), counted(activations.sigmoid, "s"),
                   counted(dense(3), "d2"))
    _, params = model.init(random.key(0), (4,))
    value_and_grad(model, losses.softmax_cross_entropy)(
        params, np.ones((2, 4), np.float32), np.array([0, 2]))
    assert calls == ["d1", "s", "d2"]


def test_user_layer_without_vjp_works_inside_serial() -> None:
    def init(key: Any, in_shape: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
        return in_shape, {"a": np.ones(in_shape, np.float64)}

    def apply(params: Any, x: Any, *, key: Any = None, train: bool = False) -> Any:
        return params["a"] * x * x

    def grad(params: Any, x: Any, dy: Any, *, key: Any = None,
             train: bool = False) -> tuple[Any, Any]:
        return {"a": (dy * x * x).sum(axis=0)}, 2 * params["a"] * x * dy

    square = Layer(init, apply, grad)
    model = serial(dense(3, dtype=np.float64), square, dense(2, dtype=np.float64))
    _, params = model.init(random.key(1), (2,))
    x = random.normal(random.key(2), (4, 2), np.float64)
    check_grad(model, params, x)
    _compare_to_fd(model, losses.mse, params, x, np.zeros((4, 2)))


def test_check_grad_catches_a_wrong_gradient_and_names_the_leaf() -> None:
    def init(key: Any, in_shape: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
        return in_shape, {"scale": np.full(in_shape, 2.0)}

    def apply(params: Any, x: Any, *, key: Any = None, train: bool = False) -> Any:
        return params["scale"] * x

    def wrong_grad(params: Any, x: Any, dy: Any, *, key: Any = None,
                   train: bool = False) -> tuple[Any, Any]:
        return {"scale": (dy * x).mean(axis=0)}, params["scale"] * dy  # mean: should be sum

    layer = Layer(init, apply, wrong_grad)
    _, params = layer.init(random.key(0), (3,))
    with pytest.raises(GradCheckError, match=r"params\['scale'\]"):
        check_grad(layer, params, random.normal(random.key(1), (4, 3), np.float64))


def test_check_grad_catches_a_dtype_change() -> None:
    def apply(params: Any, x: Any, *, key: Any = None, train: bool = False) -> Any:
        return x

    def grad(params: Any, x: Any, dy: Any, *, key: Any = None,
             train: bool = False) -> tuple[Any, Any]:
        return (), dy.astype(np.float32)

    layer = Layer(lambda k, s: (s, ()), apply, grad)
    with pytest.raises(GradCheckError, match="dx has dtype float32 but x has float64"):
        check_grad(layer, (), np.ones((2, 2)))


def test_summary_lists_layers_shapes_and_counts() -> None:
    model = serial(dense(16), activations.relu, serial(dense(8), activations.tanh), dense(3))
    lines: list[str] = []
    result = summary(model, (4,), print_fn=lines.append)
    assert [(r.position, r.name, r.out_shape, r.params) for r in result.rows] == [
        ("0", "dense(16)", (16,), 4 * 16 + 16),
        ("1", "relu", (16,), 0),
        ("2.0", "dense(8)", (8,), 16 * 8 + 8),
        ("2.1", "tanh", (8,), 0),
        ("3", "dense(3)", (3,), 8 * 3 + 3),
    ]
    assert result.total == 80 + 136 + 27
    assert "total params: 243" in lines[0]
