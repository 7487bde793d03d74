"""The local learning coefficient across the superposition phase diagram: how does a toy model's
effective dimension scale with its width, in strong and in weak superposition?

    python experiments/llc_phase.py --scale quick [--out runs/llc_phase-quick] [--figures figures]

Reads ``experiments/llc_phase_<scale>.toml``: a ``[toy]`` table (a SweepSpec over widths and weight
decays of both signs) and an ``[llc]`` table (an LlcSpec: a small calibration grid of SGLD step
sizes, devinterp's other defaults). Trains the toy grid into ``<out>/toy`` and estimates lambda_hat
at every model's final weights into ``<out>/llc`` (each reused when it holds the same grid, resumed
when interrupted), then draws

* ``figures/llc_phase_<scale>``: lambda_hat over (gamma, m), one panel per setting;
* ``figures/llc_width_<scale>``: lambda_hat against m per regime, log-log, with the fit and d / 2;

and writes ``<out>/numbers.json`` (REPRODUCTION.md quotes it): per regime, the exponent of
lambda_hat ~ m^s over the widths, lambda_hat as a share of d / 2 (a regular model's value), and how
lambda_hat follows the geometry (the share of features the model represents).
"""

from __future__ import annotations

import time

import common  # first: puts the working tree's supjax on the path
import numpy as np
import pandas as pd
import scipy.stats

from supjax import ConfigError, SweepSpec, llc, plots
from supjax.engine.spec import resume_diff

NAME = "llc_phase"
FIGURES = {  # supjax.plots.llc_figures' key: (file stem, title)
    "llc_phase": ("llc_phase", "lambda_hat over weight decay and width"),
    "llc_vs_width": ("llc_width", "lambda_hat against width per regime (the fit; d / 2 for scale)"),
}


def main(argv=None) -> dict:
    started = time.perf_counter()
    args = common.parse_args(NAME, __doc__.splitlines()[0], argv)
    toy_spec, llc_spec = load_specs(args.scale, args.set, quiet=args.quiet)
    toy = common.run_or_reuse(f"{NAME}-toy", args.scale, toy_spec, args.out / "toy")
    run = estimate_or_reuse(toy.out, llc_spec, args.out / "llc")
    table, summary = run.table(), run.summary()
    caption = (
        f"{args.scale} scale: toy n = {toy_spec.n}, {len(toy.summary)} models, {toy_spec.steps} steps; "
        f"{llc_spec.chains} chains x {llc_spec.draws} draws, batch {llc_spec.batch_size}; "
        f"{toy.timing.get('machine', common.machine())}"
    )
    import matplotlib

    written = []
    with matplotlib.rc_context(plots.STYLE):
        figures = plots.llc_figures(summary, table, run.traces)
        for key, (stem, title) in FIGURES.items():
            figures[key].suptitle(f"{title}\n({caption})", fontsize=10)
            written += plots.save(figures[key], args.figures / f"{stem}_{args.scale}")
    numbers = answers(summary, toy.summary)
    numbers["setup"] = {
        "toy_models": len(toy.summary),
        "n": toy_spec.n,
        "widths": list(toy_spec.widths),
        "weight_decays": list(toy_spec.weight_decays),
        "alphas": list(toy_spec.alphas),
        "toy_steps": toy_spec.steps,
        "chains": llc_spec.chains,
        "draws": llc_spec.draws,
        "batch_size": llc_spec.batch_size,
        "step_sizes": list(llc_spec.step_sizes),
        "localizations": list(llc_spec.localizations),
        "machine": toy.timing.get("machine", common.machine()),
        "llc_seconds": run.info.get("seconds"),
    }
    what = f"{len(toy.summary)} toy models, {len(table)} chains"
    return common.write_and_report(NAME, args.scale, what, args.out, numbers, written, started)


def load_specs(scale: str, overrides=(), quiet: bool = False) -> tuple[SweepSpec, llc.LlcSpec]:
    """The ``[toy]`` and ``[llc]`` tables of ``llc_phase_<scale>.toml``; ``--set toy.KEY=V`` or ``llc.KEY=V``."""
    return common.load_toy_and_wing(NAME, scale, "llc", llc.LlcSpec, overrides, quiet)


def estimate_or_reuse(toy_run, spec: llc.LlcSpec, out) -> llc.LlcRun:
    """lambda_hat of every toy model into ``out`` (resumed if interrupted), or the finished run there."""
    if (out / "llc_summary.csv").is_file():
        try:
            resume_diff(llc.LlcSpec.from_toml(out / "llc.toml"), spec, out, "llc.toml")
        except ConfigError:
            raise SystemExit(f"{out} holds other chains; pass a new --out or delete it") from None
        return llc.load_llc_run(out)
    return llc.run_llc(toy_run, spec, out=out, resume=(out / "llc.toml").is_file())


# ---- the answers ---------------------------------------------------------------------------------


def answers(summary: pd.DataFrame, toys: pd.DataFrame) -> dict:
    """Per setting that passes its diagnostics at every model, per regime: the width exponent of
    lambda_hat, lambda_hat / (d / 2), and the rank correlation of lambda_hat with the represented share."""
    final = summary[summary.final].merge(
        toys[["index", "represented_fraction", "mean_squared_overlap", "final_loss"]],
        left_on="model",
        right_on="index",
    )
    out = {"settings": []}
    for (nbeta, localization, step_size), rows in final.groupby(["nbeta", "localization", "step_size"]):
        setting = {
            "nbeta": nbeta,
            "localization": localization,
            "step_size": step_size,
            "passes": f"{int(rows.passes.sum())} of {len(rows)}",
            "regimes": {},
        }
        for regime, part in (("strong", rows[rows.weight_decay < 0]), ("weak", rows[rows.weight_decay > 0])):
            if part.m.nunique() < 2:
                continue
            by_width = part.groupby("m")[["llc_mean", "parameters"]].mean()
            positive = by_width[by_width.llc_mean > 0]
            fit = (
                scipy.stats.linregress(np.log(positive.index), np.log(positive.llc_mean)) if len(positive) > 2 else None
            )
            share = part.llc_mean / (part.parameters / 2)
            rho = scipy.stats.spearmanr(part.represented_fraction, part.llc_mean).statistic
            setting["regimes"][regime] = {
                "llc_by_width": {int(m): float(v) for m, v in by_width.llc_mean.items()},
                "width_exponent": None if fit is None else float(fit.slope),
                "width_exponent_se": None if fit is None else float(fit.stderr),
                "share_of_half_d": {"mean": float(share.mean()), "min": float(share.min()), "max": float(share.max())},
                "spearman_llc_vs_represented_fraction": None if np.isnan(rho) else float(rho),
                "represented_fraction": float(part.represented_fraction.mean()),
            }
        out["settings"].append(setting)
    return out


if __name__ == "__main__":
    main()
