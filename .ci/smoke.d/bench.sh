#!/usr/bin/env bash
# Smoke-run the benchmark on the tiny workload: it must run and print its
# table. Timings and bars are reported, never asserted (CI machines are noisy).
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m benchmarks --workloads tiny --repeats 1 --no-peers
