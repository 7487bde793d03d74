#!/usr/bin/env bash
# Everything the accelerator issue asks of a lent GPU, in phases sized for a 15-minute lease.
#
#   benchmarks/gpu.sh [PHASE ...]        default: env tests bench
#
#   env        the device, driver and jax version                                   (~10 s)
#   tests      the test suite without the slow tests, 8 workers                     (<= TESTS_S = 240 s)
#   tests-all  the whole test suite                                                 (<= TESTS_S)
#   bench      the ceilings (matmul at each precision, copy bandwidth) and what each
#              precision setting really computes (error against float64), then
#              paper-slice (float32, TF32 and bfloat16, each with the paper's loop as
#              baseline, and sparse), paper-grid and large (float32, TF32, bfloat16):
#              one process each                                                     (~4-6 min)
#              BENCH_STEPS = 200 timed steps (large: a quarter), BENCH_WORKLOADS to choose
#   precision  exp-10 x 2 seeds, float32 against TF32: losses and exponents within
#              seed noise? (benchmarks/precision_check.py; resumes)                 (<= PRECISION_S = 420 s)
#   sae        64 SAEs in one program against loops of one SAE (benchmarks/sae_speed.py) (~1 min)
#   grid       the paper's grid, 1020 models x 20000 steps (experiments/grid.py
#              --scale paper) with GRID_PRECISION products; resumes where the last
#              command stopped while the machine is warm (GRID_SCALE = smoke to try) (<= GRID_S = 540 s)
#
# Run from the tree on the device machine, e.g.
#   run(command="bash benchmarks/gpu.sh env tests bench", timeout_s=600)
# Every step's limit is cut to what is left of DEADLINE_S = 560 s from the start (a step with
# under 30 s left is skipped), and the results are packed on any exit, so a call that runs
# out of time still brings back what it measured.
# Work goes to runs/gpu (kept while the machine is warm); what comes back is $OUT/log.txt and
# $OUT/gpu-results.tar.gz: unpack it at the repository root (tar xzf FILE), and it lands in
# benchmarks/results/ (one JSON per measurement), experiments/results/grid-paper-PRECISION/ and figures/.
# A short table is printed last. Off a GPU (OUT unset) it writes to runs/gpu/out.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
WORK=runs/gpu
OUT=${OUT:-$WORK/out}
mkdir -p "$WORK/results" "$OUT"
LOG="$OUT/log.txt"
PY=${PYTHON:-python3}
[ $# -gt 0 ] || set -- env tests bench
for phase in "$@"; do  # every name checked before any device time is spent
  case $phase in
  env | tests | tests-all | bench | precision | sae | grid) ;;
  *) echo "gpu.sh: unknown phase '$phase': use env, tests, tests-all, bench, precision, sae or grid" >&2; exit 2 ;;
  esac
done
BENCH_STEPS=${BENCH_STEPS:-200}
DEADLINE=$((SECONDS + ${DEADLINE_S:-560}))
: >"$WORK/call-status.txt"  # this call's steps; status.txt keeps every call's while the machine is warm

say() { echo "[$(date -u +%T)] $*" | tee -a "$LOG"; }
step() {  # step NAME LIMIT CMD...: run under min(LIMIT, time left), log, note the exit status
  local name=$1 limit=$2; shift 2
  local left=$((DEADLINE - SECONDS - 20))
  if [ "$left" -lt 30 ]; then
    say "$name: skipped, ${left}s left of DEADLINE_S"; echo "$name skipped" | tee -a "$WORK/call-status.txt" >>"$WORK/status.txt"; return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "$name (<= ${limit}s): $*"
  timeout --signal="${SIGNAL:-TERM}" --kill-after=15 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "$name $rc" | tee -a "$WORK/call-status.txt" >>"$WORK/status.txt"
  say "$name: exit $rc"
}
bench() {  # bench NAME WORKLOAD ARGS...: one supjax bench process, its JSON into results/
  local name=$1; shift
  step "$name" "${BENCH_S:-240}" "$PY" -m supjax.cli bench "$@" --out "$WORK/results" --json
}

finish() {  # on any exit: pack the results (not the checkpoints), print the table
  trap - EXIT
  local stage=$WORK/stage
  rm -rf "$stage" && mkdir -p "$stage/benchmarks/results" "$stage/experiments/results" "$stage/figures"
  cp "$WORK"/results/*.json "$stage/benchmarks/results/" 2>/dev/null
  cp "$WORK/status.txt" "$stage/benchmarks/results/$(date -u +%F)-gpu-phases.txt" 2>/dev/null
  for run in "$WORK"/grid-* "$WORK"/precision/*/; do
    [ -d "$run" ] || continue
    local name; name=$(basename "$run"); [[ $run == */precision/* ]] && name=precision-check-$name
    mkdir -p "$stage/experiments/results/$name"
    cp "$run"/{summary.csv,exponents.csv,numbers.json,experiment.json,progress.json,config.toml} \
      "$stage/experiments/results/$name/" 2>/dev/null
  done
  # float32 figures are the paper-scale figures; another precision's stay beside its tables
  for figures in "$WORK"/figures-*; do
    [ -d "$figures" ] || continue
    if [ "${figures##*/figures-}" = float32 ]; then cp "$figures"/* "$stage/figures/"
    else cp -r "$figures" "$stage/experiments/results/"; fi
  done
  tar czf "$OUT/gpu-results.tar.gz" -C "$stage" .
  "$PY" benchmarks/gpu_table.py "$WORK"
  # the exit status: 143 after a signal, else 1 if a step of this call failed
  [ -n "${STOPPED:-}" ] && exit 143
  grep -qv -e ' 0$' -e ' skipped$' "$WORK/call-status.txt" && exit 1
  exit 0
}
trap finish EXIT
trap 'STOPPED=1; say "gpu.sh: stopped by a signal"; exit 143' TERM INT

for phase in "$@"; do
  case $phase in
  env)
    step env 60 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv; \
      $PY -c 'import jax, jaxlib; print(\"jax\", jax.__version__, \"jaxlib\", jaxlib.__version__, jax.devices())'"
    ;;
  tests | tests-all)
    marks=(-m "not slow"); [ "$phase" = tests-all ] && marks=()
    workers=(); "$PY" -c "import xdist" 2>/dev/null && workers=(-n "${TEST_WORKERS:-8}")
    # SIGINT: pytest stops as on Ctrl-C and still prints the failures so far
    SIGNAL=INT XLA_PYTHON_CLIENT_PREALLOCATE=false step "$phase" "${TESTS_S:-240}" \
      "$PY" -m pytest -q -p no:cacheprovider "${workers[@]}" "${marks[@]}" tests
    ;;
  bench)
    step limits 180 "$PY" benchmarks/limits.py --size "${LIMITS_SIZE:-8192}" --out "$WORK/results"
    for workload in ${BENCH_WORKLOADS:-paper-slice paper-grid large}; do
      steps=$BENCH_STEPS; [ "$workload" = large ] && steps=$((BENCH_STEPS / 4 > 0 ? BENCH_STEPS / 4 : 1))
      extra=(); [ "$workload" = paper-slice ] && extra=(--baseline --baseline-steps "${BASELINE_STEPS:-50}")
      for precision in float32 tensorfloat32 bfloat16; do
        bench "$workload-$precision" "$workload" --steps "$steps" --precision "$precision" "${extra[@]}"
      done
      [ "$workload" = paper-slice ] && bench "$workload-float32-sparse" "$workload" --steps "$steps" --sparse
    done
    ;;
  precision)
    step precision "${PRECISION_S:-420}" "$PY" benchmarks/precision_check.py --runs "$WORK/precision" \
      --out "$WORK/results" --set chunk_steps=1000
    ;;
  sae)
    step sae 120 "$PY" benchmarks/sae_speed.py --saes 64 --steps 200 --note "GPU, alone on the device" \
      --json "$WORK/results/$(date -u +%F)-gpu-sae-speed-topk.json"
    ;;
  grid)
    precision=${GRID_PRECISION:-float32}
    step "grid-$precision" "${GRID_S:-540}" "$PY" experiments/grid.py --scale "${GRID_SCALE:-paper}" --quiet \
      --out "$WORK/grid-${GRID_SCALE:-paper}-$precision" --figures "$WORK/figures-$precision" \
      --set "precision=\"$precision\"" --set chunk_steps=500
    ;;
  esac
done
