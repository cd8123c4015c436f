"""The classic two-convolution network on 5,000 real MNIST digits (28×28).

``load_mnist_5k`` ships 500 images per class (CC BY-SA 3.0, see
``nnfunc/data/MNIST_LICENSE.txt``): 4,000 to train on (10% of them held out
to pick the best epoch), 1,000 to test. The network is the workload
``cnn_mnist`` of ``python -m benchmarks.cnn`` with dropout:
conv 3×3·32 -> relu -> max-pool 2 -> conv 3×3·64 -> relu -> max-pool 2 ->
dense 128 -> relu -> dense 10, trained with Adam.

Run:  python examples/mnist_cnn.py [--epochs N] [--quiet]
"""

from __future__ import annotations

import argparse
import time

import nnfunc as nf
import nnfunc.allocator
from nnfunc import datasets, metrics, optim, random
from nnfunc.callbacks import early_stopping


def build_model() -> nf.Layer:
    """(28, 28, 1) -> (26, 26, 32) -> (13, 13, 32) -> (11, 11, 64) -> (5, 5, 64) -> 128 -> 10."""
    he = nf.initializers.he_normal
    return nf.serial(
        nf.conv2d(32, 3, w_init=he), nf.relu, nf.max_pool2d(2),
        nf.conv2d(64, 3, w_init=he), nf.relu, nf.max_pool2d(2),
        nf.flatten, nf.dropout(0.25),
        nf.dense(128, w_init=he), nf.relu, nf.dropout(0.5),
        nf.dense(10),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    nnfunc.allocator.tune()
    start = time.perf_counter()

    data = datasets.load_mnist_5k(flat=False)
    k_init, k_split, k_fit = random.split(random.key(0), 3)
    order = random.permutation(k_split, len(data.y_train))
    n_val = len(order) // 10
    val, train = order[:n_val], order[n_val:]

    model = build_model()
    _, params = model.init(k_init, (28, 28, 1))
    if not args.quiet:
        nf.summary(model, (28, 28, 1))
    steps = args.epochs * -(-len(train) // 64)
    opt = optim.adam(optim.schedules.cosine_decay(2e-3, decay_steps=steps, alpha=0.05))
    result = nf.train.fit(
        model, nf.softmax_cross_entropy, opt, params,
        (data.x_train[train], data.y_train[train]), epochs=args.epochs, batch_size=64,
        key=k_fit, validation=(data.x_train[val], data.y_train[val]),
        metrics=[metrics.accuracy], progress=not args.quiet,
        callbacks=[early_stopping("val_loss", patience=3)],
    )
    test = nf.train.evaluate(model, nf.softmax_cross_entropy, result.params, data.x_test,
                             data.y_test, metrics=[metrics.accuracy])
    print(f"epochs run: {result.epoch}, best val_loss: {min(result.history['val_loss']):.4f}")
    print(f"time: {time.perf_counter() - start:.1f}s")
    print(f"test accuracy: {test['accuracy']:.4f}")


if __name__ == "__main__":
    main()
