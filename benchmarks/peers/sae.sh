#!/usr/bin/env bash
# supjax's SAE wing against SAELens (sae_lens.synthetic), TopK SAEs on the same dictionaries, in one go:
#
#   taskset -c 0 bash benchmarks/peers/sae.sh [saelens_synthetic.py options: --steps, --batch, --lr, --only,
#       --seeds, --eval-samples, --toy-run DIR, --quick, --json FILE, --note TEXT]
#
# 1. makes benchmarks/peers/.venv-saelens (once; --system-site-packages, so it also sees the project's
#    jax and supjax) and installs torch first ($TORCH_SPEC, default torch==2.13.0: give a CPU wheel
#    file where the package index has only the CUDA build), then sae-lens ($SAELENS_SPEC, default
#    sae-lens) with torch held at the installed version, so pip never swaps in another torch;
# 2. runs saelens_synthetic.py with the venv's python under the caller's CPU affinity (pin it with
#    taskset: both libraries run on the same cores), the JSON into benchmarks/peers/out/ unless
#    --json names a file. The last thing printed is the Markdown table.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python}  # the project's python: the one with jax and supjax installed
venv=$here/.venv-saelens
cd "$root"

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
fi

if ! "$venv/bin/python" -c "import sae_lens.synthetic" 2>/dev/null; then
    echo "== creating $venv with ${TORCH_SPEC:-torch==2.13.0} and ${SAELENS_SPEC:-sae-lens} (once)"
    "$python" -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install --quiet "${TORCH_SPEC:-torch==2.13.0}"
    held=$(mktemp)
    "$venv/bin/python" -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "$held"
    "$venv/bin/pip" install --quiet -c "$held" "${SAELENS_SPEC:-sae-lens}"
    rm -f "$held"
fi

args=("$@")
if [[ " ${args[*]} " != *" --json "* ]]; then
    mkdir -p "$here/out"
    args+=(--json "$here/out/saelens-$(date +%Y%m%d-%H%M%S).json")
fi
"$venv/bin/python" "$here/saelens_synthetic.py" "${args[@]}" 2> >(grep -v "No CUDA runtime is found" >&2)
