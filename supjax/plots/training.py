"""How superposition forms during training: figures from a run's snapshots (``snapshot_steps``).

One function per figure, as in :mod:`supjax.plots.paper` (:mod:`supjax.plots` re-exports them):

* :func:`plot_metrics_over_time`: represented fraction, m x mean squared overlap, ETF
  variance ratio and loss against step, coloured by weight decay (``trajectory.csv``);
* :func:`plot_exponent_over_time`: the fitted model exponent against step
  (``exponents_over_time.csv``);
* :func:`animate_features_2d`: for m = 2, the feature vectors W_i in the plane at every
  snapshot, one panel per weight decay, as a GIF (matplotlib's Pillow writer).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from supjax.plots.style import gamma_colours

METRICS = (
    ("represented_fraction", r"$\phi_{1/2}$ (share of $\|W_i\| > 1/2$)", "linear"),
    ("overlap_times_m", r"$m \times \langle (w_i \cdot w_j)^2 \rangle$", "log"),
    ("etf_variance_ratio", "Var of overlaps$^2$ / random (0: ETF)", "log"),
    ("final_loss", "loss (last 100 steps)", "log"),
)


def plot_metrics_over_time(trajectory: pd.DataFrame) -> Figure:
    """Four panels against step: one line per model, coloured by weight decay, darker for wider m."""
    frame = trajectory.assign(overlap_times_m=trajectory.mean_squared_overlap * trajectory.m)
    fig = Figure(layout="constrained", figsize=(13.0, 3.4))
    axes = fig.subplots(1, len(METRICS))
    colours = gamma_colours(frame.weight_decay)
    widths = sorted(frame.m.unique())
    for _, rows in frame.groupby("index"):
        rows = rows.sort_values("step")
        gamma, m = rows.weight_decay.iloc[0], rows.m.iloc[0]
        alpha = 0.35 + 0.65 * (widths.index(m) + 1) / len(widths)
        for ax, (column, _, _) in zip(axes, METRICS, strict=True):
            ax.plot(rows.step, rows[column], color=colours.to_rgba(gamma), alpha=alpha, lw=1)
    for ax, (column, label, scale) in zip(axes, METRICS, strict=True):
        positive = (frame[column] > 0).any()  # a log axis needs positive values (an ETF's ratio is 0)
        ax.set(xscale="log", yscale=scale if positive else "linear", xlabel="step", ylabel=label)
    axes[1].axhline(1.0, color="k", ls=":", lw=1)  # 1/m: random directions
    fig.colorbar(colours, ax=axes[-1], label=r"weight decay $\gamma$")
    axes[0].set_title(f"m = {', '.join(map(str, widths))} (darker: wider)", loc="left", fontsize=8)
    return fig


def plot_exponent_over_time(exponents: pd.DataFrame) -> Figure | None:
    """alpha_m (loss ~ m^-alpha_m over the widths, all seeds) against step, per weight decay and
    distribution; None when no exponent could be fitted (a run needs two or more widths)."""
    pooled = exponents[(exponents.seed.astype(str) == "all") & np.isfinite(exponents.model_exponent)]
    if pooled.empty:
        return None
    fig = Figure(layout="constrained", figsize=(5.2, 3.6))
    ax = fig.subplots()
    colours = gamma_colours(pooled.weight_decay)
    styles = dict(zip(sorted(pooled.distribution.unique()), ["-", "--", ":", "-."] * 4, strict=False))
    for (distribution, gamma), rows in pooled.groupby(["distribution", "weight_decay"]):
        rows = rows.sort_values("step")
        ax.errorbar(
            rows.step, rows.model_exponent, yerr=rows.stderr, ls=styles[distribution], marker="o", ms=3, lw=1,
            capsize=2, color=colours.to_rgba(gamma), label=f"{distribution}, $\\gamma$ = {gamma:g}",
        )  # fmt: skip
    ax.axhline(1.0, color="k", ls=":", lw=1)
    ax.set(xscale="log", xlabel="step", ylabel=r"model exponent $\alpha_m$")
    if pooled.groupby(["distribution", "weight_decay"]).ngroups <= 8:
        ax.legend(fontsize=7)
    return fig


def animate_features_2d(snapshots: dict[int, np.ndarray], labels: list[str], path: str | Path, fps: int = 4) -> Path:
    """A GIF of 2-D feature vectors over training: ``snapshots = {step: W [panels, n, 2]}``.

    One panel per entry of ``labels`` (e.g. one model per weight decay); each feature is an
    arrow from the origin, coloured by its index (the most frequent first).
    """
    from matplotlib.animation import FuncAnimation, PillowWriter

    steps = sorted(snapshots)
    panels, n, m = snapshots[steps[0]].shape
    if m != 2:
        raise ValueError(f"animate_features_2d draws m = 2 models; these have m = {m}")
    reach = 1.1 * max(np.abs(W).max() for W in snapshots.values())
    fig = Figure(layout="constrained", figsize=(2.8 * panels, 3.0))
    axes = np.atleast_1d(fig.subplots(1, panels))
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, n))
    lines = []
    for ax, label in zip(axes, labels, strict=True):
        ax.set(xlim=(-reach, reach), ylim=(-reach, reach), aspect="equal", xticks=[], yticks=[], title=label)
        ax.axhline(0, color="0.85", lw=0.5)
        ax.axvline(0, color="0.85", lw=0.5)
        lines.append([ax.plot([0, 0], [0, 0], color=c, lw=1.2)[0] for c in colours])
    title = fig.suptitle("")

    def draw(frame: int):
        W = snapshots[steps[frame]]
        for panel, panel_lines in enumerate(lines):
            for i, line in enumerate(panel_lines):
                line.set_data([0, W[panel, i, 0]], [0, W[panel, i, 1]])
        title.set_text(f"step {steps[frame]}")
        return [line for panel_lines in lines for line in panel_lines]

    path = Path(path).with_suffix(".gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    FuncAnimation(fig, draw, frames=len(steps)).save(path, writer=PillowWriter(fps=fps))
    return path


def features_2d_snapshots(path: str | Path, max_panels: int = 4) -> tuple[dict[int, np.ndarray], list[str]] | None:
    """The m = 2 models of a run's snapshots for :func:`animate_features_2d` (one per weight
    decay, the first seed and distribution), or None if the run has no m = 2 snapshots."""
    from supjax import snapshots
    from supjax.results import load_run

    steps = snapshots.snapshot_steps(path)
    run = load_run(path)
    chosen = {}
    for row in run.models:
        if row["m"] == 2 and row["seed"] == run.spec.seeds[0] and row["distribution"] == run.spec.distributions[0]:
            chosen.setdefault(row["weight_decay"], row["index"])
    if not steps or not chosen:
        return None
    picks = sorted(chosen.items())[:max_panels]
    frames = {}
    for step in steps:
        group = snapshots.load_snapshot(path, step)[2]
        where = {int(i): k for k, i in enumerate(group["index"])}
        frames[step] = np.stack([group["W"][where[index]] for _, index in picks])
    return frames, [f"$\\gamma$ = {gamma:g}" for gamma, _ in picks]
