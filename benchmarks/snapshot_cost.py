"""What snapshots cost: the demo trained with ``snapshot_steps = K`` and without, in one process.

    python benchmarks/snapshot_cost.py [--snapshots 8] [--json benchmarks/results/...json]

Reports the wall time of both runs and, inside the run with snapshots, the time spent
writing them (every ``checkpoint.save`` into ``snapshots/``) as a share of its training.
"""

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

from supjax import checkpoint, run_sweep
from supjax.cli.toy import DEMO

parser = argparse.ArgumentParser()
parser.add_argument("--snapshots", type=int, default=8)
parser.add_argument("--json")
args = parser.parse_args()

spent = {"snapshot_s": 0.0, "snapshots": 0}
save = checkpoint.save


def timed_save(mgr, step, state):
    started = time.perf_counter()
    save(mgr, step, state)
    if "snapshots" in str(mgr.directory):
        spent["snapshot_s"] += time.perf_counter() - started
        spent["snapshots"] += 1


checkpoint.save = timed_save
spec = DEMO.replace(progress=False)
rows = {}
with tempfile.TemporaryDirectory() as tmp:
    run_sweep(spec.replace(steps=200, warmup_steps=20))  # compile caches warm for both
    for name, variant in (("without", spec), ("with", spec.replace(snapshot_steps=args.snapshots))):
        started = time.perf_counter()
        run = run_sweep(variant, out=Path(tmp) / name)
        rows[name] = {"wall_s": time.perf_counter() - started, "train_s": run.info["seconds"]}
result = {
    "date": str(datetime.date.today()),
    "machine": "CPU, 2 cores",
    "workload": "demo (48 models, n = 300, B = 1024, 2000 steps)",
    "snapshot_steps": args.snapshots,
    **rows,
    **spent,
    "snapshot_share_of_training": spent["snapshot_s"] / rows["with"]["train_s"],
    "wall_ratio_with_over_without": rows["with"]["wall_s"] / rows["without"]["wall_s"],
}
print(json.dumps(result, indent=1))
if args.json:
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
