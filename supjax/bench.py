"""Throughput of named workloads, against the paper's loop run on the same device.

``measure(workload, steps)`` times supjax's compiled chunk (compilation timed apart);
``measure_baseline`` runs the paper's loop done well: one model at a time, a fresh batch
per model per step, one call of the same jitted one-model step per Python iteration,
data drawn inside the jitted step, no host sync per step. It runs twice: with the
paper's data recipe (two uniforms per entry) and with supjax's one-draw sampler; the
second ratio isolates what batching models and sharing data buy.
Dense work is counted as 10 B n m flops per model-step; the work done, 6 B n m + 4 B K m
with the sparse x products.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from supjax import data, layout, program
from supjax.config import DEMO, PAPER_WEIGHT_DECAYS, PAPER_WIDTHS, SweepSpec, distribution_key
from supjax.engine import program as engine

WORKLOADS = {
    # supjax demo: 48 models, n = 300, six widths (the time to the first step is what a user feels first).
    "demo": DEMO,
    # exp-10: one alpha, the six paper widths, ten weight decays: 60 models.
    "paper-slice": SweepSpec(widths=PAPER_WIDTHS, weight_decays=PAPER_WEIGHT_DECAYS, alphas=(1.0,)),
    # exp-10 + exp-10-3 (experiments/grid_paper.toml): alpha = 0, 1/8, .., 2, the ten weight decays,
    # the six widths: 1020 distinct models (the paper's 1080 count alpha = 1 twice).
    "paper-grid": SweepSpec(alphas=tuple(np.arange(17) / 8)),
    # exp-17: n = 10240, batch 8192, m = 8..1024, width-scaled learning rates, 40000 steps.
    "large": SweepSpec(
        n=10240,
        batch_size=8192,
        widths=tuple(2**k for k in range(3, 11)),
        weight_decays=(-1.0,),
        alphas=(1.2,),
        steps=40000,
        warmup_steps=2000,
        lr=0.02,
        lr_width_scaling=True,
    ),
}


def _device() -> str:
    device = jax.devices()[0]
    return f"{device.platform}:{device.device_kind}"


def dense_flops(spec: SweepSpec, models_per_width: int) -> float:
    """Dense flops of one step of ``models_per_width`` models at every width of ``spec``."""
    return 10.0 * spec.batch_size * spec.n * sum(spec.widths) * models_per_width


def measure(spec: SweepSpec, steps: int) -> dict:
    """Train every model of ``spec`` for ``steps`` steps, after a compile; return the rates."""
    spec = layout.resolve_for_backend(spec.replace(progress=False, log_every=1 if steps % 10 else 10))
    the_layout = layout.plan(spec)
    job = the_layout.job()
    states = jax.block_until_ready(engine.init_states(job.static, *job.init_args))
    windows = steps // spec.log_every
    started = time.perf_counter()
    lowered = engine.train_chunk.lower(job.static, states, job.inputs, jnp.int32(0), num_windows=windows)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - started
    memory = compiled.memory_analysis()
    states, _ = jax.block_until_ready(compiled(states, job.inputs, jnp.int32(0)))  # warm-up
    started = time.perf_counter()
    states, logs = jax.block_until_ready(compiled(states, job.inputs, jnp.int32(steps)))
    seconds = time.perf_counter() - started
    if not all(np.isfinite(np.asarray(log)).all() for log in jax.tree.leaves(logs)):
        raise FloatingPointError("benchmark losses are not finite")
    model_steps = len(the_layout.rows) * steps
    program_bytes = memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes
    program_bytes -= memory.alias_size_in_bytes  # donated state is written in place
    stats = jax.local_devices()[0].memory_stats() or {}
    return {
        "models": len(the_layout.rows),
        "memory_per_model_bytes": program_bytes / len(the_layout.rows),
        "peak_device_bytes": stats.get("peak_bytes_in_use"),
        "steps": steps,
        "compile_s": compile_s,
        "seconds": seconds,
        "model_steps_per_s": model_steps / seconds,
        "samples_per_s": model_steps * spec.batch_size / seconds,
        "dense_flops_per_s": the_layout.flops_per_step * steps / seconds,
        "work_flops_per_s": the_layout.work_flops_per_step * steps / seconds,
        "sparse_products": spec.sparse_products,
    }


FIRST_STEP = """
import json, time, sys
started = time.perf_counter()
from supjax import bench, layout, sweep
spec = bench.WORKLOADS[sys.argv[1]].replace(progress=False, steps=10, log_every=10, warmup_steps=1)
imported = time.perf_counter()
sweep.train_batch(layout.plan(spec))
print(json.dumps({"import_s": imported - started, "first_step_s": time.perf_counter() - started}))
"""


def first_step(workload: str, cache: str | None) -> dict:
    """Seconds from a fresh process's start to the end of its first window of steps of ``workload``
    (imports, tracing, compiling or reading the program from the persistent cache in ``cache``, the
    first steps): what a user waits for. ``cache=None`` turns the cache off."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["SUPJAX_CACHE_DIR"] = cache if cache is not None else "off"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", FIRST_STEP, workload], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "the process failed")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_s": time.perf_counter() - started}


def cold_and_warm(workload: str) -> dict:
    """:func:`first_step` with an empty persistent cache (cold: every program compiles), then again with
    the cache it filled (warm: every program is read back), then with the cache off."""
    import shutil
    import tempfile

    cache = tempfile.mkdtemp(prefix="supjax-first-step-")
    try:
        cold, warm = first_step(workload, cache), first_step(workload, cache)
        entries = sum(1 for _ in os.scandir(cache))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {"workload": workload, "device": _device(), "cold": cold, "warm": warm, "cache_entries": entries,
            "uncached": first_step(workload, None)}  # fmt: skip


def paper_batch(key: jax.Array, p: jax.Array, batch_size: int) -> jax.Array:
    """The paper's data recipe: ``(rand(B, n) < p) * rand(B, n) * 2``, two uniforms per entry."""
    key_mask, key_value = jax.random.split(key)
    shape = (batch_size, p.shape[0])
    return (jax.random.uniform(key_mask, shape) < p) * jax.random.uniform(key_value, shape) * 2.0


def measure_baseline(spec: SweepSpec, steps: int, recipe: str = "paper") -> dict:
    """The paper's loop on one model per width of ``spec`` (the middle weight decay).

    ``recipe = "paper"`` draws data as the paper's code does (two uniforms per entry);
    ``"sampler"`` uses supjax's one-draw sampler. The step is supjax's one-model step on
    the whole batch (untiled, the faster choice for one model at a time).
    """
    one_model = layout.plan(spec.replace(widths=spec.widths[:1], weight_decays=spec.weight_decays[:1])).static
    one = program.make_step(dataclasses.replace(one_model, batch_tile=spec.batch_size))
    p = spec.feature_probabilities[distribution_key(spec.distributions[0], spec.activation_densities[0])]
    thresholds, scales = (jnp.asarray(a) for a in data.sampler_tables(p))
    p = jnp.asarray(p, jnp.float32)
    gamma = spec.weight_decays[len(spec.weight_decays) // 2]

    @jax.jit
    def paper_step(state, hyper, key, t):
        key = jax.random.fold_in(key, t)
        if recipe == "paper":
            x = paper_batch(key, p, spec.batch_size)
        else:
            x = data.features_from_bits(jax.random.bits(key, (spec.batch_size, spec.n), jnp.uint32), thresholds, scales)
        with jax.default_matmul_precision(spec.precision):  # the products supjax's run uses
            return one.step(state, hyper, x, t)

    seconds = 0.0
    for i, m in enumerate(spec.widths):
        hyper = program.Hyper(weight_decay=jnp.float32(gamma), lr_w=jnp.float32(spec.lr), lr_b=jnp.float32(spec.lr))
        key = jax.random.key(i)
        state = one.init(key, hyper, m)
        for t in range(2):  # compile this width's shapes
            state, loss = paper_step(state, hyper, key, jnp.int32(t))
        jax.block_until_ready(state)
        started = time.perf_counter()
        losses = []
        for t in range(steps):
            state, loss = paper_step(state, hyper, key, jnp.int32(t))
            losses.append(loss)
        jax.block_until_ready((state, losses))
        seconds += time.perf_counter() - started
    model_steps = len(spec.widths) * steps
    return {
        "recipe": recipe,
        "models": len(spec.widths),
        "steps": steps,
        "seconds": seconds,
        "model_steps_per_s": model_steps / seconds,
        "dense_flops_per_s": dense_flops(spec, 1) * steps / seconds,
    }


def _best_time(fn, *args, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls of ``fn(*args)`` after a warm-up (the compile)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - started)
    return min(times)


def matmul_rate(size: int = 2048, repeats: int = 5, precision: str = "float32") -> float:
    """Flop/s of a square ``size`` product of random float32 matrices with ``precision``
    products (``tensorfloat32``: the GPU's TF32 tensor cores)."""
    a, b = jax.random.normal(jax.random.key(0), (2, size, size), jnp.float32)
    with jax.default_matmul_precision(precision):
        seconds = _best_time(jax.jit(lambda a, b: a @ b), a, b, repeats=repeats)
    return 2.0 * size**3 / seconds


def bandwidth(repeats: int = 5) -> float:
    """Streaming bytes/s (read plus written) of ``y = 2 x + 1`` over 256 MB."""
    x = jax.random.uniform(jax.random.key(1), (64, 1024, 1024), jnp.float32)
    return 2.0 * x.nbytes / _best_time(jax.jit(lambda x: 2.0 * x + 1.0), x, repeats=repeats)


def machine_limits(size: int = 2048, repeats: int = 5, precision: str = "float32") -> dict:
    """The roofline against which a step is judged: :func:`matmul_rate` for compute and
    :func:`bandwidth` for memory, each the best of ``repeats`` timings after a warm-up."""
    return {
        "precision": precision,
        "matmul_size": size,
        "matmul_flops_per_s": matmul_rate(size, repeats, precision),
        "bandwidth_bytes_per_s": bandwidth(repeats),
    }


def result_header(workload: str, precision: str, sparse_products: bool = False) -> dict:
    """The keys that open every file in benchmarks/results and name it (:func:`result_name`)."""
    return {
        "date": time.strftime("%Y-%m-%d"),
        "device": _device(),
        "jax": jax.__version__,
        "workload": workload,
        "precision": precision,
        "sparse_products": sparse_products,
    }


def run(
    workload: str,
    steps: int,
    baseline_steps: int | None = None,
    sparse: bool = False,
    precision: str = "float32",
) -> dict:
    """Measure ``workload`` (and the paper's loop when ``baseline_steps``) in one process;
    ``sparse`` trains with the sparse x products (``sparse_products = true``), ``precision``
    sets every product of supjax's step and the baseline's (the config field of that name).

    The top level holds one row of benchmarks/results: device, workload, precision, models,
    steps, train_seconds (compile excluded), model_steps_per_s and, with a baseline,
    ratio_vs_paper_loop; ``supjax``, ``baseline`` and ``baseline_sampler`` hold the details.
    """
    spec = WORKLOADS[workload].replace(sparse_products=sparse, precision=precision)
    ours = measure(spec, steps)
    result = {
        **result_header(workload, precision, sparse),
        "models": ours["models"],
        "steps": steps,
        "train_seconds": ours["seconds"],
        "compile_seconds": ours["compile_s"],
        "model_steps_per_s": ours["model_steps_per_s"],
        "peak_device_bytes": ours["peak_device_bytes"],
        "n": spec.n,
        "batch_size": spec.batch_size,
        "supjax": ours,
    }
    if baseline_steps:
        rate = ours["model_steps_per_s"]
        result["baseline"] = measure_baseline(spec, baseline_steps, "paper")
        result["ratio"] = result["ratio_vs_paper_loop"] = rate / result["baseline"]["model_steps_per_s"]
        result["baseline_sampler"] = measure_baseline(spec, baseline_steps, "sampler")
        result["ratio_sampler"] = rate / result["baseline_sampler"]["model_steps_per_s"]
    return result


def result_name(result: dict) -> str:
    """``DATE-DEVICE-WORKLOAD-PRECISION[-sparse].json``: the file name of ``result`` in benchmarks/results."""
    device = "".join(c if c.isalnum() else "-" for c in result["device"].split(":")[-1].lower()).strip("-")
    sparse = "-sparse" if result["sparse_products"] else ""
    return f"{result['date']}-{device}-{result['workload']}-{result['precision']}{sparse}.json"


def format_result(result: dict) -> str:
    """``result`` of :func:`run` as the lines ``supjax bench`` prints."""
    ours = result["supjax"]
    lines = [
        f"{result['workload']} on {result['device']} (jax {result['jax']}): n = {result['n']}, "
        f"B = {result['batch_size']}, {result['precision']} products"
    ]
    products = "sparse x products" if ours["sparse_products"] else "dense products"
    memory = ours["memory_per_model_bytes"] / 2**20
    note = f"{ours['models']} models, {products}, compile {ours['compile_s']:.1f} s, {memory:.1f} MiB/model"
    rows = [("supjax", ours, note)]
    if "baseline" in result:
        models = result["baseline"]["models"]
        rows.append(("baseline", result["baseline"], f"the paper's loop and data recipe, {models} models"))
        note = f"the paper's loop with supjax's sampler, {models} models"
        rows.append(("  sampler", result["baseline_sampler"], note))
    for name, r, note in rows:
        rate, flops = r["model_steps_per_s"], r["dense_flops_per_s"] / 1e9
        lines.append(f"  {name:<9} {rate:10.1f} model-steps/s {flops:8.1f} GFLOP/s dense  ({note})")
    if "ratio" in result:
        lines.append(f"  ratio     {result['ratio']:10.2f}x  (with the same sampler: {result['ratio_sampler']:.2f}x)")
    return "\n".join(lines)
