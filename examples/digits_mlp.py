"""The main job: an MLP with dropout and Adam on the bundled handwritten digits.

Trains on the fixed 1,438-image training split, keeps the epoch with the
best validation loss (early stopping with restore), reports the accuracy on
the 359 held-out test images, saves a checkpoint of the whole training state,
and, if matplotlib is installed, a PNG of the training curves.

Run:  python examples/digits_mlp.py [--epochs N] [--out DIR] [--quiet]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import nnfunc as nf
import nnfunc.allocator
from nnfunc import datasets, io, metrics, optim, random
from nnfunc.callbacks import checkpoint, early_stopping


def build_model() -> nf.Layer:
    """64 -> 256 -> 128 -> 10 with ReLU and dropout."""
    return nf.serial(
        nf.dense(256, w_init=nf.initializers.he_normal), nf.relu, nf.dropout(0.25),
        nf.dense(128, w_init=nf.initializers.he_normal), nf.relu, nf.dropout(0.25),
        nf.dense(10),
    )


class Setup(NamedTuple):
    """Everything a training run needs, made the same way by every script that uses it."""

    data: datasets.Split
    model: nf.Layer
    opt: optim.Optimizer
    params: Any
    train: tuple[Any, Any]
    val: tuple[Any, Any]
    key: Any


def prepare(epochs: int) -> Setup:
    """The digits, a 15% validation split of the training images, the model and Adam."""
    data = datasets.load_digits()
    k_init, k_split, k_fit = random.split(random.key(0), 3)
    # hold out 15% of the training split for validation (early stopping)
    order = random.permutation(k_split, len(data.y_train))
    n_val = int(0.15 * len(order))
    val, train = order[:n_val], order[n_val:]
    model = build_model()
    _, params = model.init(k_init, (64,))
    opt = optim.adam(optim.schedules.cosine_decay(2e-3, decay_steps=epochs * 20, alpha=0.05))
    return Setup(data, model, opt, params, (data.x_train[train], data.y_train[train]),
                 (data.x_train[val], data.y_train[val]), k_fit)


def parse_args(description: str) -> argparse.Namespace:
    """``--epochs``, ``--out`` and ``--quiet``, shared with ``digits_mpi.py``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--out", type=Path, default=Path("examples/out"))
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    nnfunc.allocator.tune()
    start = time.perf_counter()

    s = prepare(args.epochs)
    data, model = s.data, s.model
    nf.summary(model, (64,))

    args.out.mkdir(parents=True, exist_ok=True)
    result = nf.train.fit(
        model, nf.softmax_cross_entropy, s.opt, s.params, s.train,
        epochs=args.epochs, batch_size=64, key=s.key, validation=s.val,
        metrics=[metrics.accuracy], progress=not args.quiet,
        callbacks=[early_stopping("val_loss", patience=15),
                   checkpoint(args.out / "digits_mlp.npz", every=10)],
    )
    test = nf.train.evaluate(model, nf.softmax_cross_entropy, result.params, data.x_test,
                             data.y_test, metrics=[metrics.accuracy])
    io.save(args.out / "digits_mlp_best.npz", {"params": result.params,
                                               "history": result.history})
    print(f"epochs run: {result.epoch}, best val_loss: {min(result.history['val_loss']):.4f}")
    print(f"time: {time.perf_counter() - start:.1f}s")
    print(f"checkpoint: {args.out / 'digits_mlp_best.npz'}")
    if _plot(result.history, args.out / "digits_mlp.png"):
        print(f"training curves: {args.out / 'digits_mlp.png'}")
    print(f"test accuracy: {test['accuracy']:.3f}")


def _plot(history: dict[str, list[float]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax_loss.plot(epochs, history["loss"], label="train")
    ax_loss.plot(epochs, history["val_loss"], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="softmax cross-entropy", yscale="log")
    ax_acc.plot(epochs, history["accuracy"], label="train (dropout on)")
    ax_acc.plot(epochs, history["val_accuracy"], label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


if __name__ == "__main__":
    main()
