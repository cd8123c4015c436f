"""Layers check their params and their cotangents: shape, dtype and structure of ``dy``."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import nnfunc as nf
from nnfunc import random
from nnfunc.layers import DenseParams, dense

X = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3)

ACTIVATIONS = [nf.relu, nf.sigmoid, nf.tanh, nf.softmax, nf.log_softmax, nf.gelu, nf.softplus,
               nf.linear, nf.leaky_relu(0.1), nf.elu(), nf.identity, nf.flatten,
               nf.dropout(0.5), nf.reshape((3,))]


def _both_ways(layer: Any, params: Any, x: Any, dy: Any, **kw: Any) -> list[Any]:
    """The pullback of ``vjp`` and ``grad``: both must check ``dy``."""
    _, pullback = nf.vjp(layer, params, x, **kw)
    return [lambda: pullback(dy), lambda: layer.grad(params, x, dy, **kw)]


@pytest.mark.parametrize("layer", ACTIVATIONS, ids=lambda layer: layer.name)
@pytest.mark.parametrize(("dy", "error", "message"), [
    (np.ones((2, 1), np.float32), ValueError, r"dy must have the output's shape \(2, 3\); got "
                                              r"\(2, 1\)"),
    (np.ones((2, 3)), TypeError, r"dy must have the output's dtype float32; got dtype float64"),
    (np.ones((2, 3), np.int64), TypeError, r"dy must have the output's dtype float32; got dtype "
                                           r"int64"),
    (np.ones((2, 3), np.complex64), TypeError, r"dy must have the output's dtype float32; got "
                                               r"dtype complex64"),
    ([[1.0] * 3] * 2, TypeError, r"dy must be an array shaped like the output, array of shape "
                                 r"\(2, 3\) and dtype float32; got list"),
])
def test_activations_check_their_cotangent(layer: Any, dy: Any, error: type,
                                           message: str) -> None:
    kw = {"key": random.key(0), "train": True}
    for call in _both_ways(layer, (), X, dy, **kw):
        with pytest.raises(error, match=rf"{re.escape(layer.name)}: {message}"):
            call()


@pytest.fixture
def dense_params() -> DenseParams:
    return dense(3).init(random.key(0), (4,))[1]


@pytest.mark.parametrize(("dy", "error", "message"), [
    (np.ones((2, 2), np.float32), ValueError, r"dy must have the output's shape \(2, 3\)"),
    (np.ones((2, 3)), TypeError, r"dy must have the output's dtype float32; got dtype float64"),
    (np.ones((2, 3), complex), TypeError, r"dy must have the output's dtype float32"),
])
def test_dense_checks_its_cotangent(dense_params: DenseParams, dy: Any, error: type,
                                    message: str) -> None:
    for call in _both_ways(dense(3), dense_params, np.ones((2, 4), np.float32), dy):
        with pytest.raises(error, match=r"dense\(3\): " + message):
            call()


KEEP = object()  # the params' own kernel or bias


@pytest.mark.parametrize(("w", "b", "error", "message"), [
    (KEEP, np.zeros(5, np.float32), ValueError, r"params\.b must have shape \(3,\); got shape "
                                                r"\(5,\)"),
    (KEEP, np.zeros(5), TypeError, r"params\.b must be an array of the kernel's dtype float32; "
                                   r"got array of shape \(5,\) and dtype float64"),
    (KEEP, np.zeros((1, 3), np.float32), ValueError, r"params\.b must have shape \(3,\)"),
    (KEEP, None, TypeError, r"params\.b must be an array of the kernel's dtype float32; got "
                            r"NoneType None"),
    (np.zeros(4, np.float32), KEEP, ValueError, r"params\.w must have shape \(d_in, 3\); got "
                                                r"shape \(4,\)"),
    (np.zeros((4, 5), np.float32), np.zeros(5, np.float32), ValueError,
     r"params\.w must have shape \(d_in, 3\); got shape \(4, 5\)"),
    (np.zeros((4, 3), np.int64), KEEP, TypeError, r"params\.w must be a floating-point array"),
    ([[0.0] * 3] * 4, KEEP, TypeError, r"params\.w must be a floating-point array; got list"),
])
def test_dense_checks_its_params(dense_params: DenseParams, w: Any, b: Any, error: type,
                                 message: str) -> None:
    params = DenseParams(dense_params.w if w is KEEP else w, dense_params.b if b is KEEP else b)
    x = np.ones((2, 4), np.float32)
    with pytest.raises(error, match=r"dense\(3\): " + message):
        dense(3).apply(params, x)
    with pytest.raises(error, match=r"dense\(3\): " + message):
        dense(3).apply(tuple(params), x)  # a plain tuple is checked the same way


def test_dense_without_bias_refuses_a_bias(dense_params: DenseParams) -> None:
    with pytest.raises(TypeError, match=r"dense\(3\): params\.b must be None \(the layer has "
                                        r"use_bias=False\)"):
        dense(3, use_bias=False).apply(dense_params, np.ones((2, 4), np.float32))


@pytest.mark.parametrize(("make", "params", "x", "dy", "message"), [
    (lambda: nf.parallel(dense(3), dense(2)), None, (np.ones((2, 4), np.float32),) * 2,
     (np.ones((2, 3), np.float32),),
     r"parallel: dy must have the structure of the output, \(\(2, 3\), \(2, 2\)\) \(shapes\); "
     r"got tuple of length 1"),
    (lambda: nf.parallel(dense(3), dense(2)), None, (np.ones((2, 4), np.float32),) * 2,
     np.ones((2, 3), np.float32), r"parallel: dy must have the structure of the output"),
    (lambda: nf.fanout(2), (), np.ones((2, 4), np.float32),
     (np.ones((2, 4), np.float32), np.ones((2, 3), np.float32)),
     r"fanout\(2\): dy\[1\] must have the output's shape \(2, 4\); got \(2, 3\)"),
    (lambda: nf.fanout(2), (), np.ones((2, 4), np.float32), (np.ones((2, 4), np.float32),),
     r"fanout\(2\): dy must have the structure of the output"),
    (lambda: nf.fanout(2), (), np.ones((2, 4), np.float32),
     (np.ones((2, 4), np.float32), np.ones((2, 4))),
     r"fanout\(2\): dy\[1\] must have the output's dtype float32; got dtype float64"),
    (lambda: nf.fanin_concat(), (), (np.ones((2, 4), np.float32),) * 2,
     np.ones((2, 5), np.float32), r"fanin_concat\(-1\): dy must have the output's shape \(2, 8\)"),
    (lambda: nf.fanin_sum, (), (np.ones((2, 4), np.float32),) * 2,
     np.ones((2, 5), np.float32), r"fanin_sum: dy must have the output's shape \(2, 4\)"),
    (lambda: nf.residual(dense(4)), None, np.ones((2, 4), np.float32),
     np.ones((2, 4), np.float16), r"residual\(dense\(4\)\): dy must have the output's dtype"),
    (lambda: nf.serial(dense(3), nf.relu), None, np.ones((2, 4), np.float32),
     np.ones((2, 5), np.float32), r"serial: dy must have the output's shape \(2, 3\)"),
])
def test_combinators_check_their_cotangent(make: Any, params: Any, x: Any, dy: Any,
                                           message: str) -> None:
    layer = make()
    if params is None:
        in_shape = tuple(a.shape[1:] for a in x) if isinstance(x, tuple) else x.shape[1:]
        params = layer.init(random.key(0), in_shape)[1]
    for call in _both_ways(layer, params, x, dy):
        with pytest.raises((ValueError, TypeError), match=message):
            call()


@pytest.mark.parametrize("layer", [nf.relu, nf.gelu, nf.leaky_relu(0.2), nf.dropout(0.3),
                                   nf.flatten, nf.reshape((3,)), nf.layers.max_pool2d(2),
                                   nf.layers.avg_pool1d(2), nf.layers.global_avg_pool],
                         ids=lambda layer: layer.name)
@pytest.mark.parametrize("params", [(1,), np.ones(2), {"w": 1}, None])
def test_parameter_free_layers_refuse_params(layer: Any, params: Any) -> None:
    with pytest.raises(TypeError, match=rf"{re.escape(layer.name)}: params must be \(\) \(the "
                                        r"layer has no params\); got"):
        layer.apply(params, X)


def test_factories_check_their_arguments() -> None:
    with pytest.raises(TypeError, match=r"reshape: shape must be a tuple of ints \(batch axis "
                                        r"excluded\); got int 4"):
        nf.reshape(4)  # type: ignore[arg-type]
    assert nf.reshape([3]).init(random.key(0), (3,))[0] == (3,)  # a list is a shape too
    with pytest.raises(TypeError, match=r"dense: use_bias must be a bool \(True or False\); got "
                                        r"str 'no'"):
        dense(3, use_bias="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"vjp: layer must be an nnfunc Layer; got int 3"):
        nf.vjp(3, (), X)  # type: ignore[arg-type]


def test_random_draws_check_their_arguments() -> None:
    k = random.key(0)
    with pytest.raises(TypeError, match=r"random\.normal: shape must be a tuple of ints; got str"):
        random.normal(k, "ab")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"random\.uniform: shape must be a tuple of ints"):
        random.uniform(k, (2.5,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"random\.normal: dtype must be float32 or float64; got "
                                        r"'blah'"):
        random.normal(k, 2, "blah")
    with pytest.raises(TypeError, match=r"random\.normal: std must be a real number; got str"):
        random.normal(k, 2, std="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"random\.uniform: high must be finite and in \[1.0, "):
        random.uniform(k, 2, low=1.0, high=0.0)
    with pytest.raises(ValueError, match=r"random\.permutation: n must be >= 0; got -1"):
        random.permutation(k, -1)
    with pytest.raises(TypeError, match=r"random\.permutation: n must be an int >= 0; got float"):
        random.permutation(k, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"random\.bernoulli: p must be finite and in \[0.0, "
                                         r"1.0\]; got nan"):
        random.bernoulli(k, float("nan"), 2)


def _user_layer(name: str, grad: Any) -> nf.Layer:
    """A user's layer ``y = x`` whose ``grad`` is given (to test what nnfunc catches)."""
    return nf.Layer(lambda key, shape: (shape, ()), lambda p, x, *, key=None, train=False: x,
                    lambda p, x, dy, *, key=None, train=False: grad(dy), name=name)


@pytest.mark.parametrize(("grad", "error", "message"), [
    (lambda dy: ((), dy[:, :2]), ValueError,
     r"mine: grad's dx must have the input x's shape \(2, 3\); got \(2, 2\)"),
    (lambda dy: ((), dy.astype(np.float64)), TypeError,
     r"mine: grad's dx must have the input x's dtype float32; got dtype float64"),
    (lambda dy: ((np.ones(3),), dy), ValueError,
     r"mine: grad's dparams must have the structure of the params, \(\) \(shapes\); got tuple "
     r"of length 1"),
    (lambda dy: (), TypeError, r"mine: grad's result must be a pair \(dparams, dx\); got tuple"),
    (lambda dy: ((), dy.tolist()), TypeError,
     r"mine: grad's dx must be an array shaped like the input x"),
])
def test_a_user_layers_wrong_grad_is_blamed_on_it(grad: Any, error: type, message: str) -> None:
    # inside serial, after a dense layer: the dense layer's kernel grad would be wrongly
    # shaped (or typed), and only the optimizer would notice, blaming dense
    model = nf.serial(dense(3), _user_layer("mine", grad))
    _, params = model.init(random.key(0), (4,))
    f = nf.value_and_grad(model, nf.mse)
    with pytest.raises(error, match=message):
        f(params, np.ones((2, 4), np.float32), np.zeros((2, 3), np.float32))


def _user_vjp_layer(name: str, dx: Any) -> nf.Layer:
    """A user's layer ``y = x`` with its own ``vjp``, whose pullback returns ``dx(dy)``."""
    def vjp(p: Any, x: Any, *, key: Any = None, train: bool = False) -> Any:
        return x, lambda dy, need_dx=True: ((), dx(dy))

    return nf.Layer(lambda key, shape: (shape, ()), lambda p, x, *, key=None, train=False: x,
                    lambda p, x, dy, *, key=None, train=False: ((), dx(dy)), vjp, name=name)


@pytest.mark.parametrize(("dx", "error", "message"), [
    (lambda dy: dy[:, :2], ValueError, r"dense\(3\): dy must have the output's shape \(2, 3\); "
                                       r"got \(2, 2\)"),
    (lambda dy: dy.astype(np.float64), TypeError,
     r"dense\(3\): dy must have the output's dtype float32; got dtype float64"),
])
def test_a_user_vjps_wrong_dx_is_caught_by_the_built_in_layer_before_it(
        dx: Any, error: type, message: str) -> None:
    # serial runs a built-in child's forward and backward directly and checks the
    # cotangent it passes it only where that comes from another kind of child: here
    model = nf.serial(dense(3), _user_vjp_layer("mine", dx), nf.relu)
    _, params = model.init(random.key(0), (4,))
    f = nf.value_and_grad(model, nf.mse)
    with pytest.raises(error, match=message):
        f(params, np.ones((2, 4), np.float32), np.zeros((2, 3), np.float32))


def test_forward_backward_of_built_in_and_user_layers() -> None:
    from nnfunc.layer import forward_backward_of
    for layer in (dense(3), nf.relu, nf.serial(dense(2), nf.tanh)):
        parts = forward_backward_of(layer)
        assert parts is not None
        assert all(callable(f) for f in parts)
    assert forward_backward_of(_user_layer("mine", lambda dy: ((), dy))) is None
    assert forward_backward_of(_user_vjp_layer("mine", lambda dy: dy)) is None


def test_a_correct_user_layer_inside_serial_still_works() -> None:
    double = _user_layer("double_grad", lambda dy: ((), 2 * dy))
    model = nf.serial(dense(3), double)
    _, params = model.init(random.key(0), (4,))
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    _, grads = nf.value_and_grad(model, nf.mse)(params, x, np.zeros((2, 3), np.float32))
    # the user's grad doubles dy: dW = xᵀ (2 dy), with dy = 2 (y - 0) / N, N = 6
    y = x @ params[0].w + params[0].b
    np.testing.assert_allclose(grads[0].w, x.T @ (2 * (2 * y / 6)), rtol=1e-5)


def test_stateful_layers_check_their_cotangent() -> None:
    layer = nf.layers.batch_norm()
    _, params, state = layer.init_with_state(random.key(0), (3,))
    _, _, pullback = nf.vjp_with_state(layer, params, X, state, train=True)
    with pytest.raises(TypeError, match=r"batch_norm.*: dy must have the output's dtype float32; "
                                        r"got dtype float64"):
        pullback(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"batch_norm.*: dy must have the output's shape "
                                         r"\(2, 3\); got \(3,\)"):
        pullback(np.ones(3, np.float32))


def test_a_users_stateful_layer_without_vjp_is_checked() -> None:
    def init_with_state(key: Any, shape: Any) -> Any:
        return shape, (), np.zeros(1)

    def apply(p: Any, x: Any, *, state: Any = None, key: Any = None, train: bool = False) -> Any:
        return x, state + 1

    def grad(p: Any, x: Any, dy: Any, *, state: Any = None, key: Any = None,
             train: bool = False) -> Any:
        return (), dy[:, :1]  # wrongly shaped dx

    counter = nf.Layer(lambda k, s: (s, ()), apply, grad, name="counter",
                       init_with_state=init_with_state)
    _, _, pullback = nf.vjp_with_state(counter, (), X, np.zeros(1))
    with pytest.raises(ValueError, match=r"counter: grad's dx must have the input x's shape "
                                         r"\(2, 3\); got \(2, 1\)"):
        pullback(np.ones((2, 3), np.float32))
