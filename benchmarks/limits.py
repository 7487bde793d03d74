"""The device's ceilings, and what each product precision really computes there.

    python benchmarks/limits.py [--size 8192] [--out DIR]

For every ``precision`` setting of supjax (float32, tensorfloat32, bfloat16) and every dot
algorithm preset the device accepts: the rate of a square ``size`` product of random float32
matrices and its relative error against float64 (METHOD: float32 far under 1e-3, TF32 near
3e-4, bfloat16 operands 1e-3 to 1e-2). A GPU may compute a coarse precision level with
another algorithm than its name says; the error shows which. Also the copy bandwidth, once.
Writes DATE-DEVICE-limits-all.json into ``--out`` and prints a table.
"""

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from supjax import bench
from supjax.config import PRECISIONS

PRESETS = ("F32_F32_F32", "TF32_TF32_F32", "BF16_BF16_F32", "BF16_BF16_F32_X3")

parser = argparse.ArgumentParser()
parser.add_argument("--size", type=int, default=8192)
parser.add_argument("--out")
args = parser.parse_args()

a, b = np.random.default_rng(0).standard_normal((2, 1024, 1024))
reference = a @ b
rows = []
for precision in PRECISIONS + PRESETS:
    try:
        with jax.default_matmul_precision(precision):
            product = np.asarray(jax.jit(jnp.matmul)(jnp.float32(a), jnp.float32(b)), np.float64)
        error = float(np.linalg.norm(product - reference) / np.linalg.norm(reference))
        rate = bench.matmul_rate(args.size, 10, precision)
    except Exception as err:  # a preset the device does not offer
        rows.append({"precision": precision, "supported": False, "why": str(err).splitlines()[0][:200]})
        continue
    rows.append({"precision": precision, "supported": True, "relative_error": error, "matmul_flops_per_s": rate})
result = {
    **bench.result_header("limits", "all"),
    "matmul_size": args.size,
    "bandwidth_bytes_per_s": bench.bandwidth(10),
    "limits": rows,
}
if args.out:
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / bench.result_name(result)).write_text(json.dumps(result, indent=1) + "\n")
print(f"{result['device']}, jax {result['jax']}: {args.size}^3 products of random float32 matrices")
print(f"  copy bandwidth {result['bandwidth_bytes_per_s'] / 1e9:.0f} GB/s (read + written)")
for row in rows:
    if row["supported"]:
        rate = row["matmul_flops_per_s"] / 1e12
        print(f"  {row['precision']:<17} error {row['relative_error']:.1e}  {rate:7.2f} TFLOP/s")
    else:
        print(f"  {row['precision']:<17} not offered: {row['why']}")
