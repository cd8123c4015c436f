"""Data-parallel training over MPI: the same ``fit`` on many processes.

Launch every process with the same script::

    mpiexec -n 4 python -m mpi4py train.py

(``python -m mpi4py`` aborts the whole job when any rank raises, so a failing
rank never leaves the others waiting in a collective.) Every rank passes the
same data to :func:`fit`; ``batch_size`` is the global batch. Each step,
every rank derives the same shuffle from the key, takes its contiguous
shard of the global batch (rows ``⌊r·m/p⌋ .. ⌊(r+1)·m/p⌋`` of a batch of
``m`` rows on rank ``r`` of ``p``; a shard may be empty) and computes the
weighted sum of its samples' gradients; one in-place ``Allreduce`` over one
flat buffer (the gradients, the loss and the weight) sums them, and every
rank applies the same update to the same params::

    g = Σ_r W_r g_r / Σ_r W_r        W_r = Σ_{i ∈ shard r} w_i   (w_i = 1 unweighted)

Each rank's dropout masks are exactly its rows of the masks one process
draws for the whole global batch: the step's key carries the shard's row
offset (:func:`nnfunc.random.with_row_offset`), so the run does not depend
on the number of ranks. Epoch logs (loss, metrics, validation) are the same
on every rank before the callbacks see them, only rank 0 shows progress and
writes checkpoints, and once per epoch a hash of the params is compared
across ranks.

A stateful model's ``model_state`` passes through; batch norm normalises
each shard by its own statistics, so such a model depends on the number of
ranks, and each step averages the ranks' new states (weighted by rows) so
that every rank holds the same one.

Modes: by default the sums use ``Allreduce`` (the MPI standard recommends,
without requiring, that every rank get the same bits; MPICH did in every
test, and the per-epoch hash check raises if a library does not);
with ``ordered=True`` each rank gathers every rank's buffer and adds them in
rank order, so the result is the same whatever MPI library or reduction
algorithm runs underneath, at ``p`` times the received bytes.

Needs the ``mpi`` extra (``pip install "nnfunc[mpi]"``: mpi4py and an MPICH
wheel); ``import nnfunc`` never imports it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    from mpi4py import MPI
except ImportError as _err:  # pragma: no cover - exercised in a venv without mpi4py
    raise ImportError('nnfunc.distributed needs mpi4py and an MPI library: pip install '
                      '"nnfunc[mpi]"') from _err

from nnfunc import random, train, tree
from nnfunc._validate import describe, fail, type_fail
from nnfunc.layer import Layer, is_stateful
from nnfunc.losses import Loss
from nnfunc.optim.base import update_fn
from nnfunc.train import _fit, _grad, _infer
from nnfunc.typing import Array, Input, Key, PyTree

__all__ = ["allreduce_mean", "broadcast", "fit", "shard_bounds", "train_step"]


# -- communicators and the flat buffer ----------------------------------------------------

def _comm(comm: Any, component: str) -> MPI.Intracomm:
    if comm is None:
        return MPI.COMM_WORLD
    if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
        raise type_fail(component, "comm", "must be an mpi4py intracommunicator "
                        "(e.g. mpi4py.MPI.COMM_WORLD)", describe(comm))
    return comm


def shard_bounds(m: int, size: int, rank: int) -> tuple[int, int]:
    """Rank ``rank``'s rows ``[lo, hi)`` of a global batch of ``m`` rows on ``size`` ranks.

    Contiguous and balanced: ``lo = ⌊rank·m/size⌋``, ``hi = ⌊(rank+1)·m/size⌋``
    (shards differ by at most one row; with ``m < size`` some are empty).

    >>> [shard_bounds(5, 3, r) for r in range(3)]
    [(0, 1), (1, 3), (3, 5)]
    """
    return rank * m // size, (rank + 1) * m // size


def _sum(comm: MPI.Intracomm, buf: Array, ordered: bool) -> Array:
    """``Σ_r buf_r`` on every rank: in place by ``Allreduce``, or in rank order."""
    if not ordered:
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return buf
    every = np.empty((comm.Get_size(), buf.size), buf.dtype)
    comm.Allgather(buf, every)
    total: Array = every[0].copy()
    for row in every[1:]:
        total += row
    return total


def _reduce_weighted(comm: MPI.Intracomm, leaves: list[Array], weight: float, extra: float,
                     ordered: bool) -> tuple[list[Array], float, float]:
    """``(Σ_r W_r leaves_r / Σ_r W_r, Σ_r W_r extra_r / Σ_r W_r, Σ_r W_r)`` in one collective.

    The leaves are laid end to end in one buffer of their common dtype,
    followed by ``W_r · extra_r`` and ``W_r``; the results are views of it
    (copies for leaves of another dtype). A rank with ``W_r = 0`` contributes
    zeros whatever its leaves hold.
    """
    dtype = np.result_type(*leaves) if leaves else np.dtype(np.float64)
    total = sum(a.size for a in leaves)
    buf = np.empty(total + 2, dtype)
    if weight == 0:
        buf.fill(0)
    else:
        if leaves:
            np.concatenate([a.reshape(-1) for a in leaves], out=buf[:total], casting="same_kind")
        buf[:total] *= dtype.type(weight)
        buf[total] = weight * extra
    buf[total + 1] = weight
    buf = _sum(comm, buf, ordered)
    w_all = float(buf[total + 1])
    if w_all > 0:
        buf /= dtype.type(w_all)
    out, at = [], 0
    for a in leaves:
        view = buf[at:at + a.size].reshape(a.shape)
        out.append(view if view.dtype == a.dtype else view.astype(a.dtype))
        at += a.size
    return out, float(buf[total]), w_all


# -- broadcast and mean -------------------------------------------------------------------

def broadcast(tree_: PyTree, *, comm: Any = None, root: int = 0) -> Any:
    """Rank ``root``'s ``tree_`` on every rank (any pytree; the others' values are ignored).

    Call it on every rank, e.g. to start from rank 0's params in your own
    loop. Arrays arrive bit for bit, with their dtypes and shapes.
    """
    c = _comm(comm, "distributed.broadcast")
    if isinstance(root, bool) or not isinstance(root, int) or not 0 <= root < c.Get_size():
        raise fail("distributed.broadcast", "root", f"must be a rank in [0, {c.Get_size()})",
                   root)
    return c.bcast(tree_, root=root)


def allreduce_mean(tree_: PyTree, *, comm: Any = None, ordered: bool = False) -> Any:
    """The mean over ranks of each leaf of ``tree_``, the same bits on every rank.

    ``mean = (Σ_r leaf_r) / p`` over the ``p`` ranks, summed in one
    collective over one flat buffer (``ordered=True``: gathered and added in
    rank order, independent of the MPI library). Every rank passes a tree
    of the same structure, shapes and float dtypes; the result has them.
    """
    c = _comm(comm, "distributed.allreduce_mean")
    leaves, treedef = tree.flatten(tree_)
    arrays = [np.asarray(a) for a in leaves]
    bad = [a.dtype for a in arrays if a.dtype.kind != "f"]
    if bad:
        raise type_fail("distributed.allreduce_mean", "tree_", "must have float leaves only",
                        f"dtype {bad[0]}")
    means, _, _ = _reduce_weighted(c, arrays, 1.0, 0.0, ordered)
    # scalars come back as scalars: NumPy ones keep their type, Python floats stay floats
    out = [m if isinstance(a, np.ndarray) else m[()] if isinstance(a, np.generic)
           else float(m) for a, m in zip(leaves, means)]
    return tree.unflatten(treedef, out)


# -- one step -----------------------------------------------------------------------------

def _shard_grads(model: Layer, loss: Loss, params: PyTree, x: Input, y: Any, key: Key | None,
                 weights: Array | None, n_local: int
                 ) -> tuple[Any, list[Array], tree.TreeDef, Any]:
    """This rank's loss, gradient leaves and their structure, and predictions.

    A shard of no rows (or no weight) gives zeros and no predictions.
    """
    if n_local == 0:
        leaves, treedef = tree.flatten(params)
        return 0.0, [np.zeros_like(np.asarray(a)) for a in leaves], treedef, None
    value, grads, y_pred = _grad._forward_backward(model, loss, True, params, x, y, key, weights)
    leaves, treedef = tree.flatten(grads)
    return value, [np.asarray(g) for g in leaves], treedef, y_pred


def _stateful_shard_grads(model: Layer, loss: Loss, params: PyTree, state: PyTree, x: Input,
                          y: Any, key: Key | None, weights: Array | None, rows: int,
                          weight: float
                          ) -> tuple[Any, list[Array], tree.TreeDef, Any, Any]:
    """:func:`_shard_grads` of a stateful model, with the state its shard's forward pass makes.

    A shard of rows that weigh nothing still runs its forward pass (its
    statistics count, as in one process); one of no rows keeps the state.
    """
    if rows == 0:
        value, leaves, treedef, _ = _shard_grads(model, loss, params, x, y, key, None, 0)
        return value, leaves, treedef, None, state
    value, grads, y_pred, new_state = _grad._stateful_forward_backward(
        model, loss, True, params, state, x, y, key, weights if weight else None)
    leaves, treedef = tree.flatten(grads)  # weighed by 0 in the sum when weight is 0
    return value, [np.asarray(g) for g in leaves], treedef, y_pred, new_state


def _mean_state(c: MPI.Intracomm, state: PyTree, rows: int, ordered: bool) -> Any:
    """The ranks' model states averaged, weighted by their shards' rows (float leaves).

    Every rank then holds the same state. A rank without rows contributes
    nothing; leaves that are not floats (counters) are the same on every
    rank already and are kept.
    """
    leaves, treedef = tree.flatten(state)
    floats = [i for i, a in enumerate(leaves) if np.asarray(a).dtype.kind == "f"]
    means, _, _ = _reduce_weighted(c, [np.asarray(leaves[i]) for i in floats], float(rows),
                                   0.0, ordered)
    for i, m in zip(floats, means):
        leaves[i] = m if isinstance(leaves[i], np.ndarray) else m[()]
    return tree.unflatten(treedef, leaves)


def train_step(model: Layer, loss: Loss, optimizer: Any, *, comm: Any = None,
               donate: bool = False, ordered: bool = False) -> _grad.Step:
    """One data-parallel step: each rank passes its shard, every rank gets the same update.

    Returns ``step(params, opt_state, x, y, *, key=None, sample_weight=None)
    -> (params, opt_state, loss_value)`` like :func:`nnfunc.train.train_step`,
    where ``(x, y)`` is this rank's shard (possibly of zero rows) of the
    global batch and ``loss_value`` is the global batch's loss on every rank.
    The gradient is ``Σ_r W_r g_r / Σ_r W_r`` (``W_r`` the shard's sample
    count, or weight sum), summed in one collective. Every rank must start
    from the same params (see :func:`broadcast`). A ``key`` without a row
    offset gets this rank's (the rows before it, by ``Exscan``), so dropout
    masks are the global batch's whatever the number of ranks.

    For a stateful model the step is ``step(params, opt_state, model_state,
    x, y, ...) -> (params, opt_state, model_state, loss_value)``; each rank's
    forward pass updates the state from its shard (batch norm: the shard's
    statistics), and the new states are averaged over ranks, weighted by
    rows, so every rank holds the same one.

    Raises:
        TypeError: ``comm`` is not a communicator, or a bad model, loss or
            optimizer.
    """
    c = _comm(comm, "distributed.train_step")
    _grad._check_model_and_loss("distributed.train_step", model, loss)
    _grad._check_optimizer("distributed.train_step", optimizer)
    update = update_fn(optimizer, donate)

    stateful = is_stateful(model)

    def shard_step(params: PyTree, opt_state: PyTree, model_state: Any, x: Input, y: Any,
                   key: Key | None, sample_weight: Any) -> tuple[Any, Any, Any, Any]:
        n_local = _infer._num_samples("distributed.train_step", "x", x)
        if key is not None and random.check_key(key, "distributed.train_step").shape == (2,):
            before = c.exscan(n_local)
            key = random.with_row_offset(key, 0 if before is None else int(before))
        if sample_weight is None:
            weight = float(n_local)
        else:
            weight = float(np.asarray(sample_weight, dtype=np.float64).sum())
        if stateful:
            value, leaves, treedef, _, new_state = _stateful_shard_grads(
                model, loss, params, model_state, x, y, key, sample_weight, n_local, weight)
            model_state = _mean_state(c, new_state, n_local, ordered)
        else:
            value, leaves, treedef, _ = _shard_grads(model, loss, params, x, y, key,
                                                     sample_weight if weight else None,
                                                     n_local if weight else 0)
        sums, value_all, w_all = _reduce_weighted(c, leaves, weight, float(value), ordered)
        if w_all <= 0:
            raise fail("distributed.train_step", "sample_weight", "must have a positive sum "
                       "over all ranks", w_all)
        opt_state, params = update(opt_state, tree.unflatten(treedef, sums))
        loss_value = np.asarray(sums[0] if sums else 0.0).dtype.type(value_all)
        return params, opt_state, model_state, loss_value

    if stateful:
        def stateful_step(params: PyTree, opt_state: PyTree, model_state: PyTree, x: Input,
                          y: Any, *, key: Key | None = None,
                          sample_weight: Any = None) -> tuple[Any, Any, Any, Any]:
            return shard_step(params, opt_state, model_state, x, y, key, sample_weight)

        return stateful_step

    def step(params: PyTree, opt_state: PyTree, x: Input, y: Any, *, key: Key | None = None,
             sample_weight: Any = None) -> tuple[Any, Any, Any]:
        params, opt_state, _, loss_value = shard_step(params, opt_state, (), x, y, key,
                                                      sample_weight)
        return params, opt_state, loss_value

    return step


# -- fit ----------------------------------------------------------------------------------

def _digest(*parts: Any) -> str:
    """A hash of arrays' bytes, shapes and dtypes, of containers' structure, of other reprs."""
    h = hashlib.blake2b(digest_size=16)

    def feed(node: Any) -> None:
        if isinstance(node, (np.ndarray, np.generic)):
            arr = np.ascontiguousarray(node)
            h.update(f"a{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes() if arr.dtype.kind in "biufc" else repr(arr).encode())
        elif isinstance(node, dict):
            h.update(f"d{len(node)}".encode())
            for k in sorted(node, key=repr):
                h.update(repr(k).encode())
                feed(node[k])
        elif isinstance(node, (list, tuple)):
            h.update(f"{type(node).__name__}{len(node)}".encode())
            for child in node:
                feed(child)
        else:
            h.update(repr(node).encode())
        h.update(b"|")

    for part in parts:
        feed(part)
    return h.hexdigest()


def _agree_or_raise(c: MPI.Intracomm, what: dict[str, Any], component: str) -> None:
    """Raise the same ``ValueError`` on every rank unless all ranks' ``what`` are equal."""
    every = c.allgather(what)
    differ = [k for k in what if any(other.get(k) != every[0].get(k) for other in every)]
    if differ:
        got = "; ".join(f"{k}: " + ", ".join(f"rank {r} {w.get(k)}" for r, w in enumerate(every))
                        for k in differ)
        raise fail(component, ", ".join(differ), "must be the same on every rank", got)


def _checked_everywhere(c: MPI.Intracomm, component: str, check: Callable[[], Any]) -> Any:
    """``check()`` on every rank; if it raises on any rank, every rank raises."""
    try:
        result, error = check(), None
    except (TypeError, ValueError) as err:
        result, error = None, err
    errors = c.allgather(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    failed = [(r, e) for r, e in enumerate(errors) if e is not None]
    if failed:
        r, e = failed[0]
        raise ValueError(f"{component}: rank {r} rejected its arguments ({e})")
    return result


def _shards(c: MPI.Intracomm, ordered: bool) -> _fit.Shards:
    size, rank = c.Get_size(), c.Get_rank()

    def batch(model: Layer, loss: Loss, x: Any, y: Any, need_preds: bool) -> _fit.BatchStep:
        stateful = is_stateful(model)

        def step(params: PyTree, model_state: Any, idx: Any, wb: Array | None,
                 key: Key | None) -> tuple[Any, Any, Any, Any, Any]:
            lo, hi = shard_bounds(len(idx), size, rank)
            mine, yb = idx[lo:hi], _infer._take(y, idx)
            w_mine = None if wb is None else wb[lo:hi]
            weight = float(hi - lo) if w_mine is None else float(w_mine.sum())
            x_mine, y_mine = _infer._take(x, mine), _infer._take(y, mine)
            k_mine = None if key is None else random.with_row_offset(key, lo)  # keyless
            if stateful:
                value, leaves, treedef, y_pred, new_state = _stateful_shard_grads(
                    model, loss, params, model_state, x_mine, y_mine, k_mine, w_mine,
                    hi - lo, weight)
                model_state = _mean_state(c, new_state, hi - lo, ordered)
            else:
                value, leaves, treedef, y_pred = _shard_grads(
                    model, loss, params, x_mine, y_mine, k_mine, w_mine,
                    hi - lo if weight else 0)
                if need_preds and hi > lo and not weight:
                    # rows that weigh nothing still count in the metrics, as in one process
                    y_pred = model.apply(params, x_mine, key=k_mine, train=True)
            sums, value_all, w_all = _reduce_weighted(c, leaves, weight, float(value), ordered)
            if w_all <= 0:
                raise fail("distributed.fit", "sample_weight", "must have a positive sum in "
                           "every batch", w_all)
            preds = _gathered(c, y_pred if hi > lo else None) if need_preds else None
            return value_all, tree.unflatten(treedef, sums), preds, yb, model_state

        return step

    def evaluate(model: Layer, loss: Loss, params: PyTree, x: Any, y: Any, *,
                 batch_size: int, metrics: Any, model_state: Any = None) -> dict[str, float]:
        n = _infer._num_samples("distributed.fit", "validation", x)
        lo, hi = shard_bounds(n, size, rank)
        mine = (train.predict(model, params, _infer._take(x, slice(lo, hi)),
                              batch_size=batch_size, model_state=model_state)
                if hi > lo else None)
        y_pred = _gathered(c, mine)
        results = {"loss": float(loss.apply(y_pred, y))}
        for m in metrics:
            results[_infer._metric_name(m)] = float(m(y_pred, y))
        return results

    def agree(epoch: int, logs: dict[str, float],
              trees: tuple[Any, Any, Any]) -> dict[str, float]:
        every = c.allgather((_digest(*trees), logs))
        if any(d != every[0][0] for d, _ in every):
            hashes = ", ".join(f"rank {r} {d[:12]}" for r, (d, _) in enumerate(every))
            raise RuntimeError(
                f"distributed.fit: the ranks' params or states differ after epoch "
                f"{epoch + 1} (hashes {hashes}): a callback that decided differently on some "
                "rank, or an MPI library whose Allreduce gave ranks different bits (then pass "
                "ordered=True)")
        return dict(every[0][1])

    return _fit.Shards(batch, evaluate, agree, rank == 0, c.Barrier)


def _gathered(c: MPI.Intracomm, part: Any) -> Any:
    """Every rank's ``part`` (``None`` for none) concatenated in rank order, on every rank."""
    parts = [p for p in c.allgather(part) if p is not None]
    return tree.map(lambda *a: np.concatenate(a, axis=0), parts[0], *parts[1:])


def fit(model: Layer, loss: Loss, optimizer: Any, params: PyTree, data: tuple[Any, Any], *,
        comm: Any = None, ordered: bool = False, **fit_kwargs: Any) -> train.FitResult:
    """:func:`nnfunc.train.fit` on every rank of ``comm``, each computing a shard of each batch.

    Call it on every rank with the same arguments (the same ``data``, ``key``
    and ``batch_size``, which is the global batch). The result is the same
    on every rank (params bit for bit) and equals single-process ``fit`` on
    the same arguments to float rounding (summing in another order), with
    the same history and the same early-stopping epoch. Params (and a given
    ``opt_state``) start as rank 0's. ``progress`` shows on rank 0 only, and
    only rank 0 runs ``rank0_only`` callbacks such as
    :func:`nnfunc.callbacks.checkpoint` (the others wait for it at the end of
    each epoch). Launch with ``mpiexec -n <p> python -m mpi4py script.py``.

    Args:
        model, loss, optimizer, params, data: as for :func:`nnfunc.train.fit`.
        comm: an mpi4py intracommunicator; default ``MPI.COMM_WORLD``.
        ordered: sum the ranks' gradients in rank order after an
            ``Allgather`` instead of by ``Allreduce``: the result then does
            not depend on the MPI library (``p`` times the bytes received).
        **fit_kwargs: every keyword of :func:`nnfunc.train.fit`.

    Raises:
        TypeError: ``comm`` is not a communicator (on the ranks given it).
        ValueError: on every rank, before any step: ranks given different
            data, keys or settings (the message lists each rank's), or a rank
            whose arguments ``fit`` rejects.
        RuntimeError: on every rank, if the ranks' params ever differ at the
            end of an epoch.
    """
    c = _comm(comm, "distributed.fit")

    def fingerprint() -> dict[str, Any]:
        if not isinstance(data, tuple) or len(data) != 2:
            raise type_fail("distributed.fit", "data", "must be a pair (x, y)", describe(data))
        key = random.check_key(fit_kwargs.get("key"), "distributed.fit")
        settings = {k: v for k, v in fit_kwargs.items()
                    if k in ("epochs", "batch_size", "shuffle", "initial_epoch")}
        return {"samples": _infer._num_samples("distributed.fit", "x", data[0]),
                "data": _digest(data[0], data[1]), "key": _digest(key),
                "settings": repr(sorted(settings.items())),
                "weights": _digest(fit_kwargs.get("sample_weight"),
                                   fit_kwargs.get("class_weight")),
                "validation": _digest(fit_kwargs.get("validation"))}

    mine = _checked_everywhere(c, "distributed.fit", fingerprint)
    _agree_or_raise(c, mine, "distributed.fit")
    params = broadcast(params, comm=c)
    if fit_kwargs.get("opt_state") is not None:
        fit_kwargs["opt_state"] = broadcast(fit_kwargs["opt_state"], comm=c)
    main = c.Get_rank() == 0
    fit_kwargs["progress"] = bool(fit_kwargs.get("progress", True)) and main
    return train.fit(model, loss, optimizer, params, data, _shards=_shards(c, ordered),
                     **fit_kwargs)
