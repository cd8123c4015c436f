"""nnfunc's benchmarks: one training step against the BLAS floor and against peers.

Run ``python -m benchmarks --help``. Modules, one per concept:

* :mod:`benchmarks.workloads` — the four MLP classifiers and their bars;
* :mod:`benchmarks.floor` — the unavoidable matrix products of a step;
* :mod:`benchmarks.nnfunc_step` — nnfunc's full step (forward, backward, Adam);
* :mod:`benchmarks.peers` — scikit-learn and PyTorch, when installed;
* :mod:`benchmarks.timing` — interleaved, paired timing on a noisy machine;
* :mod:`benchmarks.import_time`, :mod:`benchmarks.memory` — fresh-process costs;
* :mod:`benchmarks.report` — machine info, the table and the JSON record.

Timings are reported, never asserted: the bars are printed beside the ratios.
This package imports nothing but NumPy at import time.
"""
