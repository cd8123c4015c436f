#!/usr/bin/env bash
# Run every example; the main jobs must reach their accuracy bars.
# .ci/run calls this with PYTHON set to a venv holding only the installed
# wheel, from a directory outside the checkout (EXAMPLES points at the
# checkout's examples/), so the README's first command is proved as a user
# runs it.
set -euo pipefail
PY=${PYTHON:-python}
EX=${EXAMPLES:-$(cd "$(dirname "$0")/../.." && pwd)/examples}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# accuracy LOG NAME BAR: the "test accuracy: X" line of LOG must reach BAR
accuracy() {
    "$PY" - "$1" "$2" "$3" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
acc = float(re.search(r"^test accuracy: ([0-9.]+)$", text, re.M).group(1))
assert acc >= float(sys.argv[3]), f"{sys.argv[2]} test accuracy {acc} < {sys.argv[3]}"
print(f"{sys.argv[2]}: test accuracy {acc} >= {sys.argv[3]}")
PY
}

"$PY" "$EX/digits_mlp.py" --quiet --out "$out" | tee "$out/digits.log"
accuracy "$out/digits.log" digits_mlp 0.97
test -s "$out/digits_mlp_best.npz"
"$PY" "$EX/digits_cnn.py" --quiet | tee "$out/digits_cnn.log"
accuracy "$out/digits_cnn.log" digits_cnn 0.97
# the CNN must beat the MLP on the same test split
"$PY" - "$out/digits.log" "$out/digits_cnn.log" <<'PY'
import re, sys
mlp, cnn = (float(re.search(r"^test accuracy: ([0-9.]+)$", open(p).read(), re.M).group(1))
            for p in sys.argv[1:])
assert cnn > mlp, f"digits_cnn test accuracy {cnn} <= digits_mlp's {mlp}"
print(f"digits_cnn {cnn} > digits_mlp {mlp}")
PY
"$PY" "$EX/mnist_cnn.py" --quiet | tee "$out/mnist_cnn.log"
accuracy "$out/mnist_cnn.log" mnist_cnn 0.96
"$PY" "$EX/custom_layer.py"
"$PY" "$EX/regression.py"
"$PY" "$EX/spirals.py"
# the character-level LM's quick mode: it exits non-zero unless it beats the bigram model
"$PY" "$EX/char_lm.py" --quick
