"""experiments/llm_fit.py: the paper's LLM width exponent from the digitized losses of its 27 models.

The experiment runs once into a temporary folder; the tests check its exponent against an
independent ``scipy.optimize.curve_fit`` of the same model, its errors, the numbers file, and that
the figure's panels hold exactly the table's points and the fitted curves.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from scipy import optimize

from supjax import llm

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
TABLE = EXPERIMENTS / "data" / "llm_losses_fig8_digitized.csv"


def _script():
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    return importlib.import_module("llm_fit")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm_fit")
    numbers = _script().main(["--out", str(root / "out"), "--figures", str(root / "figures"), "--n-boot", "200"])
    return root, numbers


def _subset(name: str):
    table = llm.read_width_table(TABLE)
    return table if name == "all" else table[table["quality"] == "clear"].reset_index(drop=True)


@pytest.mark.parametrize(("subset", "n_points"), [("all", 97), ("clear", 79)])
def test_exponent_matches_an_independent_curve_fit(experiment, subset, n_points):
    _, numbers = experiment
    table = _subset(subset)
    labels, group = np.unique(table["family"] + "/" + table["dataset"], return_inverse=True)
    widths, losses = table["width"].to_numpy(float), table["loss"].to_numpy(float)

    def model(x, amplitude, exponent, *offsets):
        return amplitude * x[0] ** -exponent + np.asarray(offsets)[x[1].astype(int)]

    start = [500.0, 1.0] + [losses[group == g].min() for g in range(labels.size)]
    params, covariance = optimize.curve_fit(
        model, np.vstack([widths, group]), losses, p0=start, ftol=1e-14, xtol=1e-14, gtol=1e-14, maxfev=100_000
    )
    ours = numbers[subset]
    assert ours["n_points"] == n_points and ours["n_params"] == 18 == params.size
    assert abs(ours["exponent"] - params[1]) < 1e-6
    assert ours["stderr"] == pytest.approx(np.sqrt(covariance[1, 1]), rel=1e-4)
    assert 0.6 < ours["exponent"] < 1.3, "the paper finds 0.91; the digitized table should land near it"
    assert 0 < ours["authors_recipe_stderr"] < ours["stderr"], "holding the B_g fixed must understate the error"


@pytest.mark.parametrize("subset", ["all", "clear"])
def test_bootstrap_interval_brackets_the_estimate(experiment, subset):
    root, numbers = experiment
    ours = numbers[subset]
    assert ours["stderr"] > 0 and ours["bootstrap_std"] > 0
    assert ours["bootstrap_low"] < ours["exponent"] < ours["bootstrap_high"]
    assert ours["n_models"] == 25, "27 models, two pairs of which share a width and a merged name"
    saved = json.loads((root / "out" / "numbers.json").read_text())
    assert saved[subset]["exponent"] == pytest.approx(ours["exponent"], abs=1e-4)
    assert saved[subset]["bootstrap_resamples"] == 200


def test_figure_panels_hold_the_table_and_the_fitted_curves(experiment):
    root, numbers = experiment
    assert (root / "figures" / "llm_fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (root / "figures" / "llm_fit.pdf").read_bytes()[:5] == b"%PDF-"
    script = _script()
    table = llm.read_width_table(TABLE)
    fit = llm.width_scaling_fit(table)
    fig = script.figure(table, fit, numbers)
    datasets = list(script.DATASETS)
    assert sorted(datasets) == sorted(table["dataset"].unique())
    axes = fig.axes
    assert len(axes) == len(datasets) + 1, "one panel per dataset and the collapse L - B_g"

    def points(ax):
        collections = [c for c in ax.collections if isinstance(c, PathCollection)]
        offsets = np.concatenate([c.get_offsets() for c in collections])
        hollow = sum(int((c.get_facecolors()[:, 3] == 0).all()) * len(c.get_offsets()) for c in collections)
        return offsets[np.lexsort(offsets.T[::-1])], hollow

    for ax, dataset in zip(axes, datasets, strict=False):
        rows = table[table["dataset"] == dataset]
        expected = rows[["width", "loss"]].to_numpy(float)
        offsets, hollow = points(ax)
        np.testing.assert_allclose(offsets, expected[np.lexsort(expected.T[::-1])])
        assert hollow == (rows["quality"] == "partial").sum()
        lines = ax.get_lines()
        assert len(lines) == rows["family"].nunique()
        for line in lines:
            x, y = line.get_xdata(), line.get_ydata()
            matching = [
                np.allclose(y, fit.predict(x, [f"{family}/{dataset}"] * len(x))) for family in rows["family"].unique()
            ]
            assert sum(matching) == 1, f"{dataset}: a line that is no family's A/m^alpha + B_g"

    reduced = table["loss"].to_numpy(float) - fit.predict(np.full(len(table), np.inf), llm.width_groups(table))
    shown = reduced > 0
    expected = np.column_stack([table["width"].to_numpy(float)[shown], reduced[shown]])
    offsets, hollow = points(axes[-1])
    np.testing.assert_allclose(offsets, expected[np.lexsort(expected.T[::-1])])
    (curve,) = axes[-1].get_lines()
    np.testing.assert_allclose(curve.get_ydata(), fit.amplitude * curve.get_xdata() ** -fit.exponent)
    assert axes[-1].get_xscale() == axes[-1].get_yscale() == "log"
