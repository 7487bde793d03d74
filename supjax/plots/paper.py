"""The paper's figures from an analysed run, one function per figure.

Each ``plot_*`` takes the ``summary`` / ``exponents`` tables of :mod:`supjax.analysis`
(and the run for row norms), draws on a new figure and returns it, or None where the
figure needs an axis the grid lacks (a phase diagram needs two or more weight decays and
data exponents). :func:`phase_table` and :func:`phase_panel` are the phase diagram's two
halves, which the experiment scripts compose into their own panels.
:func:`supjax.plots.plot_run` writes them all for a run directory.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from supjax import metrics
from supjax.plots.style import GAMMA_CMAP, gamma_colours, width_axis
from supjax.results import Run

MAX_PANELS = 6


def _panels(summary: pd.DataFrame) -> list[tuple[str, float]]:
    """(distribution, activation density) pairs, at most MAX_PANELS, evenly spread."""
    pairs = summary[["distribution", "activation_density"]].drop_duplicates().itertuples(index=False)
    pairs = sorted(pairs, key=lambda p: (p[0].split(":")[0], _parameter(p[0]), p[1]))
    if len(pairs) > MAX_PANELS:
        pairs = [pairs[i] for i in np.linspace(0, len(pairs) - 1, MAX_PANELS).round().astype(int)]
    return pairs


def _parameter(label: str) -> float:
    _, _, arg = label.partition(":")
    try:
        return float(arg)
    except ValueError:
        return 0.0


def _panel_title(distribution: str, density: float) -> str:
    family, _, arg = distribution.partition(":")
    text = {"power": rf"$p_i \propto i^{{-{arg}}}$", "exponential": rf"$p_i \propto e^{{-i/{arg}}}$"}.get(
        family, distribution
    )
    return text + (f", s = {density:g}" if density else "")


def _subplots(count: int, width: float = 3.4, height: float = 3.0):
    columns = min(count, 3)
    rows = -(-count // columns)
    fig = Figure(layout="constrained", figsize=(width * columns, height * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def plot_loss_vs_width(summary: pd.DataFrame, exponents: pd.DataFrame):
    """Final loss against width m (log-log), one colour per weight decay, fitted power laws."""
    panels = _panels(summary)
    fig, axes = _subplots(len(panels))
    colours = gamma_colours(summary["weight_decay"])
    for ax, (distribution, density) in zip(axes, panels, strict=True):
        part = summary[(summary.distribution == distribution) & (summary.activation_density == density)]
        for gamma, rows in part.groupby("weight_decay"):
            mean = rows.groupby("m")["final_loss"].mean()
            colour = colours.to_rgba(gamma)
            ax.plot(mean.index, mean.values, "o", color=colour, ms=4)
            fitted = exponents[
                (exponents.distribution == distribution)
                & (exponents.activation_density == density)
                & (exponents.weight_decay == gamma)
                & (exponents.seed.astype(str) == "all")
            ]
            if len(fitted) and np.isfinite(fitted.model_exponent.iloc[0]) and len(mean) > 1:
                slope = -fitted.model_exponent.iloc[0]
                m = np.geomspace(mean.index.min(), mean.index.max(), 20)
                ref = np.exp(np.mean(np.log(mean.values) - slope * np.log(mean.index.values)))
                ax.plot(m, ref * m**slope, "-", color=colour, lw=1)
        width_axis(ax, part["m"])
        ax.set(yscale="log", xlabel="width $m$", ylabel="loss $L$", title=_panel_title(distribution, density))
    fig.colorbar(colours, ax=axes, label=r"weight decay $\gamma$", shrink=0.9)
    return fig


def plot_represented_fraction(summary: pd.DataFrame):
    """phi_{1/2} against weight decay, one line per width (the paper's Fig. 3a)."""
    panels = _panels(summary)
    fig, axes = _subplots(len(panels))
    widths = sorted(summary["m"].unique())
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(widths)))
    for ax, (distribution, density) in zip(axes, panels, strict=True):
        part = summary[(summary.distribution == distribution) & (summary.activation_density == density)]
        for colour, m in zip(colours, widths, strict=True):
            line = part[part.m == m].groupby("weight_decay")["represented_fraction"].mean()
            ax.plot(line.index, line.values, "o-", color=colour, ms=3, label=f"m = {m}")
        ax.set(xlabel=r"weight decay $\gamma$", ylabel=r"$\phi_{1/2}$", ylim=(-0.03, 1.03))
        ax.set_title(_panel_title(distribution, density))
    axes[0].legend()
    return fig


def phase_table(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """Mean ``value`` per (alpha, weight decay): rows alpha (sorted), columns weight decay."""
    return frame.groupby(["alpha", "weight_decay"])[value].mean().unstack("weight_decay").sort_index()


def _phase_table(frame: pd.DataFrame, value: str) -> pd.DataFrame | None:
    power = frame[frame.distribution.str.startswith("power") & (frame.activation_density == 0)]
    table = phase_table(power, value)
    return table if table.shape[0] > 1 and table.shape[1] > 1 else None


def cell_edges(centres: np.ndarray) -> np.ndarray:
    """Edges of cells centred on ``centres: [k]`` (midpoints inside, mirrored at the ends): ``[k + 1]``."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    middle = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]])


def phase_panel(fig, ax, table: pd.DataFrame, label: str, cmap: str, vmin=None, vmax=None, annotate: bool = True):
    """A phase diagram of ``table`` (:func:`phase_table`) on ``ax``: one cell per (gamma, alpha).

    Weight decays get equal-width columns (the paper's gammas are not evenly spaced), a dotted
    line separates gamma < 0 from gamma > 0, and with ``annotate`` each cell shows its value.
    """
    gammas, alphas = table.columns.to_numpy(float), table.index.to_numpy(float)
    values = table.to_numpy(float)
    x = np.arange(len(gammas))
    mesh = ax.pcolormesh(cell_edges(x.astype(float)), cell_edges(alphas), values, cmap=cmap, vmin=vmin, vmax=vmax)
    fig.colorbar(mesh, ax=ax, label=label)
    if annotate and values.size <= 200:
        low, high = mesh.norm.vmin, mesh.norm.vmax
        for i, a in enumerate(alphas):
            for j in x:
                v = values[i, j]
                if np.isfinite(v):
                    dark = (v - low) / max(high - low, 1e-12) < 0.55
                    ax.text(j, a, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w" if dark else "k")
    ax.set_xticks(x, [f"{g:.2f}" for g in gammas], rotation=45 if len(gammas) > 6 else 0)
    ax.axvline(np.sum(gammas < 0) - 0.5, color="k", lw=1, ls=":")
    ax.set(xlabel=r"weight decay $\gamma$", ylabel=r"data exponent $\alpha$")


def _phase_diagram(table: pd.DataFrame, label: str, title: str, cmap: str, vmin=None, vmax=None):
    fig = Figure(layout="constrained", figsize=(4.6, 3.6))
    ax = fig.subplots()
    phase_panel(fig, ax, table, label, cmap, vmin, vmax)
    ax.set_title(title)
    return fig


def plot_phase_represented(summary: pd.DataFrame):
    """phi_{1/2} over (gamma, alpha) at the largest width (the paper's Fig. 3b); None if the grid is 1-D."""
    m = summary["m"].max()
    table = _phase_table(summary[summary.m == m], "represented_fraction")
    if table is None:
        return None
    return _phase_diagram(table, r"$\phi_{1/2}$", f"represented fraction, m = {m}", "viridis", 0, 1)


def plot_phase_exponent(exponents: pd.DataFrame):
    """Model exponent alpha_m over (gamma, alpha) (the paper's Fig. 4b); None if the grid is 1-D."""
    table = _phase_table(exponents[exponents.seed.astype(str) == "all"], "model_exponent")
    if table is None:
        return None
    return _phase_diagram(table, r"model exponent $\alpha_m$", r"$L \propto m^{-\alpha_m}$", "magma")


def plot_overlap_vs_width(summary: pd.DataFrame, n: int):
    """Mean squared overlap against m for gamma < 0 (strong regime), with 1/m and the Welch bound for n features."""
    strong = summary[summary.weight_decay < 0]
    if strong.empty:
        strong = summary
    fig = Figure(layout="constrained", figsize=(4.2, 3.4))
    ax = fig.subplots()
    colours = gamma_colours(summary["weight_decay"])
    for gamma, rows in strong.groupby("weight_decay"):
        mean = rows.groupby("m")["mean_squared_overlap"].mean()
        ax.plot(mean.index, mean.values, "o", color=colours.to_rgba(gamma), ms=4, label=rf"$\gamma$ = {gamma:.2g}")
    m = np.geomspace(strong.m.min(), strong.m.max(), 50)
    ax.plot(m, 1 / m, "k--", lw=1, label="$1/m$")
    ax.plot(m, metrics.welch_bound(n, m), "k:", lw=1, label="Welch bound")
    width_axis(ax, strong["m"])
    ax.set(yscale="log", xlabel="width $m$", ylabel=r"$\langle (w_i \cdot w_j)^2 \rangle$")
    ax.set_title("squared overlaps of normalised rows")
    ax.legend()
    return fig


def plot_row_norms(run: Run):
    """Histograms of ||W_i|| at the largest width, for the most negative and most positive gamma."""
    m = max(run.params)
    rows = [r for r in run.models if r["m"] == m]
    gammas = sorted({r["weight_decay"] for r in rows})
    picks = [gammas[0], gammas[-1]] if len(gammas) > 1 else gammas
    fig = Figure(layout="constrained", figsize=(4.2, 3.2))
    ax = fig.subplots()
    colours = gamma_colours(gammas)
    for gamma in picks:
        row = next(r for r in rows if r["weight_decay"] == gamma)
        W, _ = run.weights(row["index"])
        norms = np.linalg.norm(W, axis=1)
        ax.hist(norms, bins=40, color=colours.to_rgba(gamma), alpha=0.7, label=rf"$\gamma$ = {gamma:.2g}")
    ax.axvline(0.5, color="k", ls=":", lw=1)
    ax.set(xlabel=r"row norm $\|W_i\|$", ylabel="features", title=f"m = {m}, {rows[0]['distribution']}")
    ax.legend()
    return fig


def plot_loss_vs_unlearned(summary: pd.DataFrame):
    """Final loss against the loss of unrepresented features (the paper's Fig. 5a)."""
    fig = Figure(layout="constrained", figsize=(4.2, 3.6))
    ax = fig.subplots()
    colours = gamma_colours(summary["weight_decay"])
    usable = summary[(summary.unlearned_loss > 0) & np.isfinite(summary.final_loss)]
    ax.scatter(
        usable.unlearned_loss, usable.final_loss, c=usable.weight_decay, cmap=GAMMA_CMAP, norm=colours.norm, s=12
    )
    if len(usable):
        low = min(usable.unlearned_loss.min(), usable.final_loss.min())
        high = max(usable.unlearned_loss.max(), usable.final_loss.max())
        ax.plot([low, high], [low, high], "k--", lw=1, label="$L = L_{unlearned}$")
        ax.legend()
    ax.set(xscale="log", yscale="log", xlabel=r"$\sum_{\|W_i\| \leq 1/2} \mathrm{Var}(x_i)$", ylabel="loss $L$")
    fig.colorbar(colours, ax=ax, label=r"weight decay $\gamma$")
    return fig
