"""One epoch of ``fit`` on the bundled digits beside a plain NumPy loop.

What a user runs: ``nnfunc.train.fit`` of a 64-256-128-10 ReLU MLP (the
digits example's, without its dropout) with Adam, batch 32, shuffled, one
epoch of 44 full batches (1,408 of the 1,438 training images), progress
bar off, no allocator tuning. Beside it, the hand-written NumPy step of
:mod:`benchmarks.handwritten` on the same batches (each shuffled batch
gathered into its preallocated input buffer, as a script would). Both run
in a fresh process of their own, epochs interleaved, and the report gives
the median epoch of each and their paired ratio.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from benchmarks.import_time import run_child

_CHILD = """
import json, time
import numpy as np
from nnfunc import datasets, optim, random, train
from nnfunc.activations import relu
from nnfunc.combinators import serial
from nnfunc.layers import dense
from nnfunc.losses import softmax_cross_entropy
from benchmarks.handwritten import make_handwritten_step
from benchmarks.workloads import Workload

data = datasets.load_digits()
x, y = data.x_train[:1408], data.y_train[:1408].astype(np.int64)
model = serial(dense(256), relu, dense(128), relu, dense(10))
_, params = model.init(random.key(0), (64,))
opt = optim.adam(1e-3)
hand = make_handwritten_step(Workload("digits", (64, 256, 128, 10), 32, 0.0, "ratio"),
                             np.float32)

def nnfunc_epoch(epoch):
    global params
    params = train.fit(model, softmax_cross_entropy, opt, params, (x, y), epochs=1,
                       batch_size=32, key=random.key(epoch), progress=False).params

def numpy_epoch(epoch):
    order = np.random.default_rng(epoch).permutation(len(x))
    for i in range(0, len(x), 32):
        idx = order[i:i + 32]
        np.take(x, idx, axis=0, out=hand.x)
        np.take(y, idx, out=hand.y)
        hand.run()

times = {{"nnfunc": [], "numpy": []}}
for epoch in range({epochs} + 1):
    for name, run in (("nnfunc", nnfunc_epoch), ("numpy", numpy_epoch)):
        t0 = time.perf_counter()
        run(epoch)
        if epoch:  # the first epoch of each warms caches and imports
            times[name].append(time.perf_counter() - t0)
print(json.dumps(times))
"""


def measure_fit_epoch(epochs: int = 5) -> dict[str, Any]:
    """Median seconds of a digits epoch through ``fit`` and through a plain NumPy loop.

    Returns ``{"epochs", "steps", "fit_s", "numpy_s", "ratio", "fit_s_per_epoch",
    "numpy_s_per_epoch"}``; ``ratio`` is the median of the per-epoch ratios.
    """
    times = run_child(_CHILD.format(epochs=epochs))
    fit_s, np_s = times["nnfunc"], times["numpy"]
    return {"epochs": epochs, "steps": 44, "fit_s": median(fit_s), "numpy_s": median(np_s),
            "ratio": median(f / n for f, n in zip(fit_s, np_s)),
            "fit_s_per_epoch": fit_s, "numpy_s_per_epoch": np_s}
