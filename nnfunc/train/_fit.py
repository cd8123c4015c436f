"""The training loop: :func:`fit`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from nnfunc import random, tree, workspace
from nnfunc._validate import (
    describe,
    fail,
    finite_float,
    flag,
    non_negative_int,
    positive_int,
    type_fail,
)
from nnfunc.callbacks import Callback, Decision, EpochInfo, as_callback
from nnfunc.layer import (
    Layer,
    is_stateful,
    uses_key,
)
from nnfunc.losses import Loss
from nnfunc.optim.base import replace_params, state_params, update_fn
from nnfunc.progress import Progress
from nnfunc.train._grad import (
    Metric,
    _check_model_and_loss,
    _check_optimizer,
    _forward_backward,
    _stateful_forward_backward,
    _weights,
)
from nnfunc.train._infer import (
    _check_metrics,
    _infer,
    _metric_name,
    _model_state,
    _num_samples,
    _take,
    evaluate,
)
from nnfunc.typing import Array, Key, PyTree

# -- fit ----------------------------------------------------------------------------------

class FitResult(NamedTuple):
    """What :func:`fit` returns.

    ``params`` are the final (or restored best) params, ``opt_state`` the
    optimizer state after the last step (save it with ``params`` to resume),
    ``history`` maps ``"loss"``, each metric, ``"val_loss"``, ``"val_<metric>"``
    and ``"time"`` (seconds) to one value per epoch, ``epoch`` counts the
    epochs completed (pass it back as ``initial_epoch`` to resume), and
    ``model_state`` is a stateful model's state to go with ``params``
    (``None`` for a stateless model).
    """

    params: Any
    opt_state: Any
    history: dict[str, list[float]]
    epoch: int
    model_state: Any = None


def _float_dtype(params: PyTree) -> Any:
    for leaf in tree.leaves(params):
        if isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f":
            return leaf.dtype
    return np.dtype(np.float32)


def _cast_inputs(x: Any, dtype: Any, kinds: str = "fiub") -> Any:
    """Cast array leaves whose dtype kind is in ``kinds`` to ``dtype``."""
    return tree.map(lambda a: a.astype(dtype, copy=False)
                    if np.asarray(a).dtype.kind in kinds and a.dtype != dtype else a, x)


def _fit_inputs(model: Layer, params: PyTree, x: Any, dtype: Any, state: Any) -> Any:
    """``fit``'s inputs in the params' dtype, integer ids kept for a model that takes them.

    Float leaves are cast to ``dtype``. Integer (or bool) leaves are kept as
    they are when the model accepts them as given (an ``embedding`` first
    layer: its ids must stay integers), found by running it on the first
    sample; otherwise (say ``uint8`` pixels into ``dense``) they are cast too.
    """
    if all(np.asarray(a).dtype.kind not in "iub" for a in tree.leaves(x)):
        return _cast_inputs(x, dtype)
    floats_cast = _cast_inputs(x, dtype, "f")
    try:
        _infer(model, params, _take(floats_cast, slice(0, 1)), state)
    except (TypeError, ValueError):
        return _cast_inputs(x, dtype)
    return floats_cast


def _class_sample_weights(class_weight: Any, y: Any, n: int, classes: int) -> Array:
    """Each sample's weight from ``{class: weight}`` (classes not named weigh 1).

    The labels are integer ``(n,)`` labels or one-hot/soft ``(n, c)`` targets
    (their argmax); a class the labels cannot hold is an error, not ignored.
    """
    if not isinstance(class_weight, Mapping):
        raise type_fail("fit", "class_weight", "must be a dict {class: weight}",
                        describe(class_weight))
    labels = np.asarray(y)
    if labels.dtype.kind not in "iu":
        binary = labels.ndim <= 2 and labels.size == n and bool(np.isin(labels, (0, 1)).all())
        rows = labels.reshape(n, -1) if labels.size else labels
        one_hot = (labels.dtype.kind in "fb" and labels.ndim == 2 and labels.shape[1] >= 2
                   and bool(((rows >= 0) & (rows <= 1)).all())
                   and np.allclose(rows.sum(axis=1), 1.0))
        if not (binary or one_hot):
            raise type_fail("fit", "class_weight", "needs integer class labels or one-hot "
                            "targets (n, classes), or 0/1 binary targets",
                            f"labels {describe(labels)}")
        classes = labels.shape[1] if one_hot else 2
        labels = labels.argmax(axis=1) if one_hot else labels.reshape(n).astype(np.intp)
    table = np.ones(classes)
    for c, w in class_weight.items():
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
            raise type_fail("fit", "class_weight keys", "must be int class labels", describe(c))
        if not 0 <= c < classes:
            raise fail("fit", "class_weight", f"names class {c}, which the labels' classes "
                       f"[0, {classes}) do not hold", dict(class_weight))
        table[int(c)] = finite_float(w, "fit", f"class_weight[{c}]", lo=0.0)
    per_sample: Array = table[labels.reshape(n)]
    if not per_sample.sum() > 0:
        raise fail("fit", "class_weight", "must give some sample a positive weight",
                   "total weight 0")
    return per_sample


def _input_arrays(component: str, arg: str, x: Any) -> None:
    """Raise unless ``x`` is an array or a tuple (tree) of arrays: a list of numbers is
    not an input (the batch axis would be ambiguous), so say how to convert it."""
    bad = [leaf for leaf in tree.leaves(x) if not isinstance(leaf, np.ndarray)]
    if bad or isinstance(x, list):
        raise type_fail(component, f"{arg} (x)", "must be a NumPy array or a tuple of arrays "
                        "(convert it with np.asarray(x, np.float32))",
                        f"list of length {len(x)}" if isinstance(x, list) else describe(x))


def _classes(model: Layer, params: PyTree, x: Any) -> int:
    """The number of classes the model's output scores (a one-unit output: 2)."""
    out = model.apply(params, _take(x, slice(0, 1)), train=False)
    width = int(out.shape[-1]) if isinstance(out, np.ndarray) and out.ndim >= 2 else 1
    return max(width, 2)


def _with_params(component: str, state: Any, params: PyTree) -> Any:
    """``state`` holding ``params``: the optimizer's next update starts from the params
    its state holds, so ``fit`` and a callback's ``Decision(params=...)`` put them there."""
    if state_params(state) is params:
        return state
    try:
        return replace_params(state, params)
    except ValueError as err:
        raise fail(component, "opt_state", "must hold params shaped like params",
                   str(err)) from None


BatchStep = Callable[[PyTree, Any, Any, "Array | None", "Key | None"],
                     tuple[Any, Any, Any, Any, Any]]
"""``step(params, model_state, idx, weights, key) -> (loss, grads, y_pred, y, model_state)``
of the global batch ``idx`` with those samples' ``weights`` (``model_state`` is ``()`` for a
stateless model; ``key`` is ``None`` for a model that reads none)."""


def _batch_step(model: Layer, loss: Loss, x: Any, y: Any, need_preds: bool) -> BatchStep:
    """The gradient of fit's loss on the samples ``idx`` of ``(x, y)``, in one process."""
    stateful = is_stateful(model)

    def step(params: PyTree, model_state: Any, idx: Any, wb: Array | None,
             key: Key | None) -> tuple[Any, Any, Any, Any, Any]:
        xb, yb = _take(x, idx), _take(y, idx)
        if stateful:
            value, grads, y_pred, model_state = _stateful_forward_backward(
                model, loss, True, params, model_state, xb, yb, key, wb)
        else:
            value, grads, y_pred = _forward_backward(model, loss, True, params, xb, yb, key, wb)
        return value, grads, y_pred, yb, model_state

    return step


class Shards(NamedTuple):
    """How :func:`fit`'s loop runs as one of several processes (see :mod:`nnfunc.distributed`).

    ``batch`` builds the loop's gradient step (as :func:`_batch_step` does:
    each process computes its shard of the global batch and the processes
    combine their gradients); ``evaluate`` replaces :func:`evaluate` for
    the validation data; ``agree(epoch, logs, (params, opt_state,
    model_state)) -> logs`` runs after each epoch, before the callbacks, and
    gives every process the same logs; ``main`` is true in the one process
    that shows progress and runs the ``rank0_only`` callbacks; ``barrier()``
    follows each epoch's callbacks.
    """

    batch: Callable[[Layer, Loss, Any, Any, bool], BatchStep]
    evaluate: Callable[..., dict[str, float]]
    agree: Callable[[int, dict[str, float], tuple[Any, Any, Any]], dict[str, float]]
    main: bool
    barrier: Callable[[], None]


def _check_fit_data(model: Layer, loss: Loss, params: PyTree, x: Any, y: Any,
                    arg: str, state: Any = ()) -> int:
    n = _num_samples("fit", arg, x)
    y_arr = np.asarray(y)
    if y_arr.ndim == 0 or y_arr.shape[0] != n:
        raise fail("fit", f"{arg} and its labels", "must have the same number of samples",
                   f"{n} inputs and {y_arr.shape[0] if y_arr.ndim else 'scalar'} labels")
    out = _infer(model, params, _take(x, slice(0, 1)), state)
    if isinstance(out, np.ndarray):
        probe = np.full((n, *out.shape[1:]), 0.5, out.dtype)
        try:
            loss.apply(probe, y)
        except (ValueError, TypeError) as err:
            raise type(err)(f"fit: labels for {arg} do not fit the model's output of shape "
                            f"(batch, {', '.join(map(str, out.shape[1:]))}): {err}") from err
    return n


def fit(model: Layer, loss: Loss, optimizer: Any, params: PyTree, data: tuple[Any, Any], *,
        epochs: int, batch_size: int = 32, key: Key,
        validation: tuple[Any, Any] | None = None, metrics: Sequence[Metric] = (),
        callbacks: Sequence[Callback | Callable[[EpochInfo], Any]] = (),
        progress: bool = True, sample_weight: Any = None, class_weight: Any = None,
        opt_state: Any = None, initial_epoch: int = 0, shuffle: bool = True,
        model_state: Any = None, _shards: Shards | None = None) -> FitResult:
    """Train ``model`` on ``data = (x, y)`` with mini-batch gradient steps.

    Each epoch shuffles the samples (from ``key``), takes steps of
    ``batch_size`` samples (the last batch may be smaller), and records the
    mean training loss and metrics over the epoch (metrics on the training
    predictions, dropout active) and, with ``validation=(x_val, y_val)``,
    the validation loss and metrics in inference mode. Inputs and float
    targets are cast once to the params' dtype.

    Args:
        model, loss: the network and its loss.
        optimizer: an ``nnfunc.optim`` optimizer (``init``/``update``).
        params: the starting params (from ``model.init``).
        data: ``(x, y)`` with the same number of samples.
        epochs: train until this many epochs are complete.
        batch_size: samples per step.
        key: the run's randomness (shuffling, dropout).
        validation: optional ``(x_val, y_val)``.
        metrics: functions ``(y_pred, y_true) -> float``; their ``__name__``
            is the history key (e.g. :func:`nnfunc.metrics.accuracy`).
        callbacks: :mod:`nnfunc.callbacks` callbacks, or plain callables
            ``f(info) -> None | Decision`` called after each epoch.
        progress: show a progress bar on stderr (one line per epoch when
            stderr is not a terminal).
        sample_weight: ``(n,)`` weights of the training samples.
        class_weight: ``{class: weight}`` for classification labels.
        opt_state, initial_epoch: resume from a saved optimizer state at the
            epoch it was saved after.
        shuffle: shuffle the samples each epoch.
        model_state: a stateful model's state (required for one: from
            ``model.init_with_state``, or saved with the params to resume);
            each step updates it, validation reads it.
        _shards: private, for :func:`nnfunc.distributed.fit` (the same loop
            on several processes).

    Returns:
        A :class:`FitResult` ``(params, opt_state, history, epoch,
        model_state)``.

    Raises:
        ValueError: inputs and labels of different lengths, ``batch_size``
            or ``epochs`` not positive, labels that do not fit the model's
            output — all before the first step.
    """
    _check_model_and_loss("fit", model, loss)
    _check_optimizer("fit", optimizer)
    random.check_key(key, "fit")
    bs = positive_int(batch_size, "fit", "batch_size")
    epochs = non_negative_int(epochs, "fit", "epochs")
    initial_epoch = non_negative_int(initial_epoch, "fit", "initial_epoch")
    progress = flag(progress, "fit", "progress")
    shuffle = flag(shuffle, "fit", "shuffle")
    _check_metrics("fit", metrics)
    if isinstance(callbacks, Callback) or not isinstance(callbacks, (list, tuple)):
        raise type_fail("fit", "callbacks", "must be a list of callbacks (wrap one in a list)",
                        type(callbacks).__name__)
    if not isinstance(data, tuple) or len(data) != 2:
        raise type_fail("fit", "data", "must be a pair (x, y)", describe(data))
    _input_arrays("fit", "data[0]", data[0])
    stateful = is_stateful(model)
    model_state = _model_state("fit", model, model_state)
    dtype = _float_dtype(params)
    # inputs become the params' dtype (integer ids stay integers for a model that
    # takes them); only float targets are cast (integer class labels stay integers)
    x = _fit_inputs(model, params, data[0], dtype, model_state)
    y = _cast_inputs(np.asarray(data[1]), dtype, "f")
    n = _check_fit_data(model, loss, params, x, y, "x", model_state)
    if validation is not None:
        if not isinstance(validation, tuple) or len(validation) != 2:
            raise type_fail("fit", "validation", "must be a pair (x_val, y_val)",
                            describe(validation))
        _input_arrays("fit", "validation[0]", validation[0])
        validation = (_fit_inputs(model, params, validation[0], dtype, model_state),
                      _cast_inputs(np.asarray(validation[1]), dtype, "f"))
        _check_fit_data(model, loss, params, validation[0], validation[1], "validation",
                        model_state)
    weights = None
    if sample_weight is not None:
        if np.asarray(sample_weight).dtype.kind not in "iuf":
            raise type_fail("fit", "sample_weight", "must be a numeric array",
                            describe(sample_weight))
        weights = _weights("fit", sample_weight, n, np.float64)
    if class_weight is not None:
        cw = _class_sample_weights(class_weight, y, n, _classes(model, params, x))
        weights = cw if weights is None else weights * cw
        if not weights.sum() > 0:
            raise fail("fit", "class_weight", "must give some sample a positive weight (with "
                       "sample_weight)", "total weight 0")
    cbs = [as_callback(c) for c in callbacks]
    if _shards is not None and not _shards.main:
        cbs = [c for c in cbs if not c.rank0_only]
    cb_states = [c.init() for c in cbs]
    state = optimizer.init(params) if opt_state is None else opt_state
    if opt_state is not None and state_params(opt_state) is not None:
        state = _with_params("fit", opt_state, params)
    history: dict[str, list[float]] = {}
    steps = math.ceil(n / bs)
    display = Progress(epochs, steps, enabled=progress)
    names = [_metric_name(m) for m in metrics]
    epoch = int(initial_epoch)
    # Within an epoch, every step after the first may overwrite the state the
    # previous step made, which nobody else has seen; the first step of each
    # epoch is pure, so the caller's params and whatever the callbacks kept
    # at the last epoch's end stay untouched.
    update_own = update_fn(optimizer, donate=True)
    batch = (_batch_step if _shards is None else _shards.batch)(model, loss, x, y, bool(metrics))
    validate = evaluate if _shards is None else _shards.evaluate
    own = workspace.Workspace()  # the steps' arrays, reused from one step to the next
    keyed = uses_key(model)  # a model that reads no key (no dropout) gets none: same results
    while epoch < epochs:
        start = time.perf_counter()
        k_perm, k_steps = random.split(random.fold_in(key, epoch))
        order = random.permutation(k_perm, n) if shuffle else np.arange(n)
        total, sums = 0.0, dict.fromkeys(names, 0.0)
        weight, counted = 0.0, 0  # the epoch's total sample weight; samples in the metrics
        for i in range(steps):
            idx = order[i * bs:(i + 1) * bs]
            wb = None if weights is None else weights[idx]
            batch_weight = float(len(idx)) if wb is None else float(wb.sum())
            if batch_weight == 0.0:  # a batch of zero weight contributes nothing: no step
                continue
            token = workspace.enter(own)
            try:
                value, grads, y_pred, yb, model_state = batch(
                    params, model_state, idx, wb, random.fold_in(k_steps, i) if keyed else None)
                state, params = (update_own if i else optimizer.update)(state, grads)
            finally:
                workspace.leave(token)
            # the epoch loss is Σ w ℓ / Σ w over the epoch: batch means weighted by their weight
            total += float(value) * batch_weight
            weight += batch_weight
            counted += len(idx)
            for name, m in zip(names, metrics):
                sums[name] += float(m(y_pred, yb)) * len(idx)
            display.step(epoch, i + 1, {"loss": total / weight})
        logs = {"loss": total / weight if weight else math.nan,
                **{k: v / counted if counted else math.nan for k, v in sums.items()}}
        if validation is not None:
            val = validate(model, loss, params, validation[0], validation[1],
                           batch_size=max(bs, 256), metrics=metrics,
                           model_state=model_state if stateful else None)
            logs.update({f"val_{k}": v for k, v in val.items()})
        logs["time"] = time.perf_counter() - start
        if _shards is not None:
            logs = _shards.agree(epoch, logs, (params, state, model_state))
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        epoch += 1
        display.epoch_end(epoch - 1, logs)
        info = EpochInfo(epoch, logs, history, params, state,
                         model_state if stateful else None)
        stop = False
        for j, cb in enumerate(cbs):
            cb_states[j], decision = cb.on_epoch_end(cb_states[j], info)
            info, stop = _apply(decision, info, stop)
        params, state = info.params, info.opt_state
        model_state = info.model_state if stateful else ()
        if _shards is not None:
            _shards.barrier()
        if stop:
            break
    info = EpochInfo(epoch, {}, history, params, state, model_state if stateful else None)
    for j, cb in enumerate(cbs):
        info, _ = _apply(cb.on_train_end(cb_states[j], info), info, False)
    if _shards is not None:
        _shards.barrier()
    display.close()
    return FitResult(info.params, info.opt_state, history, epoch, info.model_state)


def _apply(decision: Decision | None, info: EpochInfo, stop: bool) -> tuple[EpochInfo, bool]:
    """``info`` with what ``decision`` replaces (params, optimizer or model state).

    New params go into the optimizer state too (the next update starts from the
    state's params), so ``FitResult.params`` and ``optim.params_of(FitResult.opt_state)``
    always agree."""
    if decision is None:
        return info, stop
    params, state = info.params, info.opt_state
    if decision.opt_state is not None:
        state = decision.opt_state
        held = state_params(state)
        params = held if decision.params is None and held is not None else params
    if decision.params is not None:
        params = decision.params
        state = _with_params("fit: a callback's Decision(params=...)", state, params)
    return info._replace(
        params=params, opt_state=state,
        model_state=info.model_state if decision.model_state is None
        else decision.model_state), stop or decision.stop
