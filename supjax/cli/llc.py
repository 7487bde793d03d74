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
    written = plots.write_llc_figures(run.summary(), run.table(), run.traces, folder)
    print(f"wrote {len(written)} files to {folder}")
    return 0


def _is_llc_run(path: str) -> bool:
    from supjax.llc.results import is_llc_run

    return is_llc_run(path)


RUN_KINDS = [RunKind(_is_llc_run, _analyze_llc, _plot_llc)]
