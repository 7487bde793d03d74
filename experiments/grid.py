"""Figs. 3, 4, 5 and 6 of the paper from ONE (gamma, alpha, m) grid (exp-10 + exp-10-3).

    python experiments/grid.py --scale quick [--out runs/grid-quick] [--figures figures]

Trains ``experiments/grid_<scale>.toml`` once (or reuses the run in ``--out``), analyses it and
writes ``figures/fig3_<scale>``, ``fig4_``, ``fig5_`` and ``fig6_`` (PNG and PDF) and the headline
numbers to ``<out>/numbers.json``. Fig. 4 gains a panel of R^2 per feature distribution when the
exp-17 run of the same scale exists (``experiments/fig1.py``; ``--fig1-run`` to point at it).

* Fig. 3: phi_{1/2} against weight decay per width; phi_{1/2} over (gamma, alpha).
* Fig. 4: R^2 of the log-log fits, strong against weak; the model exponent over (gamma, alpha).
* Fig. 5 (weak regime): loss against the loss of unlearned features; alpha_m against alpha.
* Fig. 6 (strong regime): row norms; phi_1 against m; mean squared overlap against m; alpha_m against alpha.
"""

from __future__ import annotations

import time
from pathlib import Path

import common
import matplotlib
import numpy as np
from matplotlib.figure import Figure

from supjax import analysis, metrics, plots

NAME = "grid"


def main(argv=None) -> dict:
    started = time.perf_counter()
    args = common.parse_args(NAME, __doc__.splitlines()[0], argv, extra=_fig1_option)
    exp = common.run_or_reuse(NAME, args.scale, common.load_spec(NAME, args), args.out)
    fig1_run = Path(args.fig1_run or f"runs/fig1-{args.scale}")
    numbers = headline_numbers(exp)
    written = []
    with matplotlib.rc_context(plots.STYLE):
        figures = {
            "fig3": (fig3(exp), "Fig. 3: weight decay controls superposition"),
            "fig4": (fig4(exp, fig1_run), "Fig. 4: when is the loss a power law in m, and with which exponent"),
            "fig5": (fig5(exp), r"Fig. 5: weak superposition ($\gamma > 0$)"),
            "fig6": (fig6(exp), r"Fig. 6: strong superposition ($\gamma < 0$)"),
        }
        for figure, (fig, title) in figures.items():
            written += common.save_figure(fig, exp, figure, args.figures, title)
    common.write_numbers(exp, numbers)
    common.finish(NAME, exp, written, numbers, started)
    return numbers


def _fig1_option(parser) -> None:
    parser.add_argument("--fig1-run", help="the exp-17 run for Fig. 4's R^2 panel (default: runs/fig1-SCALE)")


# ---- selections ---------------------------------------------------------------------------------


def reference_alpha(summary) -> float:
    """alpha = 1 (exp-10's data exponent) or the grid's nearest value."""
    alphas = np.sort(summary["alpha"].unique())
    return float(alphas[np.argmin(np.abs(alphas - 1.0))])


def alpha_colours(alphas):
    norm = matplotlib.colors.Normalize(vmin=min(alphas), vmax=max(alphas))
    return matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis")


# ---- Fig. 3 -------------------------------------------------------------------------------------


def fig3(exp) -> Figure:
    s, n = exp.summary, exp.spec.n
    alpha = reference_alpha(s)
    fig = Figure(layout="constrained", figsize=(9.6, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    widths = sorted(s["m"].unique())
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(widths)))
    part = s[s.alpha == alpha]
    for colour, m in zip(colours, widths, strict=True):
        line = part[part.m == m].groupby("weight_decay")["represented_fraction"].mean()
        ax1.plot(line.index, line.values, "o-", color=colour, ms=3.5, label=f"m = {m}")
        ax1.plot([0.05, 1.05], [m / n, m / n], ls=":", color=colour, lw=1)
    ax1.axvline(0, color="k", lw=0.8, ls=":")
    ax1.set(xlabel=r"weight decay $\gamma$", ylabel=r"$\phi_{1/2}$ (share of $\|W_i\| > 1/2$)", ylim=(-0.03, 1.03))
    ax1.set_title(rf"$\alpha$ = {alpha:g}; dotted: $m/n$", loc="right")
    ax1.legend(loc="center left")
    m = max(widths)
    table = plots.phase_table(s[s.m == m], "represented_fraction")
    plots.phase_panel(fig, ax2, table, r"$\phi_{1/2}$", "viridis", 0, 1)
    ax2.set_title(f"m = {m}, n = {n}", loc="right")
    common.label_panels([ax1, ax2])
    return fig


# ---- Fig. 4 -------------------------------------------------------------------------------------


def fig4(exp, fig1_run: Path) -> Figure:
    e = exp.exponents
    other = None
    if (fig1_run / "summary.csv").is_file():
        _, other = analysis.load_results(fig1_run)
        other = other[other.seed.astype(str) == "all"]
    panels = 3 if other is not None else 2
    fig = Figure(layout="constrained", figsize=(4.4 * panels, 3.8))
    axes = list(fig.subplots(1, panels))
    colours = common.gamma_colours(e["weight_decay"])
    for gamma, rows in e.groupby("weight_decay"):
        rows = rows.sort_values("alpha")
        ax = axes[0]
        ax.plot(rows.alpha, rows.r2, "o-" if gamma < 0 else "s--", color=colours.to_rgba(gamma), ms=3.5, lw=1)
    axes[0].plot([], [], "ko-", ms=3.5, label=r"strong ($\gamma < 0$)")
    axes[0].plot([], [], "ks--", ms=3.5, label=r"weak ($\gamma > 0$)")
    axes[0].legend(loc="lower left")
    fig.colorbar(colours, ax=axes[0], label=r"weight decay $\gamma$")
    axes[0].set(xlabel=r"data exponent $\alpha$", ylabel=r"$R^2$ of $\log L$ vs $\log m$", ylim=(None, 1.02))
    table = plots.phase_table(e, "model_exponent")
    top = max(2.0, np.nanmax(table.to_numpy()))
    plots.phase_panel(fig, axes[1], table, r"model exponent $\alpha_m$", "magma", 0, top)
    axes[1].set_title(r"$L \propto m^{-\alpha_m}$", loc="right")
    if other is not None:
        ax = axes[2]
        labels = sorted(other.distribution.unique())
        x = np.arange(len(labels))
        gammas = sorted(other.weight_decay.unique())
        width = 0.8 / len(gammas)
        for k, gamma in enumerate(gammas):
            r2 = [other[(other.distribution == d) & (other.weight_decay == gamma)].r2.mean() for d in labels]
            regime, colour = ("strong", "tab:blue") if gamma < 0 else ("weak", "tab:red")
            bars = ax.bar(
                x + (k - (len(gammas) - 1) / 2) * width, r2, width, color=colour, alpha=0.8,
                label=rf"{regime}, $\gamma$ = {gamma:g}",
            )  # fmt: skip
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(x, [d.replace(":", " ") for d in labels])
        ax.set(ylabel=r"$R^2$", ylim=(0, 1.05))
        ax.set_title("exp-17 distributions (Fig. 1 run)", loc="right")
        ax.legend(loc="lower right")
    common.label_panels(axes)
    return fig


# ---- Fig. 5 -------------------------------------------------------------------------------------


def fig5(exp) -> Figure:
    s, e = exp.summary, exp.exponents
    weak = s[(s.weight_decay > 0) & (s.unlearned_loss > 0) & np.isfinite(s.final_loss)]
    fig = Figure(layout="constrained", figsize=(9.6, 3.9))
    ax1, ax2 = fig.subplots(1, 2)
    colours = alpha_colours(s["alpha"])
    ax1.scatter(weak.unlearned_loss, weak.final_loss, c=weak.alpha, cmap="viridis", norm=colours.norm, s=10)
    if len(weak):
        low = min(weak.unlearned_loss.min(), weak.final_loss.min())
        high = max(weak.unlearned_loss.max(), weak.final_loss.max())
        ax1.plot([low, high], [low, high], "k--", lw=1, label="$L = L_{unlearned}$")
        ax1.legend(loc="upper left")
    fig.colorbar(colours, ax=ax1, label=r"data exponent $\alpha$")
    ax1.set(
        xscale="log",
        yscale="log",
        xlabel=r"$L_{unlearned} = \sum_{\|W_i\| \leq 1/2} \mathrm{Var}(x_i)$",
        ylabel="loss $L$",
    )
    ax1.set_title(r"all widths, $\gamma > 0$", loc="right")
    gamma_colours = common.gamma_colours(s["weight_decay"])
    for gamma, rows in e[e.weight_decay > 0].groupby("weight_decay"):
        rows = rows.sort_values("alpha")
        ax2.errorbar(
            rows.alpha, rows.model_exponent, yerr=rows.stderr, fmt="o-", ms=3.5, lw=1, capsize=2,
            color=gamma_colours.to_rgba(gamma), label=rf"$\gamma$ = {gamma:.2f}",
        )  # fmt: skip
    alphas = np.linspace(s.alpha.min(), s.alpha.max(), 50)
    ax2.plot(alphas, np.maximum(alphas - 1, 0), "k--", lw=1, label=r"$\max(\alpha - 1, 0)$")
    ax2.set(xlabel=r"data exponent $\alpha$", ylabel=r"model exponent $\alpha_m$")
    ax2.axvspan(1.25, max(2.0, s.alpha.max()), color="0.9", zorder=-1, lw=0)
    ax2.set_title(r"shaded: the paper's $\alpha_m \approx \alpha - 1$ range", loc="right")
    ax2.legend(loc="upper left")
    common.label_panels([ax1, ax2])
    return fig


# ---- Fig. 6 -------------------------------------------------------------------------------------


def fig6(exp) -> Figure:
    s, e, n = exp.summary, exp.exponents, exp.spec.n
    strongest = s.weight_decay.min()
    alpha = reference_alpha(s)
    fig = Figure(layout="constrained", figsize=(12.8, 3.6))
    axes = list(fig.subplots(1, 4))
    gamma_colours = common.gamma_colours(s["weight_decay"])
    # (a) row norms at the largest width
    m = int(s.m.max())
    picks = sorted({s.weight_decay.min(), s.weight_decay.max()})
    bins = np.linspace(0, 1.6, 41)
    indices = [int(s[(s.m == m) & (s.alpha == alpha) & (s.weight_decay == g)]["index"].iloc[0]) for g in picks]
    for gamma, norms in zip(picks, exp.row_norms(indices), strict=True):
        bins = np.linspace(0, max(bins[-1], norms.max() * 1.02), 41)
        axes[0].hist(norms, bins=bins, color=gamma_colours.to_rgba(gamma), alpha=0.7, label=rf"$\gamma$ = {gamma:g}")
    axes[0].axvline(0.5, color="k", ls=":", lw=1)
    axes[0].axvline(1.0, color="k", ls="--", lw=0.8)
    axes[0].set(yscale="log", xlabel=r"row norm $\|W_i\|$", ylabel="features")
    axes[0].set_title(rf"m = {m}, $\alpha$ = {alpha:g}", loc="right")
    axes[0].legend(loc="upper left")
    # (b) phi_1 and (c) mean squared overlap against m, strongest growth, one line per alpha
    strong = s[s.weight_decay == strongest]
    colours = alpha_colours(s["alpha"])
    # Fig. 6d's measure is the overlap of the rows with norm > 1 (experiments/authors_exp10.py): dashed
    by_rows = "strong_mean_squared_overlap" in strong
    for a, rows in strong.groupby("alpha"):
        rows = rows.groupby("m").mean(numeric_only=True).reset_index()  # the mean over seeds
        colour = colours.to_rgba(a)
        axes[1].plot(rows.m, rows.strong_fraction, "o-", color=colour, ms=3, lw=1)
        axes[2].plot(rows.m, rows.mean_squared_overlap, "o-", color=colour, ms=3, lw=1)
        if by_rows:
            axes[2].plot(rows.m, rows.strong_mean_squared_overlap, "s--", color=colour, ms=3, lw=1)
    widths = np.geomspace(s.m.min(), s.m.max(), 50)
    axes[2].plot(widths, 1 / widths, "k--", lw=1.2, label="$1/m$")
    axes[2].plot(widths, metrics.welch_bound(n, widths), "k:", lw=1.2, label=f"Welch bound, n = {n}")
    if by_rows:
        axes[2].plot([], [], "ko-", ms=3, lw=1, label="all rows")
        axes[2].plot([], [], "ks--", ms=3, lw=1, label=r"rows with $\|W_i\| > 1$")
    axes[2].legend(loc="lower left", fontsize=7)
    for ax in axes[1:3]:
        common.width_axis(ax, s.m)
        ax.set_xlabel("width $m$")
        ax.set_title(rf"$\gamma$ = {strongest:g}", loc="right")
    axes[1].set(ylabel=r"$\phi_1$ (share of $\|W_i\| > 1$)", ylim=(-0.03, 1.03))
    axes[2].set(yscale="log", ylabel=r"$\langle (w_i \cdot w_j)^2 \rangle_{i \neq j}$")
    fig.colorbar(colours, ax=axes[1:3], label=r"data exponent $\alpha$", shrink=0.9)
    # (d) model exponents in the strong regime
    for gamma, rows in e[e.weight_decay < 0].groupby("weight_decay"):
        rows = rows.sort_values("alpha")
        axes[3].errorbar(
            rows.alpha, rows.model_exponent, yerr=rows.stderr, fmt="o-", ms=3.5, lw=1, capsize=2,
            color=gamma_colours.to_rgba(gamma), label=rf"$\gamma$ = {gamma:.2f}",
        )  # fmt: skip
    axes[3].axhline(1.0, color="k", ls="--", lw=1, label=r"$\alpha_m = 1$")
    axes[3].set(xlabel=r"data exponent $\alpha$", ylabel=r"model exponent $\alpha_m$", ylim=(0, None))
    axes[3].legend(loc="lower right")
    common.label_panels(axes)
    return fig


# ---- numbers for REPRODUCTION.md ----------------------------------------------------------------


def headline_numbers(exp) -> dict:
    s, e, n = exp.summary, exp.exponents, exp.spec.n
    strongest = s.weight_decay.min()
    phi = s.groupby("weight_decay")["represented_fraction"].mean()
    weak = s[s.weight_decay > 0]
    overlap = s[s.weight_decay == strongest].groupby("m")["mean_squared_overlap"].mean()
    overlap_fit = common.exponent_of(overlap.reset_index(), "mean_squared_overlap")
    strong_e = e[e.weight_decay < 0]
    at = strong_e[strong_e.weight_decay == strongest].set_index("alpha")
    low_alpha = strong_e[strong_e.alpha <= 1]
    weak_e = e[e.weight_decay > 0].pivot_table(index="alpha", columns="weight_decay", values="model_exponent")
    return {
        "phi_half_mean_by_gamma": phi.to_dict(),
        "phi_half_min_gamma_le_-0.5": s[s.weight_decay <= -0.5].represented_fraction.min(),
        "phi_half_weak_over_m_by_n_by_gamma": (weak.represented_fraction / (weak.m / n))
        .groupby(weak.weight_decay)
        .mean()
        .to_dict(),
        "overlap_strongest_gamma": strongest,
        "overlap_by_m": overlap.to_dict(),
        "overlap_times_m_by_m": (overlap * overlap.index).to_dict(),
        "overlap_slope": -overlap_fit.exponent,
        "strong_alpha_m_strongest_gamma_by_alpha": at.model_exponent.to_dict(),
        "strong_alpha_m_stderr_strongest_gamma_by_alpha": at.stderr.to_dict(),
        "strong_alpha_m_range_alpha_le_1_all_gamma_lt_0": [
            low_alpha.model_exponent.min(),
            low_alpha.model_exponent.max(),
        ],
        "weak_alpha_m_by_alpha_then_gamma": {a: row.to_dict() for a, row in weak_e.iterrows()},
        "r2_mean_strong": e[e.weight_decay < 0].r2.mean(),
        "r2_mean_weak": e[e.weight_decay > 0].r2.mean(),
        "r2_min_strong": e[e.weight_decay < 0].r2.min(),
    }


if __name__ == "__main__":
    main()
