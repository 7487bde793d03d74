"""The LLM figures, one function per figure: arrays in, a matplotlib Figure out.

Save them with :func:`supjax.plots.save` (``.png`` and ``.pdf``), as every supjax figure is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from supjax.fit import GroupedFit, PowerLawFit
from supjax.llm.tokens import rank_frequency
from supjax.llm.widths import width_groups


def plot_rank_frequency(counts, fit: PowerLawFit | None = None) -> Figure:
    """Log-log f(r) against r for token ``counts: [vocab]``, with the fitted power law if given."""
    ranks, frequencies = rank_frequency(counts)
    figure = Figure(figsize=(4.0, 3.0), layout="constrained")
    axes = figure.add_subplot()
    axes.loglog(ranks, frequencies, ".", markersize=2, color="C0", label="tokens")
    if fit is not None and np.isfinite(fit.exponent):
        axes.loglog(ranks, fit.predict(ranks), "--", color="black", label=rf"$f \propto r^{{-{fit.exponent:.2f}}}$")
    axes.set_xlabel(r"rank $r$")
    axes.set_ylabel(r"frequency $f(r)$")
    axes.legend(frameon=False)
    return figure


def plot_width_scaling(table: pd.DataFrame, fit: GroupedFit, group_by: Sequence[str] = ("family", "dataset")) -> Figure:
    """Log-log L - B_g against m, one marker per family, with the fitted A / m^alpha."""
    groups = width_groups(table, group_by)
    reduced = table["loss"].to_numpy(float) - np.array([fit.offsets[g] for g in groups])
    widths = table["width"].to_numpy(float)
    figure = Figure(figsize=(4.0, 3.0), layout="constrained")
    axes = figure.add_subplot()
    markers = "osv^Dp*hX"
    for index, family in enumerate(sorted(table["family"].astype(str).unique())):
        rows = (table["family"].astype(str) == family).to_numpy() & (reduced > 0)
        axes.scatter(widths[rows], reduced[rows], marker=markers[index % len(markers)], alpha=0.6, label=family)
    grid = np.geomspace(widths.min() / 1.2, widths.max() * 1.2, 100)
    label = rf"$A/m^{{\alpha}}$, $\alpha = {fit.exponent:.3f} \pm {fit.stderr:.2g}$"
    axes.plot(grid, fit.amplitude * grid**-fit.exponent, "--", color="black", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(r"model width $m$")
    axes.set_ylabel(r"$L - B_g$")
    axes.legend(frameon=False, fontsize="small")
    return figure
