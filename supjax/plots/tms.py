"""The figures of Anthropic's toy models of superposition (Elhage et al. 2022, TMS), one
function per figure, each taking a :class:`supjax.results.Run` and returning a matplotlib
Figure (save it with :func:`supjax.plots.style.save`):

* :func:`plot_features_2d`: the feature vectors W_i of m = 2 models, one panel per
  sparsity (TMS's introduction: two features, then antipodal pairs, then the pentagon);
* :func:`plot_gram_and_norms`: W W^T beside the bias (TMS's W^T W, its W being m x n), and
  the norms ||W_i|| coloured by superposition, one row per sparsity;
* :func:`plot_sticky`: dimensions per feature m / ||W||_F^2 against 1/(1 - S), the
  fractions of uniform polytopes marked, and every feature's dimensionality D_i;
* :func:`plot_phase_diagram`: the n = 2, m = 1 model over sparsity x relative importance of
  the second feature, each cell the lowest-loss seed.

Where a run has several models per panel (seeds, importances, weight decays), a panel
shows the lowest-loss seed (:func:`supjax.tms.best_of_seeds`) of the ``importance`` and
``weight_decay`` asked for (default: the grid's first). The layout follows ARENA's
``plot_features_in_2d`` and adonath's ``plot.py``: arrays in, one figure out.
"""

from __future__ import annotations

import matplotlib
import matplotlib.cm
import matplotlib.collections
import matplotlib.colors
import matplotlib.patches
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from supjax import metrics, tms
from supjax.results import Run

PHASE_COLOURS = {
    "feature 1 only": "#4c72b0",
    "feature 2 only": "#55a868",
    "antipodal pair": "#c44e52",
    "other": "#bbbbbb",
}
SUPERPOSITION_CMAP = "plasma"


def sparsity_models(run: Run, m: int, importance: str | None = None, weight_decay: float | None = None):
    """The best-of-seeds models of width ``m``, one per distribution (sparsity), densest first:
    a DataFrame of ``Run.table()`` rows. ``importance`` and ``weight_decay`` pick one value of
    those axes (default: the grid's first)."""
    table = run.table()
    table = table[table.m == m]
    assert len(table), f"the run has no models of width {m}; its widths are {sorted(run.params)}"
    importance = run.spec.importance_labels[0] if importance is None else importance
    weight_decay = run.spec.weight_decays[0] if weight_decay is None else weight_decay
    table = table[(table.importance == importance) & (table.weight_decay == weight_decay)]
    best = tms.best_of_seeds(table)
    order = np.argsort([-tms.density(d) if d.startswith("constant:") else k for k, d in enumerate(best.distribution)])
    return best.iloc[order].reset_index(drop=True)


def _panel_label(row) -> str:
    p = tms.density(row["distribution"])
    return f"1 - S = {p:.3g}" if np.isfinite(p) else row["distribution"]


def _feature_colours(run: Run, importance: str) -> np.ndarray:
    """TMS colours features by importance (viridis); uniform importance by feature index."""
    weights = run.spec.importance_weights(importance)
    if np.ptp(weights) == 0:
        return matplotlib.colormaps["tab10"](np.arange(len(weights)) % 10)
    return matplotlib.colormaps["viridis"](weights / weights.max())


def plot_features_2d(run: Run, importance: str | None = None, weight_decay: float | None = None) -> Figure:
    """The rows W_i of the m = 2 models as arrows from the origin, one panel per sparsity.

    Features are coloured by importance (lighter: more important, as TMS), or by index for
    uniform importance. Each panel shows the lowest-loss seed and its adjacent angles.
    """
    best = sparsity_models(run, 2, importance, weight_decay)
    importance = best["importance"].iloc[0]
    colours = _feature_colours(run, importance)
    fig = Figure(layout="constrained", figsize=(2.1 * len(best), 2.6))
    axes = np.atleast_1d(fig.subplots(1, len(best)))
    limit = max(1.2, 1.1 * max(np.abs(run.weights(int(i))[0]).max() for i in best["index"]))
    for ax, (_, row) in zip(axes, best.iterrows(), strict=True):
        W = run.weights(int(row["index"]))[0]
        segments = np.stack([np.zeros_like(W), W], axis=1)
        ax.add_collection(matplotlib.collections.LineCollection(segments, colors=colours, lw=1.5))
        ax.scatter(W[:, 0], W[:, 1], c=colours, s=14, zorder=3)
        ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal", xticks=[], yticks=[])
        for side in ("left", "bottom"):
            ax.spines[side].set_position("center")
        ax.set_title(_panel_label(row), fontsize=9)
        angles = tms.adjacent_angles(W)
        if 1 < len(angles) <= 8:
            ax.text(0.5, -0.04, " ".join(f"{a:.0f}" for a in angles) + "°", transform=ax.transAxes,
                    ha="center", va="top", fontsize=6.5)  # fmt: skip
    fig.suptitle(
        f"features in 2-D: n = {run.spec.n}, m = 2, importance {importance}; sparsity grows to the right", fontsize=10
    )
    return fig


def plot_gram_and_norms(
    run: Run, m: int | None = None, importance: str | None = None, weight_decay: float | None = None, max_rows: int = 6
) -> Figure:
    """Per sparsity (rows): the norms ||W_i|| coloured by superposition, and W W^T with the bias b.

    The superposition of feature i is sum_{j != i} (w_i . W_j)^2 / ||W_i||^2
    (:func:`supjax.metrics.superposition`): 0 (dark) for a dimension of its own, 1 for an
    antipodal pair, colours clipped at 1 as TMS's ``render_features``. The Gram matrix and
    bias share one diverging scale, [-1, 1]. At most ``max_rows`` sparsities, evenly spread.
    """
    m = min(run.params) if m is None else m
    best = sparsity_models(run, m, importance, weight_decay)
    if len(best) > max_rows:
        best = best.iloc[np.linspace(0, len(best) - 1, max_rows).round().astype(int)].reset_index(drop=True)
    n = run.spec.n
    fig = Figure(layout="constrained", figsize=(7.6, 1.45 * len(best) + 0.6))
    axes = fig.subplots(len(best), 2, squeeze=False, width_ratios=[1.5, 1])
    norm = matplotlib.colors.Normalize(0, 1)
    colours = matplotlib.cm.ScalarMappable(norm=norm, cmap=SUPERPOSITION_CMAP)
    for (ax_norms, ax_gram), (_, row) in zip(axes, best.iterrows(), strict=True):
        W, b = run.weights(int(row["index"]))
        share = np.asarray(metrics.superposition(W))
        ax_norms.bar(np.arange(n), np.linalg.norm(W, axis=1), width=0.9, color=colours.to_rgba(np.minimum(share, 1)))
        ax_norms.axvline(m - 0.5, color="k", lw=0.5, ls=":")
        ticks = [0, n - 1] if n > 10 else list(range(n))
        ax_norms.set_xticks(ticks, [str(t + 1) for t in ticks])
        ax_norms.set(xlim=(-0.6, n - 0.4), ylabel=r"$\|W_i\|$")
        ax_norms.set_title(_panel_label(row), loc="left", fontsize=8)
        gram = np.concatenate([W @ W.T, np.full((n, 1), np.nan), b[:, None]], axis=1)
        image = ax_gram.imshow(np.ma.masked_invalid(gram), cmap="coolwarm", vmin=-1, vmax=1, interpolation="nearest")
        ax_gram.set_xticks([*ticks, n + 1], [*[str(t + 1) for t in ticks], "b"], fontsize=7)
        ax_gram.set_yticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
    axes[-1, 0].set_xlabel("feature $i$ (dotted: the first m)")
    axes[-1, 1].set_xlabel(r"$W W^T$ (TMS's $W^T W$) and $b$")
    label = r"superposition $\sum_{j \ne i} (\hat W_i \cdot W_j)^2 / \|W_i\|^2$"
    fig.colorbar(colours, ax=axes[:, 0], label=label, shrink=min(1.0, 3.0 / len(best)), aspect=15)
    fig.colorbar(image, ax=axes[:, 1], label="weight", shrink=min(1.0, 3.0 / len(best)), aspect=15)
    fig.suptitle(f"norms and superposition, n = {n}, m = {m}, importance {best['importance'].iloc[0]}", fontsize=10)
    return fig


def plot_sticky(run: Run, m: int | None = None, importance: str | None = None, weight_decay: float | None = None):
    """Dimensions per feature, m / ||W||_F^2, against 1/(1 - S) (log), TMS's "sticky" plot.

    The line is the lowest-loss seed at each sparsity; dots are every feature's
    dimensionality D_i = ||W_i||^2 / sum_j (w_i . W_j)^2 (:func:`supjax.metrics.feature_dimensionality`)
    of that model, jittered (dark: ||W_i|| > 1/2; light: unrepresented rows, whose D_i is about
    their small squared norm); horizontal lines mark the fractions of
    :data:`supjax.tms.STICKY_FRACTIONS` (1/2: antipodal pairs, 2/5: pentagons, ...), where both stick.
    """
    m = max(run.params) if m is None else m
    best = sparsity_models(run, m, importance, weight_decay)
    x = 1.0 / np.array([tms.density(d) for d in best.distribution])
    assert np.all(np.isfinite(x)), "the sticky plot needs constant:P distributions (TMS's sparsity)"
    W = np.stack([run.weights(int(i))[0] for i in best["index"]])
    per_feature = m / np.sum(W**2, axis=(1, 2))
    dimensionality = np.asarray(metrics.feature_dimensionality(W))
    fig = Figure(layout="constrained", figsize=(6.4, 4.2))
    ax = fig.subplots()
    jitter = np.random.default_rng(0).uniform(-0.04, 0.04, dimensionality.shape)
    xs = np.repeat(x[:, None], dimensionality.shape[1], axis=1) * np.exp(jitter)
    kept = np.linalg.norm(W, axis=2) > 0.5
    for mask, colour, label in ((kept, "0.25", r"$D_i$, $\|W_i\| > 1/2$"), (~kept, "0.75", r"$D_i$, the other rows")):
        ax.scatter(xs[mask], dimensionality[mask], s=2, color=colour, alpha=0.6, lw=0, label=label)
    ax.plot(x, per_feature, "o-", color="k", ms=3.5, lw=1.2, label=r"$m / \|W\|_F^2$")
    for top, bottom in tms.STICKY_FRACTIONS:
        ax.axhline(top / bottom, color="tab:purple", lw=0.7, alpha=0.35)
        ax.text(x.max() * 1.15, top / bottom, f"{top}/{bottom}", fontsize=7, va="center", color="tab:purple")
    ax.set(xscale="log", xlabel="1/(1 - S)", ylabel="dimensions per feature", ylim=(-0.02, 1.05))
    ax.set_title(f"n = {run.spec.n}, m = {m}, importance {best['importance'].iloc[0]}", loc="right", fontsize=9)
    ax.legend(loc="lower left", markerscale=3)
    return fig


def plot_phase_diagram(run: Run) -> Figure:
    """The n = 2, m = 1 phase diagram: what the lowest-loss seed of every (sparsity, relative
    importance r of feature 2) cell does with its one dimension (:func:`supjax.tms.pair_state`).

    TMS's regions: with dense data the more important feature takes the dimension (feature 1
    for r < 1, feature 2 for r > 1) and the other is dropped; with sparse data and r near 1
    both are kept as an antipodal pair.
    """
    cells = tms.phase_cells(run)
    densities = np.sort(cells.density.unique())
    ratios = np.sort(cells.relative_importance.unique())
    states = list(PHASE_COLOURS)
    grid = cells.pivot(index="relative_importance", columns="density", values="state").loc[ratios, densities]
    codes = np.vectorize(states.index)(grid.to_numpy())
    fig = Figure(layout="constrained", figsize=(5.6, 4.2))
    ax = fig.subplots()
    cmap = matplotlib.colors.ListedColormap(list(PHASE_COLOURS.values()))
    ax.pcolormesh(_log_edges(densities), _log_edges(ratios), codes, cmap=cmap, vmin=-0.5, vmax=len(states) - 0.5)
    ax.set(xscale="log", yscale="log", xlabel="feature density 1 - S", ylabel="relative importance of feature 2")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.invert_xaxis()  # sparser to the right, as TMS
    seeds = len(run.spec.seeds)
    ax.set_title(f"n = 2, m = 1; each cell the best of {seeds} seed{'s' * (seeds > 1)}", loc="right", fontsize=9)
    handles = [matplotlib.patches.Patch(color=c, label=s) for s, c in PHASE_COLOURS.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def _log_edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges for log-spaced centres: geometric midpoints, extended by the end ratios."""
    if len(centres) == 1:
        return centres[0] * np.array([0.7, 1.4])
    middle = np.sqrt(centres[1:] * centres[:-1])
    return np.concatenate([[centres[0] ** 2 / middle[0]], middle, [centres[-1] ** 2 / middle[-1]]])
