"""The toy wing's commands: ``sweep``, ``demo`` and ``bench``; ``analyze`` and ``plot`` of a toy run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from supjax.cli import RunKind, figure_folder
from supjax.config import DEMO, PRECISIONS, ConfigError, SweepSpec
from supjax.errors import OptionError


def add(commands) -> dict:
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

    bench = commands.add_parser("bench", help="measure model-steps/s of a named workload")
    bench.add_argument("workload", nargs="?", default="paper-slice", help="paper-slice, paper-grid, large or demo")
    bench.add_argument(
        "--first-step", action="store_true", help="time a fresh process to its first steps: cold, warm, uncached"
    )
    bench.add_argument("--steps", type=int, default=20, help="timed steps of every model (after a warm-up)")
    bench.add_argument("--baseline", action="store_true", help="also run the paper's one-model-at-a-time loop")
    bench.add_argument("--baseline-steps", type=int, default=20, help="timed steps of each baseline model")
    bench.add_argument("--sparse", action="store_true", help="train with the sparse x products")
    bench.add_argument("--precision", default="float32", help="products: float32, tensorfloat32 or bfloat16")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--out", help="also write the JSON to DIR/DATE-DEVICE-WORKLOAD-PRECISION.json")
    return {"sweep": _sweep_command, "demo": _demo_command, "bench": _bench}


def _sweep_command(args) -> int:
    spec = SweepSpec.from_toml(args.config, args.set)
    _initialize_distributed(args)
    return _sweep(spec, args.out, args.quiet, args.resume)


def _demo_command(args) -> int:
    return _demo(args.out or time.strftime("supjax-demo-%Y%m%d-%H%M%S"), args.quiet)


def _is_toy_run(path: str) -> bool:
    return True  # the fallback: supjax.analysis says what is missing from a directory that is no run


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


def _bench(args) -> int:
    from supjax import bench

    if args.workload not in bench.WORKLOADS:
        raise OptionError("workload", args.workload, f"choose one of {', '.join(bench.WORKLOADS)}")
    for flag in ("steps", "baseline_steps"):
        if getattr(args, flag) <= 0:
            raise OptionError(f"--{flag.replace('_', '-')}", getattr(args, flag), "must be a positive integer")
    if args.precision not in PRECISIONS:
        raise OptionError("--precision", args.precision, f"use one of {', '.join(PRECISIONS)}")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise OptionError("--out", str(out), "is a file; name a directory for the result files")
    if args.first_step:
        return _first_step(args)
    baseline = args.baseline_steps if args.baseline else None
    result = bench.run(args.workload, args.steps, baseline, args.sparse, args.precision)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / bench.result_name(result)).write_text(json.dumps(result, indent=1) + "\n")
    if args.json:
        print(json.dumps(result))
        return 0
    print(bench.format_result(result))
    return 0


def _first_step(args) -> int:
    from supjax import bench

    result = bench.cold_and_warm(args.workload)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"supjax bench {args.workload} --first-step ({result['device']}): seconds from process start to the first steps"
    )
    for kind in ("cold", "warm", "uncached"):
        times = result[kind]
        print(f"  {kind:<8} {times['first_step_s']:6.2f} s (imports {times['import_s']:.2f} s)")
    print(f"  the persistent cache held {result['cache_entries']} programs")
    return 0


def _analyze(args) -> int:
    from supjax import analysis

    path, over_time = args.run, args.over_time
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


def _plot(args) -> int:
    from supjax import analysis, plots

    path, out = args.run, args.out
    if not (Path(path) / "summary.csv").is_file():
        analysis.analyze(path)
    written, skipped = plots.plot_run(path, out)
    for note in skipped:
        print(f"skipped {note}")
    print(f"wrote {len(written)} files to {figure_folder(path, out)}")
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


RUN_KINDS = [RunKind(_is_toy_run, _analyze, _plot)]
