"""The LLC wing's commands: ``llc``; ``analyze`` and ``plot`` of an LLC run directory (:mod:`supjax.llc`)."""

from __future__ import annotations

from pathlib import Path

from supjax.cli import RunKind, add_reader_command, figure_folder


def add(commands) -> dict:
    add_reader_command(commands, "llc", "estimate the local learning coefficient of every model of a run", "LlcSpec")
    return {"llc": _llc}


def _llc(args) -> int:
    from supjax import llc

    spec = llc.LlcSpec.from_toml(args.config, args.set)
    if args.quiet:
        spec = spec.replace(progress=False)
    run = llc.run_llc(args.run, spec, out=args.out, resume=args.resume)
    summary = run.summary()
    anchors = len(summary[["model", "step"]].drop_duplicates())
    print(f"supjax: {len(run.chains)} chains of {spec.draws} draws at {anchors} w* in {run.info['seconds']:.1f} s")
    print(f"wrote {args.out}")
    _print_summary(summary)
    return 0


def _print_summary(summary) -> None:
    columns = ["model", "step", "m", "weight_decay", "nbeta", "localization", "step_size", "llc_mean", "llc_std",
               "acceptance", "below_fraction", "passes"]  # fmt: skip
    print(summary[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"{int(summary.passes.sum())} of {len(summary)} (w*, setting) pairs pass the diagnostics")


def _analyze_llc(args) -> int:
    from supjax import llc

    run = llc.load_llc_run(args.run)
    _, summary = llc.results.write_tables(run)
    _print_summary(summary)
    print(f"wrote {Path(args.run) / 'llc.csv'} ({len(run.chains)} chains) and {Path(args.run) / 'llc_summary.csv'}")
    return 0


def _plot_llc(args) -> int:
    from supjax import llc, plots

    run = llc.load_llc_run(args.run)
    folder = figure_folder(args.run, args.out)
    summary = run.summary()
    trajectory = _toy_trajectory(run) if (summary.groupby("model").step.nunique() > 1).any() else None
    written = plots.write_llc_figures(summary, run.table(), run.traces, folder, trajectory)
    print(f"wrote {len(written)} files to {folder}")
    return 0


def _toy_trajectory(run):
    """The toy run's metrics at its snapshots (its ``trajectory.csv``, measured now if missing), or
    None where the toy run is gone (the figure then shows lambda_hat alone)."""
    import pandas as pd

    from supjax import analysis
    from supjax.errors import SupjaxError, warn

    toy = run.info.get("toy_run")
    if not toy or not Path(toy).is_dir():
        return None
    if (Path(toy) / "trajectory.csv").is_file():
        return pd.read_csv(Path(toy) / "trajectory.csv")
    try:
        return analysis.trajectory(toy)[0]
    except (SupjaxError, OSError, ValueError, KeyError) as err:
        warn(f"the toy run's snapshots could not be measured ({err}); lambda_hat along training is drawn alone")
        return None


def _is_llc_run(path: str) -> bool:
    from supjax.llc.results import is_llc_run

    return is_llc_run(path)


RUN_KINDS = [RunKind(_is_llc_run, _analyze_llc, _plot_llc)]
