"""Check any layer's or loss's gradient against finite differences.

This is how nnfunc tests itself, and it is public so that you can test your
own layers the same way:

>>> import numpy as np
>>> from nnfunc import random
>>> from nnfunc.layers import dense
>>> layer = dense(3)
>>> _, params = layer.init(random.key(0), (4,))
>>> report = check_grad(layer, params, np.ones((2, 4)))
>>> report.max_error < 1e-6
True

:func:`check_grad` compares ``layer.grad`` with central finite differences
of ``<dy, layer.apply(params, x)>`` for every entry of every parameter leaf
and of ``x`` (a random subset of ``max_entries`` per leaf for big leaves),
in float64 by default, and checks the transpose identity
``<dy, J v> = <Jᵀ dy, v>`` for a random direction ``v``, which catches a
``grad`` that is right entry by entry yet not the transpose of the forward
map (e.g. a shape-preserving but wrong reduction). :func:`check_loss_grad`
does the same for a loss. On failure both raise :class:`GradCheckError`
naming the worst leaf path and index with both values.

The derivative is the 4-point central stencil
``f'(θ) ≈ [f(θ-2h) - 8f(θ-h) + 8f(θ+h) - f(θ+2h)] / 12h`` with
``h = step · max(1, |θ|)``: its truncation error is ``O(h⁴)``, so a larger
step keeps round-off small. The error of an entry is
``|a - n| / max(|a|, |n|, atol)`` (relative, or absolute below ``atol``).
A stencil that straddles a kink (ReLU at 0, MAE at ``ŷ = y``) measures the
average of two slopes, so test such functions away from their kinks (the
strategies' ``margin``); float32 checks need a step large enough to beat
round-off and are best kept to smooth functions.

Hypothesis strategies for property tests live in
:mod:`nnfunc.testing.strategies` (``layer_inputs``, ``pytrees``,
``probabilities``, ``one_hot_labels``, ...) and need ``hypothesis``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from nnfunc import random, tree
from nnfunc._validate import describe, finite_float, non_negative_int, positive_int, type_fail
from nnfunc.layer import NO_STATE, Layer, apply_with_state, is_stateful
from nnfunc.losses import Loss
from nnfunc.typing import Array, Key, PyTree

__all__ = ["GradCheckError", "GradCheckReport", "Tolerance", "check_grad", "check_loss_grad",
           "numerical_grad", "tolerance"]


class Tolerance(NamedTuple):
    """Finite-difference step and error bounds for one dtype."""

    step: float
    rtol: float
    atol: float


_TOLERANCES = {
    np.dtype(np.float64): Tolerance(step=1e-4, rtol=1e-6, atol=1e-3),
    np.dtype(np.float32): Tolerance(step=1e-2, rtol=1e-2, atol=1e-2),
}


def tolerance(dtype: Any) -> Tolerance:
    """The default :class:`Tolerance` for ``float64`` or ``float32`` checks."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"testing: dtype must be np.float32 or np.float64; got {dtype!r}") \
            from None
    if dt not in _TOLERANCES:
        raise ValueError(f"testing: dtype must be float32 or float64; got {dt}")
    return _TOLERANCES[dt]


def _tolerance(component: str, dtype: Any, step: float | None, rtol: float | None,
               atol: float | None) -> Tolerance:
    """The defaults for ``dtype`` with each given value in their place (``rtol=0`` is
    a tolerance of zero, not the default)."""
    tol = tolerance(dtype)
    return Tolerance(
        tol.step if step is None else finite_float(step, component, "step", lo=0.0,
                                                   lo_open=True),
        tol.rtol if rtol is None else finite_float(rtol, component, "rtol", lo=0.0),
        tol.atol if atol is None else finite_float(atol, component, "atol", lo=0.0,
                                                   lo_open=True))


def _max_entries(component: str, max_entries: Any) -> int | None:
    return None if max_entries is None else positive_int(max_entries, component,
                                                         "max_entries")


class GradCheckReport(NamedTuple):
    """The outcome of a gradient check; ``str()`` gives a readable summary.

    ``max_error`` is the worst entry's error, at ``worst_path``/``worst_index``
    where ``grad`` gave ``analytic`` and finite differences ``numeric``.
    ``transpose_error`` is the relative error of ``<dy, Jv>`` against
    ``<Jᵀdy, v>``; ``checked`` counts the probed entries.
    """

    max_error: float
    worst_path: str
    worst_index: tuple[int, ...]
    analytic: float
    numeric: float
    transpose_error: float
    checked: int
    rtol: float

    @property
    def ok(self) -> bool:
        """Whether both the entry-wise and the transpose check pass."""
        return self.max_error <= self.rtol and self.transpose_error <= self.rtol

    def __str__(self) -> str:
        return (f"max error {self.max_error:.3g} at {self.worst_path}{list(self.worst_index)} "
                f"(grad {self.analytic:.10g}, finite differences {self.numeric:.10g}); "
                f"transpose error {self.transpose_error:.3g}; {self.checked} entries; "
                f"rtol {self.rtol:g}")


class GradCheckError(AssertionError):
    """A gradient disagrees with finite differences (the message says where)."""


def _stencil(f: Callable[[float], float], h: float) -> float:
    return (f(-2 * h) - 8 * f(-h) + 8 * f(h) - f(2 * h)) / (12 * h)


def _probe_indices(size: int, max_entries: int | None, k: Key) -> Array:
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(random.generator(k).choice(size, max_entries, replace=False))


def numerical_grad(f: Callable[[PyTree], float], primals: PyTree, *, step: float = 1e-4,
                   max_entries: int | None = None, key: Key | None = None) -> Any:
    """Central finite-difference gradient of a scalar function of a pytree.

    Returns a tree shaped like ``primals`` (float64 leaves); entries not probed
    (when a leaf has more than ``max_entries``) are NaN. Non-float leaves get
    ``None``. ``f`` must not mutate its argument.

    >>> import numpy as np
    >>> g = numerical_grad(lambda t: float((t["a"] ** 2).sum()), {"a": np.array([1.0, -2.0])})
    >>> np.round(g["a"], 6).tolist()
    [2.0, -4.0]
    """
    if not callable(f):
        raise type_fail("numerical_grad", "f", "must be a callable f(tree) -> float",
                        describe(f))
    step = finite_float(step, "numerical_grad", "step", lo=0.0, lo_open=True)
    max_entries = _max_entries("numerical_grad", max_entries)
    leaves, treedef = tree.flatten(primals)
    keys = random.split(random.key(0) if key is None else key, max(len(leaves), 1))
    out: list[Any] = []
    for i, leaf in enumerate(leaves):
        arr = np.asarray(leaf)
        if arr.dtype.kind != "f":
            out.append(None)
            continue
        grad = np.full(arr.shape, np.nan)
        flat = grad.reshape(-1)
        for j in _probe_indices(arr.size, max_entries, keys[i]):
            idx = np.unravel_index(int(j), arr.shape)
            h = step * max(1.0, abs(float(arr[idx])))

            def shifted(delta: float, idx: tuple[Any, ...] = idx, i: int = i,
                        arr: Array = arr) -> float:
                bumped = arr.copy()
                bumped[idx] += delta
                return f(tree.unflatten(treedef, [*leaves[:i], bumped, *leaves[i + 1:]]))

            flat[j] = _stencil(shifted, h)
        out.append(grad)
    return tree.unflatten(treedef, out)


def _compare(analytic: PyTree, numeric: PyTree, root: str,
             atol: float) -> tuple[float, str, tuple[int, ...], float, float, int]:
    """Worst entry over all leaves: (error, path, index, analytic, numeric, count)."""
    worst: tuple[float, str, tuple[int, ...], float, float, int] = (0.0, root, (), 0.0, 0.0, 0)
    count = 0
    for (path, a), n in zip(tree.leaves_with_path(analytic), tree.leaves(numeric)):
        if n is None:
            continue
        probed = ~np.isnan(n)
        count += int(probed.sum())
        a64 = np.asarray(a, np.float64)
        err = np.where(probed, np.abs(a64 - n) / np.maximum(np.maximum(np.abs(a64),
                                                                       np.abs(n)), atol), 0.0)
        if err.size and (not np.isfinite(err).all() or err.max() > worst[0]):
            j = int(np.argmax(np.where(np.isfinite(err), err, np.inf)))
            idx = tuple(int(i) for i in np.unravel_index(j, err.shape))
            e = float(err.reshape(-1)[j])
            worst = (e if np.isfinite(e) else math.inf, tree.keystr(path, root), idx,
                     float(a64[idx]), float(n[idx]), 0)
    return (*worst[:5], count)


def _check_like(component: str, what: str, got: PyTree, like: PyTree, like_name: str) -> None:
    """``got`` must have the structure, shapes and dtypes of ``like``."""
    try:
        tree.assert_same_structure(like, got, (like_name, what), shapes=True)
    except ValueError as err:
        raise GradCheckError(f"{component}: {what} must be shaped like {like_name}: {err}") \
            from None
    for (path, a), b in zip(tree.leaves_with_path(got), tree.leaves(like)):
        if np.asarray(b).dtype.kind == "f" and np.asarray(a).dtype != np.asarray(b).dtype:
            raise GradCheckError(
                f"{component}: {tree.keystr(path, what)} has dtype {np.asarray(a).dtype} but "
                f"{tree.keystr(path, like_name)} has {np.asarray(b).dtype} (dtype must be kept)")


def _finish(component: str, numeric_parts: list[tuple[PyTree, PyTree, str]], transpose: float,
            tol: Tolerance) -> GradCheckReport:
    best: tuple[float, str, tuple[int, ...], float, float, int] = (0.0, "", (), 0.0, 0.0, 0)
    total = 0
    for analytic, numeric, root in numeric_parts:
        res = _compare(analytic, numeric, root, tol.atol)
        total += res[5]
        if res[0] >= best[0] and (res[0] > 0 or not best[1]):
            best = res
    report = GradCheckReport(best[0], best[1], best[2], best[3], best[4], transpose, total,
                             tol.rtol)
    if not report.ok:
        raise GradCheckError(f"{component}: gradient check failed: {report}")
    return report


def _direction(primals: PyTree, k: Key) -> list[Any]:
    """A standard normal direction per float leaf of ``primals`` (``None`` for the others)."""
    leaves = tree.leaves(primals)
    keys = random.split(k, max(len(leaves), 1))
    return [random.normal(keys[i], np.shape(x), np.float64) if np.asarray(x).dtype.kind == "f"
            else None for i, x in enumerate(leaves)]


def _transpose_error(f: Callable[[PyTree], float], primals: PyTree, cotangent_dot: float,
                     direction: list[Any], step: float, atol: float) -> float:
    """Relative error between the FD directional derivative and ``<Jᵀdy, v>``."""
    leaves, treedef = tree.flatten(primals)

    def along(t: float) -> float:
        return f(tree.unflatten(treedef, [x if v is None else x + t * v
                                          for x, v in zip(leaves, direction)]))

    jv = _stencil(along, step)
    return abs(jv - cotangent_dot) / max(abs(jv), abs(cotangent_dot), atol)


def _vdot_float(a: PyTree, b: PyTree) -> float:
    total = 0.0
    for x, y in zip(tree.leaves(a), tree.leaves(b)):
        if x is not None and y is not None:
            total += float(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64)))
    return total


def _float_part(x: PyTree) -> Any:
    """``x`` with every non-float leaf (integer ids, say) replaced by ``None``."""
    return tree.map(lambda a: a if np.asarray(a).dtype.kind == "f" else None, x)


def check_grad(layer: Layer, params: PyTree, x: Any, *, dy: Any = None,
               state: Any = NO_STATE, key: Key | None = None, train: bool = False,
               dtype: Any = np.float64,
               seed: int = 0, step: float | None = None, rtol: float | None = None,
               atol: float | None = None, max_entries: int | None = 256) -> GradCheckReport:
    """Check ``layer.grad`` against finite differences of ``layer.apply``.

    The scalar ``f(params, x) = <dy, apply(params, x)>`` is differentiated by
    finite differences with respect to every float leaf of ``params`` and of
    ``x``, and compared with ``grad(params, x, dy) = (dparams, dx)``. Also
    checks that ``dparams`` has the structure, shapes and dtypes of
    ``params`` and ``dx`` those of ``x``, and the transpose identity.
    Integer leaves of ``x`` (an embedding's ids) are not differentiated: their
    ``dx`` must be ``None``, and only the params (and any float inputs) are
    checked.

    Args:
        layer: any layer (built-in or your own ``Layer(init, apply, grad)``).
        params, x: where to check; float leaves are cast to ``dtype`` first.
        dy: the cotangent (default: standard normal, drawn from ``seed``).
        state: a stateful layer's model state (required for one, e.g. from
            ``init_with_state``); the gradient is taken at this fixed state,
            in the mode ``train`` selects (batch statistics or the state's).
        key, train: passed to ``apply`` and ``grad`` (e.g. a dropout mask).
        dtype: ``float64`` (default, tight tolerances) or ``float32``.
        seed: seeds ``dy``, the probe subset and the transpose direction.
        step, rtol, atol: override :func:`tolerance` ``(dtype)`` (each one
            given, including ``rtol=0``, is used as it is: ``step`` and
            ``atol`` must be > 0, ``rtol`` >= 0).
        max_entries: probe at most this many entries per leaf (``None``: all;
            else a positive int).

    Returns:
        A :class:`GradCheckReport`.

    Raises:
        GradCheckError: if any entry's error or the transpose error exceeds
            ``rtol``, or if the gradients' structure, shapes or dtypes are wrong.
        TypeError, ValueError: ``layer`` without ``apply``/``grad``, or a
            tolerance, ``max_entries`` or ``seed`` out of range.
    """
    if not (callable(getattr(layer, "apply", None)) and callable(getattr(layer, "grad", None))):
        raise type_fail("check_grad", "layer", "must be a layer with apply and grad (e.g. "
                        "nnfunc.Layer(init, apply, grad))", describe(layer))
    tol = _tolerance("check_grad", dtype, step, rtol, atol)
    max_entries = _max_entries("check_grad", max_entries)
    seed = non_negative_int(seed, "check_grad", "seed")
    name = getattr(layer, "name", "layer")
    p = tree.astype(params, dtype)
    xs = tree.astype(x, dtype)
    k_dy, k_probe, k_dir = random.split(random.key(seed), 3)
    stateful = is_stateful(layer)
    if not stateful and state is not NO_STATE:
        raise TypeError(f"check_grad: state is only for a stateful layer; {name} is stateless")
    st = tree.astype(state, dtype) if stateful and state is not NO_STATE else state
    extra = {"state": st} if stateful else {}

    def run(q: PyTree, z: PyTree) -> Any:
        if stateful:
            return apply_with_state(layer, q, z, st, key=key, train=train)[0]
        return layer.apply(q, z, key=key, train=train)

    y = run(p, xs)
    if dy is None:
        dy = tree.unflatten(tree.structure(y), _direction(y, k_dy))
    dy = tree.astype(dy, dtype)
    dparams, dx = layer.grad(p, xs, dy, key=key, train=train, **extra)
    _check_like(name, "dparams", dparams, p, "params")
    _check_like(name, "dx", dx, _float_part(xs), "x")  # None for integer leaves

    def f_params(q: PyTree) -> float:
        return _vdot_float(dy, run(q, xs))

    def f_x(z: PyTree) -> float:
        return _vdot_float(dy, run(p, z))

    def f_both(both: Any) -> float:
        return _vdot_float(dy, run(both[0], both[1]))

    k_p, k_x = random.split(k_probe)
    n_params = numerical_grad(f_params, p, step=tol.step, max_entries=max_entries, key=k_p)
    n_x = numerical_grad(f_x, xs, step=tol.step, max_entries=max_entries, key=k_x)
    k_vp, k_vx = random.split(k_dir)
    v_p, v_x = _direction(p, k_vp), _direction(xs, k_vx)
    # dx has a leaf exactly where x has a float leaf (checked above)
    dot = (_vdot_float(dparams, v_p)
           + _vdot_float(dx, [v for v in v_x if v is not None]))
    transpose = _transpose_error(f_both, (p, xs), dot, v_p + v_x, tol.step, tol.atol)
    return _finish(name, [(dparams, n_params, "params"), (dx, n_x, "x")], transpose, tol)


def check_loss_grad(loss: Loss, y_pred: Any, y_true: Any, *, dtype: Any = np.float64,
                    seed: int = 0, step: float | None = None, rtol: float | None = None,
                    atol: float | None = None,
                    max_entries: int | None = 256) -> GradCheckReport:
    """Check ``loss.grad`` (and a fused ``value_and_grad``) against finite differences.

    Differentiates ``loss.apply(y_pred, y_true)`` with respect to ``y_pred``;
    also checks that ``value_and_grad`` (when present) returns the same value
    and gradient as ``apply`` and ``grad``, and that the gradient has
    ``y_pred``'s shape and dtype.

    Raises:
        GradCheckError: on disagreement (the message names the worst index).

    >>> import numpy as np
    >>> from nnfunc.losses import mse
    >>> check_loss_grad(mse, np.array([[0.5, -1.0]]), np.array([[0.0, 0.0]])).ok
    True
    """
    if not (callable(getattr(loss, "apply", None)) and callable(getattr(loss, "grad", None))):
        raise type_fail("check_loss_grad", "loss", "must be a loss with apply and grad (e.g. "
                        "nnfunc.losses.mse)", describe(loss))
    tol = _tolerance("check_loss_grad", dtype, step, rtol, atol)
    max_entries = _max_entries("check_loss_grad", max_entries)
    seed = non_negative_int(seed, "check_loss_grad", "seed")
    yp = tree.astype(y_pred, dtype)
    yt = tree.astype(y_true, dtype)
    g = loss.grad(yp, yt)
    _check_like(loss.name, "grad", g, yp, "y_pred")
    if loss.value_and_grad is not None:
        v2, g2 = loss.value_and_grad(yp, yt)
        v1 = loss.apply(yp, yt)
        if not (np.array_equal(g, g2) and (v1 == v2 or (np.isnan(v1) and np.isnan(v2)))):
            raise GradCheckError(f"{loss.name}: value_and_grad disagrees with apply/grad")

    def f(z: PyTree) -> float:
        return float(loss.apply(z, yt))

    k_probe, k_dir = random.split(random.key(seed))
    numeric = numerical_grad(f, yp, step=tol.step, max_entries=max_entries, key=k_probe)
    v = _direction(yp, k_dir)
    transpose = _transpose_error(f, yp, _vdot_float(g, v), v, tol.step, tol.atol)
    return _finish(loss.name, [(g, numeric, "y_pred")], transpose, tol)


def __getattr__(name: str) -> Any:
    # Re-export the hypothesis strategies lazily, so that importing
    # nnfunc.testing does not import hypothesis.
    import importlib

    strategies = importlib.import_module("nnfunc.testing.strategies")
    if name == "strategies":
        return strategies
    if name in strategies.__all__:
        return getattr(strategies, name)
    raise AttributeError(f"module 'nnfunc.testing' has no attribute {name!r}")
