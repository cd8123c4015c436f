#!/usr/bin/env bash
# Run every example; the main job must reach its accuracy bar.
set -euo pipefail
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python examples/digits_mlp.py --quiet --out "$out" | tee "$out/digits.log"
python - "$out/digits.log" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
acc = float(re.search(r"^test accuracy: ([0-9.]+)$", text, re.M).group(1))
assert acc >= 0.97, f"digits_mlp test accuracy {acc} < 0.97"
print(f"digits_mlp: test accuracy {acc} >= 0.97")
PY
test -s "$out/digits_mlp_best.npz"
python examples/custom_layer.py
python examples/regression.py
python examples/spirals.py
