"""N SAEs in one compiled program against loops that train them one at a time, in one process.

    taskset -c 0 python benchmarks/sae_speed.py [--saes 64] [--steps 200] [--architecture topk]
        [--features 200] [--width 16] [--batch 256] [--ratios 1.0,0.5] [--json benchmarks/results/FILE.json]

The workload: one toy "model" (a random unit frame: n features in m dimensions, p_i ∝ 1/i) and N SAEs
on it, a grid over k (or lambda), learning rate, dictionary ratio and seed (N / 16 seeds). Three ways
to train them, each timed after compiling (compile time excluded), on the same CPU core:

* ``sweep``: the engine's ``train_chunk`` of :mod:`supjax.sae.program` with all N SAEs, each step's batch drawn
  once for all of them, vmapped 8 at a time (``sae_block`` as a CPU resolves it), and the same one
  SAE at a time (``sae_block = 1``) and all at once (``sae_block = N``);
* ``loop_compiled``: the same program with one SAE, once per SAE, one after the other (its own batch
  every step; the strongest one-at-a-time baseline: no Python between steps);
* ``loop_steps``: one SAE at a time, a Python loop over steps, each a call of one jitted function
  that draws the SAE's batch with supjax's sampler and takes the same one-SAE step
  (:func:`supjax.sae.program.make_step`), no host sync between steps: how one trains an SAE alone.
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

from supjax import bench, data, sae
from supjax.engine import program as engine
from supjax.sae import layout, program

parser = argparse.ArgumentParser()
parser.add_argument("--saes", type=int, default=64, help="N, a multiple of 16")
parser.add_argument("--steps", type=int, default=200)
parser.add_argument("--architecture", default="topk")
parser.add_argument("--features", type=int, default=200, help="n")
parser.add_argument("--width", type=int, default=16, help="m")
parser.add_argument("--batch", type=int, default=256)
parser.add_argument("--ratios", default="1.0,0.5", help="the two dictionary ratios d / n of the grid")
parser.add_argument("--json")
parser.add_argument("--note", default="", help="the state of the machine during the run, for the JSON")
args = parser.parse_args()

rng = np.random.default_rng(0)
frame = rng.normal(size=(args.features, args.width))
toy_run = sae.weights_run(frame / np.linalg.norm(frame, axis=1, keepdims=True), "power:1.0", weight_decays=[-1.0])
toys = sae.ToyModels.from_run(toy_run, [0])
axis = {"relu": "l1_coefficients", "jumprelu": "l0_coefficients"}.get(args.architecture, "ks")
values = (1, 2, 3, 4) if axis == "ks" else (0.3, 1.0, 3.0, 10.0)
grid = {
    "architectures": (args.architecture,),
    axis: values,
    "lrs": (1e-3, 3e-3),
    "dictionary_ratios": tuple(float(r) for r in args.ratios.split(",")),
    "seeds": tuple(range(args.saes // 16)),
    "steps": args.steps,
    "batch_size": args.batch,
    "log_every": 10,
    "progress": False,
}
COMPILED = {}  # program.Static -> the compiled chunk (the loop's SAEs share a few shapes)


def compiled_program(spec: sae.SaeSpec):
    plan = layout.plan(spec, toys)
    hypers = tuple(g.hyper for g in plan.groups)
    first = tuple(g.params for g in plan.groups)
    if plan.static not in COMPILED:
        states = engine.init_states(plan.static, first, hypers)
        started = time.perf_counter()
        inputs = (hypers, plan.arrays)
        chunk = engine.train_chunk.lower(plan.static, states, inputs, 0, num_windows=args.steps // 10)
        COMPILED[plan.static] = (chunk.compile(), time.perf_counter() - started)
    return plan, hypers, first, *COMPILED[plan.static]


def time_program(spec: sae.SaeSpec, repeats: int = 1) -> tuple[float, float]:
    """(compile seconds, best train seconds over ``args.steps`` steps) of one program."""
    plan, hypers, first, chunk, compile_s = compiled_program(spec)
    best = float("inf")
    for _ in range(repeats):
        states = jax.block_until_ready(engine.init_states(plan.static, first, hypers))
        started = time.perf_counter()
        jax.block_until_ready(chunk(states, (hypers, plan.arrays), 0))
        best = min(best, time.perf_counter() - started)
    return compile_s, best


def first_h(static, arrays, t):
    """The first toy model's h = x W at step ``t`` (the benchmark has one toy model)."""
    return program.hidden(data.sample_streams(static, arrays.streams, t), arrays, 0)[0]


def one_sae(plan: layout.Layout):
    """The first SAE of ``plan`` alone: its one-SAE step (make_step), hyperparameters and initial state."""
    one = program.make_step(plan.static, args.architecture)
    hyper = jax.tree.map(lambda a: a[0, 0], plan.groups[0].hyper)
    state = jax.jit(one.init)(jax.tree.map(lambda a: a[0, 0], plan.groups[0].params), hyper)
    return one, hyper, jax.block_until_ready(state)


STEPS = {}  # program.Static -> the jitted (draw, one-SAE step)


def time_steps(spec: sae.SaeSpec) -> float:
    """Seconds of a Python loop over ``args.steps`` calls of a jitted (draw a batch, take one SAE step)."""
    plan = layout.plan(spec, toys)
    one, hyper, state = one_sae(plan)
    if plan.static not in STEPS:
        STEPS[plan.static] = jax.jit(lambda s, hyper, arrays, t: one.step(s, hyper, first_h(plan.static, arrays, t), t))
    step = STEPS[plan.static]
    state, _ = step(state, hyper, plan.arrays, 0)  # compile
    jax.block_until_ready(state)
    started = time.perf_counter()
    for t in range(args.steps):
        state, _ = step(state, hyper, plan.arrays, t)
    jax.block_until_ready(state)
    return time.perf_counter() - started


def time_parts(spec: sae.SaeSpec) -> dict:
    """What one SAE-step of the loop is made of, each part compiled alone over ``args.steps`` steps:
    the SAE's own step on a fixed h (what a batched program cannot share), and the batch draw with
    h = x W (what it shares across the SAEs of a toy model)."""
    plan = layout.plan(spec, toys)
    static, arrays = plan.static, plan.arrays
    one, hyper, state = one_sae(plan)

    @jax.jit
    def steps_only(state, h):
        return jax.lax.fori_loop(0, args.steps, lambda t, s: one.step(s, hyper, h, t)[0], state)

    @jax.jit
    def draws_only(arrays):
        return jax.lax.fori_loop(0, args.steps, lambda t, total: total + first_h(static, arrays, t)[0, 0], 0.0)

    return {
        "sae_step_s": bench._best_time(steps_only, state, first_h(static, arrays, 0), repeats=3) / args.steps,
        "draw_and_h_s": bench._best_time(draws_only, arrays, repeats=3) / args.steps,
    }


spec = sae.SaeSpec(**grid)
plan = layout.plan(spec, toys)
assert len(plan.rows) == args.saes, (len(plan.rows), args.saes)
rows = {"sweep": {"sae_block": plan.static.sae_block}}
rows["sweep"]["compile_s"], rows["sweep"]["train_s"] = time_program(spec, repeats=2)
for block in (1, args.saes):
    variant = rows[f"sweep_block_{block}"] = {"sae_block": block}
    variant["compile_s"], variant["train_s"] = time_program(spec.replace(sae_block=block), repeats=2)
compiled_s, steps_s = 0.0, 0.0
for row in plan.rows:  # every SAE of the grid on its own, one after the other
    value = int(row["sparsity"]) if axis == "ks" else row["sparsity"]
    one = spec.replace(**{axis: (value,)}, lrs=(row["lr"],), dictionary_ratios=(row["dictionary_ratio"],),
                       seeds=(row["seed"],))  # fmt: skip
    compiled_s += time_program(one)[1]
    steps_s += time_steps(one)
largest = max(grid["dictionary_ratios"])
parts = time_parts(spec.replace(**{axis: (values[-1],)}, lrs=(1e-3,), dictionary_ratios=(largest,), seeds=(0,)))
rows["loop_compiled"] = {"train_s": compiled_s}
rows["loop_steps"] = {"train_s": steps_s}
for row in rows.values():
    row["sae_steps_per_s"] = args.saes * args.steps / row["train_s"]
ratio = {name: row["train_s"] / rows["sweep"]["train_s"] for name, row in rows.items() if name.startswith("loop")}
result = {
    "date": str(datetime.date.today()),
    "machine": f"CPU, {os.cpu_count()} cores, {len(os.sched_getaffinity(0))} usable by this process (taskset)",
    "jax": jax.__version__,
    "workload": f"sae-speed-{args.architecture}",
    "command": f"taskset -c 0 python benchmarks/sae_speed.py --saes {args.saes} --steps {args.steps} "
    f"--architecture {args.architecture} --features {args.features} --width {args.width} --batch {args.batch} "
    f"--ratios {args.ratios}",
    "what": f"{args.saes} SAEs ({args.architecture}, dictionary ratios {args.ratios}, n = {args.features}, "
    f"m = {args.width}, batch {args.batch}, {args.steps} steps) on one toy frame",
    "note": args.note,
    **rows,
    "ratio_vs_loop_compiled": ratio["loop_compiled"],
    "ratio_vs_loop_steps": ratio["loop_steps"],
    # per SAE-step, seconds: the sweep can share the draw and h, not the SAE's own step, so on a CPU
    # whose products are not faster batched its ratio to the loop is at most (step + draw) / step
    "parts_per_sae_step": parts,
    "sweep_per_sae_step_s": rows["sweep"]["train_s"] / (args.saes * args.steps),
    "bound_on_ratio_from_sharing": (parts["sae_step_s"] + parts["draw_and_h_s"]) / parts["sae_step_s"],
}
print(json.dumps(result, indent=1))
if args.json:
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
