"""The figures of an LLC run (:mod:`supjax.llc`): one function per figure, the LLC tables in, a Figure out.

* :func:`plot_llc_phase_diagram`: lambda_hat over (weight decay gamma, width m) at the final weights, one
  panel per setting;
* :func:`plot_llc_against_width`: lambda_hat against m, log-log, per regime (gamma < 0 strong, gamma > 0
  weak), with the chains' spread, the fitted power law and d/2 of a regular model for scale;
* :func:`plot_llc_along_training`: lambda_hat at every snapshot step, beside the toy model's loss;
* :func:`plot_chain_traces`: the loss traces n beta (L(w_t) - L(w*)) of the chains, for diagnosis.

``summary`` is ``llc_summary.csv`` (one row per w* and setting), ``table`` is ``llc.csv`` (one row per
chain) and ``traces`` is ``traces.npz``. This module imports only :mod:`supjax.plots.style`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from supjax.plots.style import STYLE, gamma_colours, save, width_axis

SETTING = ["nbeta", "localization", "step_size"]


def _setting_label(row) -> str:
    return f"n beta {row.nbeta:.3g}, gamma_loc {row.localization:.3g}, eps {row.step_size:.2g}"


def plot_llc_phase_diagram(summary: pd.DataFrame) -> Figure:
    """lambda_hat (the chains' mean) over (gamma, m) at the final weights, one panel per setting."""
    final = summary[summary.final]
    settings = final[SETTING].drop_duplicates().reset_index(drop=True)
    fig = Figure(figsize=(4.2 * len(settings), 3.4), layout="constrained")
    axes = fig.subplots(1, len(settings), squeeze=False)[0]
    for ax, (_, setting) in zip(axes, settings.iterrows(), strict=True):
        rows = final[(final[SETTING] == setting.to_numpy()).all(axis=1)]
        grid = rows.pivot_table(index="m", columns="weight_decay", values="llc_mean", aggfunc="mean")
        image = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(grid.shape[1]), [f"{g:.2g}" for g in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [str(m) for m in grid.index])
        ax.set(xlabel="weight decay gamma", ylabel="width m", title=_setting_label(setting))
        fig.colorbar(image, ax=ax, label="lambda_hat")
    return fig


def plot_llc_against_width(summary: pd.DataFrame) -> Figure:
    """lambda_hat against m per regime, log-log, with the chains' spread, the fit and d/2 for scale."""
    final = summary[summary.final & (summary.llc_mean > 0)]
    fig = Figure(figsize=(8.4, 3.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    colours = gamma_colours(final.weight_decay) if len(final) else gamma_colours([0.0])
    regimes = (
        ("strong (gamma < 0)", final[final.weight_decay < 0]),
        ("weak (gamma > 0)", final[final.weight_decay > 0]),
    )
    for ax, (regime, rows) in zip(axes, regimes, strict=True):
        for gamma, curve in rows.groupby("weight_decay"):
            curve = curve.groupby("m", as_index=False)[["llc_mean", "llc_std", "parameters"]].mean()
            ax.errorbar(curve.m, curve.llc_mean, yerr=curve.llc_std, marker="o", capsize=2,
                        color=colours.to_rgba(gamma), label=f"gamma = {gamma:.2g}")  # fmt: skip
        if rows.m.nunique() >= 2:
            means = rows.groupby("m").llc_mean.mean()
            slope, offset = np.polyfit(np.log(means.index), np.log(means.to_numpy()), 1)
            ax.plot(means.index, np.exp(offset) * means.index.to_numpy() ** slope, "k--", lw=1,
                    label=f"lambda ~ m^{slope:.2f}")  # fmt: skip
            half = rows.groupby("m").parameters.first() / 2
            ax.plot(half.index, half.to_numpy(), ":", color="gray", lw=1, label="d / 2 (regular)")
        ax.set(yscale="log" if len(rows) else "linear", xlabel="width m", title=regime)  # no positive estimate: empty
        if len(rows):
            width_axis(ax, rows.m)
            ax.legend(fontsize=7)
    axes[0].set_ylabel("lambda_hat")
    return fig


def plot_llc_along_training(summary: pd.DataFrame, trajectory: pd.DataFrame | None = None) -> Figure:
    """lambda_hat at every step of every model estimated at several (one line each, the chains'
    spread as bars), and beside it, where the toy run's ``trajectory`` is given (its
    ``trajectory.csv``: index, step and the summary's metrics at every snapshot), the model's loss
    and its geometry at the same steps: the mean squared overlap of its represented rows and the
    share of features it represents."""
    along = summary[summary.groupby("model").step.transform("nunique") > 1]
    panels = 3 if trajectory is not None else 1
    fig = Figure(figsize=(3.6 * panels + 1.2, 3.4), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    colours = gamma_colours(along.weight_decay) if len(along) else gamma_colours([0.0])
    drawn = set()
    for (model, *_), rows in along.groupby(["model", *SETTING]):  # a model at one SGLD setting
        rows = rows.sort_values("step")
        gamma = rows.weight_decay.iloc[0]
        label = f"model {model} (m = {rows.m.iloc[0]}, gamma = {gamma:.2g})"
        axes[0].errorbar(rows.step, rows.llc_mean, yerr=rows.llc_std, marker="o", ms=3, color=colours.to_rgba(gamma),
                         label=label)  # fmt: skip
        if trajectory is not None and model not in drawn:  # once per model, whatever its SGLD settings
            drawn.add(model)
            curve = trajectory[trajectory["index"] == model].sort_values("step")
            axes[1].plot(curve.step, curve.final_loss, marker=".", color=colours.to_rgba(gamma))
            axes[2].plot(curve.step, curve.mean_squared_overlap, marker=".", color=colours.to_rgba(gamma))
            axes[2].plot(curve.step, curve.represented_fraction, ls=":", color=colours.to_rgba(gamma))
    axes[0].set(xscale="log", xlabel="training step", ylabel="lambda_hat", title="LLC along training")
    if trajectory is not None:
        positive = bool(len(along)) and (trajectory.final_loss > 0).any()
        axes[1].set(xscale="log", yscale="log" if positive else "linear", xlabel="training step", ylabel="loss",
                    title="the toy model's loss")  # fmt: skip
        axes[2].set(xscale="log", xlabel="training step", ylabel="overlap (solid), represented (dotted)",
                    title="the toy model's geometry")  # fmt: skip
    if len(along):
        axes[0].legend(fontsize=6)
    return fig


def plot_chain_traces(table: pd.DataFrame, traces: dict, limit: int = 8) -> Figure:
    """n beta (L(w_t) - L(w*)) along each chain of the first ``limit`` w* x settings: flat once the chain
    has settled; its mean is the chain's lambda_hat."""
    keys = ["model", "step", *SETTING]
    firsts = table.drop_duplicates(keys).head(limit)
    fig = Figure(figsize=(8.4, 1.8 * len(firsts) + 0.6), layout="constrained")
    axes = fig.subplots(len(firsts), 1, squeeze=False)[:, 0]
    for ax, (_, first) in zip(axes, firsts.iterrows(), strict=True):
        chains = table[(table[keys] == first[keys].to_numpy()).all(axis=1)]
        for _, chain in chains.iterrows():
            k = int(chain.chain_index)
            ax.plot(chain.nbeta * (traces["losses"][k] - traces["reference"][k]), lw=0.6)
            ax.axhline(chain.llc, lw=0.5, ls="--", color="gray")
        ax.set_ylabel("n beta (L - L*)", fontsize=7)
        ax.set_title(f"model {first.model} (m = {first.m}), {_setting_label(first)}", fontsize=8)
    axes[-1].set_xlabel("draw (logged window)")
    return fig


def llc_figures(
    summary: pd.DataFrame, table: pd.DataFrame, traces: dict, trajectory: pd.DataFrame | None = None
) -> dict[str, Figure]:
    """Every figure that the tables support, by file stem (``trajectory``: the toy run's metrics at its
    snapshots, for the geometry beside lambda_hat along training)."""
    figures = {"llc_traces": plot_chain_traces(table, traces)}
    if summary.final.any():
        figures["llc_phase"] = plot_llc_phase_diagram(summary)
        figures["llc_vs_width"] = plot_llc_against_width(summary)
    if (summary.groupby("model").step.nunique() > 1).any():
        figures["llc_along_training"] = plot_llc_along_training(summary, trajectory)
    return figures


def write_llc_figures(
    summary: pd.DataFrame, table: pd.DataFrame, traces: dict, folder: str | Path, trajectory=None
) -> list[Path]:
    """Write :func:`llc_figures` into ``folder`` as ``STEM.png`` and ``.pdf``."""
    written = []
    with matplotlib.rc_context(STYLE):
        for stem, fig in llc_figures(summary, table, traces, trajectory).items():
            written += save(fig, Path(folder) / stem)
    return written


__all__ = [
    "llc_figures",
    "plot_chain_traces",
    "plot_llc_against_width",
    "plot_llc_along_training",
    "plot_llc_phase_diagram",
    "write_llc_figures",
]
