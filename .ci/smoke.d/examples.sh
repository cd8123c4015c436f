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
"$PY" "$EX/custom_layer.py"
"$PY" "$EX/regression.py"
"$PY" "$EX/spirals.py"
# the character-level LM's quick mode: it exits non-zero unless it beats the bigram model
"$PY" "$EX/char_lm.py" --quick
