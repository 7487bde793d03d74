"""Training dynamics: parameter snapshots, trajectory.csv, their figures, and runs as labelled arrays."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from supjax import ConfigError, SweepSpec, load_run, plots, run_sweep, snapshots
from supjax.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("snapshots") / "run"
    spec = SweepSpec(
        n=48,
        batch_size=128,
        widths=(4, 8, 12),
        weight_decays=(-1.0, 0.5),
        alphas=(1.0,),
        seeds=(0, 1),
        steps=1000,
        warmup_steps=50,
        snapshot_steps=8,
        chunk_steps=20,  # chunks of 2 windows, cut to 1 by some snapshots: two programs, not one per cut length
        progress=False,
    )
    run_sweep(spec, out=out)
    assert main(["analyze", str(out), "--over-time"]) == 0
    return out


def test_over_time_gives_every_summary_metric_at_every_snapshot(run_dir):
    trajectory = pd.read_csv(run_dir / "trajectory.csv")
    summary = pd.read_csv(run_dir / "summary.csv")
    steps = sorted(trajectory.step.unique())
    assert len(steps) >= 8 and steps[-1] == 1000 and steps == snapshots.snapshot_steps(run_dir)
    assert set(summary.columns) <= set(trajectory.columns)
    last = trajectory[trajectory.step == 1000].sort_values("index").reset_index(drop=True)
    for column in ("represented_fraction", "mean_squared_overlap", "etf_variance_ratio", "final_loss"):
        np.testing.assert_array_equal(last[column].to_numpy(), summary[column].to_numpy())
    # Superposition forms: under growth the share of represented features rises from the init's.
    strong = trajectory[trajectory.weight_decay < 0].groupby("step").represented_fraction.mean()
    assert strong.iloc[-1] > strong.iloc[0]
    # At the first snapshot the rows are still the init's random directions: m x overlap ~ 1.
    first = trajectory[trajectory.step == steps[0]]
    np.testing.assert_allclose((first.mean_squared_overlap * first.m).mean(), 1.0, rtol=0.2)
    exponents = pd.read_csv(run_dir / "exponents_over_time.csv", dtype={"seed": str})
    assert sorted(exponents.step.unique()) == steps
    final = pd.read_csv(run_dir / "exponents.csv", dtype={"seed": str})
    at_end = exponents[exponents.step == 1000].reset_index(drop=True)
    np.testing.assert_allclose(at_end.model_exponent, final.model_exponent, rtol=1e-12)


def test_a_snapshot_holds_the_weights_of_that_step(run_dir):
    run = load_run(run_dir)
    final = snapshots.load_snapshot(run_dir, 1000)
    for m, group in run.params.items():
        np.testing.assert_array_equal(final[m]["W"], group["W"])
        np.testing.assert_array_equal(final[m]["index"], group["index"])
        assert np.all(final[m]["diverged_at"] == -1)
    # The first snapshot is the init moved by a few small steps: rows of norm ~1 (W ~ N(0, 1/m)).
    early = snapshots.load_snapshot(run_dir, snapshots.snapshot_steps(run_dir)[0])
    np.testing.assert_allclose(np.mean(np.sum(early[4]["W"] ** 2, axis=-1)), 1.0, rtol=0.15)
    assert np.abs(early[4]["W"] - final[4]["W"]).max() > 0.1


def test_the_run_as_labelled_arrays(run_dir):
    ds = load_run(run_dir).to_xarray()
    assert {"m", "weight_decay", "step", "seed"} <= set(ds.dims) and "distribution" not in ds.dims
    assert ds.sizes["m"] == 3 and ds.sizes["step"] == 100 and int(ds.is_snapshot.sum()) >= 8
    summary = pd.read_csv(run_dir / "summary.csv")
    row = summary[(summary.m == 8) & (summary.weight_decay == 0.5) & (summary.seed == 1)].iloc[0]
    assert float(ds.final_loss.sel(m=8, weight_decay=0.5, seed=1)) == pytest.approx(row.final_loss)
    assert float(ds.represented_fraction.sel(m=8, weight_decay=0.5, seed=1, step=1000)) == row.represented_fraction
    # A phase diagram is a .sel and a .mean: the mean over seeds, width by weight decay.
    phase = ds.final_loss.mean("seed")
    expected = summary.groupby(["m", "weight_decay"]).final_loss.mean().unstack()
    np.testing.assert_allclose(phase.transpose("m", "weight_decay").values, expected.values, rtol=1e-6)
    # The loss curves: logged windows of every model.
    run = load_run(run_dir)
    index = int(row["index"])
    np.testing.assert_array_equal(ds.loss.sel(m=8, weight_decay=0.5, seed=1).values, run.losses[index])
    snap = load_run(run_dir).to_xarray(steps="snapshots")
    assert snap.sizes["step"] == len(snapshots.snapshot_steps(run_dir))
    assert not np.isnan(snap.mean_squared_overlap.values).any()


def test_without_xarray_the_error_is_one_line(run_dir, monkeypatch):
    from supjax import SupjaxError

    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(SupjaxError, match=r'pip install "supjax\[xarray\]"'):
        load_run(run_dir).to_xarray()


def test_training_figures_are_drawn_when_a_run_has_snapshots(tmp_path, monkeypatch):
    # chunks of 2 windows, some cut to 1 by a snapshot: two chunk programs, not one per cut length
    spec = SweepSpec(
        n=5, batch_size=256, widths=(2, 3), weight_decays=(-1.0, 0.3), distribution=("power:0.3",),
        steps=600, warmup_steps=30, snapshot_steps=6, chunk_steps=20, progress=False,
    )  # fmt: skip
    run_sweep(spec, out=tmp_path / "run")
    saved, savefig = {}, Figure.savefig

    def recording(fig, fname, *args, **kwargs):  # {file stem: Figure} of every figure written to a file
        if isinstance(fname, str | os.PathLike):
            saved[Path(fname).stem] = fig
        return savefig(fig, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording)
    assert main(["plot", str(tmp_path / "run")]) == 0
    figures = tmp_path / "run" / "figures"
    for name in ("metrics_over_time.png", "model_exponent_over_time.png", "features_2d_over_training.gif"):
        assert (figures / name).is_file(), name

    # metrics over time: per panel, one line per model, its trajectory.csv column against step, coloured by gamma
    # (drawn from the float32 table that trajectory.csv then records)
    trajectory = pd.read_csv(tmp_path / "run" / "trajectory.csv")
    trajectory["overlap_times_m"] = trajectory.mean_squared_overlap * trajectory.m
    colours = plots.gamma_colours(trajectory.weight_decay)
    panels = saved["metrics_over_time"].axes[:4]
    for k, (_, rows) in enumerate(trajectory.groupby("index")):
        rows = rows.sort_values("step")
        columns = ("represented_fraction", "overlap_times_m", "etf_variance_ratio", "final_loss")
        for ax, column in zip(panels, columns, strict=True):
            line = ax.get_lines()[k]
            np.testing.assert_array_equal(line.get_xdata(), rows.step)
            np.testing.assert_allclose(line.get_ydata(), rows[column], rtol=1e-6, err_msg=column)
            np.testing.assert_allclose(line.get_color(), colours.to_rgba(rows.weight_decay.iloc[0]))

    # the model exponent over time: one error-bar line per weight decay, the pooled fit at every snapshot
    exponents = pd.read_csv(tmp_path / "run" / "exponents_over_time.csv", dtype={"seed": str})
    pooled = exponents[(exponents.seed == "all") & np.isfinite(exponents.model_exponent)]
    bars = saved["model_exponent_over_time"].axes[0].containers
    assert len(bars) == 2
    for container, (_, rows) in zip(bars, pooled.groupby(["distribution", "weight_decay"]), strict=True):
        rows = rows.sort_values("step")
        np.testing.assert_array_equal(container.lines[0].get_xdata(), rows.step)
        np.testing.assert_allclose(container.lines[0].get_ydata().astype(float), rows.model_exponent, rtol=1e-6)

    # the animation: one frame per snapshot, each the snapshot's m = 2 rows, one panel per weight decay
    steps = snapshots.snapshot_steps(tmp_path / "run")
    frames, labels = plots.features_2d_snapshots(tmp_path / "run")
    assert sorted(frames) == steps and len(labels) == 2
    for step, W in frames.items():
        np.testing.assert_array_equal(W, snapshots.load_snapshot(tmp_path / "run", step)[2]["W"])
    from PIL import Image

    with Image.open(figures / "features_2d_over_training.gif") as gif:
        assert gif.n_frames == len(steps)


def test_bad_snapshot_steps_are_config_errors():
    spec = SweepSpec(n=48, widths=(4,), steps=1000, progress=False)
    for bad in (0, [15], [10, 10], [2000], "eight"):
        with pytest.raises(ConfigError, match="snapshot_steps"):
            spec.replace(snapshot_steps=bad)
    assert spec.replace(snapshot_steps=[500, 20]).snapshot_schedule == (20, 500)


CONFIG = """
n = 200
batch_size = 256
widths = [8, 16]
weight_decays = [-1.0, 1.0]
steps = 3000
warmup_steps = 100
chunk_steps = 100
checkpoint_every = 500
snapshot_steps = [300, 1000, 2000, 3000]
"""


@pytest.mark.slow
def test_a_sweep_killed_between_snapshots_resumes_to_the_same_snapshots_bitwise(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    reference = tmp_path / "whole"
    run_sweep(SweepSpec.from_toml(config).replace(progress=False), out=reference)
    out = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "supjax.cli", "sweep", str(config), "--out", str(out), "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while snapshots.snapshot_steps(out) != [300, 1000]:
        assert process.poll() is None and time.time() < deadline, process.stderr.read() if process.poll() else ""
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = snapshots.snapshot_steps(out)
    assert kept[:2] == [300, 1000] and 3000 not in kept and not (out / "losses.npy").exists()
    with pytest.warns(UserWarning, match="taking over the lock"):  # the killed sweep could not release it
        assert main(["sweep", str(config), "--out", str(out), "--resume", "--quiet"]) == 0
    assert snapshots.snapshot_steps(out) == snapshots.snapshot_steps(reference) == [300, 1000, 2000, 3000]
    for step in (300, 1000, 2000, 3000):
        ours, theirs = snapshots.load_snapshot(out, step), snapshots.load_snapshot(reference, step)
        for m in ours:
            for key in ("W", "b", "diverged_at", "index"):
                np.testing.assert_array_equal(ours[m][key], theirs[m][key])
    shutil.rmtree(reference)


def test_chunks_cut_by_snapshots_run_as_powers_of_two_and_change_no_result(tiny_spec, compile_log, tmp_path):
    """Snapshots at windows 3, 7, 13, 25, 37 and 51 of 60 cut chunks of 16 windows into gaps of 3, 4, 6,
    12, 12, 14 and 9 windows; run as powers of two they compile four chunk programs (1, 2, 4, 8), not
    one per gap length, and the run equals the same sweep without snapshots bitwise."""
    from supjax.engine import driver

    assert [driver.cut(16, left) for left in (1, 3, 7, 9, 15, 16, 40)] == [1, 2, 4, 8, 8, 16, 16]
    spec = tiny_spec.replace(n=52, steps=600, chunk_steps=160, checkpoint_every=600, progress=False)  # own shapes
    with compile_log:
        cut = run_sweep(spec.replace(snapshot_steps=(30, 70, 130, 250, 370, 510)), out=tmp_path / "cut")
    assert compile_log.count("train_chunk") == 4
    whole = run_sweep(spec)
    np.testing.assert_array_equal(cut.losses, whole.losses)
    for m, group in whole.params.items():
        for name, value in group.items():
            np.testing.assert_array_equal(cut.params[m][name], value, err_msg=f"{m}/{name}")
