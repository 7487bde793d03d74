import os
from pathlib import Path

import matplotlib.colors
import numpy as np
import pytest
from matplotlib.figure import Figure

from supjax import SweepSpec, analysis, fit, load_run, plots, run_sweep
from supjax.cli import main


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    spec = SweepSpec(
        n=60,
        batch_size=128,
        widths=(4, 6, 8),
        weight_decays=(-1.0, 1.0),
        alphas=(0.8, 1.4),
        seeds=(0, 1),
        steps=200,
        warmup_steps=20,
        progress=False,
    )
    path = tmp_path_factory.mktemp("runs") / "run"
    run_sweep(spec, out=path)
    summary, exponents = analysis.analyze(path)
    return path, summary, exponents


def test_summary_has_the_papers_columns_and_direct_values(analysed):
    path, summary, _ = analysed
    run = load_run(path)
    assert list(summary.columns[:15]) == list(analysis.SUMMARY_COLUMNS[:15])
    assert len(summary) == run.spec.num_models
    np.testing.assert_allclose(summary.final_loss, run.final_loss(), rtol=1e-6)
    for row in summary.itertuples():
        W, _ = run.weights(row.index)
        norms = np.linalg.norm(W, axis=1)
        assert row.represented_fraction == pytest.approx(np.mean(norms > 0.5))
        assert row.strong_fraction == pytest.approx(np.mean(norms > 1.0))
        w = W / norms[:, None]
        gram = w @ w.T
        off = gram[~np.eye(len(w), dtype=bool)]
        assert row.mean_squared_overlap == pytest.approx(np.mean(off**2), rel=1e-4)
        assert row.coherence == pytest.approx(np.abs(off).max(), rel=1e-4)
        p = run.feature_probabilities(row.index)
        assert row.unlearned_loss == pytest.approx(
            np.sum(np.where(norms <= 0.5, 4 * p / 3 - p**2, 0)), rel=1e-4, abs=1e-7
        )
        assert row.welch_bound == pytest.approx((60 - row.m) / (row.m * 59))


def test_exponents_are_the_log_log_slopes_per_group_and_seed(analysed):
    _, summary, exponents = analysed
    assert len(exponents) == 2 * 2 * 3  # (gamma, alpha) groups x (seed 0, seed 1, all)
    for row in exponents.itertuples():
        part = summary[(summary.weight_decay == row.weight_decay) & (summary.alpha == row.alpha)]
        if str(row.seed) != "all":
            part = part[part.seed == int(row.seed)]
        slope = np.polyfit(np.log(part.m), np.log(part.final_loss), 1)[0]
        assert row.model_exponent == pytest.approx(-slope, rel=1e-5, abs=1e-6)
        if str(row.seed) == "all":  # the interval of whole seeds, as fit.bootstrap_exponent draws it
            interval = fit.bootstrap_exponent(part.m, part.final_loss, part.seed, n_boot=1000)
            assert (row.ci_low, row.ci_high) == pytest.approx((interval.low, interval.high), rel=1e-9)
            assert interval.low < row.model_exponent < interval.high
        else:
            assert np.isnan(row.ci_low) and np.isnan(row.ci_high)
    strong = exponents[exponents.weight_decay < 0]
    assert set(strong.regime) == {"strong"}


def test_load_results_round_trips(analysed):
    path, summary, exponents = analysed
    loaded_summary, loaded_exponents = analysis.load_results(path)
    np.testing.assert_allclose(loaded_summary.final_loss, summary.final_loss)
    assert list(loaded_exponents.seed) == [str(s) for s in exponents.seed]


def _record_saved_figures(monkeypatch) -> dict:
    """``{file stem: Figure}`` of every figure saved to a file from now on (``Figure.savefig`` wrapped)."""
    saved, savefig = {}, Figure.savefig

    def recording(fig, fname, *args, **kwargs):
        if isinstance(fname, str | os.PathLike):
            saved[Path(fname).stem] = fig
        return savefig(fig, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording)
    return saved


def _marked_lines(ax) -> list:
    """The lines of ``ax`` drawn with markers (the data; fits and references are plain lines)."""
    return [line for line in ax.get_lines() if line.get_marker() not in ("None", "", None)]


def test_plot_run_draws_every_figure_from_the_tables_and_writes_png_and_pdf(analysed, tmp_path, monkeypatch):
    path, _, _ = analysed
    summary, exponents = analysis.load_results(path)  # the tables plot_run draws, as written
    figures = _record_saved_figures(monkeypatch)
    written, skipped = plots.plot_run(path, tmp_path / "figs")
    names = {f.stem for f in written}
    assert names == {
        "loss_vs_width",
        "represented_fraction_vs_weight_decay",
        "phase_represented_fraction",
        "phase_model_exponent",
        "overlap_vs_width",
        "row_norms",
        "loss_vs_unlearned",
    }
    assert not skipped
    assert sorted(f.suffix for f in written) == [".pdf"] * 7 + [".png"] * 7
    for file in written:
        assert file.read_bytes()[:4] in (b"\x89PNG", b"%PDF")
    assert set(figures) == names
    gammas, widths = sorted(summary.weight_decay.unique()), sorted(summary.m.unique())
    colours = plots.gamma_colours(summary.weight_decay)
    panels = sorted(summary.distribution.unique(), key=lambda d: float(d.partition(":")[2]))  # power:0.8, power:1.4

    # loss against width: per distribution, one marked line per weight decay, coloured by it, the mean over seeds
    for ax, distribution in zip(figures["loss_vs_width"].axes[: len(panels)], panels, strict=True):
        lines = _marked_lines(ax)
        assert len(lines) == len(gammas), [line.get_label() for line in lines]
        for line, gamma in zip(lines, gammas, strict=True):
            mean = summary[(summary.distribution == distribution) & (summary.weight_decay == gamma)]
            mean = mean.groupby("m").final_loss.mean()
            np.testing.assert_array_equal(line.get_xdata(), widths)
            np.testing.assert_allclose(line.get_ydata(), mean.loc[widths], rtol=1e-12)
            np.testing.assert_allclose(matplotlib.colors.to_rgba(line.get_color()), colours.to_rgba(gamma))

    # phi_1/2 against weight decay: one line per width, the mean over seeds
    for ax, distribution in zip(figures["represented_fraction_vs_weight_decay"].axes, panels, strict=True):
        for line, m in zip(_marked_lines(ax), widths, strict=True):
            part = summary[(summary.distribution == distribution) & (summary.m == m)]
            np.testing.assert_array_equal(line.get_xdata(), gammas)
            expected = part.groupby("weight_decay").represented_fraction.mean().loc[gammas]
            np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12)

    # the phase diagrams: cells [alpha, gamma] are the table's mean at the largest width / the pooled fit
    largest = summary[summary.m == max(widths)]
    pooled = exponents[exponents.seed.astype(str) == "all"]
    for name, frame, value in (
        ("phase_represented_fraction", largest, "represented_fraction"),
        ("phase_model_exponent", pooled, "model_exponent"),
    ):
        mesh = figures[name].axes[0].collections[0]
        expected = frame.pivot_table(index="alpha", columns="weight_decay", values=value, aggfunc="mean")
        np.testing.assert_allclose(mesh.get_array(), expected.sort_index().to_numpy(), rtol=1e-12, err_msg=name)

    # overlaps against width: the strong regime's mean over seeds and distributions, and 1/m
    ax = figures["overlap_vs_width"].axes[0]
    (strong,) = _marked_lines(ax)
    expected = summary[summary.weight_decay < 0].groupby("m").mean_squared_overlap.mean()
    np.testing.assert_array_equal(strong.get_xdata(), widths)
    np.testing.assert_allclose(strong.get_ydata(), expected.loc[widths], rtol=1e-12)
    one_over_m = next(line for line in ax.get_lines() if line.get_label() == "$1/m$")
    np.testing.assert_allclose(one_over_m.get_ydata(), 1 / one_over_m.get_xdata())

    # row norms: histograms of ||W_i|| of the first model at the largest width, for the extreme weight decays
    run = load_run(path)
    ax = figures["row_norms"].axes[0]
    assert len(ax.containers) == 2
    for bars, gamma in zip(ax.containers, (gammas[0], gammas[-1]), strict=True):
        first = next(r for r in run.models if r["m"] == max(widths) and r["weight_decay"] == gamma)
        counts, _ = np.histogram(np.linalg.norm(run.weights(first["index"])[0], axis=1), bins=40)
        np.testing.assert_array_equal([bar.get_height() for bar in bars], counts)
        np.testing.assert_allclose(bars[0].get_facecolor()[:3], colours.to_rgba(gamma)[:3])

    # loss against the unlearned loss: one point per model, coloured by its weight decay
    points = figures["loss_vs_unlearned"].axes[0].collections[0]
    usable = summary[(summary.unlearned_loss > 0) & np.isfinite(summary.final_loss)]
    np.testing.assert_allclose(points.get_offsets(), usable[["unlearned_loss", "final_loss"]].to_numpy())
    np.testing.assert_array_equal(points.get_array(), usable.weight_decay)


def test_cli_analyze_and_plot(analysed, capsys, tmp_path):
    path, summary, _ = analysed
    assert main(["analyze", str(path)]) == 0
    printed = capsys.readouterr().out
    written_summary, written_exponents = analysis.load_results(path)
    np.testing.assert_allclose(written_summary.final_loss, summary.final_loss)
    pooled = written_exponents[written_exponents.seed.astype(str) == "all"]
    for exponent in pooled.model_exponent:  # every pooled exponent is printed, in three decimals
        assert f"{exponent:>8.3f}" in printed
    assert main(["plot", str(path), "--out", str(tmp_path / "f")]) == 0
    pdf = (tmp_path / "f" / "phase_model_exponent.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"%%EOF" in pdf[-64:]
    assert (tmp_path / "f" / "phase_model_exponent.png").read_bytes()[:4] == b"\x89PNG"


def test_run_directory_problems_are_one_line_in_their_own_words(analysed, tmp_path, capsys):
    path, _, _ = analysed
    for argv, words in [
        (["analyze", str(tmp_path / "missing")], "does not exist"),
        (["plot", str(tmp_path)], "has no config.toml; pass a finished run written by `supjax sweep`"),
        (["sweep", str(path / "config.toml"), "--out", str(path), "--quiet"], "holds a run; add --resume"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("supjax: error: run directory ") and err.count("\n") == 1, err
        assert words in err and "config field" not in err, err


@pytest.mark.slow
def test_compare_accepts_a_run_against_itself_and_refuses_a_different_training(analysed, tmp_path):
    from supjax.errors import RunDirError

    path, summary, _ = analysed
    same = analysis.compare(path, path)
    assert same["models"] == len(summary) and same["max_relative_loss_change"] == 0.0
    assert same["losses_within_seed_std"] == 1.0 and same["max_exponent_change"] == 0.0 and same["within_noise"]

    # A twentieth of the learning rate leaves the models far from where the reference ends.
    spec = load_run(path).spec
    slow = tmp_path / "slow"
    run_sweep(spec.replace(lr=spec.lr / 20), out=slow)
    analysis.analyze(slow)
    changed = analysis.compare(path, slow)
    assert not changed["within_noise"] and changed["losses_within_seed_std"] < 0.5
    assert changed["max_exponent_change"] > 0  # the toy fits' standard errors are too wide to tell here

    # A model that diverged in one run only is a disagreement; diverged in both, an agreement.
    import pandas as pd

    for name, rows in (("one", [0]), ("both", [0])):
        edited = tmp_path / name
        edited.mkdir()
        table = pd.read_csv(path / "summary.csv")
        table.loc[rows, ["diverged", "final_loss"]] = [True, np.nan]
        table.to_csv(edited / "summary.csv", index=False)
        (edited / "exponents.csv").write_text((path / "exponents.csv").read_text())
    one = analysis.compare(path, tmp_path / "one")
    assert one["diverged_in_one_run"] == 1 and one["losses_within_seed_std"] == 1 - 1 / len(summary)
    both = analysis.compare(tmp_path / "both", tmp_path / "one")
    # model 0 agrees; its cell's other seed has no spread left to be compared with
    assert both["diverged_in_one_run"] == 0 and both["losses_within_seed_std"] == 1 - 1 / len(summary)

    one_seed = tmp_path / "one-seed"
    run_sweep(spec.replace(seeds=(0,)), out=one_seed)
    analysis.analyze(one_seed)
    with pytest.raises(RunDirError, match="other models"):
        analysis.compare(path, one_seed)
    with pytest.raises(RunDirError, match="one seed"):
        analysis.compare(one_seed, one_seed)
