"""Losses: ``apply(y_pred, y_true) -> scalar`` and ``grad(y_pred, y_true) -> dL/dy_pred``.

Each loss is a :class:`Loss` ``NamedTuple``; ``value_and_grad`` gives both from
one pass (what :func:`nnfunc.train.value_and_grad` uses). The value is a NumPy
scalar of ``y_pred``'s dtype and the gradient an array shaped like ``y_pred``.

Reductions (see the README's math section and ERRATA 4, 5, 10):

* ``mae``, ``mse``, ``huber``, ``binary_crossentropy`` and
  ``sigmoid_binary_cross_entropy`` take the mean over **all** elements of
  ``y_pred`` (samples × outputs), so their gradients divide by ``y_pred.size``.
* ``categorical_crossentropy`` and ``softmax_cross_entropy`` sum over the
  class axis (the last) and take the mean over samples.

Class targets are one-hot (or soft) arrays shaped like ``y_pred``, or integer
labels shaped like ``y_pred.shape[:-1]``; both give the same loss and gradient.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from nnfunc import _kernels
from nnfunc._validate import describe, fail, finite_float, type_fail
from nnfunc.activations import _sigmoid
from nnfunc.typing import Array

__all__ = ["Loss", "binary_crossentropy", "categorical_crossentropy", "huber", "mae",
           "mse", "sigmoid_binary_cross_entropy", "softmax_cross_entropy"]


class Loss(NamedTuple):
    """A loss: ``apply``, ``grad``, a fused ``value_and_grad`` and ``per_sample``.

    ``per_sample(y_pred, y_true)`` is each sample's loss, shape ``(n,)``, with
    ``apply == mean(per_sample)``; :func:`nnfunc.train.value_and_grad` uses it
    for sample and class weights. A loss built as ``Loss(apply, grad)`` works
    everywhere except with weights.
    """

    apply: Callable[[Any, Any], Any]
    grad: Callable[[Any, Any], Array]
    value_and_grad: Callable[[Any, Any], tuple[Any, Array]] | None = None
    name: str = "loss"
    per_sample: Callable[[Any, Any], Array] | None = None


def _make(name: str, prepare: Callable[[Array, Any], Any], terms: Callable[[Any], Array],
          grad: Callable[[Any], Array]) -> Loss:
    """A :class:`Loss` whose value, gradient and per-sample losses share ``prepare``.

    ``prepare(y_pred, y_true)`` validates and computes what all need;
    ``terms(prep)`` gives the loss terms whose mean is the loss (shaped like
    ``y_pred``, or like ``y_pred.shape[:-1]`` for losses summed over classes);
    ``grad(prep)`` gives ``dL/dy_pred``.
    """

    def check_pred(y_pred: Any) -> Array:
        if not isinstance(y_pred, np.ndarray) or y_pred.dtype.kind != "f":
            raise type_fail(name, "y_pred", "must be a floating-point array", describe(y_pred))
        if y_pred.size == 0:
            raise fail(name, "y_pred", "must not be empty", f"shape {y_pred.shape}")
        return y_pred

    def mean(t: Array) -> Any:
        # ufunc.reduce, not t.mean(): the method's Python wrapper costs more
        # than the sum itself for a batch of a few dozen samples
        return np.add.reduce(t, axis=None) / t.size

    def apply(y_pred: Any, y_true: Any) -> Any:
        p = check_pred(y_pred)
        return p.dtype.type(mean(terms(prepare(p, y_true))))

    def grad_fn(y_pred: Any, y_true: Any) -> Array:
        return grad(prepare(check_pred(y_pred), y_true))

    def both(y_pred: Any, y_true: Any) -> tuple[Any, Array]:
        p = check_pred(y_pred)
        prep = prepare(p, y_true)
        return p.dtype.type(mean(terms(prep))), grad(prep)

    def per_sample(y_pred: Any, y_true: Any) -> Array:
        p = check_pred(y_pred)
        r = terms(prepare(p, y_true))
        return r.reshape(p.shape[0], -1).mean(axis=1)  # type: ignore[no-any-return]

    return Loss(apply, grad_fn, both, name, per_sample)


# -- target checks ----------------------------------------------------------------------

def _same_shape_target(name: str, y_pred: Array, y_true: Any) -> Array:
    """``y_true`` as a finite array shaped exactly like ``y_pred``, in its dtype."""
    y = np.asarray(y_true)
    if y.dtype.kind not in "fiub":
        raise type_fail(name, "y_true", "must be a numeric array", describe(y_true))
    if y.shape != y_pred.shape:
        raise fail(name, "y_true", f"must have y_pred's shape {y_pred.shape} (no broadcasting)",
                   f"shape {y.shape}")
    y = y.astype(y_pred.dtype, copy=False)
    if not np.isfinite(y).all():
        raise fail(name, "y_true", "must be finite", "NaN or inf")
    return y


def _probabilities(name: str, arg: str, p: Array) -> None:
    if not ((p >= 0) & (p <= 1)).all():
        bad = p[~((p >= 0) & (p <= 1))].flat[0]
        raise fail(name, arg, "must hold probabilities in [0, 1] (for logits use the "
                   "fused *_cross_entropy losses)", f"a value {bad}")


def _class_targets(name: str, y_pred: Array, y_true: Any) -> Array:
    """Validated class targets: integer labels ``y_pred.shape[:-1]``, or a
    one-hot/soft array shaped like ``y_pred`` (cast to its dtype)."""
    y = np.asarray(y_true)
    if y_pred.ndim < 2:
        raise fail(name, "y_pred", "must have shape (batch, classes)", f"shape {y_pred.shape}")
    c = y_pred.shape[-1]
    if y.dtype.kind in "iu":
        if y.shape != y_pred.shape[:-1]:
            raise fail(name, "y_true", f"integer labels must have shape {y_pred.shape[:-1]}",
                       f"shape {y.shape}")
        if y.size and _label_top(y) >= c:
            bad = y[(y < 0) | (y >= c)].flat[0]
            raise fail(name, "y_true", f"labels must be in [0, {c})", f"label {bad}")
        return y
    if y.dtype.kind not in "fb":
        raise type_fail(name, "y_true", "must be integer labels or a one-hot array",
                        describe(y_true))
    if y.shape != y_pred.shape:
        raise fail(name, "y_true", f"one-hot targets must have y_pred's shape {y_pred.shape} "
                   f"(or integer labels of shape {y_pred.shape[:-1]})", f"shape {y.shape}")
    y = y.astype(y_pred.dtype, copy=False)
    _probabilities(name, "y_true", y)
    return y


_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _label_top(y: Array) -> Any:
    """The largest of (non-empty) integer labels ``y``, a negative label counting as
    huge: viewed as unsigned, so one reduction checks both ends of ``[0, c)``."""
    return np.maximum.reduce(y.view(_UNSIGNED[y.itemsize]) if y.dtype.kind == "i" else y,
                             axis=None)


def _is_labels(y: Array) -> bool:
    return y.dtype.kind in "iu"


def _label_index(labels: Array) -> tuple[Any, ...]:
    """The index that selects ``a[..., labels]`` of an array ``a`` with a class axis."""
    if labels.ndim == 1:
        return np.arange(labels.shape[0]), labels
    grids = np.indices(labels.shape, sparse=True)
    return (*grids, labels)


def _samples(y_pred: Array) -> int:
    return int(y_pred.size // y_pred.shape[-1])


# -- regression -----------------------------------------------------------------------

def _residual(name: str) -> Callable[[Array, Any], Array]:
    def prepare(y_pred: Array, y_true: Any) -> Array:
        return y_pred - _same_shape_target(name, y_pred, y_true)

    return prepare


mae = _make("mae", _residual("mae"), np.abs,
            lambda r: np.sign(r) / r.dtype.type(r.size))
"""Mean absolute error ``L = (1/N) Σ |ŷ - y|`` over all ``N`` elements.

Gradient ``dL/dŷ = sign(ŷ - y) / N`` with ``sign(0) = 0`` (the sheet's
``sign(y - ŷ)`` has the wrong sign, ERRATA 8). Shapes: ``y_pred`` and
``y_true`` equal (no broadcasting); returns a scalar.
"""

mse = _make("mse", _residual("mse"), lambda r: r * r,
            lambda r: r * r.dtype.type(2.0 / r.size))
"""Mean squared error ``L = (1/N) Σ (ŷ - y)²`` over all ``N`` elements.

Gradient ``dL/dŷ = 2 (ŷ - y) / N`` (the sheet's leading minus is wrong,
ERRATA 9). Shapes: ``y_pred`` and ``y_true`` equal; returns a scalar.
"""


def huber(delta: float = 1.0) -> Loss:
    """Huber loss: quadratic near zero, linear in the tails.

    With ``r = ŷ - y``: ``ℓ(r) = ½ r²`` where ``|r| ≤ δ``, else ``δ (|r| - ½ δ)``;
    ``L = (1/N) Σ ℓ(r)`` over all elements. Gradient ``clip(r, -δ, δ) / N``.
    Reference: Huber (1964).

    Raises:
        ValueError: if ``delta`` is not finite and > 0.

    >>> import numpy as np
    >>> float(huber(1.0).apply(np.array([[3.0]]), np.array([[0.0]])))
    2.5
    """
    d = finite_float(delta, "huber", "delta", lo=0.0, lo_open=True)
    name = f"huber({d:g})"

    def value(r: Array) -> Array:
        a = np.abs(r)
        dd = r.dtype.type(d)
        return np.where(a <= dd, r.dtype.type(0.5) * r * r, dd * (a - dd / 2))  # type: ignore[no-any-return]

    def grad(r: Array) -> Array:
        return np.clip(r, -d, d) / r.dtype.type(r.size)  # type: ignore[no-any-return]

    return _make(name, _residual(name), value, grad)


# -- from probabilities -----------------------------------------------------------------

_EPS = 1e-7
"""Probability clip for the probability-input losses: ``p ↦ clip(p, ε, 1-ε)``."""


def _clipped(p: Array) -> tuple[Array, Array]:
    """``clip(p, ε, 1-ε)`` and the mask where the clip is inactive (its derivative)."""
    lo, hi = p.dtype.type(_EPS), p.dtype.type(1 - _EPS)
    return np.clip(p, lo, hi), (p > lo) & (p < hi)


def _bce_prepare(y_pred: Array, y_true: Any) -> tuple[Array, Array, Array]:
    _probabilities("binary_crossentropy", "y_pred", y_pred)
    y = _same_shape_target("binary_crossentropy", y_pred, y_true)
    _probabilities("binary_crossentropy", "y_true", y)
    c, inside = _clipped(y_pred)
    return c, inside, y


def _bce_terms(prep: tuple[Array, Array, Array]) -> Array:
    c, _, y = prep
    return -(y * np.log(c) + (1 - y) * np.log1p(-c))  # type: ignore[no-any-return]


def _bce_grad(prep: tuple[Array, Array, Array]) -> Array:
    c, inside, y = prep
    g = (c - y) / (c * (1 - c) * c.dtype.type(c.size))
    return np.where(inside, g, c.dtype.type(0))  # type: ignore[no-any-return]


binary_crossentropy = _make("binary_crossentropy", _bce_prepare, _bce_terms, _bce_grad)
"""Binary cross-entropy of probabilities, mean over all ``N`` elements.

``L = -(1/N) Σ [y log p + (1 - y) log(1 - p)]`` with ``p = clip(ŷ, ε, 1-ε)``,
``ε = 1e-7``. Gradient ``(p - y) / (p (1 - p) N)`` where the clip is
inactive, 0 where it is active (the true derivative of the clipped loss).
``y_pred`` must lie in [0, 1]; prefer :data:`sigmoid_binary_cross_entropy`
on logits, which is exact and never saturates.
"""


def _cce_prepare(y_pred: Array, y_true: Any) -> tuple[Array, Array, Array]:
    _probabilities("categorical_crossentropy", "y_pred", y_pred)
    y = _class_targets("categorical_crossentropy", y_pred, y_true)
    c, inside = _clipped(y_pred)
    return c, inside, y


def _cce_terms(prep: tuple[Array, Array, Array]) -> Array:
    c, _, y = prep
    if _is_labels(y):
        return -np.log(c[_label_index(y)])  # type: ignore[no-any-return]
    return -(y * np.log(c)).sum(axis=-1)  # type: ignore[no-any-return]


def _cce_grad(prep: tuple[Array, Array, Array]) -> Array:
    c, inside, y = prep
    n = c.dtype.type(_samples(c))
    if _is_labels(y):
        g = np.zeros_like(c)
        at = _label_index(y)
        g[at] = np.where(inside[at], -1 / (c[at] * n), c.dtype.type(0))
        return g
    return np.where(inside, -y / (c * n), c.dtype.type(0))  # type: ignore[no-any-return]


categorical_crossentropy = _make("categorical_crossentropy", _cce_prepare, _cce_terms,
                                 _cce_grad)
"""Categorical cross-entropy of probabilities, summed over classes, mean over samples.

``L = -(1/n) Σ_samples Σ_classes y log p`` with ``p = clip(ŷ, ε, 1-ε)``
(ERRATA 5: the sheet omits the class sum). Gradient ``-y / (p n)`` where the
clip is inactive, else 0. ``y_pred (n, c)`` rows of probabilities; ``y_true``
one-hot ``(n, c)`` or integer labels ``(n,)``. Prefer
:data:`softmax_cross_entropy` on logits.
"""


# -- from logits --------------------------------------------------------------------------

_CLASS_MAJOR_MAX = 32
"""Up to this many classes, softmax cross-entropy works on a class-major copy
of the logits, ``(c, N)``: a reduction over classes then combines ``c``
contiguous rows of ``N`` elements instead of reducing ``N`` rows of ``c``
elements one by one, where NumPy's per-row cost dominates
(``np.maximum.reduce`` over the rows of a (128, 10) float32 array: 6.5 µs;
over the columns of its class-major copy: 1.3 µs). The gradient comes back
as a transposed view, whose batch sum (a dense layer's ``db``) is fast too.
With more classes the row-major layout is faster, and is kept."""


class _SoftmaxParts(NamedTuple):
    """Softmax cross-entropy's work arrays, 2-D and C-contiguous: ``(c, N)``
    class-major (``axis`` 0) for at most :data:`_CLASS_MAJOR_MAX` classes, else
    ``(N, c)`` (``axis`` 1), for ``N`` samples (every axis of ``z`` but the last)."""

    shifted: Array  # z - max z over classes
    exp: Array  # e^{z - max z}
    total: Array  # Σ_c e^{z_c - max z}, keepdims
    target: Array  # integer labels (N,), or soft targets laid out like the work arrays
    at: Array | None  # for integer labels, the labelled classes' flat positions
    axis: int  # the class axis of the work arrays
    shape: tuple[int, ...]  # z's shape


def _softmax_parts(z: Array, y: Array) -> _SoftmaxParts:
    """The shifted logits, their exponentials and sums for validated targets ``y``."""
    c = z.shape[-1]
    rows = z.reshape(-1, c)  # a view unless z's layout forbids it
    n = rows.shape[0]
    if c <= _CLASS_MAJOR_MAX:
        axis = 0
        shifted = rows.T.copy()  # reduced over contiguous rows: one copy, then in place
        np.subtract(shifted, np.maximum.reduce(shifted, axis=0, keepdims=True), out=shifted)
    else:
        axis = 1
        shifted = np.subtract(rows, np.maximum.reduce(rows, axis=1, keepdims=True), order="C")
    e = np.exp(shifted)
    total = np.add.reduce(e, axis=axis, keepdims=True)
    if _is_labels(y):  # where z[i, y_i] lies in the work arrays
        labels = y.reshape(-1)
        if axis == 0:  # y_i n + i, in intp: uint8 labels times n would wrap
            at = np.multiply(labels, n, dtype=np.intp)
            at += np.arange(n)
        else:
            at = np.add(np.arange(0, n * c, c), labels, dtype=np.intp)  # uint64 + int64 is float64
        return _SoftmaxParts(shifted, e, total, labels, at, axis, z.shape)
    target = y.reshape(-1, c)
    return _SoftmaxParts(shifted, e, total, target.T if axis == 0 else target, None, axis,
                         z.shape)


def _sce_prepare(z: Array, y_true: Any) -> _SoftmaxParts:
    return _softmax_parts(z, _class_targets("softmax_cross_entropy", z, y_true))


def _sce_terms(p: _SoftmaxParts) -> Array:
    lse = np.log(p.total)  # logsumexp(z) - max z, keepdims
    if p.at is not None:
        terms = lse.reshape(-1) - p.shifted.reshape(-1)[p.at]
    else:
        terms = np.add.reduce(p.target * (lse - p.shifted), axis=p.axis)
    return terms.reshape(p.shape[:-1])


def _sce_grad(p: _SoftmaxParts) -> Array:
    g = p.exp  # the last use of exp: normalize it in place
    n = p.total.size
    if p.at is not None:  # (e / Σe - onehot) / n, as e / (n Σe) - 1/n at the labels
        g /= p.total * float(n)  # Python scalars take g's dtype: float32 stays float32
        g.reshape(-1)[p.at] -= 1 / n
    else:
        g /= p.total
        g *= np.add.reduce(p.target, axis=p.axis, keepdims=True)
        g -= p.target
        g /= g.dtype.type(n)
    return (g.T if p.axis == 0 else g).reshape(p.shape)


@functools.lru_cache(maxsize=1)
def _compiled_sce() -> Callable[..., Any] | None:
    """The compiled loop of ``nnfunc/_xent.c``, or ``None`` where the extension was
    not built or ``NNFUNC_COMPILED=0`` (read once per process, as for Adam's loop)."""
    extension = _kernels.load("nnfunc._xent")
    return None if extension is None else extension.softmax_cross_entropy


def _sce_compiled(z: Any, y_true: Any, grad: bool,
                  terms: bool) -> tuple[Any, Any, Any] | None:
    """Softmax cross-entropy of logits ``z`` from integer labels ``y_true`` by the
    compiled loop: the loss, the gradient (if ``grad``) and each position's loss
    (if ``terms``), or ``None`` where NumPy's path must answer (no extension, other
    dtypes, one-hot targets, bad labels, a NaN logit or an infinite maximum; see
    ``_xent.c``).

    The loop works in double precision and rounds once, so for float32 logits
    every output is within one unit in the last place of the exact value; NumPy's
    path rounds at every operation, so the two agree to float rounding, not bit
    for bit. One install always takes the same path for the same arrays.
    """
    loop = _compiled_sce()
    if loop is None or type(z) is not np.ndarray or type(y_true) is not np.ndarray:
        return None
    g = np.empty(z.shape, z.dtype) if grad else None
    t = np.empty(z.shape[:-1], z.dtype) if terms else None
    value = loop(z, y_true, g, t)
    return None if value is NotImplemented else (z.dtype.type(value), g, t)


_sce_loss = _make("softmax_cross_entropy", _sce_prepare, _sce_terms, _sce_grad)
"""NumPy's path: one-hot and soft targets, every error, and labels without the
extension."""


def _sce_apply(z: Any, y_true: Any) -> Any:
    got = _sce_compiled(z, y_true, grad=False, terms=False)
    return _sce_loss.apply(z, y_true) if got is None else got[0]


def _sce_value_and_grad(z: Any, y_true: Any) -> tuple[Any, Array]:
    got = _sce_compiled(z, y_true, grad=True, terms=False)
    if got is None:
        both = _sce_loss.value_and_grad
        assert both is not None
        return both(z, y_true)
    return got[0], got[1]


def _sce_gradient(z: Any, y_true: Any) -> Array:
    got = _sce_compiled(z, y_true, grad=True, terms=False)
    return _sce_loss.grad(z, y_true) if got is None else got[1]


def _sce_per_sample(z: Any, y_true: Any) -> Array:
    got = _sce_compiled(z, y_true, grad=False, terms=True)
    if got is None:
        per = _sce_loss.per_sample
        assert per is not None
        return per(z, y_true)
    return got[2].reshape(z.shape[0], -1).mean(axis=1)  # type: ignore[no-any-return]


softmax_cross_entropy = Loss(_sce_apply, _sce_gradient, _sce_value_and_grad,
                             "softmax_cross_entropy", _sce_per_sample)
"""Softmax cross-entropy from logits, summed over classes, mean over samples.

``L = (1/n) Σ_samples Σ_c y_c (logsumexp(z) - z_c)``, computed with a stable
log-softmax, so it never takes ``log 0`` and never overflows.
Gradient ``dL/dz = (softmax(z) Σ_c y_c - y) / n``, i.e. ``(ŷ - y)/n`` for
one-hot targets (the sheet's ``ŷ - y`` omits the batch mean, ERRATA 10).
``z (n, c)``; ``y_true`` one-hot/soft ``(n, c)`` or integer labels ``(n,)``.
Sequences need no reshaping: logits ``(n, T, c)`` with labels ``(n, T)`` (or
one-hot ``(n, T, c)``) average over all ``n·T`` positions, ``n`` above
counting positions.

With integer labels (the training step's case) all four functions run one compiled
pass per row (``nnfunc/_xent.c``, in double precision, rounded once); with one-hot
or soft targets, and where the extension was not built, NumPy's operations. The
two agree to float rounding.
"""


def _sbce_prepare(z: Array, y_true: Any) -> tuple[Array, Array]:
    y = _same_shape_target("sigmoid_binary_cross_entropy", z, y_true)
    _probabilities("sigmoid_binary_cross_entropy", "y_true", y)
    return z, y


sigmoid_binary_cross_entropy = _make(
    "sigmoid_binary_cross_entropy", _sbce_prepare,
    lambda p: np.maximum(p[0], 0) - p[0] * p[1] + np.log1p(np.exp(-np.abs(p[0]))),
    lambda p: (_sigmoid(p[0]) - p[1]) / p[0].dtype.type(p[0].size),
)
"""Sigmoid binary cross-entropy from logits, mean over all ``N`` elements.

``L = (1/N) Σ [max(z, 0) - z y + log(1 + e^{-|z|})]``, which equals
``-(1/N) Σ [y log σ(z) + (1-y) log(1-σ(z))]`` without ever overflowing.
Gradient ``dL/dz = (σ(z) - y) / N``. ``z`` and ``y_true`` have equal shapes.
"""
