"""Does a cheaper product precision change the science? One grid trained twice, with float32
products (the paper's) and with ``--precision`` (TF32 by default), then compared by
``supjax.analysis.compare``: final losses against the seed-to-seed spread, exponents
against their standard errors. Also the two training times (wall, compiles included, summed
over the segments of a resumed run), so the speed-up is read beside the check.

    python benchmarks/precision_check.py [--config experiments/exp10.toml] [--seeds 0 1]
        [--precision tensorfloat32] [--runs DIR] [--out benchmarks/results] [--set KEY=VALUE]

Reuses a finished run in ``--runs`` and resumes an interrupted one, so it can be spread
over several commands on a lent GPU.
"""

import argparse
import json
import time
from pathlib import Path

from supjax import SweepSpec, analysis, bench, run_sweep

parser = argparse.ArgumentParser()
parser.add_argument("--config", default="experiments/exp10.toml")
parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
parser.add_argument("--precision", default="tensorfloat32")
parser.add_argument("--runs", default="runs/precision-check")
parser.add_argument("--out", default="benchmarks/results")
parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
args = parser.parse_args()

spec = SweepSpec.from_toml(args.config, args.set).replace(seeds=tuple(args.seeds), progress=False)
result = {
    **bench.result_header("precision-check", args.precision),
    "grid": f"{Path(args.config).stem} x {len(args.seeds)} seeds",
    "models": spec.num_models,
    "steps": spec.steps,
}
for precision in ("float32", args.precision):
    out, wall = Path(args.runs) / precision, Path(args.runs) / f"{precision}-wall.json"
    if (out / "config.toml").is_file() and SweepSpec.from_toml(out / "config.toml").seeds != spec.seeds:
        raise SystemExit(f"{out} holds a run with other seeds; pass another --runs or delete it")
    if not (out / "losses.npy").is_file():  # not trained to the end yet
        spent = json.loads(wall.read_text()) if wall.is_file() else {"wall_s": 0.0, "segments": 0}
        started = time.perf_counter()
        try:  # an interrupted segment's time counts too: the total is that of all segments
            run_sweep(spec.replace(precision=precision), out=out, resume=(out / "batches.json").is_file())
        finally:
            spent = {"wall_s": spent["wall_s"] + time.perf_counter() - started, "segments": spent["segments"] + 1}
            wall.parent.mkdir(parents=True, exist_ok=True)
            wall.write_text(json.dumps(spent))
    if not (out / "summary.csv").is_file():
        analysis.analyze(out)
    spent = json.loads(wall.read_text())
    result[f"{precision}_wall_s"], result[f"{precision}_segments"] = spent["wall_s"], spent["segments"]
result["speedup"] = result["float32_wall_s"] / result[f"{args.precision}_wall_s"]
result.update(analysis.compare(Path(args.runs) / "float32", Path(args.runs) / args.precision))

Path(args.out).mkdir(parents=True, exist_ok=True)
(Path(args.out) / bench.result_name(result)).write_text(json.dumps(result, indent=1) + "\n")
print(json.dumps(result, indent=1))
print(
    f"{args.precision} against float32, {result['models']} models x {result['steps']} steps on {result['device']}: "
    f"{result['speedup']:.2f}x faster; losses within the seed spread {result['losses_within_seed_std']:.0%}, "
    f"exponents within their stderr {result['exponents_within_stderr']:.0%}, within noise: {result['within_noise']}"
)
