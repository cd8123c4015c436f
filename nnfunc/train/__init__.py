"""Training: whole-model gradients, one training step, and the ``fit`` loop.

* :func:`value_and_grad` turns a model and a loss into one pure function
  ``(params, x, y, *, key=None, sample_weight=None) -> (loss_value, grads)``.
* :func:`train_step` adds an optimizer: ``(params, opt_state, x, y, *, key=None)
  -> (params, opt_state, loss_value)``, for users who write their own loop.
* :func:`fit` drives epochs of shuffled mini-batches, validation, metrics,
  callbacks and a progress display; :func:`evaluate` and :func:`predict` run
  a model over data in batches.

A stateful model (one with batch norm; see :func:`nnfunc.is_stateful`) has
its model state threaded through all of them, decided once when each is
built from the model: ``value_and_grad`` gives ``f(params, model_state, x, y)
-> (loss, grads, new_model_state)``, ``train_step`` gives ``step(params,
opt_state, model_state, x, y) -> (params, opt_state, model_state, loss)``,
and ``fit``, ``evaluate`` and ``predict`` take ``model_state=`` (required for
such a model, refused for a stateless one). Training steps run in training
mode and return the updated state; evaluation and prediction run in
inference mode with the state given.

All randomness comes from the ``key`` given to ``fit``: epoch ``e`` shuffles
with a key folded from ``(key, e)`` and step ``i`` of it draws dropout masks
from a key folded from that, so the same key gives a bit-identical run, and a
run resumed at epoch ``e`` (with the optimizer state saved there) continues
exactly as the uninterrupted one would.
"""

from __future__ import annotations

from nnfunc.train._fit import FitResult, fit
from nnfunc.train._grad import loss_value_and_grad, train_step, value_and_grad
from nnfunc.train._infer import evaluate, predict

__all__ = ["FitResult", "evaluate", "fit", "loss_value_and_grad", "predict", "train_step",
           "value_and_grad"]
