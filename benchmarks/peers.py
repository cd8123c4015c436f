"""Peers: the same training step in scikit-learn and in PyTorch, when installed.

* **scikit-learn** ``MLPClassifier(solver="adam")``: one ``partial_fit`` on
  exactly ``batch_size`` rows with ``batch_size`` set is one epoch of one
  minibatch, i.e. one Adam step (input validation included — that is what a
  user pays per call). scikit-learn computes in the dtype it is given when it
  supports it (float32 since 1.x), else float64; the dtype it actually used
  is read back from its weights and printed in the table. ``alpha=0`` (no L2
  term) to match the other contenders.
* **PyTorch** eager: ``nn.Sequential`` of ``nn.Linear``/``nn.ReLU``,
  ``nn.CrossEntropyLoss`` and ``optim.Adam``; one step is ``zero_grad``,
  forward, loss, ``backward``, ``step``. ``torch.set_num_threads(os.cpu_count())``.
* **JAX** ``jit`` + optax: the whole step compiled once (XLA fuses Adam into
  one pass), params and state donated. XLA's CPU client uses every core, as
  OpenBLAS and torch are set to.

A peer that is not installed is skipped with a note, never an error. Peers
are optional (the ``bench`` extra installs scikit-learn; torch is installed by
hand, as a CPU wheel, and is never an extra).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import import_module
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from benchmarks.workloads import Workload, make_batch


class PeerStep(NamedTuple):
    """A peer's ready-to-time step: ``run()`` is one training step."""

    run: Callable[[], Any]
    dtype: str
    version: str


def sklearn_step(w: Workload, dtype: npt.DTypeLike) -> PeerStep:
    """scikit-learn's ``MLPClassifier``: one ``partial_fit`` on one batch = one step."""
    # import_module: the optional peers ship no type information (their objects are Any)
    sklearn = import_module("sklearn")
    MLPClassifier = import_module("sklearn.neural_network").MLPClassifier

    x, y = make_batch(w, dtype)
    clf = MLPClassifier(hidden_layer_sizes=w.hidden, activation="relu", solver="adam",
                        batch_size=w.batch, learning_rate_init=1e-3, alpha=0.0,
                        shuffle=False, random_state=0)
    clf.partial_fit(x, y, classes=np.arange(w.sizes[-1]))  # builds the weights

    def run() -> None:
        clf.partial_fit(x, y)

    return PeerStep(run, str(clf.coefs_[0].dtype), sklearn.__version__)


def torch_step(w: Workload, dtype: npt.DTypeLike) -> PeerStep:
    """PyTorch eager: ``zero_grad``, forward, cross-entropy, ``backward``, Adam ``step``."""
    torch: Any = import_module("torch")  # typed as Any whether or not torch is installed

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    t_dtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    modules: list[Any] = []
    for d_in, d_out in w.layer_shapes[:-1]:
        modules += [torch.nn.Linear(d_in, d_out), torch.nn.ReLU()]
    modules.append(torch.nn.Linear(*w.layer_shapes[-1]))
    model = torch.nn.Sequential(*modules).to(t_dtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x_np, y_np = make_batch(w, dtype)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return PeerStep(run, str(t_dtype).removeprefix("torch."), torch.__version__)


def _jax(dtype: npt.DTypeLike) -> tuple[Any, Any]:
    """``jax`` and ``jax.numpy``, with 64-bit floats enabled for a float64 run."""
    jax: Any = import_module("jax")
    if np.dtype(dtype) == np.float64:
        jax.config.update("jax_enable_x64", True)
    return jax, import_module("jax.numpy")


def jax_step(w: Workload, dtype: npt.DTypeLike) -> PeerStep:
    """JAX: the whole step (``value_and_grad``, optax Adam, ``apply_updates``) under
    one ``jax.jit``, params and optimizer state donated; ``run()`` waits for the loss."""
    jax, jnp = _jax(dtype)
    optax: Any = import_module("optax")
    rng = np.random.default_rng(0)
    params = []
    for d_in, d_out in w.layer_shapes:
        limit = np.sqrt(6 / (d_in + d_out))
        params.append((jnp.asarray(rng.uniform(-limit, limit, (d_in, d_out)).astype(dtype)),
                       jnp.zeros((d_out,), dtype)))
    opt = optax.adam(1e-3)
    x_np, y_np = make_batch(w, dtype)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)

    def loss_fn(ps: Any, xb: Any, yb: Any) -> Any:
        h = xb
        for wt, b in ps[:-1]:
            h = jax.nn.relu(h @ wt + b)
        logits = h @ ps[-1][0] + ps[-1][1]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def train(ps: Any, state: Any, xb: Any, yb: Any) -> Any:
        value, grads = jax.value_and_grad(loss_fn)(ps, xb, yb)
        updates, state = opt.update(grads, state, ps)
        return optax.apply_updates(ps, updates), state, value

    step = jax.jit(train, donate_argnums=(0, 1))
    carry: list[Any] = [params, opt.init(params)]

    def run() -> None:
        carry[0], carry[1], value = step(carry[0], carry[1], x, y)
        value.block_until_ready()

    run()  # compile outside the timed blocks
    return PeerStep(run, str(params[0][0].dtype), f"{jax.__version__}, optax {optax.__version__}")


def jax_products_step(w: Workload, dtype: npt.DTypeLike) -> PeerStep:
    """JAX's own floor: the floor's matrix products (every ``x @ W``, ``xᵀ @ dy``
    and, but for the input layer, ``dy @ Wᵀ``) under one ``jax.jit``.

    XLA's CPU runtime can run independent products at once and does its own
    blocking, so on 2 cores its products may take less than NumPy's BLAS
    calls one after the other: this tells how much of JAX's ratio to the
    NumPy floor is its products rather than its overhead above them.
    """
    jax, jnp = _jax(dtype)
    rng = np.random.default_rng(0)
    ws = [jnp.asarray((rng.standard_normal(s) / np.sqrt(s[0])).astype(dtype))
          for s in w.layer_shapes]
    x_np, _ = make_batch(w, dtype)
    x = jnp.asarray(x_np)
    dys = [jnp.asarray((rng.standard_normal((w.batch, d_out)) * 0.01).astype(dtype))
           for _, d_out in w.layer_shapes]

    def products(ws: Any, x: Any, dys: Any) -> Any:
        acts = [x]
        for wt in ws:
            acts.append(acts[-1] @ wt)
        out = []
        for i in range(len(ws) - 1, -1, -1):
            out.append(acts[i].T @ dys[i])
            if i:
                out.append(dys[i] @ ws[i].T)
        return acts[-1], out

    jitted = jax.jit(products)

    def run() -> None:
        jax.block_until_ready(jitted(ws, x, dys))

    run()  # compile outside the timed blocks
    return PeerStep(run, str(ws[0].dtype), f"{jax.__version__}")


PEERS: dict[str, Callable[[Workload, npt.DTypeLike], PeerStep]] = {
    "sklearn": sklearn_step,
    "torch": torch_step,
    "jax": jax_step,
    "jax_products": jax_products_step,
}


def available_peers(w: Workload, dtype: npt.DTypeLike,
                    names: tuple[str, ...] = tuple(PEERS)) -> tuple[dict[str, PeerStep], list[str]]:
    """The installed peers' steps for ``w``, and one note per peer that was skipped.

    Only a missing package (``ImportError``) skips a peer; any other failure
    is a bug in the benchmark and propagates.
    """
    found: dict[str, PeerStep] = {}
    notes: list[str] = []
    for name in names:
        try:
            found[name] = PEERS[name](w, dtype)
        except ImportError as err:
            notes.append(f"{name} skipped: not installed ({err.name or err})")
    return found, notes
