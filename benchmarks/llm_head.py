"""A Qwen-sized LM head on this machine: `supjax llm` exact and with --sample-rows, time and peak memory.

    python benchmarks/llm_head.py [--rows 150000] [--width 2048] [--dir /tmp/supjax-llm-head]

Writes (once) a synthetic bfloat16 head [rows, width] as a safetensors file: Gaussian rows with
a decaying spectrum (scales 1 .. 0.1), a shared mean direction and log-normal norms, so that
its overlaps are not those of random vectors. Computes the mean squared overlap and the
tight-frame distance in float64 with numpy (the frame operator, in chunks) as the reference,
then runs the CLI as a user would, under `/usr/bin/time -v`, exactly and with
`--sample-rows`, and checks: exact within 1e-4 of float64; each sampled interval contains the
exact value. Prints JSON and saves it under benchmarks/results/.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np

from supjax import llm

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, default=150_000)
parser.add_argument("--width", type=int, default=2048)
parser.add_argument("--sample-rows", type=int, default=4096)
parser.add_argument("--dir", default="/tmp/supjax-llm-head")
args = parser.parse_args()

folder = Path(args.dir)
folder.mkdir(parents=True, exist_ok=True)
head = folder / f"head-{args.rows}x{args.width}-bf16.safetensors"
CHUNK = 10_000


def make_head(path: Path) -> None:
    rng = np.random.default_rng(0)
    scales = np.geomspace(1.0, 0.1, args.width).astype(np.float32)
    mean_direction = rng.standard_normal(args.width).astype(np.float32)
    mean_direction *= 0.3 * np.linalg.norm(scales) / np.linalg.norm(mean_direction)
    W = np.empty((args.rows, args.width), ml_dtypes.bfloat16)
    for start in range(0, args.rows, CHUNK):
        rows = min(CHUNK, args.rows - start)
        block = rng.standard_normal((rows, args.width), dtype=np.float32) * scales + mean_direction
        block *= rng.lognormal(0.0, 0.3, (rows, 1)).astype(np.float32)
        W[start : start + rows] = block
    llm.save_safetensors(path, {"lm_head.weight": W})


def float64_reference(path: Path) -> dict:
    """mean_{i != j} (w_i . w_j)^2 and ||w^T w - (n/m) I||_F / (n / sqrt(m)) in float64."""
    W = llm.load_matrix(path).values
    n, m = W.shape
    frame = np.zeros((m, m))
    for start in range(0, n, CHUNK):
        block = np.asarray(W[start : start + CHUNK], np.float64)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        frame += block.T @ block
    squared = (np.sum(frame**2) - n) / (n * (n - 1))
    distance = np.linalg.norm(frame - (n / m) * np.eye(m)) / (n / np.sqrt(m))
    return {"mean_squared_overlap": float(squared), "tight_frame_distance": float(distance)}


def timed_cli(*flags: str) -> dict:
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "supjax.cli", "llm", str(head), "--json", "--quiet"]
    started = time.perf_counter()
    done = subprocess.run([*command, *flags], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    report = json.loads(done.stdout)
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return {
        "command": "supjax llm HEAD --json " + " ".join(flags),
        "wall_s": wall,
        "peak_rss_mib": peak_kib / 1024,
        **report,
    }


if not head.is_file():
    started = time.perf_counter()
    make_head(head)
    print(f"wrote {head} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
reference_file = head.with_suffix(".reference.json")
if not reference_file.is_file():
    reference_file.write_text(json.dumps(float64_reference(head)))
reference = json.loads(reference_file.read_text())

load_before = os.getloadavg()
exact = timed_cli()
sampled = timed_cli("--sample-rows", str(args.sample_rows))
checks = {
    "exact_mean_squared_overlap_relative_error": abs(
        exact["mean_squared_overlap"] / reference["mean_squared_overlap"] - 1
    ),
    "exact_tight_frame_distance_relative_error": abs(
        exact["tight_frame_distance"] / reference["tight_frame_distance"] - 1
    ),
    "sampled_intervals_containing_the_exact_value": {
        key: bool(sampled[f"{key}_ci"][0] <= exact[key] <= sampled[f"{key}_ci"][1])
        for key in sampled
        if f"{key}_ci" in sampled
    },
}
result = {
    "date": str(datetime.date.today()),
    "machine": f"{os.cpu_count()}-core CPU, {platform.processor() or platform.machine()}",
    "load_average_before": load_before,
    "head": {"rows": args.rows, "width": args.width, "dtype": "bfloat16", "bytes": head.stat().st_size},
    "float64_reference": reference,
    "exact": exact,
    "sampled": sampled,
    "checks": checks,
}
out = Path(__file__).parent / "results" / f"{result['date']}-cpu-llm-head.json"
out.write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
print(f"wrote {out}", file=sys.stderr)
