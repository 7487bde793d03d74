"""supjax's figures, one function per figure: tables or a run in, a matplotlib Figure out.

* :mod:`~supjax.plots.style`: what the figures share (``STYLE``, :func:`save`,
  :func:`gamma_colours`, :func:`width_axis`);
* :mod:`~supjax.plots.paper`: the paper's figures from a run's summary and exponents
  (loss against width, phi_1/2, the phase diagrams, overlaps, row norms);
* :mod:`~supjax.plots.tms`: the figures of Anthropic's toy models of superposition;
* :mod:`~supjax.plots.training`: how superposition forms, from a run's snapshots;
* :mod:`~supjax.plots.run`: :func:`plot_run`, every figure a run directory supports, as files.

Each figure module imports only :mod:`~supjax.plots.style` of this package (``run``
composes the others), so none of them imports this package's root. Everything is
re-exported here: ``from supjax import plots; plots.save(plots.plot_features_2d(run), "intro")``.
"""

from supjax.plots.llc import (
    llc_figures,
    plot_chain_traces,
    plot_llc_against_width,
    plot_llc_along_training,
    plot_llc_phase_diagram,
    write_llc_figures,
)
from supjax.plots.paper import (
    MAX_PANELS,
    cell_edges,
    phase_panel,
    phase_table,
    plot_loss_vs_unlearned,
    plot_loss_vs_width,
    plot_overlap_vs_width,
    plot_phase_exponent,
    plot_phase_represented,
    plot_represented_fraction,
    plot_row_norms,
)
from supjax.plots.run import plot_run
from supjax.plots.sae import (
    ARCHITECTURE_COLOURS,
    at_fixed_l0,
    plot_feature_recovery,
    plot_l0_fvu_frontier,
    plot_sae_phase_diagram,
    sae_figures,
    write_sae_figures,
)
from supjax.plots.style import GAMMA_CMAP, STYLE, gamma_colours, save, width_axis
from supjax.plots.tms import (
    PHASE_COLOURS,
    SUPERPOSITION_CMAP,
    plot_features_2d,
    plot_gram_and_norms,
    plot_phase_diagram,
    plot_sticky,
    sparsity_models,
)
from supjax.plots.training import (
    animate_features_2d,
    features_2d_snapshots,
    plot_exponent_over_time,
    plot_metrics_over_time,
)

__all__ = [
    "ARCHITECTURE_COLOURS",
    "GAMMA_CMAP",
    "MAX_PANELS",
    "PHASE_COLOURS",
    "STYLE",
    "SUPERPOSITION_CMAP",
    "animate_features_2d",
    "at_fixed_l0",
    "cell_edges",
    "features_2d_snapshots",
    "gamma_colours",
    "llc_figures",
    "phase_panel",
    "phase_table",
    "plot_chain_traces",
    "plot_exponent_over_time",
    "plot_feature_recovery",
    "plot_features_2d",
    "plot_gram_and_norms",
    "plot_l0_fvu_frontier",
    "plot_llc_against_width",
    "plot_llc_along_training",
    "plot_llc_phase_diagram",
    "plot_loss_vs_unlearned",
    "plot_loss_vs_width",
    "plot_metrics_over_time",
    "plot_overlap_vs_width",
    "plot_phase_diagram",
    "plot_phase_exponent",
    "plot_phase_represented",
    "plot_represented_fraction",
    "plot_row_norms",
    "plot_run",
    "plot_sae_phase_diagram",
    "plot_sticky",
    "sae_figures",
    "save",
    "sparsity_models",
    "width_axis",
    "write_llc_figures",
    "write_sae_figures",
]
