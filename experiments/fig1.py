"""Fig. 1 of the paper (exp-17): loss against width, weak and strong superposition, three feature distributions.

    python experiments/fig1.py --scale quick [--out runs/fig1-quick] [--figures figures]

Trains ``experiments/fig1_<scale>.toml`` (or reuses the run in ``--out``) and writes
``figures/fig1_<scale>`` (PNG and PDF): (a) strong superposition (gamma = -1), (b) weak
(gamma = 0.1), loss against m for the exponential, power-law (i^-1.2) and linear feature
frequencies with log-log slopes over all widths and over the large widths (m >= 32 at quick and
paper scale); the lines are the paper's fits (all widths for the exponential, m >= 32 for the
others); (c) the frequencies themselves. Headline numbers go to
``<out>/numbers.json``.
"""

from __future__ import annotations

import common
import numpy as np
from matplotlib.figure import Figure

from supjax import data

NAME = "fig1"
MARKERS = {"exponential": "o", "power": "s", "linear": "^"}
COLOURS = {"exponential": "tab:blue", "power": "tab:orange", "linear": "tab:green"}


def main(argv=None) -> dict:
    return common.run_figure(
        NAME,
        __doc__.splitlines()[0],
        argv,
        headline_numbers,
        figure,
        "Fig. 1: superposition gives robust loss ~ 1/m scaling",
    )


def family(label: str) -> str:
    return label.split(":")[0]


def pretty(label: str) -> str:
    fam, _, arg = label.partition(":")
    if fam == "exponential":
        return rf"exponential, $e^{{-i/{float(arg):g}}}$"
    if fam == "power":
        return rf"power law, $i^{{-{float(arg or 1):g}}}$"
    return r"linear, $(n - i)/n$" if fam == "linear" else label


def slopes(rows) -> tuple[common.fit.PowerLawFit, common.fit.PowerLawFit]:
    """Fits over all widths and over the large widths."""
    tail = rows[rows.m.isin(common.tail_widths(rows.m))]
    return common.exponent_of(rows), common.exponent_of(tail)


def figure(exp) -> Figure:
    s = exp.summary
    fig = Figure(layout="constrained", figsize=(13.2, 5.0))
    axes = list(fig.subplots(1, 3))
    tail_from = min(common.tail_widths(s.m))
    for ax, gamma in zip(axes[:2], (s.weight_decay.min(), s.weight_decay.max()), strict=True):
        for label, rows in s[s.weight_decay == gamma].groupby("distribution"):
            rows = rows.sort_values("m")
            whole, tail = slopes(rows)
            colour, marker = COLOURS.get(family(label), "k"), MARKERS.get(family(label), "o")
            text = f"{pretty(label)}: slope {-whole.exponent:.2f} (all m), {-tail.exponent:.2f} (m ≥ {tail_from})"
            ax.plot(rows.m, rows.final_loss, marker, color=colour, ms=5, label=text)
            # the paper's fits: all widths for the exponential, m >= 32 for the others
            line, start = (whole, rows.m.min()) if family(label) == "exponential" else (tail, tail_from)
            m = np.geomspace(start, rows.m.max(), 20)
            ax.plot(m, line.predict(m), "-", color=colour, lw=1.2)
        m = np.geomspace(s.m.min(), s.m.max(), 20)
        regime = "strong" if gamma < 0 else "weak"
        reference = s[s.weight_decay == gamma].groupby("m").final_loss.mean()
        scale = np.exp(np.mean(np.log(reference.values * reference.index.values)))
        ax.plot(m, scale / m, "k--", lw=0.8, label=r"$\propto 1/m$")
        common.width_axis(ax, s.m)
        ax.set(yscale="log", xlabel="width $m$", ylabel="loss $L$")
        ax.set_title(rf"{regime} superposition, $\gamma$ = {gamma:g}", loc="right")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7)
    n = exp.spec.n
    i = np.arange(1, n + 1)
    for label in sorted(s.distribution.unique()):
        axes[2].plot(
            i, data.feature_probabilities(label, n), color=COLOURS.get(family(label), "k"), label=pretty(label)
        )
    axes[2].set(xscale="log", yscale="log", xlabel="feature rank $i$", ylabel="frequency $p_i$")
    axes[2].set_title(f"n = {n}, each normalised to sum 1", loc="right")
    axes[2].legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7)
    common.label_panels(axes)
    return fig


def headline_numbers(exp) -> dict:
    s = exp.summary
    out = {"tail_widths": common.tail_widths(s.m)}
    for gamma, part in s.groupby("weight_decay"):
        for label, rows in part.groupby("distribution"):
            whole, tail = slopes(rows)
            out[f"gamma={gamma:g} {label}"] = {
                "slope_all_m": -whole.exponent,
                "r2_all_m": whole.r2,
                "slope_tail": -tail.exponent,
                "stderr_tail": tail.stderr,
                "r2_tail": tail.r2,
                "loss_by_m": rows.set_index("m").final_loss.to_dict(),
                "phi_half_mean": rows.represented_fraction.mean(),
            }
    return out


if __name__ == "__main__":
    main()
