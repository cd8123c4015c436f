"""Tests of the training loop: determinism, resumption, weights, callbacks, bad input."""

from __future__ import annotations

import io as _io
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnfunc import activations, losses, random, tree
from nnfunc.callbacks import Decision, EpochInfo, early_stopping, terminate_on_nan
from nnfunc.combinators import serial
from nnfunc.layers import dense, dropout
from nnfunc.progress import Progress, format_line
from nnfunc.train import evaluate, fit, loss_value_and_grad, predict, train_step, value_and_grad


class _SGDState(NamedTuple):
    params: Any
    step: int


class _SGD(NamedTuple):
    """The optimizer contract at its smallest: θ ← θ - lr ∇ (state holds params)."""

    init: Any
    update: Any


def _sgd(lr: float) -> _SGD:
    def init(params: Any) -> _SGDState:
        return _SGDState(params, 0)

    def update(state: _SGDState, grads: Any) -> tuple[_SGDState, Any]:
        new = tree.map(lambda p, g: p - p.dtype.type(lr) * g, state.params, grads)
        return _SGDState(new, state.step + 1), new

    return _SGD(init, update)


def _problem(seed: int = 0, n: int = 90) -> tuple[Any, Any, Any, Any]:
    k_x, k_w, k_init = random.split(random.key(seed), 3)
    x = random.normal(k_x, (n, 4))
    y = (x @ random.normal(k_w, (4, 3))).argmax(axis=1).astype(np.int64)
    model = serial(dense(8), activations.tanh, dropout(0.2), dense(3))
    _, params = model.init(k_init, (4,))
    return model, params, x, y


def _accuracy(y_pred: Any, y_true: Any) -> float:
    return float((y_pred.argmax(axis=1) == y_true).mean())


def test_fit_lowers_the_loss_and_records_history() -> None:
    model, params, x, y = _problem()
    result = fit(model, losses.softmax_cross_entropy, _sgd(0.5), params, (x, y), epochs=8,
                 batch_size=16, key=random.key(1), validation=(x[:30], y[:30]),
                 metrics=[_accuracy], progress=False)
    h = result.history
    assert set(h) == {"loss", "_accuracy", "val_loss", "val__accuracy", "time"}
    assert all(len(v) == 8 for v in h.values())
    assert h["loss"][-1] < h["loss"][0]
    assert result.epoch == 8
    # validation loss is the inference-mode loss over the validation set
    assert h["val_loss"][-1] == pytest.approx(
        float(losses.softmax_cross_entropy.apply(model.apply(result.params, x[:30]), y[:30])),
        rel=1e-6)


def test_fit_of_a_keyless_model_equals_fit_with_a_key_for_every_step() -> None:
    # fit derives no step keys for a model that reads none (uses_key false); the same
    # model as a layer that claims to read its key gets them, and must train the same
    from nnfunc.layer import forward_backward_of, from_forward_backward, uses_key
    from nnfunc.optim import adam

    model = serial(dense(8), activations.relu, dense(3))
    parts = forward_backward_of(model)
    assert parts is not None
    assert not uses_key(model)
    seen: list[Any] = []

    def forward(params: Any, x: Any, key: Any, train: bool) -> Any:
        seen.append(key)
        return parts[0](params, x, key, train)

    keyed = from_forward_backward("keyed", model.init, forward, parts[1])
    _, _, x, y = _problem()
    _, params = model.init(random.key(3), (4,))
    results = [fit(m, losses.softmax_cross_entropy, adam(0.05), params, (x, y), epochs=3,
                   batch_size=16, key=random.key(1), progress=False) for m in (model, keyed)]
    assert sum(k is not None for k in seen) == 18  # a key for each of 3 epochs of 6 steps
    tree.map(np.testing.assert_array_equal, results[0].params, results[1].params)
    assert results[0].history["loss"] == results[1].history["loss"]


def test_same_key_bit_identical_different_key_different() -> None:
    model, params, x, y = _problem()

    def run(seed: int) -> Any:
        return fit(model, losses.softmax_cross_entropy, _sgd(0.3), params, (x, y), epochs=3,
                   batch_size=32, key=random.key(seed), progress=False).params

    a, b, c = run(5), run(5), run(6)
    tree.map(np.testing.assert_array_equal, a, b)
    assert any(not np.array_equal(u, v) for u, v in zip(tree.leaves(a), tree.leaves(c)))


def test_resuming_gives_the_uninterrupted_params() -> None:
    model, params, x, y = _problem()
    opt = _sgd(0.3)
    full = fit(model, losses.softmax_cross_entropy, opt, params, (x, y), epochs=4,
               batch_size=20, key=random.key(2), progress=False)
    half = fit(model, losses.softmax_cross_entropy, opt, params, (x, y), epochs=2,
               batch_size=20, key=random.key(2), progress=False)
    rest = fit(model, losses.softmax_cross_entropy, opt, half.params, (x, y), epochs=4,
               batch_size=20, key=random.key(2), progress=False, opt_state=half.opt_state,
               initial_epoch=half.epoch)
    tree.map(np.testing.assert_array_equal, full.params, rest.params)


def test_last_partial_batch_is_used() -> None:
    model, params, x, y = _problem(n=10)
    seen: list[int] = []
    base = _sgd(0.1)

    def update(state: Any, grads: Any) -> Any:
        seen.append(1)
        return base.update(state, grads)

    fit(model, losses.softmax_cross_entropy, _SGD(base.init, update), params, (x, y),
        epochs=1, batch_size=4, key=random.key(0), progress=False)
    assert len(seen) == 3  # 4 + 4 + 2


@given(st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_sample_weights_weight_each_sample(n: int, seed: int) -> None:
    k1, k2, k3 = random.split(random.key(seed), 3)
    z = random.normal(k1, (n, 3), np.float64)
    y = random.generator(k2).integers(0, 3, n)
    w = random.uniform(k3, (n,), np.float64) + 0.1
    value, grad = loss_value_and_grad(losses.softmax_cross_entropy, z, y, w)
    per = [losses.softmax_cross_entropy.apply(z[i:i + 1], y[i:i + 1]) for i in range(n)]
    assert value == pytest.approx(np.dot(w, per) / w.sum(), rel=1e-12)
    for i in range(n):
        row = losses.softmax_cross_entropy.grad(z[i:i + 1], y[i:i + 1])[0]
        np.testing.assert_allclose(grad[i], row * w[i] / w.sum(), rtol=1e-12, atol=1e-15)


def test_integer_weights_equal_repeated_samples() -> None:
    model, params, x, y = _problem(n=6)
    f = value_and_grad(model, losses.softmax_cross_entropy, train=False)
    w = np.array([1, 2, 1, 3, 1, 1])
    v_w, g_w = f(params, x, y, sample_weight=w)
    idx = np.repeat(np.arange(6), w)
    v_r, g_r = f(params, x[idx], y[idx])
    assert v_w == pytest.approx(v_r, rel=1e-5)
    tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g_w, g_r)


def test_early_stopping_restores_best_params_also_without_triggering() -> None:
    model, params, x, y = _problem()
    snapshots: list[Any] = []

    def remember(info: EpochInfo) -> None:
        snapshots.append((info.logs["val_loss"], info.params))

    result = fit(model, losses.softmax_cross_entropy, _sgd(2.0), params, (x, y), epochs=6,
                 batch_size=8, key=random.key(3), validation=(x, y), progress=False,
                 callbacks=[remember, early_stopping("val_loss", patience=100)])
    best = min(range(len(snapshots)), key=lambda i: snapshots[i][0])
    tree.map(np.testing.assert_array_equal, result.params, snapshots[best][1])


def test_early_stopping_stops_after_patience() -> None:
    model, params, x, y = _problem()
    result = fit(model, losses.softmax_cross_entropy, _sgd(0.0), params, (x, y), epochs=20,
                 batch_size=30, key=random.key(4), validation=(x, y), progress=False,
                 callbacks=[early_stopping("val_loss", patience=2)])
    # lr 0: the first epoch sets the best, two more without improvement stop it
    assert result.epoch == 3


def test_terminate_on_nan_and_plain_callable_decisions() -> None:
    model, params, x, y = _problem()
    poisoned = (params[0]._replace(w=np.full_like(params[0].w, np.nan)), *params[1:])
    result = fit(model, losses.softmax_cross_entropy, _sgd(0.1), poisoned, (x, y), epochs=10,
                 batch_size=90, key=random.key(0), progress=False,
                 callbacks=[terminate_on_nan()])
    assert result.epoch == 1
    assert not np.isfinite(result.history["loss"][-1])
    stopper = fit(model, losses.softmax_cross_entropy, _sgd(0.1), params, (x, y), epochs=10,
                  batch_size=90, key=random.key(0), progress=False,
                  callbacks=[lambda info: Decision(stop=info.epoch >= 2)])
    assert stopper.epoch == 2


def test_fit_rejects_bad_input_before_the_first_step() -> None:
    model, params, x, y = _problem()
    opt = _sgd(0.1)
    loss = losses.softmax_cross_entropy
    with pytest.raises(ValueError, match="fit: x and its labels must have the same number of "
                                         "samples; got 90 inputs and 89 labels"):
        fit(model, loss, opt, params, (x, y[:-1]), epochs=1, key=random.key(0))
    with pytest.raises(ValueError, match="fit: batch_size must be > 0; got 0"):
        fit(model, loss, opt, params, (x, y), epochs=1, batch_size=0, key=random.key(0))
    with pytest.raises(ValueError, match=r"fit: labels for x do not fit the model's output of "
                                         r"shape \(batch, 3\).*labels must be in \[0, 3\); got "
                                         r"label 5"):
        fit(model, loss, opt, params, (x, np.full(90, 5)), epochs=1, key=random.key(0))
    with pytest.raises(TypeError, match="fit: key must be a key"):
        fit(model, loss, opt, params, (x, y), epochs=1, key=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fit: optimizer must have init"):
        fit(model, loss, object(), params, (x, y), epochs=1, key=random.key(0))


def test_train_step_predict_evaluate() -> None:
    model, params, x, y = _problem()
    opt = _sgd(0.5)
    step = train_step(model, losses.softmax_cross_entropy, opt)
    state = opt.init(params)
    before = tree.map(np.copy, params)
    p1, state, v1 = step(params, state, x, y, key=random.key(0))
    tree.map(np.testing.assert_array_equal, before, params)  # pure
    _, _, v2 = step(p1, state, x, y, key=random.key(1))
    assert v2 < v1
    np.testing.assert_allclose(predict(model, p1, x, batch_size=7), model.apply(p1, x),
                               rtol=1e-6)
    ev = evaluate(model, losses.softmax_cross_entropy, p1, x, y, batch_size=13,
                  metrics=[_accuracy])
    assert ev["loss"] == pytest.approx(float(losses.softmax_cross_entropy.apply(
        model.apply(p1, x), y)), rel=1e-6)
    assert ev["_accuracy"] == _accuracy(model.apply(p1, x), y)


def test_progress_prints_one_line_per_epoch_off_a_terminal() -> None:
    stream = _io.StringIO()
    bar = Progress(2, 5, stream=stream)
    for epoch in range(2):
        for i in range(5):
            bar.step(epoch, i + 1, {"loss": 1.0 / (i + 1)})
        bar.epoch_end(epoch, {"loss": 0.25, "time": 1.5})
    assert stream.getvalue().splitlines() == [
        "epoch 1/2 [####################] 5/5 loss 0.2500 1.5s",
        "epoch 2/2 [####################] 5/5 loss 0.2500 1.5s",
    ]
    assert format_line(0, 1, 1, 4, 2.0, {"loss": 0.5}, width=4) == \
        "epoch 1/1 [#...] 1/4 loss 0.5000 eta 6.0s"


def test_reduce_lr_on_plateau_scales_the_optimizer_lr() -> None:
    from nnfunc import optim
    from nnfunc.callbacks import reduce_lr_on_plateau

    model, params, x, y = _problem()
    lrs: list[float] = []
    # min_delta so large that no epoch counts as an improvement: after the first
    # epoch sets the baseline, each epoch (patience 1) halves the learning rate
    fit(model, losses.softmax_cross_entropy, optim.sgd(0.4), params, (x, y), epochs=4,
        batch_size=30, key=random.key(0), progress=False,
        callbacks=[reduce_lr_on_plateau("loss", factor=0.5, patience=1, min_delta=1e9),
                   lambda info: lrs.append(optim.lr_of(info.opt_state))])
    assert lrs == pytest.approx([0.4, 0.2, 0.1, 0.05])
    floor: list[float] = []
    fit(model, losses.softmax_cross_entropy, optim.sgd(0.4), params, (x, y), epochs=4,
        batch_size=30, key=random.key(0), progress=False,
        callbacks=[reduce_lr_on_plateau("loss", factor=0.5, patience=1, min_delta=1e9,
                                        min_lr=0.15),
                   lambda info: floor.append(optim.lr_of(info.opt_state))])
    assert floor == pytest.approx([0.4, 0.2, 0.15, 0.15])


def test_resuming_from_a_checkpoint_file_is_bit_identical(tmp_path: Any) -> None:
    from nnfunc import io, optim
    from nnfunc.callbacks import checkpoint

    model, params, x, y = _problem()
    opt = optim.adam(0.01)
    path = tmp_path / "ck.npz"
    full = fit(model, losses.softmax_cross_entropy, opt, params, (x, y), epochs=4,
               batch_size=16, key=random.key(9), progress=False)
    fit(model, losses.softmax_cross_entropy, opt, params, (x, y), epochs=2, batch_size=16,
        key=random.key(9), progress=False, callbacks=[checkpoint(path)])
    template = {"params": params, "opt_state": opt.init(params), "epoch": 0,
                "history": {"loss": [0.0, 0.0], "time": [0.0, 0.0]}}
    ck = io.load(path, like=template)
    assert ck["epoch"] == 2
    rest = fit(model, losses.softmax_cross_entropy, opt, ck["params"], (x, y), epochs=4,
               batch_size=16, key=random.key(9), progress=False, opt_state=ck["opt_state"],
               initial_epoch=ck["epoch"])
    tree.map(np.testing.assert_array_equal, full.params, rest.params)
    tree.map(np.testing.assert_array_equal, full.opt_state, rest.opt_state)


def _wide_problem() -> tuple[Any, Any, Any, Any]:
    # a first layer of 120 x 150 = 18,000 weights: large enough (>= 16,384)
    # for Adam to update it in place when donated
    k_x, k_init = random.split(random.key(7))
    x = random.normal(k_x, (64, 120))
    y = (x[:, :3] * np.arange(1, 4)).argmax(axis=1).astype(np.int64)
    model = serial(dense(150), activations.relu, dense(3))
    _, params = model.init(k_init, (120,))
    return model, params, x, y


def test_donating_train_step_gives_the_pure_results_and_reuses_the_state() -> None:
    from nnfunc import optim

    model, params, x, y = _wide_problem()
    opt = optim.adam(1e-2)
    pure = train_step(model, losses.softmax_cross_entropy, opt)
    donating = train_step(model, losses.softmax_cross_entropy, opt, donate=True)
    p_a, s_a = params, opt.init(params)
    p_b = tree.map(np.copy, params)
    s_b = opt.init(p_b)
    for step in range(4):
        old_w, old_m = p_b[0].w, s_b.slots.m[0].w
        p_a, s_a, v_a = pure(p_a, s_a, x, y)
        p_b, s_b, v_b = donating(p_b, s_b, x, y)
        assert v_a == v_b
        tree.map(np.testing.assert_array_equal, s_a, s_b)  # bit-identical, params included
        # Adam's moments are overwritten from the first step, the params once
        # they are the arrays of its previous update (not the caller's own)
        assert np.shares_memory(p_b[0].w, old_w) == (step > 0)
        assert np.shares_memory(s_b.slots.m[0].w, old_m)
    # an optimizer without an in-place update is simply called purely
    sgd_step = train_step(model, losses.softmax_cross_entropy, _sgd(0.1), donate=True)
    before = tree.map(np.copy, params)
    sgd_step(params, _sgd(0.1).init(params), x, y)
    tree.map(np.testing.assert_array_equal, before, params)


def test_fit_never_overwrites_what_the_caller_or_a_callback_holds() -> None:
    # fit donates the state to Adam within an epoch; the caller's params and
    # the params a callback kept at each epoch's end must still hold what
    # they held then: each snapshot equals a separate run stopped at that epoch
    from nnfunc import optim

    model, params, x, y = _wide_problem()
    before = tree.map(np.copy, params)
    kept: list[Any] = []
    common = {"epochs": 3, "batch_size": 16, "key": random.key(3), "progress": False}
    fit(model, losses.softmax_cross_entropy, optim.adam(1e-2), params, (x, y),
        callbacks=[lambda info: kept.append(info.params)], **common)
    tree.map(np.testing.assert_array_equal, before, params)
    for epochs, snapshot in enumerate(kept, start=1):
        alone = fit(model, losses.softmax_cross_entropy, optim.adam(1e-2), params, (x, y),
                    **{**common, "epochs": epochs})
        tree.map(np.testing.assert_array_equal, alone.params, snapshot)
