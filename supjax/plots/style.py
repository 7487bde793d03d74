"""What every supjax figure shares: the rc style, the one saver, the weight-decay colours, the width axis.

The figure modules (:mod:`~supjax.plots.paper`, :mod:`~supjax.plots.tms`,
:mod:`~supjax.plots.training`) and the experiment scripts draw through these; this module
imports only matplotlib and numpy, so that any of them can import it without importing the others.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.cm
import matplotlib.colors
import matplotlib.ticker
import numpy as np

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.labelsize": 11,
    "axes.titlesize": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
GAMMA_CMAP = "coolwarm"


def gamma_colours(gammas) -> matplotlib.cm.ScalarMappable:
    """A colour scale for weight decays gamma, diverging at 0 and spanning at least [-1, 1]."""
    gammas = np.asarray(gammas, dtype=float)
    norm = matplotlib.colors.Normalize(vmin=min(-1.0, gammas.min()), vmax=max(1.0, gammas.max()))
    return matplotlib.cm.ScalarMappable(norm=norm, cmap=GAMMA_CMAP)


def width_axis(ax, widths) -> None:
    """Log-scaled width axis labelled at the trained widths ``m``, in plain numbers (at most 8 labels)."""
    widths = sorted(set(int(m) for m in widths))
    ax.set_xscale("log")
    if len(widths) > 8:
        widths = widths[:: -(-len(widths) // 8)]
    ax.set_xticks(widths, [str(m) for m in widths])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def save(fig, path: str | Path) -> list[Path]:
    """Write ``fig`` as ``path``.png and ``path``.pdf (a dot in the name is kept: ``fig_0.5`` -> ``fig_0.5.png``).

    The one figure saver: the CLI, :func:`supjax.plots.plot_run` and every experiment script write through it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path.with_name(path.name + ".png"), path.with_name(path.name + ".pdf")]
    for file in written:
        fig.savefig(file)
    return written
