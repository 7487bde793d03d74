"""The short table that ends benchmarks/gpu.sh: phase exit codes, ceilings, one row per
measurement in WORK/results, the precision check and where each grid run stands.

    python benchmarks/gpu_table.py runs/gpu
"""

import json
import pathlib
import sys

work = pathlib.Path(sys.argv[1])
status = (work / "status.txt").read_text().split("\n") if (work / "status.txt").is_file() else []
print("\nphase exit codes:", " ".join(line.replace(" ", "=") for line in status if line))
for path in sorted((work / "results").glob("*-limits-*.json")):
    limits = json.loads(path.read_text())
    print(f"ceiling copy: {limits['bandwidth_bytes_per_s'] / 1e9:.0f} GB/s")
    for r in limits["limits"]:
        if r["supported"]:
            rate = r["matmul_flops_per_s"] / 1e12
            print(f"ceiling {r['precision']:>17}: {rate:6.1f} TFLOP/s matmul (error {r['relative_error']:.0e})")
print(
    f"{'workload':<12} {'precision':<13} {'sparse':<6} {'models':>6} {'steps':>6} {'train s':>8} "
    f"{'model-steps/s':>14} {'vs loop':>8} {'compile s':>9} {'peak GiB':>8} {'TFLOP/s':>8}"
)
for path in sorted((work / "results").glob("*.json")):
    r = json.loads(path.read_text())
    if "model_steps_per_s" not in r or "supjax" not in r:
        continue
    ratio = f"{r['ratio_vs_paper_loop']:.1f}x" if "ratio_vs_paper_loop" in r else "-"
    peak = f"{r['peak_device_bytes'] / 2**30:.1f}" if r.get("peak_device_bytes") else "-"
    print(
        f"{r['workload']:<12} {r['precision']:<13} {r['sparse_products']!s:<6} {r['models']:>6} {r['steps']:>6} "
        f"{r['train_seconds']:>8.2f} {r['model_steps_per_s']:>14.0f} {ratio:>8} {r['compile_seconds']:>9.1f} "
        f"{peak:>8} {r['supjax']['dense_flops_per_s'] / 1e12:>8.1f}"
    )
for path in sorted((work / "results").glob("*precision-check*.json")):
    r = json.loads(path.read_text())
    print(
        f"precision check ({r['grid']}): {r['precision']} {r['speedup']:.2f}x faster; losses within seed std "
        f"{r['losses_within_seed_std']:.0%}, exponents within stderr {r['exponents_within_stderr']:.0%}, "
        f"within noise: {r['within_noise']}"
    )
for run in sorted(work.glob("grid-*")):
    progress = run / "progress.json"
    if progress.is_file():
        p = json.loads(progress.read_text())
        print(
            f"{run.name}: step {p['step']} of {p['steps']}, batch {p['batch'] + 1} of {p['batches']}, "
            f"{p['updated'] - p['started']:.0f} s since its (last) start; summary: {(run / 'summary.csv').is_file()}"
        )
