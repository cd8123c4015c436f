"""Adam's update as one compiled loop: the C extension ``nnfunc.optim._fused``.

NumPy applies one operation per call, so :func:`nnfunc.optim._adam._adam_chunk`
makes a dozen passes over every chunk, and pays NumPy's ~1 µs per call a dozen
times however small the model. The loop in ``_fused.c`` reads ``p, g, m, v``
once and writes the new ``p, m, v`` once: on the benchmark VM a 668k-param
float32 update takes ~0.54 ms instead of ~2.3 ms, a 2,410-param one ~2 µs
instead of ~16 µs. For element ``i``, with the step's constants
``k = (β₁, 1-β₁, β₂, 1-β₂, lr_hat, eps_hat, decay)`` in the leaves' dtype::

    m' = m·β₁ + g·(1-β₁)
    v' = v·β₂ + (g·g)·(1-β₂)
    p' = p·decay - (m' / (√v' + eps_hat))·lr_hat

which are the NumPy kernel's operations in its order, each rounded to the
dtype (the NumPy kernel skips ``p·decay`` when decay is 1; ``p·1`` is ``p``).
The build turns off fused multiply-add and keeps IEEE arithmetic, and square
root and division are correctly rounded, so both kernels give the same bits
(``tests/test_optim_compiled.py`` checks it).

The extension is built by ``pip install`` wherever a C compiler is found
(``setup.py``); it needs no NumPy headers (the arrays come through the buffer
protocol), loads in well under a millisecond and adds a few hundred KiB to a
process. Where it was not built, or with the environment variable
``NNFUNC_COMPILED=0``, Adam keeps to NumPy's kernel. Only float32 and float64
leaves (native byte order) are compiled for; others take NumPy's path.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from nnfunc.typing import Array

__all__ = ["DTYPES", "Kernels", "available", "kernels", "wanted"]

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes the loops are compiled for (native byte order)."""


class Kernels(NamedTuple):
    """The compiled loops.

    ``in_place(p, g, m, v, k)`` overwrites ``p, m, v``; ``into(p, g, m, v,
    p2, m2, v2, k)`` writes the new values into ``p2, m2, v2``. All arrays
    are 1-D, of one dtype in :data:`DTYPES` and one length, the written ones
    contiguous (the others may be strided views); ``k`` holds the seven
    constants in that dtype (see the module docstring). Inputs that overlap
    outputs are allowed (each element's inputs are read before its outputs
    are written), at the speed of an element-by-element loop; the usual
    case, distinct contiguous arrays, runs vectorised.

    ``g`` may instead be a list of C-contiguous arrays of any shapes (the
    leaves' grads) whose elements add up to ``p``'s length: they are read
    where they lie, as if laid end to end, by the vectorised loop. Where
    that loop cannot take them (a piece not C-contiguous or overlapping an
    output, or ``p, m, v`` themselves not fit for it) the call does nothing
    and returns ``NotImplemented``; otherwise it returns ``None``.
    """

    in_place: Callable[[Array, Array | list[Array], Array, Array, Array], Any]
    into: Callable[[Array, Array | list[Array], Array, Array, Array, Array, Array, Array], Any]


def wanted() -> bool:
    """Whether the environment leaves the compiled loops on (``NNFUNC_COMPILED`` is not ``0``)."""
    return os.environ.get("NNFUNC_COMPILED", "1").strip() != "0"


def available() -> bool:
    """Whether the extension was built (whatever ``NNFUNC_COMPILED`` says)."""
    return _module() is not None


@lru_cache(maxsize=1)
def _module() -> Any:
    try:
        return importlib.import_module("nnfunc.optim._fused")
    except ImportError:  # installed without a C compiler
        return None


@lru_cache(maxsize=1)
def kernels() -> Kernels | None:
    """The compiled loops, or ``None`` where the extension was not built or
    ``NNFUNC_COMPILED=0`` (read once per process)."""
    fused = _module()
    if fused is None or not wanted():
        return None
    return Kernels(fused.adam_in_place, fused.adam_into)
