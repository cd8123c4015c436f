"""Argument checks shared by every public component.

Every message has the same shape, ``"<component>: <argument> <expected>; got
<actual>"``, so a user reading a traceback knows which call, which argument,
and what to change.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nnfunc.typing import Array


def fail(component: str, arg: str, expected: str, got: object) -> ValueError:
    """A ``ValueError`` in nnfunc's message format (raise the result)."""
    return ValueError(f"{component}: {arg} {expected}; got {got}")


def type_fail(component: str, arg: str, expected: str, got: object) -> TypeError:
    """A ``TypeError`` in nnfunc's message format (raise the result)."""
    return TypeError(f"{component}: {arg} {expected}; got {got}")


def describe(x: object) -> str:
    """A short description of a value for error messages."""
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"


def float_array(x: Any, component: str, arg: str) -> Array:
    """``x`` as a floating-point ndarray (no copy when it already is one)."""
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return x
    if isinstance(x, (tuple, list, dict)) and not isinstance(x, np.ndarray):
        raise type_fail(component, arg, "must be an array", describe(x))
    arr = np.asarray(x)
    if arr.dtype.kind in "iub":
        return arr.astype(np.float64)
    if arr.dtype.kind != "f":
        raise type_fail(component, arg, "must be a floating-point array", describe(x))
    return arr


def positive_int(value: Any, component: str, arg: str) -> int:
    """``value`` as an ``int`` > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise type_fail(component, arg, "must be a positive int", describe(value))
    if value <= 0:
        raise fail(component, arg, "must be > 0", value)
    return int(value)


def finite_float(value: Any, component: str, arg: str, *, lo: float = -math.inf,
                 hi: float = math.inf, lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite ``float`` inside the given interval."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise type_fail(component, arg, "must be a real number", describe(value))
    v = float(value)
    lo_ok = v > lo if lo_open else v >= lo
    hi_ok = v < hi if hi_open else v <= hi
    if not math.isfinite(v) or not (lo_ok and hi_ok):
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise fail(component, arg, f"must be finite and in {left}{lo}, {hi}{right}", v)
    return v


def flag(value: Any, component: str, arg: str) -> bool:
    """``value``, which must be a ``bool`` (``"no"`` or ``0`` is not a flag)."""
    if not isinstance(value, (bool, np.bool_)):
        raise type_fail(component, arg, "must be a bool (True or False)", describe(value))
    return bool(value)


def non_negative_int(value: Any, component: str, arg: str) -> int:
    """``value`` as an ``int`` >= 0 (a ``bool`` or a float is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise type_fail(component, arg, "must be an int >= 0", describe(value))
    if value < 0:
        raise fail(component, arg, "must be >= 0", value)
    return int(value)


def real_number(value: Any) -> bool:
    """Whether ``value`` is a real number: a Python or NumPy int or float, or a 0-d
    numeric array (never a ``bool``, a complex number or a string)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return True
    return isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iuf"


def floating_dtype(component: str, dtype: Any, note: str = "") -> np.dtype[Any]:
    """``dtype`` as a floating NumPy dtype, else a ``TypeError`` naming ``component``.

    ``note`` is added to the expectation (say why an integer dtype is wrong).
    """
    dt: np.dtype[Any] | None
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise type_fail(component, "dtype", f"must be a floating NumPy dtype such as "
                        f"np.float32{note}", repr(dtype))
    return dt
