"""From a run directory to the paper's tables: one row per model, one row per width fit.

``summarize(run)`` measures every model (losses, norms, overlaps, ETF-likeness, the
weak-regime loss prediction) batched over the models of each width; ``fit_exponents``
fits loss ~ m^-alpha_m over the widths of every (distribution, density, weight decay)
group, per seed and over all seeds. ``analyze(DIR)`` writes both as CSV;
``load_results(DIR)`` reads them back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from supjax import fit, metrics
from supjax.errors import RunDirError
from supjax.results import Run, load_run

SUMMARY_COLUMNS = (
    "m",
    "weight_decay",
    "alpha",
    "seed",
    "activation_density",
    "distribution",
    "importance",
    "final_loss",
    "represented_fraction",
    "strong_fraction",
    "mean_squared_overlap",
    "welch_bound",
    "etf_variance_ratio",
    "coherence",
    "unlearned_loss",
    "diverged",
    # beyond the paper's columns
    "index",
    "expected_active",
    "mean_abs_overlap",
    "welch_excess",
    "tight_frame_distance",
    "coherence_ratio",
    "strong_mean_squared_overlap",
    "diverged_at",
)
# Beside the summary's columns, for a model with decoder rows (the untied model's W_decoder).
DECODER_COLUMNS = ("decoder_represented_fraction", "decoder_mean_squared_overlap", "encoder_decoder_alignment")
GROUP_KEYS = ("distribution", "alpha", "activation_density", "importance", "weight_decay")


def summarize(run: Run, params: dict | None = None, step: int | None = None) -> pd.DataFrame:
    """One row per model: the columns of :data:`SUMMARY_COLUMNS`, measured on the rows of W
    (the encoder rows of an untied model), and :data:`DECODER_COLUMNS` for a model with
    decoder rows. With ``params`` (a snapshot, laid out as ``run.params``) and its ``step``,
    the same at that point of training: the loss over the 100 steps before it."""
    table = run.table(step)
    low, high = run.spec.target_values
    measured = []
    for group in (run.params if params is None else params).values():
        W = group["W"]
        p = np.stack([run.feature_probabilities(int(i)) for i in group["index"]])
        importance = None  # the loss weights of each model, where some are not uniform
        labels = [run.models[int(i)]["importance"] for i in group["index"]]
        if any(label != "uniform" for label in labels):
            importance = np.stack([run.spec.importance_weights(label) for label in labels])
        overlaps = metrics.overlap_statistics(W)
        etf = metrics.etf_likeness(W)
        decoder = {}
        if "W_decoder" in group:
            decoder = {
                "decoder_represented_fraction": np.asarray(metrics.represented_fraction(group["W_decoder"], 0.5)),
                "decoder_mean_squared_overlap": np.asarray(metrics.mean_squared_overlap(group["W_decoder"])),
                "encoder_decoder_alignment": np.asarray(metrics.row_alignment(W, group["W_decoder"], 0.5)),
            }
        measured.append(
            pd.DataFrame(
                {
                    **decoder,
                    "index": group["index"],
                    "represented_fraction": np.asarray(metrics.represented_fraction(W, 0.5)),
                    "strong_fraction": np.asarray(metrics.represented_fraction(W, 1.0)),
                    "mean_squared_overlap": np.asarray(overlaps.mean_squared_overlap),
                    "mean_abs_overlap": np.asarray(overlaps.mean_abs_overlap),
                    "strong_mean_squared_overlap": np.asarray(metrics.represented_squared_overlap(W, 1.0)),
                    "coherence": np.asarray(overlaps.coherence),
                    "welch_bound": np.asarray(etf["welch_bound"]),
                    "welch_excess": np.asarray(etf["welch_excess"]),
                    "etf_variance_ratio": np.asarray(etf["etf_variance_ratio"]),
                    "tight_frame_distance": np.asarray(etf["tight_frame_distance"]),
                    "coherence_ratio": np.asarray(etf["coherence_ratio"]),
                    "unlearned_loss": np.asarray(metrics.unlearned_loss(W, p, 0.5, high, importance, low)),
                }
            )
        )
    summary = table.merge(pd.concat(measured), on="index").sort_values("index", ignore_index=True)
    return summary[[*SUMMARY_COLUMNS, *(c for c in DECODER_COLUMNS if c in summary)]]


def fit_exponents(summary: pd.DataFrame, n_boot: int = 1000) -> pd.DataFrame:
    """Model exponents alpha_m (loss ~ m^-alpha_m) over widths, per group and seed.

    One row per (distribution, alpha, activation_density, importance, weight_decay) and seed, plus a
    row with ``seed = "all"`` that fits every seed's points together and, with two or
    more seeds, a bootstrap interval over seeds (``ci_low``, ``ci_high``). Diverged
    models are left out. ``regime`` comes from the group's mean phi_{1/2}.
    """
    rows = []
    usable = summary[~summary["diverged"]]
    keys = [k for k in GROUP_KEYS if k in summary]  # a summary written before the importance axis has none
    for key, group in usable.groupby(keys, dropna=False, sort=True):
        base = dict(zip(keys, key, strict=True))
        phi = float(group["represented_fraction"].mean())
        regime = str(fit.regime_label(phi))
        seeds = sorted(group["seed"].unique())
        for seed in [*seeds, "all"]:
            part = group if seed == "all" else group[group["seed"] == seed]
            result = fit.power_law_fit(part["m"].to_numpy(), part["final_loss"].to_numpy())
            row = {
                **base,
                "seed": seed,
                "model_exponent": result.exponent,
                "stderr": result.stderr,
                "r2": result.r2,
                "n_points": result.n_points,
                "regime": regime,
                "represented_fraction": phi,
                "ci_low": np.nan,
                "ci_high": np.nan,
            }
            if seed == "all" and len(seeds) > 1:
                interval = fit.bootstrap_exponent(part["m"], part["final_loss"], part["seed"], n_boot=n_boot)
                row["ci_low"], row["ci_high"] = interval.low, interval.high
            rows.append(row)
    return pd.DataFrame(rows)


def analyze(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write ``summary.csv`` and ``exponents.csv`` into the run directory ``path``."""
    path = Path(path)
    summary = summarize(load_run(path))
    exponents = fit_exponents(summary)
    summary.to_csv(path / "summary.csv", index=False)
    exponents.to_csv(path / "exponents.csv", index=False)
    return summary, exponents


def trajectory(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every metric of :func:`summarize` at every snapshot of the run in ``path``, and the
    model exponents fitted at every snapshot: ``(trajectory, exponents_over_time)``, each
    with a ``step`` column, written as ``trajectory.csv`` and ``exponents_over_time.csv``.

    Each snapshot is measured batched over the models of each width, as the final weights
    are; the last snapshot, at the last step, equals ``summary.csv``.
    """
    from supjax import snapshots

    path = Path(path)
    run = load_run(path)
    steps = snapshots.snapshot_steps(path)
    if not steps:
        raise RunDirError(path, "has no snapshots; train it with snapshot_steps = K (or a list of steps)")
    tables, fits = [], []
    for step in steps:
        table = summarize(run, snapshots.load_snapshot(path, step), step)
        tables.append(table.assign(step=step))
        fits.append(fit_exponents(table, n_boot=200).assign(step=step))
    over_time, exponents = pd.concat(tables, ignore_index=True), pd.concat(fits, ignore_index=True)
    over_time.to_csv(path / "trajectory.csv", index=False)
    exponents.to_csv(path / "exponents_over_time.csv", index=False)
    return over_time, exponents


def load_results(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(summary, exponents)`` of an analysed run directory as pandas DataFrames."""
    path = Path(path)
    if not (path / "summary.csv").is_file():
        raise RunDirError(path, "has no summary.csv; run `supjax analyze DIR` first")
    summary = pd.read_csv(path / "summary.csv")
    exponents = pd.read_csv(path / "exponents.csv", dtype={"seed": str})
    return summary, exponents


def compare(reference: str | Path, other: str | Path) -> dict:
    """Whether the analysed run ``other`` agrees with ``reference`` within seed noise: the
    check a cheaper setting (TF32 products, a new code version) must pass.

    Models are matched on their grid coordinates. A model's final loss is within noise when
    it differs from the reference's by at most the reference's seed-to-seed standard deviation
    in that cell (so ``reference`` needs two or more seeds), or when it diverged in both runs;
    a model that diverged in one run only is not. An exponent fitted over all seeds is within
    its standard error when it differs by at most the two fits' combined standard error.
    ``within_noise``: nine models in ten within noise, and every exponent within two
    combined standard errors (a changed rounding can still send the odd model to another
    minimum, as a changed seed does; and one standard error holds for two fits in three).
    """
    (ref, ref_fits), (new, new_fits) = load_results(reference), load_results(other)
    cell = [*GROUP_KEYS, "m"]
    joined = ref.merge(new, on=[*cell, "seed"], suffixes=("_ref", ""), validate="one_to_one")
    if len(joined) != len(ref) or len(joined) != len(new):
        raise RunDirError(other, f"holds other models than {reference}; compare runs of one grid")
    if ref.seed.nunique() < 2:
        raise RunDirError(reference, "has one seed; the seed-to-seed spread needs two or more")
    spread = ref[~ref.diverged].groupby(cell, dropna=False).final_loss.std().rename("seed_std").reset_index()
    joined = joined.merge(spread, on=cell, how="left")
    both_diverged = joined.diverged & joined.diverged_ref
    one_diverged = joined.diverged ^ joined.diverged_ref
    loss_change = (joined.final_loss - joined.final_loss_ref).abs()
    within = both_diverged | (~one_diverged & (loss_change <= joined.seed_std))
    trained = ~(joined.diverged | joined.diverged_ref)
    pooled = [f[f.seed.astype(str) == "all"] for f in (ref_fits, new_fits)]
    fits = pooled[0].merge(pooled[1], on=list(GROUP_KEYS), suffixes=("_ref", ""), validate="one_to_one")
    z = (fits.model_exponent - fits.model_exponent_ref).abs() / np.hypot(fits.stderr, fits.stderr_ref)
    return {
        "models": len(joined),
        "diverged_in_one_run": int(one_diverged.sum()),
        "max_relative_loss_change": float((loss_change / joined.final_loss_ref)[trained].max()),
        "median_loss_change_over_seed_std": float((loss_change / joined.seed_std)[trained].median()),
        "losses_within_seed_std": float(within.mean()),
        "fits": len(fits),
        "max_exponent_change": float((fits.model_exponent - fits.model_exponent_ref).abs().max()),
        "max_exponent_change_in_stderr": float(z.max()),
        "exponents_within_stderr": float((z <= 1).mean()),
        "within_noise": bool(within.mean() >= 0.9 and (z <= 2).all()),
    }
