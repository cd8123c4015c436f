"""A layer of your own: write init/apply/grad, check the gradient, train with it.

The layer is a parametric ReLU (He et al., 2015) with one learned slope per
feature:

    y = x                 where x > 0
    y = a ⊙ x             elsewhere          a: (d,)
    dx = dy ⊙ (1 or a),   da = Σ_n dy ⊙ min(x, 0)

Run:  python examples/custom_layer.py
"""

from __future__ import annotations

from typing import Any

import numpy as np

import nnfunc as nf
from nnfunc import datasets, optim, random
from nnfunc.testing import check_grad


def prelu(init_slope: float = 0.25) -> nf.Layer:
    """Parametric ReLU with a learned slope per feature (params ``{"a": (d,)}``)."""

    def init(key: Any, in_shape: tuple[int, ...]) -> tuple[tuple[int, ...], dict[str, Any]]:
        return in_shape, {"a": np.full(in_shape, init_slope, np.float32)}

    def apply(params: Any, x: Any, *, key: Any = None, train: bool = False) -> Any:
        return np.where(x > 0, x, params["a"] * x)

    def grad(params: Any, x: Any, dy: Any, *, key: Any = None,
             train: bool = False) -> tuple[Any, Any]:
        positive = x > 0
        da = (dy * np.minimum(x, 0)).sum(axis=0)
        dx = np.where(positive, dy, params["a"] * dy)
        return {"a": da}, dx

    return nf.Layer(init, apply, grad, name="prelu")


def main() -> None:
    layer = prelu()
    _, params = layer.init(random.key(0), (5,))
    x = random.normal(random.key(1), (8, 5), np.float64)
    x = np.where(np.abs(x) < 1e-2, 1e-2, x)  # keep finite differences off the kink
    report = check_grad(layer, params, x)
    print(f"gradient check: {report}")

    model = nf.serial(nf.dense(32), layer, nf.dense(32), prelu(), nf.dense(2))
    data = datasets.two_moons(random.key(2), 600, noise=0.15)
    x_train, y_train = data
    _, params = model.init(random.key(3), (2,))
    result = nf.train.fit(model, nf.softmax_cross_entropy, optim.adam(1e-2), params,
                          (x_train, y_train), epochs=60, batch_size=64, key=random.key(4),
                          progress=False)
    logits = model.apply(result.params, x_train)
    accuracy = float((logits.argmax(axis=1) == y_train).mean())
    slopes = result.params[1]["a"]
    print(f"learned slopes of the first prelu: mean {slopes.mean():.3f}, "
          f"range [{slopes.min():.3f}, {slopes.max():.3f}]")
    print(f"train accuracy: {accuracy:.3f}")


if __name__ == "__main__":
    main()
