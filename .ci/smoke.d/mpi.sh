#!/usr/bin/env bash
# The data-parallel example on 2 ranks must print the test accuracy of the
# single-process example with the same settings (short runs: 10 epochs).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
"$PY" examples/digits_mlp.py --quiet --epochs 10 --out "$out" | tee "$out/one.log"
timeout 300 mpiexec -n 2 "$PY" -m mpi4py examples/digits_mpi.py --quiet --epochs 10 \
    --out "$out" | tee "$out/two.log"
one=$(grep '^test accuracy:' "$out/one.log")
two=$(grep '^test accuracy:' "$out/two.log")
[ "$one" = "$two" ] || { echo "digits_mpi ($two) differs from digits_mlp ($one)"; exit 1; }
test -s "$out/digits_mpi.npz"
echo "digits_mpi on 2 ranks: $two, as digits_mlp"
