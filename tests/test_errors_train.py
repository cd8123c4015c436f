"""fit, train_step, evaluate, callbacks and combinators: semantics and argument checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import nnfunc as nf
from nnfunc import callbacks, losses, metrics, optim, random, tree
from nnfunc.callbacks import Decision, EpochInfo
from nnfunc.layers import dense
from nnfunc.train import evaluate, fit, train_step, value_and_grad

SCE = losses.softmax_cross_entropy


def _problem(n: int = 8) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    model = nf.serial(dense(5), nf.tanh, dense(3))
    _, params = model.init(random.key(0), (4,))
    x = random.normal(random.key(1), (n, 4))
    y = np.arange(n) % 3
    return model, params, x, y


def _fit(model: Any, params: Any, data: Any, **kw: Any) -> Any:
    base: dict[str, Any] = {"epochs": 2, "batch_size": 4, "key": random.key(2),
                            "progress": False, "shuffle": False}
    base.update(kw)
    optimizer = base.pop("optimizer", optim.adam(0.05))
    return fit(model, SCE, optimizer, params, data, **base)


def _same(a: Any, b: Any) -> None:
    tree.map(np.testing.assert_array_equal, a, b)


# -- zero-weight mini-batches -------------------------------------------------------------

def test_a_zero_weight_batch_contributes_nothing() -> None:
    model, params, x, y = _problem()
    w = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    weighted = _fit(model, params, (x, y), sample_weight=w)
    # the reference: the same run on the weighted samples alone (same batches, same steps)
    alone = _fit(model, params, (x[:4], y[:4]))
    _same(weighted.params, alone.params)
    assert weighted.history["loss"] == alone.history["loss"]
    assert optim.step_of(weighted.opt_state) == 2  # one step per epoch: the zero batch is skipped


def test_class_weight_giving_a_batch_zero_weight() -> None:
    model, params, x, _ = _problem()
    y = np.array([1, 2, 1, 2, 0, 0, 0, 0])
    weighted = _fit(model, params, (x, y), class_weight={0: 0.0})
    alone = _fit(model, params, (x[:4], y[:4]))
    _same(weighted.params, alone.params)
    assert weighted.history["loss"] == alone.history["loss"]


def test_the_epoch_loss_is_the_weighted_mean_over_the_epoch() -> None:
    model, params, x, y = _problem()
    w = np.array([0.5, 2.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 3.0, 1.0])
    x, y = random.normal(random.key(5), (10, 4)), np.arange(10) % 3
    result = _fit(model, params, (x, y), sample_weight=w, epochs=1, batch_size=3,
                  optimizer=optim.sgd(0.0))  # lr 0: every batch sees the initial params
    z = model.apply(params, x).astype(np.float64)
    per_sample = np.log(np.exp(z).sum(axis=1)) - z[np.arange(10), y]  # -log softmax(z)_y
    expected = float((w * per_sample).sum() / w.sum())
    assert result.history["loss"][0] == pytest.approx(expected, rel=1e-5)


def test_weights_that_are_all_zero_are_refused_before_training() -> None:
    model, params, x, y = _problem()
    with pytest.raises(ValueError, match=r"fit: sample_weight must be finite, >= 0, with a "
                                         r"positive sum"):
        _fit(model, params, (x, y), sample_weight=np.zeros(8))
    with pytest.raises(ValueError, match=r"fit: class_weight must give some sample a positive "
                                         r"weight; got total weight 0"):
        _fit(model, params, (x, y), class_weight={0: 0.0, 1: 0.0, 2: 0.0})


# -- class_weight ---------------------------------------------------------------------------

@pytest.mark.parametrize(("class_weight", "error", "message"), [
    ({7: 1.0}, ValueError, r"fit: class_weight names class 7, which the labels' classes "
                           r"\[0, 3\) do not hold"),
    ({-1: 1.0}, ValueError, r"fit: class_weight names class -1"),
    ({"a": 1.0}, TypeError, r"fit: class_weight keys must be int class labels; got str 'a'"),
    ({True: 1.0}, TypeError, r"fit: class_weight keys must be int class labels; got bool"),
    ([1.0, 2.0], TypeError, r"fit: class_weight must be a dict \{class: weight\}; got list"),
    ({0: -1.0}, ValueError, r"fit: class_weight\[0\] must be finite and in \[0.0, inf\]; got "
                            r"-1.0"),
    ({0: "x"}, TypeError, r"fit: class_weight\[0\] must be a real number; got str 'x'"),
])
def test_bad_class_weights(class_weight: Any, error: type, message: str) -> None:
    model, params, x, y = _problem()
    with pytest.raises(error, match=message):
        _fit(model, params, (x, y), class_weight=class_weight)


def test_class_weight_needs_class_labels() -> None:
    model = dense(2)
    _, params = model.init(random.key(0), (4,))
    x = random.normal(random.key(1), (6, 4))
    with pytest.raises(TypeError, match=r"fit: class_weight needs integer class labels or "
                                        r"one-hot targets"):
        fit(model, losses.mse, optim.sgd(0.1), params, (x, np.full((6, 2), 0.3, np.float32)),
            epochs=1, key=random.key(0), progress=False, class_weight={0: 1.0})


# -- argument types ----------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"initial_epoch": -1}, ValueError, r"fit: initial_epoch must be >= 0; got -1"),
    ({"initial_epoch": 1.5}, TypeError, r"fit: initial_epoch must be an int >= 0; got float"),
    ({"initial_epoch": "1"}, TypeError, r"fit: initial_epoch must be an int >= 0; got str"),
    ({"epochs": 2.0}, TypeError, r"fit: epochs must be an int >= 0; got float 2.0"),
    ({"metrics": ["accuracy"]}, TypeError, r"fit: metrics\[0\] must be a callable \(y_pred, "
                                           r"y_true\) -> float"),
    ({"metrics": metrics.accuracy}, TypeError, r"fit: metrics must be a list of callables \(e\.g"
                                               r"\. \[nnfunc\.metrics\.accuracy\]\)"),
    ({"callbacks": callbacks.terminate_on_nan()}, TypeError,
     r"fit: callbacks must be a list of callbacks \(wrap one in a list\); got Callback"),
    ({"callbacks": ["x"]}, TypeError, r"fit: callbacks must be Callbacks or callables"),
    ({"progress": "no"}, TypeError, r"fit: progress must be a bool \(True or False\)"),
    ({"shuffle": 0}, TypeError, r"fit: shuffle must be a bool \(True or False\); got int 0"),
    ({"sample_weight": "abc"}, TypeError, r"fit: sample_weight must be a numeric array"),
])
def test_fit_argument_types(kwargs: dict[str, Any], error: type, message: str) -> None:
    model, params, x, y = _problem()
    with pytest.raises(error, match=message):
        _fit(model, params, (x, y), **kwargs)


def test_fit_data_of_python_lists() -> None:
    model, params, x, y = _problem()
    with pytest.raises(TypeError, match=r"fit: data\[0\] \(x\) must be a NumPy array or a tuple "
                                        r"of arrays \(convert it with np\.asarray\(x, "
                                        r"np\.float32\)\); got list of length 8"):
        _fit(model, params, (x.tolist(), y))
    with pytest.raises(TypeError, match=r"fit: validation\[0\] \(x\) must be a NumPy array"):
        _fit(model, params, (x, y), validation=(x.tolist(), y))
    # labels as a list are fine: they become an array
    _fit(model, params, (x, y.tolist()), epochs=1)


def test_an_optimizer_state_for_other_params() -> None:
    model, params, x, y = _problem()
    other = optim.adam().init({"a": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match=r"fit: opt_state must hold params shaped like params"):
        _fit(model, params, (x, y), opt_state=other)
    with pytest.raises(TypeError, match=r"adam: state\.slots must be AdamSlots"):
        _fit(model, params, (x, y), opt_state=optim.sgd(0.1).init(params))


def test_the_params_given_to_fit_are_trained_even_with_an_opt_state() -> None:
    model, params, x, y = _problem()
    _, other = model.init(random.key(9), (4,))
    opt = optim.sgd(0.1)
    from_state = _fit(model, params, (x, y), optimizer=opt, opt_state=opt.init(other))
    fresh = _fit(model, params, (x, y), optimizer=opt)
    _same(from_state.params, fresh.params)


@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda: callbacks.early_stopping(3), TypeError,
     r"early_stopping: monitor must be a str \(a history key such as 'val_loss'\); got int 3"),
    (lambda: callbacks.reduce_lr_on_plateau(None), TypeError,
     r"reduce_lr_on_plateau: monitor must be a str"),
    (lambda: callbacks.terminate_on_nan(3), TypeError, r"terminate_on_nan: monitor must be a str"),
    (lambda: callbacks.early_stopping(restore_best="no"), TypeError,
     r"early_stopping: restore_best must be a bool"),
    (lambda: callbacks.early_stopping(mode=1), TypeError,
     r"early_stopping: mode must be 'min', 'max' or 'auto'"),
    (lambda: callbacks.checkpoint(3.5), TypeError, r"checkpoint: path must be a str or "
                                                   r"os\.PathLike; got float 3.5"),
    (lambda: value_and_grad(dense(2), SCE, train="yes"), TypeError,
     r"value_and_grad: train must be a bool"),
    (lambda: train_step(dense(2), SCE, optim.sgd(), donate="yes"), TypeError,
     r"train_step: donate must be a bool"),
])
def test_callback_and_step_arguments(make: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make()


def test_evaluate_metrics_must_be_callables() -> None:
    model, params, x, y = _problem()
    with pytest.raises(TypeError, match=r"evaluate: metrics\[0\] must be a callable"):
        evaluate(model, SCE, params, x, y, metrics=["accuracy"])  # type: ignore[list-item]


# -- Decision(params=...) takes effect -----------------------------------------------------

def test_a_decision_to_replace_the_params_takes_effect() -> None:
    model, params, x, y = _problem()
    _, restart = model.init(random.key(7), (4,))
    opt = optim.sgd(0.1)

    def swap(info: EpochInfo) -> Decision | None:
        return Decision(params=restart) if info.epoch == 1 else None

    swapped = _fit(model, params, (x, y), optimizer=opt, shuffle=True, callbacks=[swap])
    # the reference: epoch 2 alone, started from the swapped-in params
    ref = _fit(model, restart, (x, y), optimizer=opt, shuffle=True, initial_epoch=1)
    _same(swapped.params, ref.params)
    _same(optim.params_of(swapped.opt_state), swapped.params)


def test_early_stopping_leaves_params_and_opt_state_agreeing() -> None:
    model, params, x, y = _problem()
    result = _fit(model, params, (x, y), optimizer=optim.adam(0.5), epochs=6,
                  validation=(x[:3], y[:3]),
                  callbacks=[callbacks.early_stopping("val_loss", patience=100)])
    _same(optim.params_of(result.opt_state), result.params)


# -- combinators ----------------------------------------------------------------------------

def test_combinators_given_empty_tuples() -> None:
    for layer in (nf.fanin_sum, nf.fanin_concat()):
        with pytest.raises(ValueError, match=r"x must be a non-empty tuple of arrays \(e\.g\. "
                                             r"from fanout\); got an empty tuple"):
            layer.apply((), ())
    # serial() is the identity (a registry entry); parallel() maps () to ()
    x = np.ones((2, 3), np.float32)
    assert nf.serial().apply((), x) is x
    assert nf.parallel().apply((), ()) == ()
    with pytest.raises(TypeError, match=r"parallel: x must be a tuple of 0 arrays"):
        nf.parallel().apply((), (x,))


def test_init_without_a_key() -> None:
    for model in (nf.serial(dense(3)), nf.serial()):
        with pytest.raises(TypeError, match=r"serial: key must be a key from nnfunc\.random\."
                                            r"key"):
            model.init(None, (4,))  # type: ignore[arg-type]


@pytest.mark.parametrize(("dy", "error", "message"), [
    (lambda p: p[:, :1], ValueError, r"serial: dy must have the output's shape \(4, 3\); got "
                                     r"\(4, 1\)"),
    (lambda p: p.astype(np.float64), TypeError,
     r"serial: dy must have the output's dtype float32; got dtype float64"),
    (lambda p: p.tolist(), TypeError, r"serial: dy must be an array shaped like the output"),
])
@pytest.mark.parametrize("via", ["value_and_grad", "train_step"])
def test_a_user_losss_wrong_gradient_is_caught_before_the_backward_pass(
        dy: Any, error: type, message: str, via: str) -> None:
    # the training step runs a built-in model's forward and backward directly; the
    # cotangent a user's loss gives must still be checked against the model's output
    loss = losses.Loss(losses.mse.apply, losses.mse.grad,
                       lambda p, y: (losses.mse.apply(p, y), dy(p)), name="mine")
    model = nf.serial(dense(5), nf.relu, dense(3))
    _, params = model.init(random.key(0), (2,))
    x, y = np.ones((4, 2), np.float32), np.zeros((4, 3), np.float32)
    opt = optim.sgd(0.1)
    run = ((lambda: value_and_grad(model, loss)(params, x, y)) if via == "value_and_grad"
           else (lambda: train_step(model, loss, opt)(params, opt.init(params), x, y)))
    with pytest.raises(error, match=message):
        run()
