"""Every figure a run directory supports, written as PNG and PDF: what ``supjax plot DIR`` draws.

:func:`plot_run` draws the paper's figures (:mod:`supjax.plots.paper`) from the run's
``summary.csv`` / ``exponents.csv`` and, for a run with ``snapshot_steps``, the training
figures (:mod:`supjax.plots.training`) from its snapshots; figures the grid cannot support
are skipped and named. This is the one module that composes the figure modules.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd

from supjax import analysis
from supjax.plots.paper import (
    plot_loss_vs_unlearned,
    plot_loss_vs_width,
    plot_overlap_vs_width,
    plot_phase_exponent,
    plot_phase_represented,
    plot_represented_fraction,
    plot_row_norms,
)
from supjax.plots.style import STYLE, save
from supjax.plots.training import (
    animate_features_2d,
    features_2d_snapshots,
    plot_exponent_over_time,
    plot_metrics_over_time,
)
from supjax.results import load_run


def plot_run(path: str | Path, out: str | Path | None = None) -> tuple[list[Path], list[str]]:
    """Write every figure an analysed run supports into ``out`` (default ``path/figures``);
    return (files written, figures skipped)."""
    path = Path(path)
    out = Path(out) if out is not None else path / "figures"
    summary, exponents = analysis.load_results(path)
    run = load_run(path)
    with matplotlib.rc_context(STYLE):
        figures = {
            "loss_vs_width": plot_loss_vs_width(summary, exponents),
            "represented_fraction_vs_weight_decay": plot_represented_fraction(summary),
            "phase_represented_fraction": plot_phase_represented(summary),
            "phase_model_exponent": plot_phase_exponent(exponents),
            "overlap_vs_width": plot_overlap_vs_width(summary, run.spec.n),
            "row_norms": plot_row_norms(run),
            "loss_vs_unlearned": plot_loss_vs_unlearned(summary),
        }
        written, skipped = [], []
        for name, fig in figures.items():
            if fig is None:
                skipped.append(f"{name}: needs two or more weight decays and power-law exponents")
            else:
                written += save(fig, out / name)
        written += _plot_training(path, out)
    return written, skipped


def _plot_training(path: Path, out: Path) -> list[Path]:
    """The figures of a run's snapshots (none without ``snapshot_steps``)."""
    from supjax import snapshots  # through checkpoint, orbax: only runs with snapshots pay for it

    if not snapshots.snapshot_steps(path):
        return []
    if (path / "trajectory.csv").is_file():
        over_time = pd.read_csv(path / "trajectory.csv")
        exponents = pd.read_csv(path / "exponents_over_time.csv", dtype={"seed": str})
    else:
        over_time, exponents = analysis.trajectory(path)
    written = save(plot_metrics_over_time(over_time), out / "metrics_over_time")
    exponent_figure = plot_exponent_over_time(exponents)
    if exponent_figure is not None:
        written += save(exponent_figure, out / "model_exponent_over_time")
    frames = features_2d_snapshots(path)
    if frames is not None:
        written.append(animate_features_2d(*frames, out / "features_2d_over_training"))
    return written
