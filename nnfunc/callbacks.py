"""Callbacks for :func:`nnfunc.train.fit`: pure functions of their own state.

A :class:`Callback` is ``init() -> state``,
``on_epoch_end(state, info) -> (state, decision)`` and
``on_train_end(state, info) -> decision``. ``info`` is an :class:`EpochInfo`
(epochs completed, this epoch's logs, the history, params, optimizer
state and model state); a :class:`Decision` can stop training or replace the
params, the optimizer state or the model state. ``fit`` threads each
callback's state through the epochs, so a callback holds nothing between
runs and can be reused.

A plain callable ``f(info)`` is a callback too: it is called after every
epoch and may return ``None`` or a :class:`Decision`.

>>> cb = early_stopping("val_loss", patience=2)
>>> state = cb.init()
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, NamedTuple

from nnfunc import optim
from nnfunc._validate import describe, fail, finite_float, flag, positive_int, type_fail
from nnfunc.typing import PyTree

__all__ = ["Callback", "Decision", "EpochInfo", "as_callback", "checkpoint", "early_stopping",
           "reduce_lr_on_plateau", "terminate_on_nan"]


class EpochInfo(NamedTuple):
    """What a callback sees after an epoch (``epoch`` counts completed epochs).

    ``model_state`` is a stateful model's state after the epoch (``None`` for
    a stateless model).
    """

    epoch: int
    logs: dict[str, float]
    history: dict[str, list[float]]
    params: PyTree
    opt_state: PyTree
    model_state: PyTree = None


class Decision(NamedTuple):
    """A callback's verdict: stop, and/or replace the params, optimizer or model state."""

    stop: bool = False
    params: PyTree = None
    opt_state: PyTree = None
    model_state: PyTree = None


def _no_end(state: Any, info: EpochInfo) -> Decision | None:
    return None


class Callback(NamedTuple):
    """``init``, ``on_epoch_end`` and (optionally) ``on_train_end``, all pure.

    ``rank0_only`` marks a callback that only writes (a file, a log) and
    never decides: in data-parallel training (:mod:`nnfunc.distributed`)
    only rank 0 runs it, as :func:`checkpoint` does.
    """

    init: Callable[[], Any]
    on_epoch_end: Callable[[Any, EpochInfo], tuple[Any, Decision | None]]
    on_train_end: Callable[[Any, EpochInfo], Decision | None] = _no_end
    rank0_only: bool = False


def as_callback(cb: Any) -> Callback:
    """``cb`` itself if it is a :class:`Callback`; a plain callable becomes one."""
    if isinstance(cb, Callback):
        return cb
    if callable(cb):
        def on_epoch_end(state: None, info: EpochInfo) -> tuple[None, Decision | None]:
            out = cb(info)
            if out is not None and not isinstance(out, Decision):
                raise type_fail("fit", "callback result", "must be None or a Decision",
                                describe(out))
            return None, out

        return Callback(lambda: None, on_epoch_end)
    raise type_fail("fit", "callbacks", "must be Callbacks or callables", describe(cb))


def _monitored(component: str, monitor: str, logs: dict[str, float]) -> float:
    if monitor not in logs:
        raise fail(component, "monitor", f"must be one of the logged values {sorted(logs)}",
                   repr(monitor))
    return logs[monitor]


def _monitor(component: str, monitor: Any) -> str:
    if not isinstance(monitor, str):
        raise type_fail(component, "monitor", "must be a str (a history key such as "
                        "'val_loss')", describe(monitor))
    return monitor


def _better(mode: str, monitor: str,
            component: str = "callbacks") -> Callable[[float, float, float], bool]:
    if not isinstance(mode, str):
        raise type_fail(component, "mode", "must be 'min', 'max' or 'auto'", describe(mode))
    if mode == "auto":
        mode = "max" if any(s in monitor for s in ("acc", "r2")) else "min"
    if mode == "min":
        return lambda new, best, delta: new < best - delta
    if mode == "max":
        return lambda new, best, delta: new > best + delta
    raise fail(component, "mode", "must be 'min', 'max' or 'auto'", repr(mode))


class _Best(NamedTuple):
    value: float
    epoch: int
    params: PyTree
    wait: int
    model_state: PyTree = None


def early_stopping(monitor: str = "val_loss", *, patience: int = 5, min_delta: float = 0.0,
                   mode: str = "auto", restore_best: bool = True) -> Callback:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Improvement means lower (``mode="min"``) or higher (``"max"``); ``"auto"``
    picks max for accuracy and R² names, else min. With ``restore_best`` the
    params of the best epoch (and a stateful model's state of that epoch) are
    restored when training ends — whether this callback stopped it or the
    epochs ran out.

    Raises:
        ValueError: bad ``patience``/``min_delta``/``mode``; at the first
            epoch, a ``monitor`` that is not logged.
    """
    monitor = _monitor("early_stopping", monitor)
    patience = positive_int(patience, "early_stopping", "patience")
    delta = finite_float(min_delta, "early_stopping", "min_delta", lo=0.0)
    restore_best = flag(restore_best, "early_stopping", "restore_best")
    better = _better(mode, monitor, "early_stopping")

    def init() -> _Best | None:
        return None

    def on_epoch_end(best: _Best | None, info: EpochInfo) -> tuple[_Best, Decision | None]:
        value = _monitored("early_stopping", monitor, info.logs)
        if best is None or (math.isfinite(value) and better(value, best.value, delta)):
            return _Best(value, info.epoch, info.params, 0, info.model_state), None
        waited = best._replace(wait=best.wait + 1)
        return waited, (Decision(stop=True) if waited.wait >= patience else None)

    def on_train_end(best: _Best | None, info: EpochInfo) -> Decision | None:
        if restore_best and best is not None:
            return Decision(params=best.params, model_state=best.model_state)
        return None

    return Callback(init, on_epoch_end, on_train_end)


class _Plateau(NamedTuple):
    best: float
    wait: int
    cooldown: int


def reduce_lr_on_plateau(monitor: str = "val_loss", *, factor: float = 0.1, patience: int = 3,
                         min_delta: float = 0.0, min_lr: float = 0.0, cooldown: int = 0,
                         mode: str = "auto") -> Callback:
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    After ``patience`` epochs without an improvement of ``min_delta``, the
    optimizer state's learning-rate scale is multiplied by ``factor`` (see
    :func:`nnfunc.optim.scale_lr`; it works with schedules too), never
    taking the learning rate below ``min_lr``; then ``cooldown`` epochs pass
    before counting again.

    Raises:
        ValueError: ``factor`` outside (0, 1), bad ``patience``/``min_delta``/``min_lr``.
    """
    monitor = _monitor("reduce_lr_on_plateau", monitor)
    f = finite_float(factor, "reduce_lr_on_plateau", "factor", lo=0.0, hi=1.0, lo_open=True,
                     hi_open=True)
    patience = positive_int(patience, "reduce_lr_on_plateau", "patience")
    delta = finite_float(min_delta, "reduce_lr_on_plateau", "min_delta", lo=0.0)
    floor = finite_float(min_lr, "reduce_lr_on_plateau", "min_lr", lo=0.0)
    if isinstance(cooldown, bool) or not isinstance(cooldown, int) or cooldown < 0:
        raise fail("reduce_lr_on_plateau", "cooldown", "must be an int >= 0", cooldown)
    better = _better(mode, monitor, "reduce_lr_on_plateau")

    def on_epoch_end(state: _Plateau | None,
                     info: EpochInfo) -> tuple[_Plateau, Decision | None]:
        value = _monitored("reduce_lr_on_plateau", monitor, info.logs)
        if state is None or better(value, state.best, delta):
            return _Plateau(value, 0, max(0, state.cooldown - 1) if state else 0), None
        if state.cooldown > 0:
            return state._replace(cooldown=state.cooldown - 1), None
        if state.wait + 1 < patience:
            return state._replace(wait=state.wait + 1), None
        lr = optim.lr_of(info.opt_state)
        new_lr = max(lr * f, floor)
        fresh = _Plateau(state.best, 0, cooldown)
        if lr <= 0 or new_lr >= lr:
            return fresh, None
        return fresh, Decision(opt_state=optim.scale_lr(info.opt_state, new_lr / lr))

    return Callback(lambda: None, on_epoch_end)


def terminate_on_nan(monitor: str = "loss") -> Callback:
    """Stop training as soon as ``monitor`` is NaN or infinite."""
    monitor = _monitor("terminate_on_nan", monitor)

    def on_epoch_end(state: None, info: EpochInfo) -> tuple[None, Decision | None]:
        value = _monitored("terminate_on_nan", monitor, info.logs)
        return None, (Decision(stop=True) if not math.isfinite(value) else None)

    return Callback(lambda: None, on_epoch_end)


def checkpoint(path: str | os.PathLike[str], *, every: int = 1) -> Callback:
    """Save the training state to ``path`` every ``every`` epochs (and at the end).

    Saves ``{"params", "opt_state", "epoch", "history"}`` (plus
    ``"model_state"`` for a stateful model) with :func:`nnfunc.io.save`
    (atomically: a crash mid-write keeps the previous file). Resume with
    ``fit(..., params=ck["params"], opt_state=ck["opt_state"],
    initial_epoch=ck["epoch"])`` (and ``model_state=ck["model_state"]``) and
    the same key: the run continues bit-identically. In
    :func:`nnfunc.distributed.fit` only rank 0 writes the file.
    """
    every = positive_int(every, "checkpoint", "every")
    if not isinstance(path, (str, os.PathLike)):
        raise type_fail("checkpoint", "path", "must be a str or os.PathLike", describe(path))

    def save(info: EpochInfo) -> None:
        from nnfunc import io  # on use: fit needs the checkpoint module only to save

        saved = {"params": info.params, "opt_state": info.opt_state, "epoch": info.epoch,
                 "history": info.history}
        if info.model_state is not None:
            saved["model_state"] = info.model_state
        io.save(path, saved)

    def on_epoch_end(last: int, info: EpochInfo) -> tuple[int, Decision | None]:
        if info.epoch % every == 0:
            save(info)
            return info.epoch, None
        return last, None

    def on_train_end(last: int, info: EpochInfo) -> Decision | None:
        if last != info.epoch and info.epoch > 0:
            save(info)
        return None

    return Callback(lambda: -1, on_epoch_end, on_train_end, rank0_only=True)
