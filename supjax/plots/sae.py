"""The figures of an SAE sweep (:mod:`supjax.sae`): one function per figure, the SAE tables in, a Figure out.

Every function takes ``summary`` (``sae_summary.csv``: one row per SAE, joined to its toy model) and,
where it needs them, ``features`` (``sae_features.npz``: per-feature recovery and the toy models' p
and ||W_i||), as :func:`supjax.sae.load_tables` returns them.

* :func:`plot_sae_phase_diagram`: recovery (MCC) over (weight decay gamma, width m) at a fixed L0;
* :func:`plot_feature_recovery`: each feature's best cosine against its rank, for a strong and a
  weak toy model, with the feature's frequency p_i and row norm ||W_i||;
* :func:`plot_l0_fvu_frontier`: SAE L0 against the fraction of variance unexplained, per regime.

:func:`at_fixed_l0` is the one rule for "at fixed L0" (the figures and the experiment share it);
:func:`write_sae_figures` writes all three. This module imports only :mod:`supjax.plots.style`.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from supjax.plots.style import STYLE, save

ARCHITECTURE_COLOURS = {"relu": "tab:blue", "topk": "tab:orange", "batchtopk": "tab:green", "jumprelu": "tab:red"}
SETTINGS = ("dictionary_ratio", "lr", "seed")


def _colour(architecture: str) -> str:
    return ARCHITECTURE_COLOURS.get(architecture, "tab:gray")


def at_fixed_l0(summary: pd.DataFrame, l0: float | None = None, value: str = "mcc") -> pd.DataFrame:
    """One row per (architecture, toy model): the SAEs of the sparsity setting (k or lambda) whose
    mean SAE L0 lies nearest ``l0`` (in log ratio; default: the median true L0 of the table, at
    least 1), with ``value`` and ``sae_l0`` averaged over their other settings (dictionary ratio,
    lr, seed). Columns: architecture, model, sparsity, sae_l0, ``value``, and the toy model's m,
    weight_decay, alpha, regime, true_l0."""
    target = max(1.0, float(np.median(summary["true_l0"]))) if l0 is None else float(l0)
    keys = ["architecture", "model", "sparsity"]
    toy = [c for c in ("m", "weight_decay", "alpha", "distribution", "regime", "true_l0") if c in summary]
    toy += [c for c in (f"{value}_chance",) if c in summary]
    means = summary.groupby(keys, sort=False).agg({"sae_l0": "mean", value: "mean", **{c: "first" for c in toy}})
    means = means.reset_index()
    distance = np.abs(np.log(np.maximum(means["sae_l0"], 1e-3) / target))
    nearest = means.assign(distance=distance).sort_values("distance").groupby(["architecture", "model"]).head(1)
    order = {a: k for k, a in enumerate(dict.fromkeys(summary["architecture"]))}  # as the table lists them
    nearest = nearest.assign(order=nearest["architecture"].map(order)).sort_values(["order", "model"])
    return nearest.drop(columns=["distance", "order"]).reset_index(drop=True)


def plot_sae_phase_diagram(summary: pd.DataFrame, l0: float | None = None, value: str = "mcc"):
    """``value`` (default MCC) of the SAEs at fixed L0 (:func:`at_fixed_l0`) over weight decay gamma
    (x) and width m (y): one panel per architecture (columns) and data exponent alpha (rows); each
    cell a toy model (the mean over seeds of the toy grid), with ``value``'s chance level in brackets
    where the table has it (``mcc_chance``: random decoder directions)."""
    table = at_fixed_l0(summary, l0, value)
    architectures = list(dict.fromkeys(table["architecture"]))
    alphas = sorted(table["alpha"].dropna().unique()) or [np.nan]
    fig = Figure(layout="constrained", figsize=(3.2 * len(architectures), 2.8 * len(alphas)))
    axes = fig.subplots(len(alphas), len(architectures), squeeze=False)
    image = None
    for row, alpha in enumerate(alphas):
        for col, architecture in enumerate(architectures):
            ax = axes[row, col]
            part = table[(table.architecture == architecture) & (np.isnan(alpha) | (table.alpha == alpha))]
            grid = part.pivot_table(index="m", columns="weight_decay", values=value, aggfunc="mean")
            image = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis")
            ax.set_xticks(range(grid.shape[1]), [f"{g:.2g}" for g in grid.columns])
            ax.set_yticks(range(grid.shape[0]), [str(int(m)) for m in grid.index])
            chance = None
            if f"{value}_chance" in part:
                chance = part.pivot_table(index="m", columns="weight_decay", values=f"{value}_chance").to_numpy()
            for (i, j), v in np.ndenumerate(grid.to_numpy()):
                text = f"{v:.2f}" if chance is None else f"{v:.2f}\n({chance[i, j]:.2f})"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
            mean_l0 = part["sae_l0"].mean()
            ax.set_title(f"{architecture}, alpha = {alpha:g} (SAE L0 {mean_l0:.1f})", fontsize=9)
            ax.set_xlabel(r"weight decay $\gamma$")
            ax.set_ylabel("width m")
    fig.colorbar(image, ax=axes, shrink=0.8, label=value)
    return fig


def _pick_models(summary: pd.DataFrame) -> tuple[int, int]:
    """A strong (most negative gamma) and a weak (most positive gamma) toy model at the median width
    of the first alpha."""
    toys = summary.drop_duplicates("model")
    if "alpha" in toys and toys["alpha"].notna().any():
        toys = toys[toys.alpha == toys.alpha.dropna().min()]
    widths = sorted(toys["m"].unique())
    toys = toys[toys.m == widths[len(widths) // 2]]
    return int(toys.loc[toys.weight_decay.idxmin(), "model"]), int(toys.loc[toys.weight_decay.idxmax(), "model"])


def plot_feature_recovery(summary: pd.DataFrame, features: dict, models=None, l0: float | None = None):
    """Each true feature's best |cosine| with any latent against its rank i (features are ranked by
    frequency, p_1 >= p_2 >= ...), one line per architecture (its SAEs at fixed L0, averaged over
    settings), for a strong and a weak toy model (``models = (strong, weak)`` model indices; default:
    the extreme weight decays at the median width). Grey: the row norm ||W_i||; the top axis is p_i.
    Past 100 features each line is drawn faint, with its means over log-spaced bins of ranks on top."""
    strong, weak = _pick_models(summary) if models is None else models
    chosen = at_fixed_l0(summary, l0)
    order = {int(m): k for k, m in enumerate(features["models"])}
    fig = Figure(layout="constrained", figsize=(10, 3.8))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, model, label in ((axes[0], strong, "strong"), (axes[1], weak, "weak")):
        n = features["best_cosine"].shape[1]
        rank = np.arange(1, n + 1)
        for architecture, row in chosen[chosen.model == model].set_index("architecture").iterrows():
            rows = (summary.model == model) & (summary.architecture == architecture)
            rows &= summary.sparsity == row["sparsity"]
            best = features["best_cosine"][np.isin(features["sae"], summary.loc[rows, "sae"])].mean(axis=0)
            line = f"{architecture} (L0 {row['sae_l0']:.1f})"
            _ranked(ax, rank, best, dict(color=_colour(architecture), lw=1.2, label=line))
        norms = ax.twinx()
        _ranked(norms, rank, features["row_norm"][order[model]], dict(color="0.5", lw=0.8, ls="--"))
        norms.set_ylabel(r"$\|W_i\|$ (dashed)", color="0.4")
        norms.set_ylim(0, None)
        toy = summary[summary.model == model].iloc[0]
        ax.set_xscale("log")
        ax.set_xlabel("feature rank i (by frequency)")
        ax.set_title(f"{label}: m = {toy['m']}, gamma = {toy['weight_decay']:.2g}, model {model}", fontsize=9)
        p = features["p"][order[model]]
        ticks = [i for i in (1, 10, 100, 1000, 10000) if i <= n]
        top = ax.secondary_xaxis("top")
        top.set_xticks(ticks, [f"{p[i - 1]:.2g}" for i in ticks], fontsize=7)
        top.set_xlabel(r"frequency $p_i$ at that rank", fontsize=8)
    axes[0].set_ylabel("best |cosine| with a latent")
    axes[0].set_ylim(0, 1.02)
    axes[0].legend(loc="lower left")
    return fig


def _ranked(ax, rank: np.ndarray, values: np.ndarray, style: dict, bins: int = 40) -> None:
    """``values`` against ``rank``; past 100 features, faint, with their means over log-spaced bins of
    ranks drawn in ``style`` on top (at n = 1000 the feature-by-feature line is mostly noise)."""
    if len(rank) <= 100:
        ax.plot(rank, values, **style)
        return
    ax.plot(rank, values, **{**style, "lw": 0.5, "alpha": 0.25, "label": None})
    edges = np.unique(np.geomspace(1, len(rank) + 1, bins + 1).astype(int))
    bins = list(itertools.pairwise(edges))  # ranks a .. b - 1
    centres, means = [np.sqrt(a * (b - 1)) for a, b in bins], [values[a - 1 : b - 1].mean() for a, b in bins]
    ax.plot(centres, means, **{**style, "lw": style.get("lw", 1.0) + 0.6})


def plot_l0_fvu_frontier(summary: pd.DataFrame):
    """SAE L0 (x) against the fraction of variance unexplained (y), one panel per regime: a point
    per SAE, and per architecture a line through the means over toy models at each sparsity
    setting; the dotted line is the regime's mean true L0."""
    regimes = [r for r in ("strong", "weak") if (summary.get("regime") == r).any()] or [""]
    fig = Figure(layout="constrained", figsize=(5 * len(regimes), 3.8))
    axes = fig.subplots(1, len(regimes), sharey=True, squeeze=False)
    for ax, regime in zip(axes[0], regimes, strict=True):
        part = summary if regime == "" else summary[summary.regime == regime]
        for architecture, rows in part.groupby("architecture", sort=False):
            colour = _colour(architecture)
            ax.scatter(rows["sae_l0"], rows["fvu"], s=8, color=colour, alpha=0.35, lw=0)
            line = rows.groupby("sparsity")[["sae_l0", "fvu"]].mean().sort_values("sae_l0")
            ax.plot(line["sae_l0"], line["fvu"], "o-", color=colour, ms=4, label=architecture)
        ax.axvline(part["true_l0"].mean(), color="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [t for t in (0.1, 0.3, 1, 3, 10, 30, 100) if part.sae_l0.min() / 2 <= t <= part.sae_l0.max() * 2]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("SAE L0 (active latents per sample)")
        ax.set_title(f"{regime} superposition" if regime else "all toy models", fontsize=9)
    axes[0, 0].set_ylabel("fraction of variance unexplained")
    axes[0, 0].legend()
    return fig


def sae_figures(summary: pd.DataFrame, features: dict) -> dict:
    """Every SAE figure, by file stem."""
    figures = {"sae_phase": plot_sae_phase_diagram(summary), "sae_frontier": plot_l0_fvu_frontier(summary)}
    if (summary["weight_decay"] < 0).any() and (summary["weight_decay"] > 0).any():
        figures["sae_feature_recovery"] = plot_feature_recovery(summary, features)
    return figures


def write_sae_figures(summary: pd.DataFrame, features: dict, folder: str | Path, suffix: str = "") -> list[Path]:
    """Write :func:`sae_figures` into ``folder`` as ``STEM{suffix}.png`` and ``.pdf``."""
    written = []
    with matplotlib.rc_context(STYLE):
        for stem, fig in sae_figures(summary, features).items():
            written += save(fig, Path(folder) / f"{stem}{suffix}")
    return written


__all__ = [
    "ARCHITECTURE_COLOURS",
    "at_fixed_l0",
    "plot_feature_recovery",
    "plot_l0_fvu_frontier",
    "plot_sae_phase_diagram",
    "sae_figures",
    "write_sae_figures",
]
