"""Regression: fit a noisy sine with a small tanh MLP and MSE.

Run:  python examples/regression.py
"""

from __future__ import annotations

import numpy as np

import nnfunc as nf
from nnfunc import datasets, metrics, optim, random


def main() -> None:
    k_train, k_test, k_init, k_fit = random.split(random.key(1), 4)
    x, y = datasets.noisy_sine(k_train, 512, noise=0.1)
    x_test, y_test = datasets.noisy_sine(k_test, 256, noise=0.0)
    model = nf.serial(nf.dense(32), nf.tanh, nf.dense(32), nf.tanh, nf.dense(1))
    _, params = model.init(k_init, (1,))
    lr = optim.schedules.cosine_decay(1e-2, decay_steps=400 * 8, alpha=0.01)
    result = nf.train.fit(model, nf.mse, optim.adam(lr), params, (x, y), epochs=400,
                          batch_size=64, key=k_fit, metrics=[metrics.r2], progress=False)
    pred = nf.train.predict(model, result.params, x_test)
    print(f"train mse: {result.history['loss'][-1]:.4f} (noise variance 0.0100)")
    print(f"test mse against the clean sine: {metrics.mse(pred, y_test):.4f}")
    print(f"test r2: {metrics.r2(pred, y_test):.4f}")
    grid = np.linspace(-np.pi, np.pi, 5, dtype=np.float32)[:, None]
    for xi, yi in zip(grid[:, 0], nf.train.predict(model, result.params, grid)[:, 0]):
        print(f"  sin({xi:+.2f}) = {np.sin(xi):+.3f}, model {yi:+.3f}")


if __name__ == "__main__":
    main()
