"""Fig. 7 of the paper (exp-15): the model exponent does not depend on the activation density.

    python experiments/fig7.py --scale quick [--out runs/fig7-quick] [--figures figures]

Trains ``experiments/fig7_<scale>.toml`` (alpha = 1, activation density knob s = linspace(0, 1, 9),
so E = sum p grows from 1) or reuses the run in ``--out``, and writes ``figures/fig7_<scale>``
(PNG and PDF): (a) loss against E per width in strong superposition, (b) loss against m per
density with the fitted exponents, (c) alpha_m against E for every weight decay. Headline
numbers go to ``<out>/numbers.json``.
"""

from __future__ import annotations

import common
import matplotlib
import numpy as np
from matplotlib.figure import Figure

NAME = "fig7"


def main(argv=None) -> dict:
    return common.run_figure(
        NAME,
        __doc__.splitlines()[0],
        argv,
        headline_numbers,
        figure,
        "Fig. 7: the model exponent is robust to the activation density",
    )


def with_density(exponents, summary):
    """The exponents table with E (expected active features) of each density."""
    active = summary.groupby("activation_density").expected_active.first()
    return exponents.assign(expected_active=exponents.activation_density.map(active))


def figure(exp) -> Figure:
    s = exp.summary
    e = with_density(exp.exponents, s)
    gamma = s.weight_decay.min()
    strong = s[s.weight_decay == gamma]
    fig = Figure(layout="constrained", figsize=(13.6, 3.9))
    axes = list(fig.subplots(1, 3))
    widths = sorted(strong.m.unique())
    width_colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(widths)))
    for colour, m in zip(width_colours, widths, strict=True):
        rows = strong[strong.m == m].sort_values("expected_active")
        axes[0].plot(rows.expected_active, rows.final_loss, "o-", color=colour, ms=3.5, lw=1, label=f"m = {m}")
    axes[0].set(xscale="log", yscale="log", xlabel=r"expected active features $E = \sum_i p_i$", ylabel="loss $L$")
    ticks = [t for t in (1, 2, 3, 4, 5, 6, 7, 8) if t <= strong.expected_active.max() * 1.05]
    axes[0].set_xticks(ticks, [str(t) for t in ticks])
    axes[0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].set_title(rf"$\gamma$ = {gamma:g}, $\alpha$ = 1", loc="right")
    axes[0].legend(loc="upper left", fontsize=7)
    density = matplotlib.cm.ScalarMappable(
        norm=matplotlib.colors.Normalize(s.expected_active.min(), s.expected_active.max()), cmap="plasma"
    )
    for active, rows in strong.groupby("expected_active"):
        rows = rows.sort_values("m")
        result = common.exponent_of(rows)
        colour = density.to_rgba(active)
        axes[1].plot(rows.m, rows.final_loss, "o", color=colour, ms=3.5)
        axes[1].plot(
            rows.m,
            result.predict(rows.m),
            "-",
            color=colour,
            lw=1,
            label=rf"E = {active:.1f}: $\alpha_m$ = {result.exponent:.2f}",
        )
    common.width_axis(axes[1], strong.m)
    axes[1].set(yscale="log", xlabel="width $m$", ylabel="loss $L$")
    axes[1].set_title(rf"$\gamma$ = {gamma:g}", loc="right")
    axes[1].legend(loc="lower left", fontsize=6, ncol=2)
    fig.colorbar(density, ax=axes[1], label="$E$")
    gamma_colours = common.gamma_colours(s.weight_decay)
    for g, rows in e.groupby("weight_decay"):
        rows = rows.sort_values("expected_active")
        regime = "strong" if g < 0 else "weak"
        axes[2].errorbar(
            rows.expected_active, rows.model_exponent, yerr=rows.stderr, fmt="o-", ms=3.5, lw=1, capsize=2,
            color=gamma_colours.to_rgba(g), label=rf"{regime}, $\gamma$ = {g:.2f}",
        )  # fmt: skip
    axes[2].axhline(1.0, color="k", ls="--", lw=1, label=r"$\alpha_m = 1$")
    axes[2].set(xlabel="$E$", ylabel=r"model exponent $\alpha_m$", ylim=(0, None))
    axes[2].legend(loc="lower right", fontsize=7)
    common.label_panels(axes)
    return fig


def headline_numbers(exp) -> dict:
    e = with_density(exp.exponents, exp.summary)
    out = {}
    for gamma, rows in e.groupby("weight_decay"):
        rows = rows.sort_values("expected_active")
        out[f"gamma={gamma:g}"] = {
            "E": rows.expected_active.tolist(),
            "alpha_m": rows.model_exponent.tolist(),
            "stderr": rows.stderr.tolist(),
            "r2": rows.r2.tolist(),
            "alpha_m_mean": rows.model_exponent.mean(),
            "alpha_m_range": [rows.model_exponent.min(), rows.model_exponent.max()],
        }
    return out


if __name__ == "__main__":
    main()
