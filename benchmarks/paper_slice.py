"""The paper's slice (n = 1000, B = 2048, widths 10..100, ten weight decays) against the
paper's loop, in one process, plus this machine's measured limits. Prints JSON and a
Markdown row for RESULTS.md.

    python benchmarks/paper_slice.py [--steps 20] [--baseline-steps 20] [--sparse]
"""

import argparse
import datetime
import json

from supjax import bench

parser = argparse.ArgumentParser()
parser.add_argument("--workload", default="paper-slice")
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--baseline-steps", type=int, default=20)
parser.add_argument("--sparse", action="store_true", help="supjax with the sparse x products")
args = parser.parse_args()

result = bench.run(args.workload, args.steps, args.baseline_steps, args.sparse)
result["limits"] = bench.machine_limits()
ours, loop, loop_sampler = result["supjax"], result["baseline"], result["baseline_sampler"]
peak = result["limits"]["matmul_flops_per_s"]
print(json.dumps(result, indent=2))
print(
    f"| {datetime.date.today()} | {args.workload} | {result['device']} | {ours['model_steps_per_s']:.1f} "
    f"| {loop['model_steps_per_s']:.1f} | {result['ratio']:.2f}x "
    f"| {loop_sampler['model_steps_per_s']:.1f} | {result['ratio_sampler']:.2f}x "
    f"| {ours['dense_flops_per_s'] / 1e9:.0f} GFLOP/s = {ours['dense_flops_per_s'] / peak:.0%} of {peak / 1e9:.0f} "
    f"| `python benchmarks/paper_slice.py --steps {args.steps} --baseline-steps {args.baseline_steps}"
    f"{' --sparse' if args.sparse else ''}` |"
)
