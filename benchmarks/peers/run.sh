#!/usr/bin/env bash
# supjax against its strongest rival, the PyTorch instances trainer (torch_instances.py), in one go:
#
#   bash benchmarks/peers/run.sh [--workload paper-slice] [--steps 20] [--out DIR]
#
# 1. makes benchmarks/peers/.venv (once; --system-site-packages, so it also sees jax and supjax)
#    and installs torch from the package index into it (TORCH_SPEC overrides "torch");
# 2. checks that the peer's update is supjax's (check_update.py; stops here if not);
# 3. times, in this order, each in its own process, every JSON into DIR:
#    supjax float32 and the paper's loop (supjax bench --baseline), supjax bfloat16 (both with the
#    project's python, $PYTHON), then the peer eager float32, eager bf16, compiled float32,
#    compiled bf16 (the venv's python);
# 4. stamps the CPU model and core count into every JSON and prints the Markdown table (table.py).
#
# DIR defaults to benchmarks/peers/out/WORKLOAD-DATE-TIME (ignored by git). Timings are only
# worth recording on an otherwise idle machine; they go to benchmarks/RESULTS.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
workload=paper-slice
steps=20
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --workload) workload=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h | --help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown option '$1' (use --workload, --steps, --out)" >&2; exit 2 ;;
    esac
done
out=${out:-$here/out/$workload-$(date +%Y%m%d-%H%M%S)}
python=${PYTHON:-python}  # the project's python: the one with supjax installed
venv=$here/.venv
cd "$root"

if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "== creating $venv with ${TORCH_SPEC:-torch} (a large download, once)"
    "$python" -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install --quiet ${TORCH_SPEC:-torch}
fi
mkdir -p "$out"

echo "== the peer's update against supjax's"
"$venv/bin/python" "$here/check_update.py"

echo "== supjax float32 and the paper's loop"
"$python" -m supjax.cli bench "$workload" --steps "$steps" --baseline --baseline-steps "$steps" --out "$out"
echo "== supjax bfloat16"
"$python" -m supjax.cli bench "$workload" --steps "$steps" --precision bfloat16 --out "$out"

echo "== the peer: eager and compiled, float32 and bf16 autocast"
for mode in "" --compile; do
    for precision in "" --bf16; do
        "$venv/bin/python" "$here/torch_instances.py" "$workload" --steps "$steps" $mode $precision --out "$out" \
            2> >(grep -v "No CUDA runtime is found" >&2)
    done
done

"$python" "$here/table.py" --stamp "$out"
echo "== $out"
echo
"$python" "$here/table.py" "$out"
