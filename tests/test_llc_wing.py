"""The LLC wing (chains at the toy models of a run, on the engine): against the estimator, its tables,
resume, snapshots, config errors and the CLI. (tests/test_llc.py holds the estimator against known
answers; the two files are apart so that pytest-xdist can give them to different workers.)"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supjax.llc import sgld

# ---- the LLC wing: chains at the toy models of a run, on the engine ----------------------------------


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """Four small toy models, both regimes, with three snapshots."""
    from supjax import SweepSpec, run_sweep

    # chunks of 20 steps: every checkpoint (each 60) and snapshot falls on a chunk end, one chunk program
    spec = SweepSpec(n=40, batch_size=128, widths=(4, 8), weight_decays=(-1.0, 1.0), steps=600, warmup_steps=60,
                     snapshot_steps=(200, 400, 600), chunk_steps=20, progress=False)  # fmt: skip
    out = tmp_path_factory.mktemp("toy") / "run"
    run_sweep(spec, out=out)
    return out


SPEC = dict(step_sizes=(1e-4, 1e-3), localizations=(100.0,), chains=3, draws=200, batch_size=64, progress=False)


@pytest.fixture(scope="module")
def llc_dir(toy_run, tmp_path_factory):
    from supjax import llc

    out = tmp_path_factory.mktemp("llc") / "run"
    return out, llc.run_llc(toy_run, llc.LlcSpec(**SPEC), out=out)


def test_the_wing_agrees_with_the_estimator_on_the_same_toy_model(toy_run):
    """The wing (the toy model's reported loss, summed over features; fresh batches from its feature law)
    and :func:`sgld.estimate` on that loss written out by hand estimate one lambda: their chain means agree
    within the chains' spread."""
    from supjax import data, llc, load_run, variants

    run = load_run(toy_run)
    setting = dict(nbetas=(20.0,), localizations=(50.0,), step_sizes=(3e-4,), chains=8, draws=400, batch_size=64)
    wing = llc.run_llc(run, llc.LlcSpec(**setting, models=(2,), progress=False)).summary()
    W, b = run.weights(2)
    p = run.feature_probabilities(2)
    definition = variants.get("tied", fused_gradient=False)  # autodiff: jax.grad of the reported loss n x MSE

    def loss(w, x):
        return definition.loss_and_grad(w, x)[0]

    thresholds, scales = (jnp.asarray(a) for a in data.sampler_tables(p))

    def batch(key, t):
        return data.features_from_bits(jax.random.bits(key, (64, len(p)), jnp.uint32), thresholds, scales)

    by_hand = sgld.estimate(loss, {"W": jnp.asarray(W), "b": jnp.asarray(b)}, nbeta=20.0, localization=50.0,
                            step_size=3e-4, chains=8, draws=400, seed=5, batch=batch)  # fmt: skip
    a, b_ = float(wing.llc_mean[0]), float(by_hand.mean[0])
    spread = math.hypot(float(wing.llc_std[0]), float(by_hand.std[0])) / math.sqrt(8)
    assert abs(a - b_) < 4 * spread, (a, b_, spread)
    assert a > 0.1 and wing.parameters[0] == 40 * 8 + 40


def test_a_calibration_grid_on_the_engine_compiles_one_program(toy_run, compile_log):
    from supjax import llc

    with compile_log:
        llc.run_llc(toy_run, llc.LlcSpec(**SPEC))
    assert compile_log.count("train_chunk") == 1 and compile_log.count("init_states") == 1
    other = {**SPEC, "step_sizes": (2e-4, 5e-4), "localizations": (30.0,), "nbetas": (9.0,), "seed": 4}
    with compile_log:
        llc.run_llc(toy_run, llc.LlcSpec(**other))
    assert compile_log.count("train_chunk") == compile_log.count("init_states") == 0


def test_the_tables_say_what_each_chain_estimated(llc_dir):
    out, run = llc_dir
    table, summary = run.table(), run.summary()
    assert len(table) == 4 * 3 * 2 and len(summary) == 4 * 2  # w* x chains x settings; w* x settings
    assert (
        set(summary.m) == {4, 8} and set(summary.step) == {600} and summary.final.all() and set(summary.chains) == {3}
    )
    assert (table.loss_convention == "summed over features").all()
    np.testing.assert_allclose(table.llc, table.nbeta * (table.mean_loss - table.loss_at_w_star), rtol=1e-5)
    again = __import__("supjax").llc.load_llc_run(out)
    np.testing.assert_array_equal(again.table().llc, table.llc)
    assert {"llc.csv", "llc_summary.csv", "traces.npz", "chains.csv", "llc.toml", "progress.json"} <= {
        p.name for p in out.iterdir()
    }


def test_an_interrupted_llc_run_resumes_to_the_same_numbers(toy_run, llc_dir, tmp_path, sigterm_after_a_chunk):
    from supjax import llc, status

    _, finished = llc_dir
    spec = llc.LlcSpec(**SPEC, checkpoint_every=100)
    with pytest.raises(llc.sweep.LlcInterrupted) as stopped:
        llc.run_llc(toy_run, spec, out=tmp_path / "run")
    assert stopped.value.exit_code == 143 and "\n" not in str(stopped.value)
    assert str(stopped.value).startswith("interrupted at draw 100 of 200; continue with: supjax llc ")
    state = status.run_status(tmp_path / "run")
    assert state["kind"] == "llc" and state["batches"][0]["checkpointed"] == 100 and not state["finished"]
    sigterm_after_a_chunk.undo()
    resumed = llc.run_llc(toy_run, spec, out=tmp_path / "run", resume=True)
    for name in ("losses", "reference", "acceptance"):
        np.testing.assert_array_equal(resumed.traces[name], finished.traces[name])


def test_llc_along_training_reads_the_snapshots(toy_run, tmp_path):
    import pandas as pd

    from supjax import llc, plots
    from supjax.cli import main

    spec = llc.LlcSpec(**{**SPEC, "step_sizes": (1e-3,)}, at_steps=(200, 600), select={"m": [8]})
    summary = llc.run_llc(toy_run, spec, out=tmp_path / "llc").summary()
    # the figure: lambda_hat beside the toy model's loss and geometry at its snapshots (measured by `plot`)
    assert main(["plot", str(tmp_path / "llc")]) == 0
    assert (tmp_path / "llc" / "figures" / "llc_along_training.png").is_file()
    trajectory = pd.read_csv(toy_run / "trajectory.csv")
    fig = plots.plot_llc_along_training(summary, trajectory)
    loss_axis, geometry_axis = fig.axes[1], fig.axes[2]
    model = int(summary.model.iloc[0])
    curve = trajectory[trajectory["index"] == model].sort_values("step")
    assert len(geometry_axis.lines) == 2 * summary.model.nunique()
    np.testing.assert_allclose(loss_axis.lines[0].get_ydata(), curve.final_loss)
    np.testing.assert_allclose(geometry_axis.lines[0].get_ydata(), curve.mean_squared_overlap)
    assert sorted(set(summary.step)) == [200, 600] and set(summary.m) == {8} and len(summary) == 4
    final = llc.run_llc(toy_run, llc.LlcSpec(**{**SPEC, "step_sizes": (1e-3,)}, select={"m": [8]})).summary()
    # the snapshot at the last step is the final weights: the same w*, the same chains
    np.testing.assert_allclose(summary[summary.step == 600].llc_mean.to_numpy(), final.llc_mean.to_numpy())


@pytest.mark.parametrize(
    ("values", "field"),
    [({"at_steps": (300,)}, "at_steps"), ({"select": {"m": [5]}}, "select.m"), ({"step_sizes": (-1e-3,)}, "step_sizes"),
     ({"burn_in": 200}, "burn_in"), ({"chains": 0}, "chains"), ({"localizations": (float("nan"),)}, "localizations")],
)  # fmt: skip
def test_bad_llc_configs_are_one_line_before_anything_compiles(toy_run, values, field, compile_log):
    from supjax import ConfigError, llc

    with compile_log, pytest.raises(ConfigError) as err:
        llc.run_llc(toy_run, llc.LlcSpec(**{**SPEC, **values}))
    assert err.value.field == field and "\n" not in str(err.value)
    assert compile_log.count() == 0


def test_the_cli_estimates_analyses_and_plots(toy_run, tmp_path, capsys):
    from supjax.cli import main

    config = tmp_path / "llc.toml"
    config.write_text("step_sizes = [1e-3]\nchains = 2\ndraws = 40\nbatch_size = 32\n[select]\nweight_decay = [-1.0]\n")
    out = tmp_path / "llc"
    assert main(["llc", str(toy_run), "--config", str(config), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "2 (w*, setting) pairs" in printed and "chains of 40 draws at 2 w*" in printed
    assert main(["analyze", str(out)]) == 0 and "llc_summary.csv" in capsys.readouterr().out
    assert main(["plot", str(out)]) == 0
    assert {p.name for p in (out / "figures").glob("*.png")} == {"llc_traces.png", "llc_phase.png", "llc_vs_width.png"}
    assert main(["llc", str(toy_run), "--config", str(config), "--out", str(out)]) == 2  # the directory holds a run
    assert "holds a run; add --resume" in capsys.readouterr().err
