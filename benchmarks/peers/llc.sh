#!/usr/bin/env bash
# supjax's LLC wing against devinterp 2.0.1 (devinterp_llc.py), in one go:
#
#   bash benchmarks/peers/llc.sh [--toy DIR] [--out JSON] [--cpu 0] [--repeats 3] [--shipped-repeats 1]
#
# 1. makes benchmarks/peers/.venv-devinterp (once; --system-site-packages, so it also sees jax and
#    supjax), installs torch into it first ($TORCH_SPEC, default torch==2.13.0: give a CPU wheel's
#    file or index, or pip takes PyPI's CUDA build), then devinterp==2.0.1, and stops if that
#    replaced the torch it had;
# 2. trains the toy run (llc_toy.toml: 64 models, n = 40) into DIR unless DIR holds one;
# 3. runs, pinned to one core (--cpu; '' for none), devinterp_llc.py all: devinterp's SGLD step against
#    supjax's (stops if they differ), both estimates at 4 toy models with 16 chains each, then the
#    benchmark: every model's LLC in one supjax program against devinterp looping over them,
#    interleaved; the JSON to OUT.
#
# DIR defaults to benchmarks/peers/out/llc-toy, OUT to benchmarks/peers/out/llc-DATE-TIME.json (both
# ignored by git). Timings are only worth recording on an otherwise idle machine.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
toy=$here/out/llc-toy
out=""
cpu=0
repeats=3
shipped=1
while [ $# -gt 0 ]; do
    case "$1" in
        --toy) toy=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --cpu) cpu=$2; shift 2 ;;
        --repeats) repeats=$2; shift 2 ;;
        --shipped-repeats) shipped=$2; shift 2 ;;
        -h | --help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "llc.sh: unknown option '$1' (use --toy, --out, --cpu, --repeats, --shipped-repeats)" >&2; exit 2 ;;
    esac
done
out=${out:-$here/out/llc-$(date +%Y%m%d-%H%M%S).json}
python=${PYTHON:-python}  # the project's python: the one with supjax installed
venv=$here/.venv-devinterp
pin=()
if [ -n "$cpu" ] && command -v taskset >/dev/null; then pin=(taskset -c "$cpu"); fi
cd "$root"

if ! "$venv/bin/python" -c "import devinterp, torch" 2>/dev/null; then
    echo "== creating $venv: ${TORCH_SPEC:-torch==2.13.0}, then devinterp==2.0.1 (once)"
    "$python" -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install --quiet ${TORCH_SPEC:-torch==2.13.0}
    before=$("$venv/bin/python" -c "import torch; print(torch.__version__)")
    "$venv/bin/pip" install --quiet devinterp==2.0.1
    after=$("$venv/bin/python" -c "import torch; print(torch.__version__)")
    if [ "$before" != "$after" ]; then
        echo "llc.sh: installing devinterp replaced torch $before by $after; install it with --no-deps" >&2
        exit 1
    fi
fi

if [ ! -f "$toy/models.csv" ]; then
    echo "== the toy run: 64 models into $toy"
    "${pin[@]}" "$python" -m supjax.cli sweep "$here/llc_toy.toml" --out "$toy" --quiet
fi

echo "== devinterp against supjax: the step, the agreement, the benchmark"
"${pin[@]}" "$venv/bin/python" "$here/devinterp_llc.py" all "$toy" --repeats "$repeats" \
    --shipped-repeats "$shipped" --out "$out"
echo "== $out"
