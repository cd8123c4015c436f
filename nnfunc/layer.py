"""The layer contract: a ``NamedTuple`` of pure functions.

::

    init(key, in_shape)                           -> (out_shape, params)
    apply(params, x, *, key=None, train=False)    -> y
    grad(params, x, dy, *, key=None, train=False) -> (dparams, dx)

``grad`` is the vector–Jacobian product of ``apply`` at ``x``:
``dparams = ∂<dy, y>/∂params`` and ``dx = ∂<dy, y>/∂x``, with ``dparams``
shaped exactly like ``params``. Shapes given to ``init`` exclude the batch
axis.

Two optional fields serve the whole-model gradient and the summary table:

* ``vjp(params, x, *, key=None, train=False) -> (y, pullback)`` runs the
  forward pass once and returns ``pullback(dy, need_dx=True) -> (dparams,
  dx)``, a closure over what the backward pass needs, so
  :func:`nnfunc.train.value_and_grad` never runs a forward twice. A layer
  built as ``Layer(init, apply, grad)`` leaves it ``None``;
  :func:`vjp` then falls back on ``apply`` and ``grad``.
* ``name`` and ``children`` label the layer in :func:`nnfunc.summary`.
* ``init_with_state`` makes the layer **stateful** (see below).

A stateful layer (batch norm: running statistics) keeps a ``state`` pytree
beside its params, which no gradient or optimizer touches::

    init_with_state(key, in_shape)                       -> (out_shape, params, state)
    apply(params, x, *, state, key=None, train=False)    -> (y, new_state)
    grad(params, x, dy, *, state, key=None, train=False) -> (dparams, dx)
    vjp(params, x, *, state, key=None, train=False)      -> (y, new_state, pullback)

``init`` gives the same ``(out_shape, params)`` without the state. Calling
``apply``, ``grad`` or ``vjp`` without ``state=`` is a ``TypeError`` naming
the layer. :func:`is_stateful` tells the two kinds apart, and
:func:`apply_with_state` / :func:`vjp_with_state` call either kind the
stateful way (a stateless layer's state is ``()``), which is how the
combinators and the training functions thread state.

Every built-in component is made by :func:`from_forward_backward` from one
private ``forward`` (which also returns what the backward pass needs) and one
``backward``, so each formula is written exactly once.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, cast

import numpy as np

from nnfunc import tree
from nnfunc._validate import describe, fail, flag, type_fail
from nnfunc.typing import Array, Input, Key, PyTree, Shape, ShapeTree

__all__ = ["NO_STATE", "Backward", "Forward", "Layer", "Like", "Pullback", "StatefulForward",
           "apply_with_state", "batch_array", "check_like", "from_forward_backward",
           "is_stateful", "like", "no_params", "output_like", "stateful_from_forward_backward",
           "uses_key", "vjp", "vjp_with_state"]


class InitFn(Protocol):
    def __call__(self, key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, Any]: ...


class ApplyFn(Protocol):
    def __call__(self, params: Any, x: Any, *, key: Key | None = None,
                 train: bool = False) -> Any: ...


class GradFn(Protocol):
    def __call__(self, params: Any, x: Any, dy: Any, *, key: Key | None = None,
                 train: bool = False) -> tuple[Any, Any]: ...


class Pullback(Protocol):
    def __call__(self, dy: Any, need_dx: bool = True) -> tuple[Any, Any]: ...


class VjpFn(Protocol):
    def __call__(self, params: Any, x: Any, *, key: Key | None = None,
                 train: bool = False) -> tuple[Any, Pullback]: ...


class InitWithStateFn(Protocol):
    def __call__(self, key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, Any, Any]: ...


class StatefulApplyFn(Protocol):
    def __call__(self, params: Any, x: Any, *, state: Any, key: Key | None = None,
                 train: bool = False) -> tuple[Any, Any]: ...


class StatefulVjpFn(Protocol):
    def __call__(self, params: Any, x: Any, *, state: Any, key: Key | None = None,
                 train: bool = False) -> tuple[Any, Any, Pullback]: ...


Forward = Callable[[Any, Any, "Key | None", bool], tuple[Any, Any]]
"""``forward(params, x, key, train) -> (y, residuals)``."""

Backward = Callable[[Any, Any, Any, bool], tuple[Any, Any]]
"""``backward(params, residuals, dy, need_dx) -> (dparams, dx or None)``."""


class Layer(NamedTuple):
    """A layer: ``init``, ``apply`` and ``grad`` (plus optional ``vjp``, ``name``).

    With ``init_with_state`` set the layer is stateful, and ``apply``,
    ``grad`` and ``vjp`` take ``state=`` (the stateful forms of the module
    docstring; call them through :func:`apply_with_state` and
    :func:`vjp_with_state` to have them typed as such).
    """

    init: InitFn
    apply: ApplyFn
    grad: GradFn
    vjp: VjpFn | None = None
    name: str = "layer"
    children: tuple[Any, ...] = ()
    init_with_state: InitWithStateFn | None = None


def is_stateful(layer: Layer) -> bool:
    """Whether ``layer`` keeps a model state (its ``init_with_state`` is set).

    >>> from nnfunc.layers import dense
    >>> is_stateful(dense(3))
    False
    """
    return layer.init_with_state is not None


def batch_array(component: str, x: Any, features: Shape | None = None,
                dtype: np.dtype[Any] | None = None, arg: str = "x") -> Array:
    """Check that ``x`` is a floating batch array ``(n, *features)`` of ``dtype``.

    Raises ``TypeError`` for a non-array or non-float input or a dtype that
    differs from the params' (mixing would silently upcast a float32 model),
    ``ValueError`` for a wrong shape; each message names the component.
    """
    if not isinstance(x, np.ndarray):
        raise type_fail(component, arg, "must be a NumPy array", describe(x))
    if x.dtype.kind != "f":
        raise type_fail(component, arg, "must have a floating dtype (cast it with "
                        ".astype(np.float32))", f"dtype {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise type_fail(component, arg, f"must have the params' dtype {dtype} (cast the "
                        f"data, or the params with nnfunc.tree.astype)", f"dtype {x.dtype}")
    if features is not None and x.shape[1:] != features:
        raise fail(component, arg, f"must have shape (batch, {', '.join(map(str, features))})",
                   f"shape {x.shape}")
    if x.ndim == 0:
        raise fail(component, arg, "must have a batch axis", "a 0-d array")
    return x


class Like:
    """The shape and dtype a cotangent must have (of one output array), without the array."""

    __slots__ = ("dtype", "shape")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self.shape, self.dtype = shape, dtype

    def __repr__(self) -> str:
        return f"array of shape {self.shape} and dtype {self.dtype}"


def like(y: Any) -> Any:
    """What a cotangent of ``y`` must look like: a :class:`Like` per array leaf of ``y``
    (which keeps no reference to ``y``'s memory)."""
    if type(y) is np.ndarray:
        return Like(y.shape, y.dtype)
    return tree.map(lambda a: Like(np.shape(a), np.asarray(a).dtype), y)


def check_like(component: str, arg: str, value: Any, spec: Any, what: str = "output") -> None:
    """Raise unless ``value`` has the structure, shapes and dtypes ``spec`` (from :func:`like`)
    records: ``TypeError`` for a wrong kind or dtype, ``ValueError`` for a wrong shape or
    structure, each naming ``component`` and ``arg``."""
    if isinstance(spec, Like):
        if type(value) is np.ndarray and value.shape == spec.shape and value.dtype == spec.dtype:
            return
        if spec.shape == () and isinstance(value, (int, float, np.generic)) and not isinstance(
                value, bool) and np.asarray(value).dtype == spec.dtype:
            return  # a scalar leaf (params may hold Python or NumPy scalars)
        if not isinstance(value, np.ndarray):
            raise type_fail(component, arg, f"must be an array shaped like the {what}, "
                            f"{spec!r}", describe(value))
        if value.shape != spec.shape:
            raise fail(component, arg, f"must have the {what}'s shape {spec.shape}", value.shape)
        raise type_fail(component, arg, f"must have the {what}'s dtype {spec.dtype}",
                        f"dtype {value.dtype}")
    try:
        tree.map_with_path(lambda path, s, v: check_like(
            component, tree.keystr(path, arg), v, s, what), spec, value, names=(what, arg))
    except ValueError as err:
        if str(err).startswith(f"{component}:"):
            raise
        got = (f"{type(value).__name__} of length {len(value)}"
               if isinstance(value, (tuple, list)) else describe(value))
        raise fail(component, arg, f"must have the structure of the {what}, "
                   f"{tree.map(lambda s: s.shape, spec)!r} (shapes)", got) from None


def no_params(component: str, params: Any) -> TypeError:
    """The error for params given to a layer that has none (raise the result)."""
    return type_fail(component, "params", "must be () (the layer has no params)",
                     describe(params))


def output_like(component: str, dy: Any, y: Any) -> None:
    """Check that the cotangent ``dy`` has the structure, shapes and dtypes of ``y``."""
    if (type(dy) is np.ndarray and type(y) is np.ndarray and dy.shape == y.shape
            and dy.dtype == y.dtype):
        return  # the common case, inline: training steps check a cotangent per step
    check_like(component, "dy", dy, like(y))


def _checked_pullback(name: str, y: Any, params: Any, res: Any,
                      backward: Backward) -> Pullback:
    """``backward`` as a pullback that first checks its cotangent against ``y``."""
    if type(y) is np.ndarray:  # the check inline: this runs per layer per step
        shape, dtype = y.shape, y.dtype

        def pullback(dy: Any, need_dx: bool = True) -> tuple[Any, Any]:
            if not (type(dy) is np.ndarray and dy.shape == shape and dy.dtype == dtype):
                check_like(name, "dy", dy, Like(shape, dtype))
            return backward(params, res, dy, need_dx)

        return pullback
    spec = like(y)

    def tree_pullback(dy: Any, need_dx: bool = True) -> tuple[Any, Any]:
        check_like(name, "dy", dy, spec)
        return backward(params, res, dy, need_dx)

    return tree_pullback


_PARTS: weakref.WeakKeyDictionary[Any, tuple[Forward, Backward]] = weakref.WeakKeyDictionary()
"""Each :func:`from_forward_backward` layer's ``vjp`` -> its ``(forward, backward)``."""


_KEYLESS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
"""The ``apply`` of every layer built with ``uses_key=False`` -> its ``vjp`` (a
layer made from another's ``apply`` but a ``vjp`` of its own is not keyless)."""


def forward_backward_of(layer: Layer) -> tuple[Forward, Backward] | None:
    """The ``(forward, backward)`` a layer was built from by :func:`from_forward_backward`
    (every stateless built-in layer), ``None`` for any other layer.

    For combinators: they look a child's parts up once, when built, and run
    them directly each step, without the child's ``vjp`` wrapper and pullback
    closure. A combinator that does must check the cotangent it passes a
    child wherever that cotangent does not come from such a child's own
    ``backward`` (which returns ``dx`` shaped like ``x`` by construction).
    """
    return _PARTS.get(layer.vjp) if layer.vjp is not None else None


def from_forward_backward(name: str, init: InitFn, forward: Forward, backward: Backward,
                          children: tuple[Layer, ...] = (),
                          infer: Callable[[Any, Any, Key | None, bool], Any] | None = None,
                          *, uses_key: bool = True) -> Layer:
    """Build a :class:`Layer` whose ``apply``, ``grad`` and ``vjp`` share one forward.

    Args:
        name: the component's name, used in errors and the summary.
        init: ``init(key, in_shape) -> (out_shape, params)``.
        forward: ``forward(params, x, key, train) -> (y, residuals)``; validates ``x``.
        backward: ``backward(params, residuals, dy, need_dx) -> (dparams, dx)``;
            ``dx`` may be ``None`` when ``need_dx`` is false.
        children: sub-layers, for combinators.
        infer: an ``apply`` that keeps no residuals, for combinators whose
            ``forward`` would hold every intermediate array alive.
        uses_key: ``False`` promises that ``forward`` never reads its ``key``
            (see :func:`uses_key`).
    """

    def apply(params: Any, x: Any, *, key: Key | None = None, train: bool = False) -> Any:
        if infer is not None:
            return infer(params, x, key, train)
        return forward(params, x, key, train)[0]

    def grad(params: Any, x: Any, dy: Any, *, key: Key | None = None,
             train: bool = False) -> tuple[Any, Any]:
        y, res = forward(params, x, key, train)
        output_like(name, dy, y)
        return backward(params, res, dy, True)

    def layer_vjp(params: Any, x: Any, *, key: Key | None = None,
                  train: bool = False) -> tuple[Any, Pullback]:
        y, res = forward(params, x, key, train)
        return y, _checked_pullback(name, y, params, res, backward)

    _PARTS[layer_vjp] = (forward, backward)
    if not flag(uses_key, "from_forward_backward", "uses_key"):
        _KEYLESS[apply] = layer_vjp
    return Layer(init, apply, grad, layer_vjp, name, children)


def uses_key(layer: Layer) -> bool:
    """Whether ``layer`` may read the ``key`` it is given (``False`` only for a layer
    that promised not to, with ``uses_key=False``).

    Every built-in layer but ``dropout`` is keyless, and so is a combinator
    or ``scan`` of keyless layers only. Such a layer gives the same results
    with any key or none, so ``fit`` derives no per-step key for it and a
    combinator derives none for its children: each derivation constructs a
    Philox generator (~15 µs; a split or fold-in per step was a tenth of a
    small MLP's step when it was ~35). A user's layer counts as using its
    key unless built with ``uses_key=False``.

    >>> from nnfunc.combinators import serial
    >>> from nnfunc.layers import dense, dropout
    >>> uses_key(serial(dense(3), dense(2))), uses_key(serial(dense(3), dropout(0.5)))
    (False, True)
    """
    vjp_fn = _KEYLESS.get(layer.apply)
    return vjp_fn is None or vjp_fn is not layer.vjp


def _any_float(x: Any) -> bool:
    return any(np.asarray(a).dtype.kind == "f" for a in tree.leaves(x))


def vjp(layer: Layer, params: PyTree, x: Input, *, key: Key | None = None,
        train: bool = False) -> tuple[Any, Pullback]:
    """``(y, pullback)`` for any layer, built-in or user-made.

    Uses ``layer.vjp`` when present; otherwise ``y = layer.apply(...)`` and
    ``pullback(dy) = layer.grad(params, x, dy, ...)``. A stateful layer
    refuses this call (it needs its state): use :func:`vjp_with_state`.
    Built-in layers' pullbacks check that ``dy`` has the output's structure,
    shapes and dtypes (a ``float64``, integer or complex ``dy`` into a float32
    model is a ``TypeError``, a wrong shape a ``ValueError``, each naming the
    layer).
    """
    if not isinstance(layer, Layer):
        raise type_fail("vjp", "layer", "must be an nnfunc Layer", describe(layer))
    if layer.init_with_state is not None:
        _require_state(layer.name, NO_STATE)
    if layer.vjp is not None:
        return layer.vjp(params, x, key=key, train=train)
    y = layer.apply(params, x, key=key, train=train)
    return y, _user_pullback(layer.name, params, x, y,
                             lambda dy: layer.grad(params, x, dy, key=key, train=train))


def _user_pullback(name: str, params: Any, x: Any, y: Any,
                   grad: Callable[[Any], Any]) -> Pullback:
    """The pullback of a layer without ``vjp`` (a user's): ``grad(dy)``, its cotangent
    and its result checked, so that a wrong ``dx`` is blamed on this layer, not on the
    layer before it (whose pullback would receive it as its ``dy``)."""
    y_like, x_like, p_like = like(y), like(x), like(params)

    def pullback(dy: Any, need_dx: bool = True) -> tuple[Any, Any]:
        check_like(name, "dy", dy, y_like)
        got = grad(dy)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise type_fail(name, "grad's result", "must be a pair (dparams, dx)",
                            describe(got))
        check_like(name, "grad's dparams", got[0], p_like, "params")
        if need_dx and not (got[1] is None and not _any_float(x)):  # no dx for integer ids
            check_like(name, "grad's dx", got[1], x_like, "input x")
        return got

    return pullback


# -- model state --------------------------------------------------------------------------

StatefulForward = Callable[[Any, Any, Any, "Key | None", bool], tuple[Any, Any, Any]]
"""``forward(params, state, x, key, train) -> (y, new_state, residuals)``."""


class _NoState:
    """The default of ``state=`` on a stateful layer: it was not passed."""

    def __repr__(self) -> str:
        return "no state"


NO_STATE: Any = _NoState()


def _require_state(name: str, state: Any) -> Any:
    if state is NO_STATE:
        raise type_fail(name, "state", "is required: this layer is stateful (pass state=, "
                        "from init_with_state, and take (y, new_state) back)", "no state")
    return state


def stateful_from_forward_backward(
        name: str, init_with_state: InitWithStateFn, forward: StatefulForward,
        backward: Backward, children: tuple[Layer, ...] = (),
        infer: Callable[[Any, Any, Any, Key | None, bool], tuple[Any, Any]] | None = None,
        *, uses_key: bool = True) -> Layer:
    """Build a stateful :class:`Layer` whose ``apply``, ``grad`` and ``vjp`` share one forward.

    Args:
        name: the component's name, used in errors and the summary.
        init_with_state: ``init_with_state(key, in_shape) -> (out_shape, params, state)``.
        forward: ``forward(params, state, x, key, train) -> (y, new_state, residuals)``;
            validates ``x`` and ``state``.
        backward: as for :func:`from_forward_backward` (state gets no gradient).
        children: sub-layers, for combinators.
        infer: ``infer(params, state, x, key, train) -> (y, new_state)`` keeping no
            residuals, for combinators.
        uses_key: as for :func:`from_forward_backward`.
    """

    def init(key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, Any]:
        out_shape, params, _ = init_with_state(key, in_shape)
        return out_shape, params

    def apply(params: Any, x: Any, *, state: Any = NO_STATE, key: Key | None = None,
              train: bool = False) -> tuple[Any, Any]:
        state = _require_state(name, state)
        if infer is not None:
            return infer(params, state, x, key, train)
        y, new_state, _ = forward(params, state, x, key, train)
        return y, new_state

    def grad(params: Any, x: Any, dy: Any, *, state: Any = NO_STATE, key: Key | None = None,
             train: bool = False) -> tuple[Any, Any]:
        y, _, res = forward(params, _require_state(name, state), x, key, train)
        output_like(name, dy, y)
        return backward(params, res, dy, True)

    def layer_vjp(params: Any, x: Any, *, state: Any = NO_STATE, key: Key | None = None,
                  train: bool = False) -> tuple[Any, Any, Pullback]:
        y, new_state, res = forward(params, _require_state(name, state), x, key, train)
        return y, new_state, _checked_pullback(name, y, params, res, backward)

    if not flag(uses_key, "stateful_from_forward_backward", "uses_key"):
        _KEYLESS[apply] = layer_vjp
    # the stateful vjp sits in the field typed for the stateless one; vjp_with_state
    # reads it back with its real type
    return Layer(init, apply, grad, cast(VjpFn, layer_vjp), name, children, init_with_state)


def apply_with_state(layer: Layer, params: PyTree, x: Any, state: PyTree, *,
                     key: Key | None = None, train: bool = False) -> tuple[Any, Any]:
    """``(y, new_state)`` for any layer; a stateless layer returns its ``state`` (``()``) as is.

    >>> import numpy as np
    >>> from nnfunc.layers import dense
    >>> from nnfunc import random
    >>> _, params = dense(2).init(random.key(0), (3,))
    >>> y, state = apply_with_state(dense(2), params, np.ones((1, 3), np.float32), ())
    >>> y.shape, state
    ((1, 2), ())
    """
    if layer.init_with_state is None:
        return layer.apply(params, x, key=key, train=train), state
    stateful = cast(StatefulApplyFn, layer.apply)
    return stateful(params, x, state=state, key=key, train=train)


def vjp_with_state(layer: Layer, params: PyTree, x: Any, state: PyTree, *,
                   key: Key | None = None, train: bool = False) -> tuple[Any, Any, Pullback]:
    """``(y, new_state, pullback)`` for any layer (a stateless one keeps ``state`` as is)."""
    if layer.init_with_state is None:
        y, pullback = vjp(layer, params, x, key=key, train=train)
        return y, state, pullback
    if layer.vjp is None:
        stateful = cast(StatefulApplyFn, layer.apply)
        y, new_state = stateful(params, x, state=state, key=key, train=train)
        grad = cast(Callable[..., tuple[Any, Any]], layer.grad)
        return y, new_state, _user_pullback(
            layer.name, params, x, y,
            lambda dy: grad(params, x, dy, state=state, key=key, train=train))
    return cast(StatefulVjpFn, layer.vjp)(params, x, state=state, key=key, train=train)
