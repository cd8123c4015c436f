"""The model-state contract through training: value_and_grad, train_step, fit, callbacks, io."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nnfunc import activations, io, losses, optim, random, tree
from nnfunc.callbacks import EpochInfo, checkpoint, early_stopping
from nnfunc.combinators import serial
from nnfunc.layer import Layer, apply_with_state, is_stateful
from nnfunc.layers import BatchNormState, batch_norm, dense, dropout
from nnfunc.summary import summary
from nnfunc.testing import numerical_grad
from nnfunc.train import evaluate, fit, predict, train_step, value_and_grad


def _model() -> Layer:
    return serial(dense(8), batch_norm(momentum=0.8), activations.tanh, dropout(0.2), dense(3))


def _problem(n: int = 96, seed: int = 0) -> tuple[Any, Any, Any, Any, Any]:
    k_x, k_w, k_init = random.split(random.key(seed), 3)
    x = random.normal(k_x, (n, 4)) * 3 + 1
    y = (x @ random.normal(k_w, (4, 3))).argmax(axis=1).astype(np.int64)
    model = _model()
    _, params, state = model.init_with_state(k_init, (4,))
    return model, params, state, x, y


def _equal(a: Any, b: Any) -> None:
    tree.map(np.testing.assert_array_equal, a, b)


def test_value_and_grad_returns_the_new_state_and_the_gradient_at_fixed_state() -> None:
    model, params, state, x, y = _problem(12)
    x = x.astype(np.float64)
    params = tree.astype(params, np.float64)
    state = tree.astype(state, np.float64)
    key = random.key(3)
    f = value_and_grad(model, losses.softmax_cross_entropy)
    value, grads, new_state = f(params, state, x, y, key=key)
    y_pred, want_state = apply_with_state(model, params, x, state, key=key, train=True)
    assert value == losses.softmax_cross_entropy.apply(y_pred, y)
    _equal(new_state, want_state)
    assert not np.array_equal(new_state[1].mean, state[1].mean)

    def loss_at(p: Any) -> float:
        out, _ = apply_with_state(model, p, x, state, key=key, train=True)
        return float(losses.softmax_cross_entropy.apply(out, y))

    numeric = numerical_grad(loss_at, params)
    tree.map(lambda a, n: np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-9), grads,
             numeric)


def test_train_step_threads_the_state() -> None:
    model, params, state, x, y = _problem(16)
    opt = optim.sgd(0.1)
    step = train_step(model, losses.softmax_cross_entropy, opt)
    p1, o1, s1, loss1 = step(params, opt.init(params), state, x, y, key=random.key(1))
    _, _, _, loss2 = step(p1, o1, s1, x, y, key=random.key(2))
    assert isinstance(s1[1], BatchNormState)
    assert s1[1].mean.dtype == np.float32
    # the EMA of the batch statistics, step by step (dense's output at the old params)
    h = dense(8).apply(params[0], x)
    np.testing.assert_allclose(s1[1].mean, 0.2 * h.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s1[1].var, 0.8 + 0.2 * h.var(axis=0), rtol=1e-5)
    assert float(loss2) < float(loss1)
    with pytest.raises(TypeError):
        step(params, opt.init(params), x, y)  # the stateless signature: no state


def test_missing_or_extra_model_state_is_a_clear_type_error() -> None:
    model, params, state, x, y = _problem(8)
    with pytest.raises(TypeError, match=r"predict: model_state is required for the stateful "
                       r"model serial"):
        predict(model, params, x)
    with pytest.raises(TypeError, match="evaluate: model_state is required"):
        evaluate(model, losses.softmax_cross_entropy, params, x, y)
    with pytest.raises(TypeError, match="fit: model_state is required"):
        fit(model, losses.softmax_cross_entropy, optim.sgd(0.1), params, (x, y), epochs=1,
            key=random.key(0), progress=False)
    plain = serial(dense(3))
    _, plain_params = plain.init(random.key(0), (4,))
    with pytest.raises(TypeError, match=r"predict: model_state must be None for the stateless"):
        predict(plain, plain_params, x, model_state=state)


def test_predict_and_evaluate_use_the_state_in_inference_mode() -> None:
    model, params, state, x, y = _problem(20)
    _, state = apply_with_state(model, params, x, state, key=random.key(0), train=True)
    out = predict(model, params, x, model_state=state, batch_size=7)
    want, same = apply_with_state(model, params, x, state, train=False)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
    assert same is not None
    assert is_stateful(model)
    logs = evaluate(model, losses.softmax_cross_entropy, params, x, y, model_state=state)
    assert logs["loss"] == pytest.approx(float(losses.softmax_cross_entropy.apply(want, y)),
                                         rel=1e-5)


def test_fit_trains_a_stateful_model_with_validation() -> None:
    model, params, state, x, y = _problem()
    seen: list[Any] = []
    result = fit(model, losses.softmax_cross_entropy, optim.adam(0.02), params, (x, y),
                 epochs=5, batch_size=16, key=random.key(4), validation=(x[:32], y[:32]),
                 progress=False, model_state=state, callbacks=[lambda i: seen.append(i)])
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert result.model_state is not None
    assert not np.array_equal(result.model_state[1].mean, state[1].mean)
    # callbacks see the state after each epoch; the last one is the result's
    assert all(isinstance(i, EpochInfo) and i.model_state is not None for i in seen)
    _equal(seen[-1].model_state, result.model_state)
    # the logged validation loss is evaluate's with the epoch's state
    val = evaluate(model, losses.softmax_cross_entropy, result.params, x[:32], y[:32],
                   model_state=result.model_state)
    assert result.history["val_loss"][-1] == pytest.approx(val["loss"], rel=1e-6)
    # same key, same run, bit for bit
    again = fit(model, losses.softmax_cross_entropy, optim.adam(0.02), params, (x, y),
                epochs=5, batch_size=16, key=random.key(4), validation=(x[:32], y[:32]),
                progress=False, model_state=state)
    _equal(again.params, result.params)
    _equal(again.model_state, result.model_state)
    # nothing passed in was modified
    _, params0, state0 = _model().init_with_state(random.split(random.key(0), 3)[2], (4,))
    _equal(params, params0)
    _equal(state, state0)


def test_early_stopping_restores_the_best_params_and_their_state() -> None:
    model, params, state, x, y = _problem()
    seen: list[EpochInfo] = []
    result = fit(model, losses.softmax_cross_entropy, optim.adam(0.2), params, (x, y),
                 epochs=8, batch_size=8, key=random.key(5), validation=(x[:24], y[:24]),
                 progress=False, model_state=state,
                 callbacks=[lambda i: seen.append(i), early_stopping("val_loss", patience=8)])
    val = result.history["val_loss"]
    best = int(np.argmin(val))
    assert best < len(val) - 1, "the run must have a best epoch before its last to test this"
    _equal(result.params, seen[best].params)
    _equal(result.model_state, seen[best].model_state)
    assert not np.array_equal(result.model_state[1].mean, seen[-1].model_state[1].mean)


def test_resuming_from_a_checkpoint_is_bit_identical(tmp_path: Any) -> None:
    model, params, state, x, y = _problem()
    opt = optim.adam(0.01)
    path = tmp_path / "ck.npz"
    kw: dict[str, Any] = {"batch_size": 16, "key": random.key(9), "progress": False}
    full = fit(model, losses.softmax_cross_entropy, opt, params, (x, y), epochs=4,
               model_state=state, **kw)
    fit(model, losses.softmax_cross_entropy, opt, params, (x, y), epochs=2, model_state=state,
        callbacks=[checkpoint(path)], **kw)
    template = {"params": params, "opt_state": opt.init(params), "model_state": state,
                "epoch": 0, "history": {"loss": [0.0, 0.0], "time": [0.0, 0.0]}}
    ck = io.load(path, like=template)
    assert ck["epoch"] == 2
    assert isinstance(ck["model_state"][1], BatchNormState)
    rest = fit(model, losses.softmax_cross_entropy, opt, ck["params"], (x, y), epochs=4,
               opt_state=ck["opt_state"], model_state=ck["model_state"],
               initial_epoch=ck["epoch"], **kw)
    _equal(full.params, rest.params)
    _equal(full.opt_state, rest.opt_state)
    _equal(full.model_state, rest.model_state)
    # without like= the state comes back as plain tuples, which batch_norm takes as well
    plain = io.load(path)
    out = predict(model, plain["params"], x, model_state=plain["model_state"])
    np.testing.assert_array_equal(
        out, predict(model, ck["params"], x, model_state=ck["model_state"]))


def test_summary_shows_state_sizes() -> None:
    s = summary(serial(dense(4), batch_norm(), serial(dense(3), batch_norm())), (5,),
                print_fn=None)
    assert [(r.name, r.params, r.state) for r in s.rows] == [
        ("dense(4)", 24, 0), ("batch_norm", 8, 8), ("dense(3)", 15, 0), ("batch_norm", 6, 6)]
    assert s.total_state == 14
    text = str(s)
    assert "state" in text.splitlines()[2]
    assert text.endswith("total state: 14")
    assert "state" not in str(summary(serial(dense(4)), (5,), print_fn=None))


def _counting_layer() -> Layer:
    """A user's stateful layer from plain functions: y = w·x, and the state counts samples."""

    def init_with_state(key: Any, in_shape: Any) -> tuple[Any, Any, Any]:
        return in_shape, (np.ones(in_shape, np.float64),), np.zeros((), np.int64)

    def init(key: Any, in_shape: Any) -> tuple[Any, Any]:
        return init_with_state(key, in_shape)[:2]

    def apply(params: Any, x: Any, *, state: Any, key: Any = None,
              train: bool = False) -> tuple[Any, Any]:
        return x * params[0], (state + x.shape[0] if train else state)

    def grad(params: Any, x: Any, dy: Any, *, state: Any, key: Any = None,
             train: bool = False) -> tuple[Any, Any]:
        return ((dy * x).sum(axis=0),), dy * params[0]

    return Layer(init, apply, grad, name="counting", init_with_state=init_with_state)


def test_a_stateful_layer_from_plain_functions_works_in_models_and_training() -> None:
    model = serial(dense(3, dtype=np.float64), _counting_layer(), dense(2, dtype=np.float64))
    assert is_stateful(model)
    _, params, state = model.init_with_state(random.key(0), (4,))
    assert state == ((), np.zeros((), np.int64), ())
    x = random.normal(random.key(1), (5, 4), np.float64)
    y = np.zeros(5, np.int64)
    value, grads, new_state = value_and_grad(model, losses.softmax_cross_entropy)(
        params, state, x, y)
    assert int(new_state[1]) == 5

    def loss_at(p: Any) -> float:
        out, _ = apply_with_state(model, p, x, state, train=True)
        return float(losses.softmax_cross_entropy.apply(out, y))

    assert value == pytest.approx(loss_at(params), rel=1e-12)
    tree.map(lambda a, n: np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-9), grads,
             numerical_grad(loss_at, params))
    result = fit(model, losses.softmax_cross_entropy, optim.sgd(0.1), params, (x, y),
                 epochs=3, batch_size=2, key=random.key(2), progress=False, model_state=state)
    assert int(result.model_state[1]) == 15
