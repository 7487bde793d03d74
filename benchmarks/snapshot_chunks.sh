#!/usr/bin/env bash
# Cold time of a sweep with 16 log-spaced snapshots, and its chunk programs, for two source trees,
# interleaved on core 0 with the persistent cache off:
#   bash benchmarks/snapshot_chunks.sh BEFORE_TREE AFTER_TREE [ROUNDS]
set -euo pipefail
before=$(realpath "$1"); after=$(realpath "$2"); rounds=${3:-3}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cat > "$work/snap.toml" <<'TOML'
n = 200
batch_size = 256
widths = [8, 16, 32]
weight_decays = [-1.0, 1.0]
steps = 2000
warmup_steps = 100
log_every = 10
snapshot_steps = 16
TOML
for round in $(seq "$rounds"); do
  for tree in "$before" "$after"; do
    rm -rf "$work/out"
    start=$(date +%s.%N)
    compiles=$(cd "$work" && SUPJAX_CACHE_DIR=off PYTHONPATH="$tree" taskset -c 0 python -c "
import logging, jax
from supjax import SweepSpec, run_sweep
count = [0]
class Count(logging.Handler):
    def emit(self, record):
        count[0] += record.getMessage().startswith('Compiling jit(train_chunk)')
logging.getLogger('jax').addHandler(Count(logging.WARNING))
with jax.log_compiles():
    run_sweep(SweepSpec.from_toml('snap.toml').replace(progress=False), out='out')
print(count[0])" 2>/dev/null)
    echo "round $round  $tree  seconds $(echo "$(date +%s.%N) - $start" | bc)  chunk programs $compiles"
  done
done
