"""Where the float32 step's time goes on a CPU, and what XLA:CPU's options and the step's own
switches change. Prints JSON (and writes it with --out).

    python benchmarks/cpu_step.py products [--width 10]   # each product of the fused gradient alone
    python benchmarks/cpu_step.py variants --steps 20     # batch tiles, sparse slots, activation density
    python benchmarks/cpu_step.py flags --steps 20        # XLA_FLAGS, one process each, against the default

``products`` times, per width of the paper slice, the five products of one batch tile of the
fused gradient (``supjax.model.mse_and_grad``) for the ten weight decays that share the data,
each alone, against the whole step of that width: the thin products (m = 10) are the question.
``variants`` runs ``supjax.bench.measure`` on the paper slice with one switch changed at a time,
in one process, each twice, interleaved with the default. ``flags`` does the same for XLA:CPU
options, one subprocess per flag set (XLA reads them once). Only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from supjax import bench, data, layout, model

FLAG_SETS = {
    "default": "",
    "fast_math": "--xla_cpu_enable_fast_math=true",
    "xnnpack_dot": "--xla_cpu_experimental_xnn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    "xnnpack_dot_eltwise": "--xla_cpu_experimental_xnn_fusion_type=LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE",
    "xnnpack_graph_greedy": "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "ynnpack_dot": "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    "onednn": "--xla_cpu_use_onednn=true",
    "onednn_dot": "--xla_cpu_experimental_onednn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    "vector_width_256": "--xla_cpu_prefer_vector_width=256",
    "no_multi_thread_eigen": "--xla_cpu_multi_thread_eigen=false",
}


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor()}, {os.cpu_count()} cores"


def slice_spec():
    return bench.WORKLOADS["paper-slice"]


def timed(fn, *args, repeats=5) -> float:
    return bench._best_time(jax.jit(fn), *args, repeats=repeats)


def products(width: int | None) -> dict:
    """Each product of one tile for the G = 10 models of a width, alone, and the tile's whole
    fused gradient (the step without Adam and sampling), in GFLOP/s."""
    spec = layout.resolve_for_backend(slice_spec())
    tile, n, models = spec.batch_tile, spec.n, len(spec.weight_decays)
    key = jax.random.key(0)
    x = jax.random.uniform(key, (tile, n)) * (jax.random.uniform(jax.random.key(1), (tile, n)) < 1e-3)
    out = {"batch_tile": tile, "n": n, "models": models, "widths": {}}
    for m in [width] if width else spec.widths:
        W = jax.random.normal(jax.random.key(2), (models, n, m)) / np.sqrt(m)
        b = jnp.zeros((models, n))
        h = jnp.einsum("bn,gnm->gbm", x, W)
        dz = jax.random.normal(jax.random.key(3), (models, tile, n))
        flops = 2.0 * tile * n * m * models
        cases = {
            "h = x W (x shared: one wide product)": (lambda x, W: jnp.einsum("bn,gnm->gbm", x, W), x, W),
            "z = h W^T (per model)": (lambda h, W: jnp.einsum("gbm,gnm->gbn", h, W), h, W),
            "dh = dz W (per model)": (lambda dz, W: jnp.einsum("gbn,gnm->gbm", dz, W), dz, W),
            "x^T dh (x shared)": (lambda x, d: jnp.einsum("bn,gbm->gnm", x, d), x, h),
            "dz^T h (per model)": (lambda dz, h: jnp.einsum("gbn,gbm->gnm", dz, h), dz, h),
        }
        row = {name: flops / timed(fn, *args) / 1e9 for name, (fn, *args) in cases.items()}

        def step(W, b, x):
            return jax.vmap(lambda W, b: model.mse_and_grad({"W": W, "b": b}, x))(W, b)

        seconds = timed(step, W, b, x)
        row["whole fused gradient (5 products + elementwise)"] = 5 * flops / seconds / 1e9
        row["product seconds / whole"] = sum(flops / (g * 1e9) for g in list(row.values())[:5]) / seconds
        out["widths"][m] = row
    out["matmul_gflops_2048"] = bench.matmul_rate() / 1e9
    return out


def variants(steps: int, rounds: int) -> dict:
    """The paper slice with one switch changed at a time, interleaved with the default."""
    base = slice_spec()
    cases = {
        "default": base,
        "batch_tile 128": base.replace(batch_tile=128),
        "batch_tile 512": base.replace(batch_tile=512),
        "batch_tile 2048 (untiled)": base.replace(batch_tile=2048),
        "sparse (E = 1, 16 slots)": base.replace(sparse_products=True),
    }
    for s in (0.3, 1.0):
        expected = data.feature_probabilities("power", base.n, s).sum()
        cases[f"density {s} dense (E = {expected:.1f})"] = base.replace(activation_densities=(s,))
        cases[f"density {s} sparse (E = {expected:.1f}, {data.active_capacity(expected)} slots)"] = base.replace(
            activation_densities=(s,), sparse_products=True
        )
    cases["sparse (E = 1, 8 slots: a batch in about 500 falls back to dense)"] = base.replace(sparse_products=True)
    out = {name: [] for name in cases}
    capacity = data.active_capacity
    for _ in range(rounds):
        for name, spec in cases.items():
            data.active_capacity = (lambda e: 8) if "8 slots" in name else capacity
            out[name].append(bench.measure(spec, steps)["model_steps_per_s"])
    data.active_capacity = capacity
    return {
        name: {"model_steps_per_s": rates, "ratio_vs_default": float(np.mean(rates) / np.mean(out["default"]))}
        for name, rates in out.items()
    }


def flags(steps: int, rounds: int, only: list[str] | None = None, precision: str = "float32") -> dict:
    """Each XLA_FLAGS set (``only`` these, with the default) in its own process, interleaved with the default."""
    names = ["default", *[name for name in only or FLAG_SETS if name != "default"]]
    out = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            env = {**os.environ, "XLA_FLAGS": FLAG_SETS[name]}
            command = ["bench", "paper-slice", "--steps", str(steps), "--json", "--precision", precision]
            run = subprocess.run(
                [sys.executable, "-m", "supjax.cli", *command],
                env=env,
                capture_output=True,
                text=True,
            )
            if run.returncode:
                lines = run.stderr.strip().splitlines()
                out[name].append(f"failed: {lines[-1] if lines else run.returncode}")
                continue
            out[name].append(json.loads(run.stdout)["model_steps_per_s"])
    default = np.mean([r for r in out["default"] if isinstance(r, float)])
    return {
        name: {
            "xla_flags": FLAG_SETS[name],
            "model_steps_per_s": rates,
            "ratio_vs_default": float(np.mean([r for r in rates if isinstance(r, float)]) / default)
            if any(isinstance(r, float) for r in rates)
            else None,
        }
        for name, rates in out.items()
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["products", "variants", "flags"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--width", type=int)
    parser.add_argument("--only", nargs="+", choices=list(FLAG_SETS), help="flags: these sets (and the default)")
    parser.add_argument("--precision", default="float32", help="flags: the products' precision")
    parser.add_argument("--out", help="write the JSON to this file too")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.what == "products":
        body = products(args.width)
    elif args.what == "variants":
        body = variants(args.steps, args.rounds)
    else:
        body = flags(args.steps, args.rounds, args.only, args.precision)
    result = {
        **bench.result_header(f"cpu-step-{args.what}", args.precision),
        "machine": cpu_name(),
        "command": "python benchmarks/cpu_step.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seconds": time.perf_counter() - started,
        args.what: body,
    }
    text = json.dumps(result, indent=1, default=float)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return result


if __name__ == "__main__":
    main()
