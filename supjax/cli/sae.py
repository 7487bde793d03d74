"""The SAE wing's commands: ``sae``; ``analyze`` and ``plot`` of an SAE run directory (:mod:`supjax.sae`)."""

from __future__ import annotations

from pathlib import Path

from supjax.cli import RunKind, add_reader_command, figure_folder


def add(commands) -> dict:
    add_reader_command(commands, "sae", "train sparse autoencoders on every model of a run (or a selection)", "SaeSpec")
    return {"sae": _sae}


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


def _analyze_sae(args) -> int:
    from supjax import sae

    path = args.run
    summary, _ = sae.load_sae_run(path).evaluate(write=True)
    _print_sae_summary(summary)
    print(f"wrote {Path(path) / 'sae_summary.csv'} ({len(summary)} SAEs) and {Path(path) / 'sae_features.npz'}")
    return 0


def _print_sae_summary(summary) -> None:
    columns = ["sae_l0", "fvu", "dead_fraction", "mcc", "mcc_represented", "recovered_fraction"]
    keys = ["architecture", "regime"] if summary["regime"].fillna("").astype(bool).any() else ["architecture"]
    means = summary.groupby(keys, sort=False)[columns].mean()
    print(means.to_string(float_format=lambda v: f"{v:.3f}"))


def _plot_sae(args) -> int:
    from supjax import plots, sae

    path = args.run
    if not (Path(path) / "sae_summary.csv").is_file():
        sae.load_sae_run(path).evaluate(write=True)
    summary, features = sae.load_tables(path)
    folder = figure_folder(path, args.out)
    written = plots.write_sae_figures(summary, features, folder)
    print(f"wrote {len(written)} files to {folder}")
    return 0


def _is_sae_run(path: str) -> bool:
    from supjax.sae.results import is_sae_run

    return is_sae_run(path)


RUN_KINDS = [RunKind(_is_sae_run, _analyze_sae, _plot_sae)]
