"""The ``supjax`` command line. Every command is one Python call as well."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from supjax.config import ConfigError, SweepSpec
from supjax.errors import Interrupted, SupjaxError

# The embedded demo: both regimes, six widths, two data exponents; under two minutes on 2 CPU cores.
DEMO = SweepSpec(
    n=300,
    batch_size=1024,
    widths=(8, 12, 16, 24, 32, 48),
    weight_decays=(-1.0, -0.3, 0.3, 1.0),
    alphas=(0.8, 1.4),
    steps=2000,
    warmup_steps=200,
    log_every=10,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="supjax", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser("sweep", help="train a grid of toy models from a TOML config")
    sweep.add_argument("config", help="TOML file with SweepSpec keys")
    sweep.add_argument("--out", required=True, help="run directory to create")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    sweep.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    sweep.add_argument("--coordinator", metavar="HOST:PORT", help="multi-host: address of process 0")
    sweep.add_argument("--num-processes", type=int, help="multi-host: number of processes")
    sweep.add_argument("--process-id", type=int, help="multi-host: this process's rank")
    sweep.add_argument("--distributed", action="store_true", help="multi-host from the cluster's environment (Slurm)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")

    demo = commands.add_parser("demo", help="train a small sweep that shows both regimes")
    demo.add_argument("--out", help="run directory (default: supjax-demo-<time>)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")

    status = commands.add_parser("status", help="where a run stands: batches, steps, lock, rate, ETA, divergences")
    status.add_argument("run", help="run directory (running or stopped)")
    status.add_argument("--json", action="store_true", help="print one JSON object")

    analyze = commands.add_parser("analyze", help="write summary.csv and exponents.csv of a run")
    analyze.add_argument("run", help="run directory")
    analyze.add_argument("--over-time", action="store_true", help="also every metric at every snapshot: trajectory.csv")

    plot = commands.add_parser("plot", help="draw the paper's figures for a run (analyses it first if needed)")
    plot.add_argument("run", help="run directory")
    plot.add_argument("--out", help="figure directory (default: RUN/figures)")

    bench = commands.add_parser("bench", help="measure model-steps/s of a named workload")
    bench.add_argument("workload", nargs="?", default="paper-slice", help="paper-slice, paper-grid or large")
    bench.add_argument("--steps", type=int, default=20, help="timed steps of every model (after a warm-up)")
    bench.add_argument("--baseline", action="store_true", help="also run the paper's one-model-at-a-time loop")
    bench.add_argument("--baseline-steps", type=int, default=20, help="timed steps of each baseline model")
    bench.add_argument("--sparse", action="store_true", help="train with the sparse x products")
    bench.add_argument("--json", action="store_true", help="print one JSON object")

    from supjax import llm

    llm.add_llm_commands(commands)

    args = parser.parse_args(argv)
    try:
        if args.command in ("llm", "llm-fit", "llm-tokens"):
            return llm.run_llm_command(args)
        if args.command == "sweep":
            spec = SweepSpec.from_toml(args.config, args.set)
            _initialize_distributed(args)
            return _sweep(spec, args.out, args.quiet, args.resume)
        if args.command == "status":
            return _status(args.run, args.json)
        if args.command == "analyze":
            return _analyze(args.run, args.over_time)
        if args.command == "plot":
            return _plot(args.run, args.out)
        if args.command == "bench":
            return _bench(args)
        if args.command == "demo":
            return _demo(args.out or time.strftime("supjax-demo-%Y%m%d-%H%M%S"), args.quiet)
    except SupjaxError as err:
        print(f"supjax: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(
            f"supjax: error: {err.filename or ''}: {err.strerror or err}; check the path and free space",
            file=sys.stderr,
        )
        return 2
    except Interrupted as stopped:  # a sweep stopped by a signal, checkpointed
        print(f"supjax: {stopped}", file=sys.stderr)
        return stopped.exit_code
    except KeyboardInterrupt:
        print("supjax: interrupted", file=sys.stderr)
        return 130
    return 0


def _initialize_distributed(args) -> None:
    """``jax.distributed.initialize`` from the flags, before any device is touched."""
    given = [args.coordinator, args.num_processes, args.process_id]
    if not args.distributed and all(v is None for v in given):
        return
    if not args.distributed and any(v is None for v in given):
        raise ConfigError(
            "--coordinator", args.coordinator, "give --coordinator, --num-processes and --process-id together"
        )
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU hosts talk over gloo
    try:
        if args.distributed:
            jax.distributed.initialize()
        else:
            jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    except (RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError("--coordinator", args.coordinator, f"jax.distributed.initialize failed: {first}") from None


def _sweep(spec: SweepSpec, out: str, quiet: bool, resume: bool) -> int:
    from supjax.sweep import run_sweep

    if quiet:
        spec = spec.replace(progress=False)
    run = run_sweep(spec, out=out, resume=resume)
    print(f"supjax: trained {spec.num_models} models x {spec.steps} steps in {run.info['seconds']:.1f} s; wrote {out}")
    return 0


def _status(run: str, as_json: bool) -> int:
    import json

    from supjax import status

    state = status.run_status(run)
    print(json.dumps(state, indent=1) if as_json else status.format_status(state))
    return 0


def _bench(args) -> int:
    import json

    from supjax import bench

    if args.workload not in bench.WORKLOADS:
        raise ConfigError("workload", args.workload, f"choose one of {', '.join(bench.WORKLOADS)}")
    for flag in ("steps", "baseline_steps"):
        if getattr(args, flag) <= 0:
            raise ConfigError(f"--{flag.replace('_', '-')}", getattr(args, flag), "must be a positive integer")
    result = bench.run(args.workload, args.steps, args.baseline_steps if args.baseline else None, args.sparse)
    if args.json:
        print(json.dumps(result))
        return 0
    ours = result["supjax"]
    print(f"{result['workload']} on {result['device']}: n = {result['n']}, B = {result['batch_size']}")
    memory = ours["memory_per_model_bytes"] / 2**20
    products = "sparse x products" if ours["sparse_products"] else "dense products"
    rows = [
        (
            "supjax",
            ours,
            f"{ours['models']} models, {products}, compile {ours['compile_s']:.1f} s, {memory:.1f} MiB/model",
        )
    ]
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


def _analyze(path: str, over_time: bool = False) -> int:
    from supjax import analysis

    summary, exponents = analysis.analyze(path)
    _print_exponents(exponents)
    print(f"wrote {Path(path) / 'summary.csv'} ({len(summary)} models) and {Path(path) / 'exponents.csv'}")
    if over_time:
        trajectory, _ = analysis.trajectory(path)
        steps = trajectory.step.nunique()
        print(f"wrote {Path(path) / 'trajectory.csv'} ({steps} snapshots) and {Path(path) / 'exponents_over_time.csv'}")
    return 0


def _print_exponents(exponents) -> None:
    pooled = exponents[exponents["seed"].astype(str) == "all"]
    print(f"{'distribution':<16} {'s':>4} {'gamma':>6} {'alpha_m':>8} {'stderr':>7} {'R^2':>6}  regime")
    for row in pooled.itertuples():
        print(
            f"{row.distribution:<16} {row.activation_density:>4.2g} {row.weight_decay:>6.2f} "
            f"{row.model_exponent:>8.3f} {row.stderr:>7.3f} {row.r2:>6.3f}  {row.regime}"
        )


def _plot(path: str, out: str | None) -> int:
    from supjax import analysis, plots

    if not (Path(path) / "summary.csv").is_file():
        analysis.analyze(path)
    written, skipped = plots.plot_run(path, out)
    for note in skipped:
        print(f"skipped {note}")
    print(f"wrote {len(written)} files to {Path(out) if out else Path(path) / 'figures'}")
    return 0


def _demo(out: str, quiet: bool) -> int:
    from supjax import analysis, plots
    from supjax.sweep import run_sweep

    spec = DEMO.replace(progress=not quiet)
    print(
        f"supjax demo: {spec.num_models} models (n = {spec.n}, widths {list(spec.widths)}, "
        f"gamma in {list(spec.weight_decays)}, alpha in {list(spec.alphas)})"
    )
    run = run_sweep(spec, out=out)
    summary, exponents = analysis.analyze(out)
    written, _ = plots.plot_run(out)
    print()
    _print_exponents(exponents)
    strong = summary[summary.weight_decay < 0]
    weak = summary[summary.weight_decay > 0]
    print(
        f"\nrows with norm > 1/2: {strong.represented_fraction.mean():.2f} for gamma < 0 (strong superposition), "
        f"{weak.represented_fraction.mean():.2f} for gamma > 0 (weak)"
    )
    print(f"trained in {run.info['seconds']:.0f} s; wrote {Path(out).resolve()} and {len(written)} figure files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
