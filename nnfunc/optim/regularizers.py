"""L1 and L2 penalties as functions of the params: ``(penalty, grads)``.

Add the penalty to the loss you report and the grads to the loss's grads
(:func:`nnfunc.tree.add`), or let :func:`~nnfunc.optim.transforms.l1` /
:func:`~nnfunc.optim.transforms.l2` add the grads inside an optimizer chain;
both follow the same formulas.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnfunc import tree
from nnfunc._validate import describe, finite_float, type_fail
from nnfunc.optim.transforms import Where, select
from nnfunc.typing import PyTree

__all__ = ["l1_penalty", "l2_penalty"]


def _penalty(component: str, params: PyTree, lam: float, where: Where,
             value: Any, grad: Any) -> tuple[float, PyTree]:
    lam_ = finite_float(lam, component, "lam", lo=0.0)
    leaves, treedef = tree.flatten(params)
    for path, leaf in tree.leaves_with_path(params):
        if not (isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f"):
            raise type_fail(component, tree.keystr(path, "params"),
                            "must be a floating-point array", describe(leaf))
    on = select(params, where, component)
    total = sum(float(value(p)) for p, sel in zip(leaves, on) if sel)
    grads = [grad(p) * p.dtype.type(lam_) if sel else np.zeros_like(p)
             for p, sel in zip(leaves, on)]
    return lam_ * total, tree.unflatten(treedef, grads)


def l1_penalty(params: PyTree, lam: float, where: Where = None) -> tuple[float, PyTree]:
    """``(λ Σ |θ|, λ sign(θ))`` over the selected leaves (others: zero grads).

    >>> import numpy as np
    >>> penalty, grads = l1_penalty({"w": np.array([1.0, -2.0])}, 0.5)
    >>> penalty, grads["w"].tolist()
    (1.5, [0.5, -0.5])
    """
    return _penalty("l1_penalty", params, lam, where, lambda p: np.abs(p).sum(), np.sign)


def l2_penalty(params: PyTree, lam: float, where: Where = None) -> tuple[float, PyTree]:
    """``(λ Σ θ², 2λθ)`` over the selected leaves (others: zero grads).

    >>> import numpy as np
    >>> penalty, grads = l2_penalty({"w": np.array([1.0, -2.0]), "b": np.ones(1)}, 0.5, "w")
    >>> penalty, grads["w"].tolist(), grads["b"].tolist()
    (2.5, [1.0, -2.0], [0.0])
    """
    return _penalty("l2_penalty", params, lam, where, lambda p: (p * p).sum(),
                    lambda p: 2 * p)
