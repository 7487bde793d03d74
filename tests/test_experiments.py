"""The paper-reproduction experiments (experiments/*.py) at smoke scale, so that none of them rots.

Each script trains its ``*_smoke.toml`` into a temporary run directory, analyses it and draws its
figures into a temporary folder (never figures/); the tests check the models, the tables, the
numbers and the figure files, that a second call reuses the run, and that the quick and paper
configs keep the settings REPRODUCTION.md quotes.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from supjax.data import feature_probabilities

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _script(name: str):
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Run fig1, grid (which reads fig1's run for Fig. 4) and fig7 once at smoke scale."""
    root = tmp_path_factory.mktemp("experiments")
    figures = root / "figures"
    numbers = {}
    for name in ("fig1", "grid", "fig7"):
        argv = ["--scale", "smoke", "--out", str(root / name), "--figures", str(figures), "--quiet"]
        if name == "grid":
            argv += ["--fig1-run", str(root / "fig1")]
        numbers[name] = _script(name).main(argv)
    return root, figures, numbers


SAVED: dict[Path, Figure] = {}  # every figure the scripts write in this module, by file


@pytest.fixture(scope="module", autouse=True)
def _record_saved_figures():
    """Fill SAVED while this module's tests run (``Figure.savefig`` wrapped), so that
    :func:`_check_figure` reads the arrays of the figure a script wrote."""
    savefig = Figure.savefig

    def recording(fig, fname, *args, **kwargs):
        if isinstance(fname, str | os.PathLike):
            SAVED[Path(fname)] = fig
        return savefig(fig, fname, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", recording)
        yield
    SAVED.clear()


def _points(ax) -> np.ndarray:
    """(x, y) of every point drawn with a marker on ``ax`` (fits and references are plain lines), sorted: [k, 2]."""
    lines = [line for line in ax.get_lines() if line.get_marker() not in ("None", "", None)]
    xy = np.concatenate([np.column_stack([np.asarray(line.get_xdata(), float), line.get_ydata()]) for line in lines])
    return _sorted(xy)


def _sorted(xy) -> np.ndarray:
    xy = np.asarray(xy, float)
    return xy[np.lexsort(xy.T[::-1])]


def _mesh(ax) -> np.ndarray:
    """The cell values of the phase panel on ``ax``: [alpha, gamma]."""
    return np.asarray(next(c for c in ax.collections if hasattr(c, "get_coordinates")).get_array())


def _check_figure(figures: Path, stem: str, source, exponents=None):
    """``figures/stem`` was written as PNG and PDF, and the figure's arrays are the data it draws.

    ``source`` is what the script drew from: the run's summary table (and for Fig. 4 its pooled
    ``exponents``), or for the exp-10 comparison the table ``authors_exp10.main`` returns. Each
    figure is checked on the panels that plot the table directly.
    """
    png, pdf = figures / f"{stem}.png", figures / f"{stem}.pdf"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert pdf.read_bytes()[:5] == b"%PDF-"
    axes = SAVED[png].axes
    figure = stem.split("_")[0]
    if figure == "exp10":  # per width: the authors' final loss (line) and supjax's mean over seeds (error bars)
        widths = source["widths"]
        authors = next(line for line in axes[1].get_lines() if line.get_label() == "authors' exp-10.py")
        np.testing.assert_array_equal(authors.get_xdata(), widths)
        np.testing.assert_allclose(authors.get_ydata(), [source["authors"][m]["final_loss"] for m in widths])
        ours = axes[1].containers[0].lines[0]
        np.testing.assert_allclose(
            ours.get_ydata().astype(float), [source["supjax"][m]["final_loss"][0] for m in widths]
        )
        return
    s = source
    strongest, weakest = s.weight_decay.min(), s.weight_decay.max()
    if figure == "fig1":  # (a), (b): every model's final loss against m, strongest and weakest gamma; (c) p_i
        for ax, gamma in zip(axes[:2], (strongest, weakest), strict=True):
            np.testing.assert_allclose(_points(ax), _sorted(s[s.weight_decay == gamma][["m", "final_loss"]]))
        for line, label in zip(axes[2].get_lines(), sorted(s.distribution.unique()), strict=True):
            np.testing.assert_allclose(line.get_ydata(), feature_probabilities(label, len(line.get_ydata())))
    elif figure == "fig3":  # (a) phi_1/2 against gamma per width at alpha ~ 1; (b) phi_1/2 cells at the largest m
        alphas = np.sort(s.alpha.unique())
        part = s[s.alpha == alphas[np.argmin(np.abs(alphas - 1.0))]]
        mean = part.groupby(["m", "weight_decay"]).represented_fraction.mean().reset_index()
        np.testing.assert_allclose(_points(axes[0]), _sorted(mean[["weight_decay", "represented_fraction"]]))
        cells = s[s.m == s.m.max()].pivot_table(index="alpha", columns="weight_decay", values="represented_fraction")
        np.testing.assert_allclose(_mesh(axes[1]), cells.sort_index().to_numpy(), rtol=1e-12)
    elif figure == "fig4":  # (a) R^2 against alpha per gamma; (b) alpha_m cells
        np.testing.assert_allclose(_points(axes[0]), _sorted(exponents[["alpha", "r2"]]))
        cells = exponents.pivot_table(index="alpha", columns="weight_decay", values="model_exponent")
        np.testing.assert_allclose(_mesh(axes[1]), cells.sort_index().to_numpy(), rtol=1e-12)
    elif figure == "fig5":  # (a) every weak model's loss against its unlearned loss, coloured by alpha
        weak = s[(s.weight_decay > 0) & (s.unlearned_loss > 0) & np.isfinite(s.final_loss)]
        points = axes[0].collections[0]
        np.testing.assert_allclose(points.get_offsets(), weak[["unlearned_loss", "final_loss"]].to_numpy())
        np.testing.assert_array_equal(points.get_array(), weak.alpha)
    elif figure == "fig6":  # (b) phi_1 against m per alpha at the strongest growth, the mean over seeds
        mean = s[s.weight_decay == strongest].groupby(["alpha", "m"]).strong_fraction.mean().reset_index()
        np.testing.assert_allclose(_points(axes[1]), _sorted(mean[["m", "strong_fraction"]]))
    elif figure == "fig7":  # (a) loss against E per width, (b) loss against m per E, strongest growth
        strong = s[s.weight_decay == strongest]
        np.testing.assert_allclose(_points(axes[0]), _sorted(strong[["expected_active", "final_loss"]]))
        np.testing.assert_allclose(_points(axes[1]), _sorted(strong[["m", "final_loss"]]))
    else:
        raise AssertionError(f"no data check for {stem}")


@pytest.mark.parametrize(
    ("name", "stems"),
    [("fig1", ["fig1"]), ("grid", ["fig3", "fig4", "fig5", "fig6"]), ("fig7", ["fig7"])],
)
def test_smoke_run_trains_every_model_and_draws_its_figures(smoke, name, stems):
    root, figures, _ = smoke
    common = _script("common")
    from supjax import SweepSpec, analysis

    spec = SweepSpec.from_toml(common.config_path(name, "smoke"))
    summary, exponents = analysis.load_results(root / name)
    assert len(summary) == spec.num_models
    assert sorted(summary.m.unique()) == sorted(spec.widths)
    assert sorted(summary.weight_decay.unique()) == sorted(spec.weight_decays)
    assert sorted(summary.distribution.unique()) == sorted(spec.distributions)
    assert not summary.diverged.any()
    assert np.isfinite(summary.final_loss).all() and (summary.final_loss > 0).all()
    groups = len(spec.weight_decays) * len(spec.distributions) * len(spec.activation_densities)
    fitted = exponents[exponents.seed.astype(str) == "all"]
    assert len(fitted) == groups and np.isfinite(fitted.model_exponent).all()
    for stem in stems:
        _check_figure(figures, f"{stem}_smoke", summary, fitted)
    assert not list(figures.glob("*_quick.*")) and not list(figures.glob("*_paper.*"))
    saved = json.loads((root / name / "numbers.json").read_text())
    assert saved, "numbers.json is empty"
    timing = json.loads((root / name / "experiment.json").read_text())
    assert timing["train_s"] > 0 and timing["machine"]


def test_smoke_numbers_have_the_claims(smoke):
    _, _, numbers = smoke
    grid = numbers["grid"]
    # phi_{1/2} of the strongest growth and decay, overlaps per width, exponents per alpha
    assert set(grid["phi_half_mean_by_gamma"]) == {-1.0, 1.0}
    assert grid["phi_half_mean_by_gamma"][-1.0] > grid["phi_half_mean_by_gamma"][1.0]
    assert sorted(grid["overlap_by_m"]) == [4, 6, 8]
    assert set(grid["strong_alpha_m_strongest_gamma_by_alpha"]) == {0.5, 1.5}
    assert all(np.isfinite(v) for v in grid["strong_alpha_m_strongest_gamma_by_alpha"].values())
    fig1 = numbers["fig1"]
    assert {k for k in fig1 if k.startswith("gamma=-1 ")} == {
        "gamma=-1 exponential:6.0",
        "gamma=-1 power:1.2",
        "gamma=-1 linear",
    }
    assert all(np.isfinite(v["slope_all_m"]) for k, v in fig1.items() if k.startswith("gamma="))
    fig7 = numbers["fig7"]
    assert set(fig7) == {"gamma=-1", "gamma=1"}
    assert len(fig7["gamma=-1"]["E"]) == 3 and fig7["gamma=-1"]["E"][0] == pytest.approx(1.0)
    assert fig7["gamma=-1"]["E"][-1] > fig7["gamma=-1"]["E"][0]


def test_rerun_reuses_the_run_and_refuses_another(smoke, capsys):
    root, figures, _ = smoke
    before = (root / "fig7" / "losses.npy").stat().st_mtime_ns
    argv = ["--scale", "smoke", "--out", str(root / "fig7"), "--figures", str(figures), "--quiet"]
    _script("fig7").main(argv)
    assert "reused" in capsys.readouterr().out
    assert (root / "fig7" / "losses.npy").stat().st_mtime_ns == before
    with pytest.raises(SystemExit, match="differs in steps"):
        _script("fig7").main([*argv, "--set", "steps=40"])


def test_caption_names_the_scale_and_machine(smoke):
    root, _, _ = smoke
    common = _script("common")
    args = common.parse_args("fig7", "", ["--scale", "smoke", "--out", str(root / "fig7")])
    exp = common.run_or_reuse("fig7", "smoke", common.load_spec("fig7", args), args.out)
    text = common.caption(exp)
    assert text.startswith("smoke scale: n = 48, batch 64, 60 steps, 18 models;") and "CPU" in text


def test_paper_configs_are_the_papers_settings():
    from supjax import SweepSpec
    from supjax.config import PAPER_WEIGHT_DECAYS, PAPER_WIDTHS

    grid = SweepSpec.from_toml(EXPERIMENTS / "grid_paper.toml")
    assert (grid.n, grid.batch_size, grid.steps, grid.warmup_steps, grid.lr) == (1000, 2048, 20000, 2000, 0.01)
    assert grid.widths == PAPER_WIDTHS and grid.weight_decays == pytest.approx(PAPER_WEIGHT_DECAYS)
    assert grid.alphas == pytest.approx([i / 8 for i in range(17)])  # 1 + linspace(-1, 0, 9), 1 + linspace(0, 1, 9)
    fig7 = SweepSpec.from_toml(EXPERIMENTS / "fig7_paper.toml")
    assert fig7.activation_densities == pytest.approx(np.linspace(0, 1, 9))
    assert fig7.alphas == (1.0,) and fig7.widths == PAPER_WIDTHS and fig7.steps == 20000
    fig1 = SweepSpec.from_toml(EXPERIMENTS / "fig1_paper.toml")
    assert (fig1.n, fig1.batch_size, fig1.steps, fig1.warmup_steps, fig1.lr) == (10240, 8192, 40000, 2000, 0.02)
    assert fig1.lr_width_scaling and fig1.widths == tuple(2**k for k in range(3, 11))
    assert fig1.weight_decays == (-1.0, 0.1)
    assert fig1.distributions == ("exponential:1000.0", "power:1.2", "linear")


@pytest.mark.parametrize("name", ["fig1", "grid", "fig7"])
def test_quick_configs_fit_the_cpu_budget(name):
    """Dense work 10 B n m per model-step at the ~60 GFLOP/s the shared 2-core CPU gave: under 20 minutes."""
    from supjax import SweepSpec

    spec = SweepSpec.from_toml(EXPERIMENTS / f"{name}_quick.toml")
    per_width = spec.num_models // len(spec.widths)
    flops = 10.0 * spec.batch_size * spec.n * sum(spec.widths) * per_width * spec.steps
    assert flops / 60e9 < 15 * 60
    paper = SweepSpec.from_toml(EXPERIMENTS / f"{name}_paper.toml")
    assert set(spec.weight_decays) <= set(paper.weight_decays) | {-1.0, 1.0, 0.1}
    assert spec.lr == paper.lr and spec.lr_width_scaling == paper.lr_width_scaling


def test_paper_cells_train_in_resumable_pieces_and_combine(tmp_path):
    papercells = _script("papercells")
    out, figures = tmp_path / "cells", tmp_path / "figures"
    argv = ["--scale", "smoke", "--out", str(out), "--figures", str(figures), "--quiet"]
    assert papercells.main([*argv, "--alpha", "1.0", "--seed", "0"]) is None  # one piece, no figures yet
    assert (out / "alpha-1.0" / "seed-0" / "summary.csv").is_file() and not (out / "alpha-2.0").exists()
    assert not figures.exists()
    numbers = papercells.main(argv)  # the other pieces, then all of them together
    pieces = pd.concat([pd.read_csv(p / "summary.csv") for p in sorted(out.glob("alpha-*/seed-*"))])
    for stem in ("fig3", "fig5", "fig6"):
        _check_figure(figures, f"{stem}_papercells-smoke", pieces)
    spread = numbers["model_exponent_per_seed"]
    assert set(spread) == {"1|-1", "1|0.111111", "2|-1", "2|0.111111"}
    assert all(count == 2 for _, _, count in spread.values())  # two seeds, one fit each
    assert len(numbers["overlap_times_m"]) == 2 * 2 * 3 and numbers["by"].startswith("alpha|weight_decay|m")
    assert len(numbers["strong_overlap_times_m"]) == 2 * 2 * 3
    # The tables a piece keeps (no weights, no checkpoints) redraw everything and give the same numbers.
    kept = tmp_path / "kept"
    for piece in out.glob("alpha-*/seed-*"):
        (kept / piece.parent.name / piece.name).mkdir(parents=True)
        for name in papercells.KEPT_FILES:
            shutil.copy(piece / name, kept / piece.parent.name / piece.name / name)
    again = papercells.main(["--scale", "smoke", "--out", str(kept), "--figures", str(tmp_path / "again"), "--quiet"])
    assert json.dumps(again, sort_keys=True) == json.dumps(numbers, sort_keys=True)
    _check_figure(tmp_path / "again", "fig6_papercells-smoke", pieces)
    # --available reports the finished pieces only, and trains nothing.
    shutil.rmtree(kept / "alpha-2.0")
    interim = papercells.main(
        ["--scale", "smoke", "--out", str(kept), "--available", "--quiet", "--figures", str(kept)]
    )
    assert set(interim["model_exponent_per_seed"]) == {"1|-1", "1|0.111111"} and not (kept / "alpha-2.0").exists()
    from supjax import SweepSpec
    from supjax.config import PAPER_WEIGHT_DECAYS, PAPER_WIDTHS

    cells = SweepSpec.from_toml(EXPERIMENTS / "papercells_paper.toml")
    assert (cells.n, cells.batch_size, cells.steps, cells.warmup_steps, cells.lr) == (1000, 2048, 20000, 2000, 0.01)
    assert cells.alphas == (1.0, 1.5, 2.0) and cells.seeds == (0, 1, 2) and cells.num_models == 108
    assert cells.widths == PAPER_WIDTHS and set(cells.weight_decays) <= set(PAPER_WEIGHT_DECAYS)


def test_the_authors_run_is_compared_measure_by_measure(tmp_path):
    """The comparison of a supjax run with itself, posing as the authors' W, must agree to the digit."""
    papercells, authors = _script("papercells"), _script("authors_exp10")
    out = tmp_path / "cells"
    papercells.main(["--scale", "smoke", "--out", str(out), "--alpha", "1.0", "--quiet", "--figures", str(tmp_path)])
    from supjax import load_run

    run = load_run(out / "alpha-1.0" / "seed-0")
    strong = [r for r in run.models if r["weight_decay"] == -1.0]
    data = tmp_path / "authors.npz"
    per_step = np.repeat(run.losses[[r["index"] for r in strong]] / run.spec.n, run.spec.log_every, axis=1)
    np.savez(data, losses=per_step, **{f"W_{r['m']}": run.weights(r["index"])[0] for r in strong})
    table = authors.main(["compare", "--ours", str(out / "alpha-1.0"), "--data", str(data), "--figures", str(tmp_path)])
    assert table["widths"] == [4, 6, 8] and table["supjax_seeds"] == [0, 1]
    first = [papercells.measures(run.weights(r["index"])[0][None], run.feature_probabilities(0)) for r in strong]
    for k, m in enumerate(table["widths"]):
        row = table["authors"][m]
        assert row["final_loss"] == pytest.approx(run.final_loss()[strong[k]["index"]], rel=1e-5)
        for key in ("phi_one", "overlap_all", "overlap_raw", "overlap_represented", "overlap_frequency_weighted"):
            assert row[key] == pytest.approx(float(first[k][key][0]), rel=1e-6)
        assert row["overlap_all_times_m"] == pytest.approx(m * row["overlap_all"])
        assert set(table["supjax"][m]) == set(row) and table["supjax"][m]["phi_one"][1] >= 0
    _check_figure(tmp_path, "exp10_vs_supjax_papercells", table)
    assert json.loads((out / "alpha-1.0" / "exp10_comparison.json").read_text())["widths"] == [4, 6, 8]


@pytest.mark.slow
def test_fig4b_pieces_train_resumably_and_compare_cell_by_cell_with_the_papers_heatmap(tmp_path):
    import pandas as pd

    fig4b = _script("fig4b")
    out, figures = tmp_path / "cells", tmp_path / "figures"
    argv = ["--scale", "smoke", "--out", str(out), "--figures", str(figures), "--quiet"]
    fig4b.main([*argv, "--alpha", "2.0", "--seed", "0", "--gammas", "strong"])  # one piece of three gammas
    pieces = sorted(p.relative_to(out).as_posix() for p in out.glob("alpha-*/seed-*/*") if p.is_dir())
    assert pieces == ["alpha-2.0/seed-0/strong"]
    numbers = fig4b.main([*argv, "--available"])
    cells = pd.DataFrame(numbers["cells"])
    assert sorted(cells.weight_decay.round(4)) == sorted(round(g, 4) for g in fig4b.GAMMA_SETS["strong"])
    paper = pd.read_csv(fig4b.PAPER_CELLS)
    for cell in cells.itertuples():  # the paper's column is its cell at the same (gamma, alpha)
        same = paper[(paper.alpha == cell.alpha) & np.isclose(paper.weight_decay, cell.weight_decay, atol=1e-3)]
        assert cell.paper == pytest.approx(float(same.model_exponent.iloc[0]))
    per_seed = pd.DataFrame(numbers["per_seed"])
    summary = pd.read_csv(out / "alpha-2.0/seed-0/strong/summary.csv")
    models = summary[summary.weight_decay == fig4b.GAMMA_SETS["strong"][0]]
    law = np.polyfit(np.log(models.m), np.log(models.final_loss), 1)[0]
    first = per_seed[np.isclose(per_seed.weight_decay, fig4b.GAMMA_SETS["strong"][0])]
    assert float(first.exponent.iloc[0]) == pytest.approx(-law, rel=1e-9)  # the paper's fit: OLS in log-log
    assert {p.name for p in figures.iterdir()} >= {f"{f}_paper_settings.png" for f in ("fig4b", "fig6e", "fig5b")}


@pytest.mark.slow
def test_the_llc_phase_diagram_estimates_every_model_and_answers_per_regime(tmp_path):
    llc_phase = _script("llc_phase")
    out, figures = tmp_path / "llc", tmp_path / "figures"
    numbers = llc_phase.main(["--scale", "smoke", "--out", str(out), "--figures", str(figures), "--quiet"])
    toy, llc = pd.read_csv(out / "toy" / "summary.csv"), pd.read_csv(out / "llc" / "llc_summary.csv")
    assert len(toy) == 6 and len(llc) == 6 * 2 and set(llc.model) == set(toy["index"])  # every model, both eps
    assert [s["step_size"] for s in numbers["settings"]] == [1e-4, 3e-4]
    for setting in numbers["settings"]:
        strong = setting["regimes"]["strong"]
        rows = llc[(llc.weight_decay < 0) & (llc.step_size == setting["step_size"])]
        by_width = rows.groupby("m").llc_mean.mean()
        assert strong["llc_by_width"] == pytest.approx({str(m): v for m, v in by_width.items()}, rel=1e-3, abs=1e-3)
        share = rows.llc_mean / (rows.parameters / 2)
        assert strong["share_of_half_d"]["mean"] == pytest.approx(share.mean(), rel=1e-3, abs=1e-3)
    drawn = {f"llc_{stem}_smoke.{kind}" for stem in ("phase", "width") for kind in ("png", "pdf")}
    assert {p.name for p in figures.iterdir()} == drawn
    assert (figures / "llc_width_smoke.png").read_bytes().startswith(PNG_MAGIC)
    again = llc_phase.main(["--scale", "smoke", "--out", str(out), "--figures", str(figures), "--quiet"])
    assert again["settings"] == numbers["settings"]  # the second call reuses both runs
