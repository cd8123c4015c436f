#!/usr/bin/env bash
# Smoke-run the CNN benchmark on cnn_digits: it must run and print its table.
# Timings and bars are reported, never asserted (CI machines are noisy).
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m benchmarks.cnn --workloads cnn_digits --repeats 1 --no-peers
