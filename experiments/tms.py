"""Toy Models of Superposition (Elhage et al. 2022, TMS): its standard figures from three sweeps.

    python experiments/tms.py --scale quick [--out runs/tms-quick] [--figures figures]

Reads ``experiments/tms_<scale>.toml``: a ``[conventions]`` table (TMS's notebook settings,
:data:`supjax.tms.CONVENTIONS`) under three sweeps, each a table of SweepSpec fields:

* ``[pentagon]``: n = 5, m = 2 over TMS's introduction sparsities 1 - S = 20^-linspace(0, 1, 10),
  importance uniform and 0.9^i, several seeds -> ``figures/tms_features_2d_<scale>`` (2-D
  feature vectors per sparsity: two orthogonal features, antipodal pairs, the pentagon) and
  ``tms_gram_norms_<scale>`` (W^T W with the bias, norms coloured by superposition);
* ``[sticky]``: n features in m << n dimensions over a sweep of sparsities ->
  ``tms_sticky_<scale>`` (m / ||W||_F^2 against 1/(1 - S), with the feature dimensionalities);
* ``[phase]``: n = 2, m = 1 over feature density x relative importance r of feature 2, several
  seeds -> ``tms_phase_<scale>`` (each cell the lowest-loss seed).

Each sweep trains into ``<out>/<name>`` (reused when it holds the same sweep, resumed when
interrupted; its ``config.toml`` reruns it with ``supjax sweep``) and the headline numbers go to
``<out>/numbers.json``, which REPRODUCTION.md quotes.
"""

from __future__ import annotations

import json
import time
import tomllib

import common  # first: puts the working tree's supjax on the path
import matplotlib
import numpy as np

from supjax import SweepSpec, load_run, metrics, plots, tms
from supjax.configfile import parse_overrides

NAME = "tms"
SCALES = ("smoke", "quick")
PARTS = ("pentagon", "sticky", "phase")


def main(argv=None) -> dict:
    started = time.perf_counter()
    args = common.parse_args(NAME, __doc__.splitlines()[0], argv, scales=SCALES)
    specs = load_specs(args.scale, args.set, quiet=args.quiet)
    experiments = {
        part: common.run_or_reuse(f"{NAME}-{part}", args.scale, spec, args.out / part) for part, spec in specs.items()
    }
    runs = {part: load_run(exp.out) for part, exp in experiments.items()}
    pentagon, sticky, phase = (experiments[p] for p in PARTS)
    written = []
    with matplotlib.rc_context(plots.STYLE):
        figures = {
            "tms_features_2d": (pentagon, plots.plot_features_2d(runs["pentagon"], importance="geometric:0.9"),
                                "TMS intro: 5 features in 2 dimensions, importance 0.9^i, sparsity grows to the right"),
            "tms_features_2d_uniform": (pentagon, plots.plot_features_2d(runs["pentagon"], importance="uniform"),
                                        "TMS intro with uniform importance: pairs, then the pentagon"),
            "tms_gram_norms": (pentagon, plots.plot_gram_and_norms(runs["pentagon"], importance="geometric:0.9"),
                               r"TMS: $W^T W$ and the bias; $\|W_i\|$ coloured by superposition"),
            "tms_sticky": (sticky, plots.plot_sticky(runs["sticky"]),
                           r"TMS: dimensions per feature $m / \|W\|_F^2$ sticks at simple fractions"),
            "tms_phase": (phase, plots.plot_phase_diagram(runs["phase"]),
                          "TMS phase diagram: n = 2 features in m = 1 dimension"),
        }  # fmt: skip
        for stem, (exp, fig, title) in figures.items():
            written += common.save_figure(fig, exp, stem, args.figures, title)
    numbers = {
        "pentagon": pentagon_numbers(runs["pentagon"]),
        "sticky": sticky_numbers(runs["sticky"]),
        "phase": phase_numbers(runs["phase"]),
        "timing": {part: exp.timing for part, exp in experiments.items()},
    }
    (args.out / "numbers.json").write_text(json.dumps(common._plain(numbers), indent=2) + "\n")
    total = time.perf_counter() - started
    for part, exp in experiments.items():
        how = "reused" if exp.timing.get("reused") else f"trained in {exp.timing.get('train_s', float('nan')):.0f} s"
        print(f"{NAME} {part} ({args.scale}): {exp.spec.num_models} models {how}")
    print(f"  runs: {args.out}   numbers: {args.out / 'numbers.json'}   this call: {total:.0f} s")
    for path in written:
        print(f"  figure: {path}")
    return common._plain(numbers)


def load_specs(scale: str, overrides=(), quiet: bool = False) -> dict[str, SweepSpec]:
    """The three sweeps of ``tms_<scale>.toml``: ``[conventions]`` under each part's table, then ``--set``."""
    tables = tomllib.loads(common.config_path(NAME, scale).read_text())
    shared, changes = tables.pop("conventions"), parse_overrides(overrides)
    assert set(tables) == set(PARTS), f"tms_{scale}.toml needs tables {PARTS} and [conventions], has {list(tables)}"
    specs = {}
    for part in PARTS:
        spec = SweepSpec.from_dict({**shared, **tables[part], **changes})
        specs[part] = spec.replace(progress=spec.progress and not quiet)
    return specs


# ---- numbers for REPRODUCTION.md ----------------------------------------------------------------


def pentagon_numbers(run) -> dict:
    """Per importance: at the sparsest density every seed's norms, adjacent angles and whether it
    is the regular pentagon; at every density the best seed's count of features with norm > 1/2."""
    table = run.table()
    sparsest = min(run.spec.distributions, key=tms.density)
    out = {}
    for importance in run.spec.importance_labels:
        seeds = {}
        for _, row in table[(table.importance == importance) & (table.distribution == sparsest)].iterrows():
            W, b = run.weights(int(row["index"]))
            seeds[int(row["seed"])] = {
                "norms": np.linalg.norm(W, axis=1).round(3).tolist(),
                "adjacent_angles": tms.adjacent_angles(W).round(1).tolist(),
                "regular_pentagon": tms.is_regular_polygon(W),
                "bias_mean": float(np.mean(b)),
                "final_loss": float(row["final_loss"]),
            }
        best = tms.best_of_seeds(table[table.importance == importance])
        represented = {}
        for _, row in best.iterrows():
            W = run.weights(int(row["index"]))[0]
            kept = np.linalg.norm(W, axis=1) > 0.5  # a near-zero row's superposition is a ratio of two small numbers
            represented[tms.density(row["distribution"])] = {
                "features_with_norm_above_half": int(np.sum(kept)),
                "adjacent_angles": tms.adjacent_angles(W).round(1).tolist(),
                "superposition_mean_of_those": float(np.mean(np.asarray(metrics.superposition(W))[kept])),
            }
        out[importance] = {
            "density": tms.density(sparsest),
            "seeds": seeds,
            "regular_pentagons": sum(s["regular_pentagon"] for s in seeds.values()),
            "of_seeds": len(seeds),
            "best_seed_by_density": represented,
        }
    return out


def sticky_numbers(run) -> dict:
    """Per density: m / ||W||_F^2, the share of features with norm > 1/2, and the share of those whose
    D_i lies within 0.03 of 1, 2/3, 1/2, 2/5 or 1/3 (an unrepresented row's D_i means nothing)."""
    table = run.table()
    m = max(run.params)
    fractions = ((1, 1), (2, 3), (1, 2), (2, 5), (1, 3))
    out = {}
    for _, row in tms.best_of_seeds(table[table.m == m]).iterrows():
        W = run.weights(int(row["index"]))[0]
        kept = np.linalg.norm(W, axis=1) > 0.5
        dimensionality = np.asarray(metrics.feature_dimensionality(W))[kept]
        near = {
            f"{a}/{b}": float(np.mean(np.abs(dimensionality - a / b) < 0.03)) if kept.any() else 0.0
            for a, b in fractions
        }
        out[1.0 / tms.density(row["distribution"])] = {
            "dimensions_per_feature": float(m / np.sum(W**2)),
            "share_of_features_represented": float(np.mean(kept)),
            "share_of_those_with_D_near": near,
            "median_D_of_those": float(np.median(dimensionality)) if kept.any() else None,
        }
    return out


def phase_numbers(run) -> dict:
    """Every cell's state (lowest-loss seed), and the cells of TMS's two regions."""
    cells = tms.phase_cells(run)
    dense, sparse = cells.density.max(), cells.density.min()
    states = {f"{row.density:.4g}|{row.relative_importance:.4g}": row.state for row in cells.itertuples()}
    dense_cells = cells[cells.density == dense]
    return {
        "by": "density|relative_importance",
        "states": states,
        "dense": {
            "density": dense,
            "r_below_1_feature_1_only": bool(
                np.all(dense_cells[dense_cells.relative_importance < 1].state == "feature 1 only")
            ),
            "r_above_1_feature_2_only": bool(
                np.all(dense_cells[dense_cells.relative_importance > 1].state == "feature 2 only")
            ),
        },
        "sparse_equal_importance_state": cells[
            (cells.density == sparse) & (cells.relative_importance == 1.0)
        ].state.tolist(),
        "antipodal_cells": int(np.sum(cells.state == "antipodal pair")),
        "cells": len(cells),
        "seeds": len(run.spec.seeds),
    }


if __name__ == "__main__":
    main()
