"""Adam's update as one compiled loop, when Numba is installed (the ``fast`` extra).

NumPy applies one operation per call, so :func:`nnfunc.optim._adam._adam_chunk`
makes a dozen passes over every chunk, each at NumPy's speed for one
operation: 2.4 ns an element on this project's benchmark VM with the data in
cache, 3.9 ns from memory. Numba compiles the whole rule into one loop that
reads ``p, g, m, v`` once and writes the new ``p, m, v`` once (1.1 ns an
element). For element ``i``, with the step's constants
``k = (β₁, 1-β₁, β₂, 1-β₂, lr_hat, eps_hat, decay)`` in the leaves' dtype::

    m' = m·β₁ + g·(1-β₁)
    v' = v·β₂ + (g·g)·(1-β₂)
    p' = p·decay - (m' / (√v' + eps_hat))·lr_hat

which are the NumPy kernel's operations in its order, each rounded to the
dtype (the NumPy kernel skips ``p·decay`` when decay is 1; ``p·1`` is ``p``).
Numba without ``fastmath`` neither fuses a multiply into an add nor
reorders, and its square root and division are IEEE's, so both kernels give
the same bits (``tests/test_optim_compiled.py`` checks it).

Numba is imported, and the loops compiled (or read back from Numba's
on-disk cache), the first time an update runs — never by ``import nnfunc``.
Without Numba, or with the environment variable ``NNFUNC_NUMBA=0``, Adam
keeps to NumPy; so does an update of fewer than :data:`MIN_SIZE` params,
whose per-step saving would not pay for Numba's start-up. Only float32 and
float64 leaves are compiled for; others take NumPy's path.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from nnfunc.typing import Array

__all__ = ["DTYPES", "MIN_SIZE", "Kernels", "kernels", "wanted"]

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes the loops are compiled for (native byte order)."""

MIN_SIZE = 1 << 16
"""Updates of fewer elements keep to NumPy (and never import Numba). Numba's
import and the loops' loading cost a process ~0.85 s and ~135 MiB once, and
below 65,536 params the loop saves at most ~0.1 ms a step: the digits
example's MLP (50,826 params) updates in 185 instead of 285 µs, so it would
need ~8,500 steps to earn the start-up back and runs 1,520 (3.36 s with the
loop, 2.80 s without). On a 668k-param MLP it saves 1.4 ms a step."""


def _in_place(p: Array, g: Array, m: Array, v: Array, k: Array) -> None:  # pragma: no cover
    # compiled by Numba (see kernels); reads p, g, m, v at i, then writes p, m, v at i
    b1, c1, b2, c2, lr, eps, decay = k[0], k[1], k[2], k[3], k[4], k[5], k[6]
    for i in range(p.shape[0]):
        gi = g[i]
        mi = m[i] * b1 + gi * c1
        vi = v[i] * b2 + (gi * gi) * c2
        m[i] = mi
        v[i] = vi
        p[i] = p[i] * decay - (mi / (np.sqrt(vi) + eps)) * lr


def _into(p: Array, g: Array, m: Array, v: Array, p2: Array, m2: Array, v2: Array,
          k: Array) -> None:  # pragma: no cover
    # compiled by Numba (see kernels); the same rule into other buffers (see Kernels for
    # why it is not one loop with the one above)
    b1, c1, b2, c2, lr, eps, decay = k[0], k[1], k[2], k[3], k[4], k[5], k[6]
    for i in range(p.shape[0]):
        gi, pi = g[i], p[i]
        mi = m[i] * b1 + gi * c1
        vi = v[i] * b2 + (gi * gi) * c2
        m2[i] = mi
        v2[i] = vi
        p2[i] = pi * decay - (mi / (np.sqrt(vi) + eps)) * lr


class Kernels(NamedTuple):
    """The compiled loops.

    ``in_place(p, g, m, v, k)`` overwrites ``p, m, v``; ``into(p, g, m, v,
    p2, m2, v2, k)`` writes the new values into ``p2, m2, v2``. All arrays
    are 1-D, of one dtype in :data:`DTYPES` and one length (the params and
    moments contiguous; a grad may be a strided view, compiled for apart);
    ``k`` holds the seven constants in that dtype (see the module docstring).
    Two loops rather than one: for a loop whose outputs may be its inputs the
    compiler must check for overlap at run time, finds it, and gives up
    vectorising, so the in-place update has a loop of its own.
    """

    in_place: Callable[[Array, Array, Array, Array, Array], None]
    into: Callable[[Array, Array, Array, Array, Array, Array, Array, Array], None]


def wanted() -> bool:
    """Whether the environment leaves the compiled loops on (``NNFUNC_NUMBA`` is not ``0``)."""
    return os.environ.get("NNFUNC_NUMBA", "1").strip() != "0"


@lru_cache(maxsize=1)
def kernels() -> Kernels | None:
    """The compiled loops, or ``None`` without Numba or with ``NNFUNC_NUMBA=0``.

    Compiled lazily, for each combination of dtype and read-only inputs on
    first use; ``cache=True`` keeps the machine code in Numba's cache
    directory, so a later process loads it instead of compiling again. Where
    Numba finds no writable cache directory (it raises ``RuntimeError`` at
    once: a read-only install with no usable ``$HOME`` or ``NUMBA_CACHE_DIR``),
    the loops are compiled without a cache, in every process anew.
    ``error_model="numpy"``: a division by zero gives ``inf``/``nan`` as in
    NumPy instead of a per-element check (which would stop vectorisation).
    """
    if not wanted():
        return None
    try:
        numba: Any = importlib.import_module("numba")
    except ImportError:
        return None
    options = {"nogil": True, "error_model": "numpy", "boundscheck": False}
    try:
        jit = numba.njit(cache=True, **options)
        return Kernels(jit(_in_place), jit(_into))
    except RuntimeError:  # "cannot cache function ...: no locator available for file ..."
        jit = numba.njit(cache=False, **options)
        return Kernels(jit(_in_place), jit(_into))
