"""N SAEs in one compiled program against a loop that trains them one at a time, in one process.

    taskset -c 0 python benchmarks/sae_speed.py [--saes 64] [--steps 200] [--architecture topk]
                                                 [--json benchmarks/results/DATE-cpu-sae-speed.json]

The workload: one toy "model" (a random unit frame, n = 256 features in m = 32 dimensions, p_i ∝
1/i), N SAEs of dictionary 2n on it, batch 512: a grid over k (or lambda), learning rate,
dictionary ratio and seed. The sweep is :mod:`supjax.sae.program`'s ``sae_train_chunk`` with all N
SAEs (one batch a step, shared). The loop runs the same program with one SAE at a time, each with
its own data, one after the other: the same one-SAE step, only not batched. Both compile first
(compile time excluded; the loop's one program serves every SAE, whose values are traced) and are
timed over the same steps on the same CPU core.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import jax
import numpy as np

from supjax import sae
from supjax.sae import layout, program

parser = argparse.ArgumentParser()
parser.add_argument("--saes", type=int, default=64, help="N, a multiple of 16")
parser.add_argument("--steps", type=int, default=200)
parser.add_argument("--architecture", default="topk")
parser.add_argument("--json")
args = parser.parse_args()

N_FEATURES, WIDTH, BATCH = 256, 32, 512
rng = np.random.default_rng(0)
frame = rng.normal(size=(N_FEATURES, WIDTH))
toy_run = sae.weights_run(frame / np.linalg.norm(frame, axis=1, keepdims=True), "power:1.0", weight_decays=[-1.0])
toys = sae.ToyModels.from_run(toy_run, [0])
sparsities = {"ks": (1, 2, 3, 4)} if args.architecture in ("topk", "batchtopk") else {}
if not sparsities:
    sparsities = {"l1_coefficients" if args.architecture == "relu" else "l0_coefficients": (0.3, 1.0, 3.0, 10.0)}
grid = {
    "architectures": (args.architecture,),
    **sparsities,
    "lrs": (1e-3, 3e-3),
    "dictionary_ratios": (2.0, 1.5),
    "seeds": tuple(range(args.saes // 16)),
    "steps": args.steps,
    "batch_size": BATCH,
    "log_every": 10,
    "progress": False,
}


COMPILED = {}  # program.Static -> the compiled chunk: the loop's SAEs share a few shapes


def timed(spec: sae.SaeSpec, repeats: int = 1) -> tuple[float, float, int]:
    """(compile seconds, train seconds over ``spec.steps`` steps, SAEs) of one program."""
    plan = layout.plan(spec, toys)
    hypers = tuple(g.hyper for g in plan.groups)
    keys = tuple(g.init_keys for g in plan.groups)
    states = program.sae_init_states(plan.static, keys, hypers)
    windows = spec.steps // spec.log_every
    started = time.perf_counter()
    if plan.static not in COMPILED:
        lowered = program.sae_train_chunk.lower(plan.static, states, hypers, plan.arrays, 0, num_windows=windows)
        COMPILED[plan.static] = lowered.compile()
    compiled = COMPILED[plan.static]
    compile_s = time.perf_counter() - started
    best = float("inf")
    for _ in range(repeats):
        fresh = program.sae_init_states(plan.static, keys, hypers)
        jax.block_until_ready(fresh)
        started = time.perf_counter()
        jax.block_until_ready(compiled(fresh, hypers, plan.arrays, 0))
        best = min(best, time.perf_counter() - started)
    return compile_s, best, len(plan.rows)


spec = sae.SaeSpec(**grid)
compile_sweep, seconds_sweep, count = timed(spec, repeats=2)
assert count == args.saes, (count, args.saes)
plan = layout.plan(spec, toys)
loop_compile, loop_seconds = 0.0, 0.0
for row in plan.rows:  # every SAE of the grid on its own, one after the other
    name = {"relu": "l1_coefficients", "jumprelu": "l0_coefficients"}.get(args.architecture, "ks")
    value = int(row["sparsity"]) if name == "ks" else row["sparsity"]
    one = spec.replace(**{name: (value,)}, lrs=(row["lr"],), dictionary_ratios=(row["dictionary_ratio"],),
                       seeds=(row["seed"],))  # fmt: skip
    compile_s, seconds, _ = timed(one)
    loop_compile = max(loop_compile, compile_s)
    loop_seconds += seconds
sae_steps = args.saes * args.steps
result = {
    "date": str(datetime.date.today()),
    "machine": f"CPU, {os.cpu_count()} cores, {len(os.sched_getaffinity(0))} usable by this process (taskset)",
    "jax": jax.__version__,
    "workload": f"sae-speed-{args.architecture}",
    "command": f"taskset -c 0 python benchmarks/sae_speed.py --saes {args.saes} --steps {args.steps} "
    f"--architecture {args.architecture}",
    "what": f"{args.saes} SAEs ({args.architecture}, dictionary 2n and 1.5n, n = {N_FEATURES}, m = {WIDTH}, "
    f"batch {BATCH}) on one toy frame: one program against one program per SAE, run in sequence",
    "note": "pinned to one core; the machine's other core was busy with a background training run, and other "
    "sessions shared this core (load average 4 to 7)",
    "sweep": {
        "saes": args.saes,
        "steps": args.steps,
        "compile_s": compile_sweep,
        "train_s": seconds_sweep,
        "sae_steps_per_s": sae_steps / seconds_sweep,
    },
    "loop": {
        "saes": args.saes,
        "steps": args.steps,
        "compile_s": loop_compile,
        "train_s": loop_seconds,
        "sae_steps_per_s": sae_steps / loop_seconds,
    },
    "ratio": loop_seconds / seconds_sweep,
}
print(json.dumps(result, indent=1))
if args.json:
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
