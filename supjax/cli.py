"""The ``supjax`` command line. Every command is one Python call as well."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from supjax.config import PRECISIONS, ConfigError, SweepSpec
from supjax.errors import InputFileError, Interrupted, OptionError, SupjaxError

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
    bench.add_argument("--precision", default="float32", help="products: float32, tensorfloat32 or bfloat16")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--out", help="also write the JSON to DIR/DATE-DEVICE-WORKLOAD-PRECISION.json")

    _add_llm_commands(commands)
    _add_sae_command(commands)

    args = parser.parse_args(argv)
    try:
        if args.command in LLM_COMMANDS:
            return LLM_COMMANDS[args.command](args)
        if args.command == "sae":
            return _sae(args)
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


def _analyze(path: str, over_time: bool = False) -> int:
    from supjax import analysis
    from supjax.sae.results import is_sae_run

    if is_sae_run(path):
        return _analyze_sae(path)

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
    from supjax.sae.results import is_sae_run

    if is_sae_run(path):
        return _plot_sae(path, out)

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


# ---- llm, llm-fit, llm-tokens: real language models (supjax.llm) -------------------------------------


def _add_llm_commands(commands) -> None:
    llm = commands.add_parser("llm", help="norms, overlaps and ETF-likeness of an LLM head or embedding matrix")
    llm.add_argument("path", help=".safetensors, model.safetensors.index.json, .npy, .npz, model folder or hub id")
    llm.add_argument("--tensor", help="tensor name (default: the LM head or tied input embedding)")
    llm.add_argument("--device", help="JAX platform to run on: cpu, gpu or tpu (default: the first device)")
    llm.add_argument("--block-size", type=int, help="rows per block (default: 2048 on a CPU, 8192 on a GPU)")
    llm.add_argument("--sample-rows", type=int, help="estimate from this many random rows, with intervals")
    llm.add_argument("--seed", type=int, default=0, help="seed of --sample-rows")
    llm.add_argument("--confidence", type=float, default=0.95, help="level of the --sample-rows intervals")
    llm.add_argument("--no-pairwise", action="store_true", help="skip the n^2 m pass (mean |o|, Var(o^2), coherence)")
    llm.add_argument("--quiet", action="store_true", help="no progress bar")
    llm.add_argument("--json", action="store_true", help="print one JSON object")

    fit = commands.add_parser("llm-fit", help="fit L = A / m^alpha + B_g to a table of LLM losses and plot it")
    fit.add_argument("table", help="CSV with columns family, model, width, dataset, loss")
    fit.add_argument("--out", help="plot path without suffix (default: TABLE-width-fit next to the table)")
    fit.add_argument("--no-plot", action="store_true", help="fit only")
    fit.add_argument("--group-by", default="family,dataset", help="columns whose combinations get one offset B_g")
    fit.add_argument("--json", action="store_true", help="print one JSON object")

    tokens = commands.add_parser("llm-tokens", help="token rank-frequency exponent of text files")
    tokens.add_argument("tokenizer", help='tokenizer.json (or its folder); needs pip install "supjax[llm]"')
    tokens.add_argument("text", nargs="+", help="text files")
    tokens.add_argument("--min-rank", type=int, default=1, help="first rank of the fit")
    tokens.add_argument("--max-rank", type=int, help="last rank of the fit (default: all seen tokens)")
    tokens.add_argument("--out", default="rank-frequency", help="plot path without suffix")
    tokens.add_argument("--counts", help="also save the counts as this .npy")
    tokens.add_argument("--json", action="store_true", help="print one JSON object")


def _llm(args) -> int:
    from supjax import llm

    if args.sample_rows is not None and args.sample_rows < 3:
        raise OptionError("--sample-rows", args.sample_rows, "need at least 3 rows for an interval")
    if not 0 < args.confidence < 1:
        raise OptionError("--confidence", args.confidence, "a level in (0, 1), e.g. 0.95")
    report = llm.analyze_path(
        args.path,
        args.tensor,
        block_size=args.block_size,
        device=args.device,
        sample_rows=args.sample_rows,
        seed=args.seed,
        pairwise=not args.no_pairwise,
        confidence=args.confidence,
        progress=not (args.quiet or args.json),
    )
    _print_report(report, args.json, f"supjax llm: {report['tensor']} of {report['path']}")
    return 0


def _llm_fit(args) -> int:
    from supjax import llm, plots

    table = llm.read_width_table(args.table)
    group_by = [c.strip() for c in args.group_by.split(",") if c.strip()]
    fit = llm.width_scaling_fit(table, group_by)
    if not math.isfinite(fit.exponent):
        raise InputFileError(args.table, "has too few points to fit: need 3+ widths and more rows than 2 + groups")
    report = {
        "exponent": fit.exponent,
        "stderr": fit.stderr,
        "amplitude": fit.amplitude,
        "r2": fit.r2,
        "n_points": fit.n_points,
        "n_groups": len(fit.offsets),
        "converged": fit.converged,
        "chinchilla_width_exponent": llm.chinchilla_width_exponent(),
        "offsets": fit.offsets,
    }
    if not args.no_plot:
        out = Path(args.out or str(Path(args.table).with_suffix("")) + "-width-fit")
        report["plots"] = [str(p) for p in plots.save(llm.plot_width_scaling(table, fit, group_by), out)]
    _print_report(report, args.json, "supjax llm-fit: L = A / m^alpha + B_g")
    return 0


def _llm_tokens(args) -> int:
    from supjax import llm, plots

    if args.min_rank < 1 or (args.max_rank is not None and args.max_rank <= args.min_rank):
        raise OptionError("--min-rank", args.min_rank, "need 1 <= --min-rank < --max-rank")
    counts = llm.count_tokens_in_files(args.tokenizer, args.text)
    fit = llm.rank_frequency_fit(counts, args.min_rank, args.max_rank)
    report = {
        "tokens": int(counts.sum()),
        "distinct_tokens": int(np.count_nonzero(counts)),
        "vocab_size": int(counts.size),
        "exponent": fit.exponent,
        "stderr": fit.stderr,
        "r2": fit.r2,
        "fitted_ranks": fit.n_points,
        "plots": [str(p) for p in plots.save(llm.plot_rank_frequency(counts, fit), Path(args.out))],
    }
    if args.counts:
        np.save(args.counts, counts)
        report["counts"] = args.counts
    _print_report(report, args.json, "supjax llm-tokens: f(r) ∝ r^-exponent")
    return 0


LLM_COMMANDS = {"llm": _llm, "llm-fit": _llm_fit, "llm-tokens": _llm_tokens}


def _json_safe(value):
    """JSON-safe: nan and inf become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _print_report(report: dict, as_json: bool, title: str) -> None:
    """One JSON object, or ``title`` and one aligned line per key; ``KEY_ci`` joins KEY's line."""
    if as_json:
        print(json.dumps(_json_safe(report)))
        return
    print(title)
    keys = [k for k in report if not (k.endswith("_ci") and k.removesuffix("_ci") in report)]
    width = max(len(k) for k in keys)
    for key in keys:
        value = report[key]
        if isinstance(value, dict):
            print(f"  {key}:")
            for inner, number in value.items():
                print(f"    {inner:<{width}} {number:.4g}")
            continue
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        if f"{key}_ci" in report:
            low, high = report[f"{key}_ci"]
            text += f"  [{low:.4g}, {high:.4g}]"
        print(f"  {key:<{width}} {text}")


# ---- sae: sparse autoencoders on a run's hidden activations (supjax.sae) ---------------------------------


def _add_sae_command(commands) -> None:
    sae = commands.add_parser("sae", help="train sparse autoencoders on every model of a run (or a selection)")
    sae.add_argument("run", help="toy-model run directory (written by supjax sweep)")
    sae.add_argument("--config", required=True, help="TOML file with SaeSpec keys")
    sae.add_argument("--out", required=True, help="SAE run directory to create")
    sae.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    sae.add_argument("--resume", action="store_true", help="continue the interrupted SAE run in --out")
    sae.add_argument("--quiet", action="store_true", help="no progress bar")


def _sae(args) -> int:
    from supjax import sae

    spec = sae.SaeSpec.from_toml(args.config, args.set)
    if args.quiet:
        spec = spec.replace(progress=False)
    run = sae.run_sae(args.run, spec, out=args.out, resume=args.resume)
    summary, _ = sae.load_tables(args.out)
    print(
        f"supjax: trained {len(run.saes)} SAEs on {len(run.toys.rows)} toy models x {spec.steps} steps "
        f"in {run.info['seconds']:.1f} s; wrote {args.out}"
    )
    _print_sae_summary(summary)
    return 0


def _analyze_sae(path: str) -> int:
    from supjax import sae

    summary, _ = sae.load_sae_run(path).evaluate(write=True)
    _print_sae_summary(summary)
    print(f"wrote {Path(path) / 'sae_summary.csv'} ({len(summary)} SAEs) and {Path(path) / 'sae_features.npz'}")
    return 0


def _print_sae_summary(summary) -> None:
    columns = ["sae_l0", "fvu", "dead_fraction", "mcc", "mcc_represented", "recovered_fraction"]
    keys = ["architecture", "regime"] if summary["regime"].fillna("").astype(bool).any() else ["architecture"]
    means = summary.groupby(keys, sort=False)[columns].mean()
    print(means.to_string(float_format=lambda v: f"{v:.3f}"))


def _plot_sae(path: str, out: str | None) -> int:
    from supjax import plots, sae

    if not (Path(path) / "sae_summary.csv").is_file():
        sae.load_sae_run(path).evaluate(write=True)
    summary, features = sae.load_tables(path)
    folder = Path(out) if out else Path(path) / "figures"
    written = plots.write_sae_figures(summary, features, folder)
    print(f"wrote {len(written)} files to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
