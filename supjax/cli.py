"""The ``supjax`` command line. Every command is one Python call as well."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from supjax.config import ConfigError, SweepSpec

# The embedded demo: both regimes over six widths, about two minutes on 2 CPU cores.
DEMO = SweepSpec(
    n=400,
    batch_size=1024,
    widths=(8, 12, 16, 24, 32, 48),
    weight_decays=(-1.0, 1.0),
    alphas=(1.0,),
    steps=2500,
    warmup_steps=250,
    log_every=10,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="supjax", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser("sweep", help="train a grid of toy models from a TOML config")
    sweep.add_argument("config", help="TOML file with SweepSpec keys")
    sweep.add_argument("--out", required=True, help="run directory to create")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")

    demo = commands.add_parser("demo", help="train a small sweep that shows both regimes")
    demo.add_argument("--out", help="run directory (default: supjax-demo-<time>)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")

    bench = commands.add_parser("bench", help="measure model-steps/s of a named workload")
    bench.add_argument("workload", nargs="?", default="paper-slice", help="paper-slice, paper-grid or large")
    bench.add_argument("--steps", type=int, default=20, help="timed steps of every model (after a warm-up)")
    bench.add_argument("--baseline", action="store_true", help="also run the paper's one-model-at-a-time loop")
    bench.add_argument("--baseline-steps", type=int, default=20, help="timed steps of each baseline model")
    bench.add_argument("--json", action="store_true", help="print one JSON object")

    args = parser.parse_args(argv)
    try:
        if args.command == "sweep":
            spec = SweepSpec.from_toml(args.config, args.set)
            return _sweep(spec, args.out, args.quiet)
        if args.command == "bench":
            return _bench(args)
        if args.command == "demo":
            return _demo(args.out or time.strftime("supjax-demo-%Y%m%d-%H%M%S"), args.quiet)
    except ConfigError as err:
        print(f"supjax: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("supjax: interrupted", file=sys.stderr)
        return 130
    return 0


def _sweep(spec: SweepSpec, out: str, quiet: bool) -> int:
    from supjax.sweep import run_sweep

    if quiet:
        spec = spec.replace(progress=False)
    run = run_sweep(spec, out=out)
    print(f"supjax: trained {spec.num_models} models x {spec.steps} steps in {run.info['seconds']:.1f} s; wrote {out}")
    return 0


def _bench(args) -> int:
    import json

    from supjax import bench

    if args.workload not in bench.WORKLOADS:
        raise ConfigError("workload", args.workload, f"choose one of {', '.join(bench.WORKLOADS)}")
    for flag in ("steps", "baseline_steps"):
        if getattr(args, flag) <= 0:
            raise ConfigError(f"--{flag.replace('_', '-')}", getattr(args, flag), "must be a positive integer")
    result = bench.run(args.workload, args.steps, args.baseline_steps if args.baseline else None)
    if args.json:
        print(json.dumps(result))
        return 0
    ours = result["supjax"]
    print(f"{result['workload']} on {result['device']}: n = {result['n']}, B = {result['batch_size']}")
    rows = [("supjax", ours, f"{ours['models']} models, compile {ours['compile_s']:.1f} s")]
    if "baseline" in result:
        models = result["baseline"]["models"]
        rows.append(("baseline", result["baseline"], f"the paper's loop and data recipe, {models} models"))
        rows.append(
            ("  sampler", result["baseline_sampler"], f"the paper's loop with supjax's sampler, {models} models")
        )
    for name, r, note in rows:
        rate, flops = r["model_steps_per_s"], r["dense_flops_per_s"] / 1e9
        print(f"  {name:<9} {rate:10.1f} model-steps/s {flops:8.1f} GFLOP/s dense  ({note})")
    if "ratio" in result:
        print(f"  ratio     {result['ratio']:10.2f}x  (with the same sampler: {result['ratio_sampler']:.2f}x)")
    return 0


def _demo(out: str, quiet: bool) -> int:
    from supjax.sweep import run_sweep

    spec = DEMO.replace(progress=not quiet)
    print(f"supjax demo: {spec.num_models} models (n = {spec.n}, widths {list(spec.widths)}, gamma = -1 and +1)")
    run = run_sweep(spec, out=out)
    final = run.final_loss()
    print(f"\n{'m':>4} {'gamma':>6} {'loss':>8} {'rows > 1/2':>10}")
    for row, loss in zip(run.models, final, strict=True):
        W, _ = run.weights(row["index"])
        represented = float(np.mean(np.linalg.norm(W, axis=1) > 0.5))
        print(f"{row['m']:>4} {row['weight_decay']:>6.1f} {loss:>8.4f} {represented:>10.2f}")
    for gamma in spec.weight_decays:
        pick = [i for i, r in enumerate(run.models) if r["weight_decay"] == gamma]
        slope = np.polyfit(np.log([run.models[i]["m"] for i in pick]), np.log(final[pick]), 1)[0]
        regime = "strong superposition" if gamma < 0 else "weak superposition"
        print(f"gamma = {gamma:+.0f} ({regime}): loss ~ m^{slope:.2f}")
    print(f"\nwrote {Path(out).resolve()} in {run.info['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
