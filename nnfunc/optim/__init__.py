"""Optimizers as pure ``(init, update)`` pairs, with transforms, schedules and penalties.

``init(params) -> state``; ``update(state, grads) -> (state, params)``. The
state is a pytree holding the params, the step count, the last learning rate
and the rule's slots; read them with :func:`params_of`, :func:`step_of`,
:func:`lr_of` (and swap the params with :func:`replace_params`). Compose
gradient transforms in front with :func:`chain`.

>>> import numpy as np
>>> from nnfunc import optim
>>> opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adam(1e-3))
>>> state = opt.init({"w": np.zeros(3, np.float32)})
>>> state, params = opt.update(state, {"w": np.ones(3, np.float32)})
>>> optim.step_of(state), params["w"].dtype
(1, dtype('float32'))
"""

from __future__ import annotations

from nnfunc.optim import schedules
from nnfunc.optim._adam import AdamSlots, adam, adamw
from nnfunc.optim.base import (
    Optimizer,
    OptState,
    Schedule,
    Wrapper,
    WrapperState,
    chain,
    lr_of,
    params_of,
    replace_params,
    scale_lr,
    step_of,
    update_fn,
)
from nnfunc.optim.optimizers import (
    AdaDeltaSlots,
    MomentumSlots,
    NoSlots,
    SquareSlots,
    adadelta,
    adagrad,
    momentum,
    rmsprop,
    sgd,
)
from nnfunc.optim.regularizers import l1_penalty, l2_penalty
from nnfunc.optim.transforms import (
    accumulate,
    clip_by_global_norm,
    clip_by_value,
    freeze,
    l1,
    l2,
    skip_nonfinite,
)

__all__ = [
    "AdaDeltaSlots", "AdamSlots", "MomentumSlots", "NoSlots", "OptState", "Optimizer",
    "Schedule", "SquareSlots", "Wrapper", "WrapperState", "accumulate", "adadelta", "adagrad",
    "adam", "adamw", "chain", "clip_by_global_norm", "clip_by_value", "freeze", "l1",
    "l1_penalty", "l2", "l2_penalty", "lr_of", "momentum", "params_of", "replace_params",
    "rmsprop", "scale_lr",
    "schedules", "sgd", "skip_nonfinite", "step_of", "update_fn",
]
