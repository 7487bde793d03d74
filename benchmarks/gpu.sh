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
#              paper-slice (float32 and TF32, with the paper's loop as baseline, and
#              sparse), paper-grid and large (float32 and TF32): one process each   (~3-5 min)
#              BENCH_STEPS = 200 timed steps (large: a quarter), BENCH_WORKLOADS to choose
#   precision  exp-10 x 2 seeds, float32 against TF32: losses and exponents within
#              seed noise? (benchmarks/precision_check.py)                          (<= PRECISION_S = 420 s)
#   grid       the paper's grid, 1020 models x 20000 steps (experiments/grid.py
#              --scale paper) with GRID_PRECISION products; resumes where the last
#              command stopped while the machine is warm (GRID_SCALE = smoke to try) (<= GRID_S = 540 s)
#
# Run from the tree on the device machine, e.g.
#   run(command="PYTHONUNBUFFERED=1 bash benchmarks/gpu.sh env tests bench", timeout_s=560)
# Work goes to runs/gpu (kept while the machine is warm); what comes back is $OUT/log.txt and
# $OUT/gpu-results.tar.gz: unpack it at the repository root (tar xzf FILE), and it lands in
# benchmarks/results/ (one JSON per measurement), experiments/results/grid-paper-PRECISION/ and figures/.
# A short table is printed last. Off a GPU (OUT unset) it writes to runs/gpu/out.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WORK=runs/gpu
OUT=${OUT:-$WORK/out}
mkdir -p "$WORK/results" "$OUT"
LOG="$OUT/log.txt"
PY=${PYTHON:-python3}
[ $# -gt 0 ] || set -- env tests bench
BENCH_STEPS=${BENCH_STEPS:-200}

say() { echo "[$(date -u +%T)] $*" | tee -a "$LOG"; }
step() {  # step NAME TIMEOUT CMD...: run, log, note the exit status
  local name=$1 limit=$2; shift 2
  say "$name: $*"
  timeout --signal=TERM --kill-after=30 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "$name $rc" >>"$WORK/status.txt"
  say "$name: exit $rc"
}
bench() {  # bench NAME WORKLOAD ARGS...: one supjax bench process, its JSON into results/
  local name=$1; shift
  step "$name" "${BENCH_S:-240}" "$PY" -m supjax.cli bench "$@" --out "$WORK/results" --json
}

for phase in "$@"; do
  case $phase in
  env)
    step env 60 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv; \
      $PY -c 'import jax, jaxlib; print(\"jax\", jax.__version__, \"jaxlib\", jaxlib.__version__, jax.devices())'"
    ;;
  tests | tests-all)
    marks=(-m "not slow"); [ "$phase" = tests-all ] && marks=()
    workers=(); "$PY" -c "import xdist" 2>/dev/null && workers=(-n "${TEST_WORKERS:-8}")
    XLA_PYTHON_CLIENT_PREALLOCATE=false step "$phase" "${TESTS_S:-240}" \
      "$PY" -m pytest -q -p no:cacheprovider "${workers[@]}" "${marks[@]}" tests
    ;;
  bench)
    step limits 180 "$PY" benchmarks/limits.py --size "${LIMITS_SIZE:-8192}" --out "$WORK/results"
    for workload in ${BENCH_WORKLOADS:-paper-slice paper-grid large}; do
      steps=$BENCH_STEPS; [ "$workload" = large ] && steps=$((BENCH_STEPS / 4 > 0 ? BENCH_STEPS / 4 : 1))
      extra=(); [ "$workload" = paper-slice ] && extra=(--baseline --baseline-steps "${BASELINE_STEPS:-50}")
      for precision in float32 tensorfloat32; do
        bench "$workload-$precision" "$workload" --steps "$steps" --precision "$precision" "${extra[@]}"
      done
      [ "$workload" = paper-slice ] && bench "$workload-float32-sparse" "$workload" --steps "$steps" --sparse
    done
    ;;
  precision)
    step precision "${PRECISION_S:-420}" "$PY" benchmarks/precision_check.py --runs "$WORK/precision" --out "$WORK/results"
    ;;
  grid)
    precision=${GRID_PRECISION:-float32}
    step "grid-$precision" "${GRID_S:-540}" "$PY" experiments/grid.py --scale "${GRID_SCALE:-paper}" --quiet \
      --out "$WORK/grid-${GRID_SCALE:-paper}-$precision" --figures "$WORK/figures" --set "precision=\"$precision\""
    ;;
  *) say "unknown phase $phase (env, tests, tests-all, bench, precision, grid)"; exit 2 ;;
  esac
done

# Bring back the results (not the checkpoints): one archive laid out like the repository.
stage=$WORK/stage
rm -rf "$stage" && mkdir -p "$stage/benchmarks/results" "$stage/experiments/results"
cp "$WORK"/results/*.json "$stage/benchmarks/results/" 2>/dev/null
for run in "$WORK"/grid-*; do
  [ -d "$run" ] || continue
  keep="$stage/experiments/results/$(basename "$run")"
  mkdir -p "$keep"
  cp "$run"/{summary.csv,exponents.csv,numbers.json,experiment.json,progress.json,config.toml} "$keep/" 2>/dev/null
done
[ -d "$WORK/figures" ] && cp -r "$WORK/figures" "$stage/"
cp "$WORK/status.txt" "$stage/benchmarks/results/$(date -u +%F)-gpu-phases.txt" 2>/dev/null
tar czf "$OUT/gpu-results.tar.gz" -C "$stage" .

# The short table (the reply carries the end of the output).
"$PY" - "$WORK" <<'EOF'
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
print("\nphase exit codes:", " ".join(l.replace(" ", "=") for l in (work / "status.txt").read_text().split("\n") if l))
for limits in sorted((work / "results").glob("*-limits-*.json")):
    for r in json.loads(limits.read_text())["limits"]:
        if r["supported"]:
            print(f"ceiling {r['precision']:>17}: {r['matmul_flops_per_s'] / 1e12:6.1f} TFLOP/s matmul "
                  f"(error {r['relative_error']:.0e}), {r['bandwidth_bytes_per_s'] / 1e9:5.0f} GB/s copy")
print(f"{'workload':<12} {'precision':<13} {'sparse':<6} {'models':>6} {'steps':>6} {'train s':>8} "
      f"{'model-steps/s':>14} {'vs loop':>8} {'compile s':>9} {'peak GiB':>8} {'TFLOP/s':>8}")
for path in sorted((work / "results").glob("*.json")):
    r = json.loads(path.read_text())
    if "model_steps_per_s" not in r or "supjax" not in r:
        continue
    ratio = f"{r['ratio_vs_paper_loop']:.1f}x" if "ratio_vs_paper_loop" in r else "-"
    peak = f"{r['peak_device_bytes'] / 2**30:.1f}" if r.get("peak_device_bytes") else "-"
    print(f"{r['workload']:<12} {r['precision']:<13} {str(r['sparse_products']):<6} {r['models']:>6} {r['steps']:>6} "
          f"{r['train_seconds']:>8.2f} {r['model_steps_per_s']:>14.0f} {ratio:>8} {r['compile_seconds']:>9.1f} "
          f"{peak:>8} {r['supjax']['dense_flops_per_s'] / 1e12:>8.1f}")
for path in sorted((work / "results").glob("*precision-check*.json")):
    r = json.loads(path.read_text())
    print(f"precision check ({r['workload']}): {r['precision']} {r['speedup']:.2f}x faster; losses within seed std "
          f"{r['losses_within_seed_std']:.0%}, exponents within stderr {r['exponents_within_stderr']:.0%}, "
          f"within noise: {r['within_noise']}")
for run in sorted(work.glob("grid-*")):
    progress = run / "progress.json"
    if progress.is_file():
        p = json.loads(progress.read_text())
        print(f"{run.name}: step {p['step']} of {p['steps']}, batch {p['batch'] + 1} of {p['batches']}, "
              f"{p['updated'] - p['started']:.0f} s since its (last) start; summary: {(run / 'summary.csv').is_file()}")
EOF
