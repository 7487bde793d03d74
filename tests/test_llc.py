"""The local learning coefficient: devinterp's estimator against known answers, then the LLC wing."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supjax.llc import sgld

# devinterp's normal-crossing data: x ~ N(0, 2^2), y = 0.25 N(0, 1), 1000 samples, full batch.
_RNG = np.random.default_rng(42)
X = jnp.asarray(_RNG.normal(0.0, 2.0, 1000), jnp.float32)
Y = jnp.asarray(0.25 * _RNG.normal(0.0, 1.0, 1000), jnp.float32)
NBETA = 1000 / math.log(1000)  # devinterp's optimal_nbeta for a batch of 1000: 144.76


def test_a_quadratic_loss_gives_the_exact_finite_step_expectation():
    """L = L0 + 1/2 sum h_i w_i^2, full batch: the chain is Gaussian with stationary variance
    1 / (a (1 - eps a / 4)), a = n beta h + gamma_loc, so E[lambda_hat] = 1/2 sum n beta h / (a (1 - eps a / 4)):
    4.966 as eps -> 0 and 5.154 at eps = 1e-3 for d = 10, h = 1, n beta = 144.76, gamma_loc = 1."""
    d, gamma = 10, 1.0
    a = NBETA + gamma
    exact = {eps: 0.5 * d * NBETA / (a * (1 - eps * a / 4)) for eps in (1e-4, 1e-3)}
    assert exact[1e-3] == pytest.approx(5.154, abs=1e-3) and 0.5 * d * NBETA / a == pytest.approx(4.966, abs=1e-3)

    def quadratic(w, batch):
        return 3.0 + 0.5 * jnp.sum(w**2)

    est = sgld.estimate(quadratic, jnp.zeros(d), nbeta=NBETA, localization=gamma, step_size=[1e-4, 1e-3],
                        chains=16, draws=20_000, burn_in=1000)  # fmt: skip
    for k, eps in enumerate((1e-4, 1e-3)):
        stderr = est.std[k] / math.sqrt(16)
        assert abs(est.mean[k] - exact[eps]) < 4 * stderr, (eps, est.mean[k], exact[eps], stderr)
    # the finite-step correction is resolved: eps = 1e-3 sits above the eps -> 0 value by many standard errors
    assert est.mean[1] - 0.5 * d * NBETA / a > 5 * est.std[1] / math.sqrt(16)
    assert np.all(est.diverged_at == -1) and np.nanmean(est.acceptance[1]) > 0.9


@pytest.mark.parametrize(
    ("powers", "true"),
    [((0, 1), 0.5), ((1, 1), 0.5), ((0, 2), 0.25), ((1, 2), 0.25), ((2, 2), 0.25), ((0, 3), 1 / 6), ((3, 3), 1 / 6)],
)
def test_devinterp_normal_crossing(powers, true):
    """f(x) = x prod w_i^p_i at w* = 0 has lambda = 1 / (2 max p_i); devinterp's test: 10 chains of 5000
    draws, eps = 2e-4, n beta = 144.76, a bounding box of 1; the truth within the chains' mean +- 3.5 std."""

    def loss(w, batch):
        return jnp.mean((X * math.prod(w[i] ** p for i, p in enumerate(powers)) - Y) ** 2)

    est = sgld.estimate(loss, jnp.zeros(2), nbeta=NBETA, localization=0.0, step_size=2e-4, chains=10, draws=5000,
                        bounding_box=1.0)  # fmt: skip
    mean, std = float(est.mean[0]), float(est.std[0])
    assert mean - 3.5 * std < true < mean + 3.5 * std, (powers, mean, std)
    assert std < 0.5 * true  # an estimate, not noise
    assert np.all(np.abs(np.asarray(est.losses)) < 1e3) and np.all(est.diverged_at == -1)


def test_the_bounding_box_holds_and_a_diverging_chain_is_flagged_not_silently_averaged():
    def loss(w, batch):
        return jnp.sum(jnp.exp(w))  # no minimum at w* = 0: the chain runs away to -inf without a box

    boxed = sgld.estimate(loss, jnp.zeros(3), nbeta=50.0, localization=0.0, step_size=1e-2, chains=2, draws=500,
                          bounding_box=0.5)  # fmt: skip
    assert np.all(boxed.diverged_at == -1) and np.all(np.isfinite(boxed.llc))
    assert np.nanmin(boxed.losses) >= 3 * math.exp(-0.5) * (1 - 1e-5)  # w never left [-0.5, 0.5]^3

    def steep(w, batch):
        return jnp.sum(w**4) * 1e6

    wild = sgld.estimate(steep, jnp.zeros(2), nbeta=1e3, localization=0.0, step_size=1.0, chains=2, draws=50)
    assert np.all(wild.diverged_at >= 0)
    assert np.all(np.isnan(wild.losses[..., -1]))  # after divergence the trace is NaN, so its mean is too


def test_mala_acceptance_falls_with_the_step_size():
    """The diagnostic devinterp computes: near 1 for a small step, clearly lower for a large one."""

    def quadratic(w, batch):
        return 0.5 * jnp.sum(w**2)

    est = sgld.estimate(quadratic, jnp.zeros(20), nbeta=100.0, localization=1.0, step_size=[1e-4, 1.5e-2],
                        chains=4, draws=2000)  # fmt: skip
    small, large = (float(np.nanmean(est.acceptance[k])) for k in (0, 1))
    assert small > 0.99 and large < 0.9, (small, large)


def test_paired_acceptance_tends_to_one_with_the_step_and_the_lagged_one_reads_the_batch_noise():
    """On minibatches: judged on one batch, a small step is accepted almost always; judged on
    consecutive batches (devinterp 1.x), the batch noise keeps it near a half at any step size. The
    draws (and lambda_hat) are the same: only the diagnostic differs."""
    d, size = 10, 32
    loss = lambda w, x: 0.5 * jnp.mean(jnp.sum((w - x) ** 2, -1))  # noqa: E731
    batch = lambda key, t: jax.random.normal(key, (size, d))  # noqa: E731
    common = dict(nbeta=size / math.log(size), localization=1.0, step_size=[1e-4, 1e-3], draws=100, batch=batch)
    paired = sgld.estimate(loss, jnp.zeros(d), **common, mala="paired")
    lagged = sgld.estimate(loss, jnp.zeros(d), **common, mala="lagged")
    assert (paired.acceptance[..., 1:].mean(axis=(1, 2)) > 0.99).all()
    assert (lagged.acceptance[..., 1:].mean(axis=(1, 2)) < 0.7).all()
    np.testing.assert_array_equal(paired.llc, lagged.llc)


def test_a_calibration_grid_compiles_one_program(compile_log):
    def quadratic(w, batch):
        return 0.5 * jnp.sum(w**2)

    grid = dict(nbeta=[10.0, 20.0], localization=[0.0, 1.0], step_size=[1e-3, 1e-3])
    with compile_log:
        sgld.estimate(quadratic, jnp.zeros(4), **grid, chains=2, draws=50)
    first = compile_log.count("_run_chains")
    with compile_log:
        sgld.estimate(quadratic, jnp.zeros(4), nbeta=[5.0, 7.0], localization=[2.0, 3.0], step_size=[1e-4, 2e-4],
                      chains=2, draws=50)  # fmt: skip
    assert first == 1 and compile_log.count("_run_chains") == 0


def test_the_estimate_is_reproducible_and_chains_are_independent():
    def loss(w, batch):
        return jnp.mean((batch @ w) ** 2)

    def batch(key, t):
        return jax.random.normal(key, (32, 5))

    kwargs = dict(nbeta=20.0, localization=1.0, step_size=1e-3, chains=3, draws=100, batch=batch)
    a, b = sgld.estimate(loss, jnp.ones(5), **kwargs), sgld.estimate(loss, jnp.ones(5), **kwargs)
    np.testing.assert_array_equal(a.llc, b.llc)
    assert len({float(v) for v in a.reference[0, :, 3]}) == 3  # each chain draws its own batches
    assert not np.array_equal(sgld.estimate(loss, jnp.ones(5), **kwargs, seed=1).llc, a.llc)


# ---- the LLC wing: chains at the toy models of a run, on the engine ----------------------------------


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """Four small toy models, both regimes, with three snapshots."""
    from supjax import SweepSpec, run_sweep

    spec = SweepSpec(n=40, batch_size=128, widths=(4, 8), weight_decays=(-1.0, 1.0), steps=600, warmup_steps=60,
                     snapshot_steps=(200, 400, 600), progress=False)  # fmt: skip
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


def _aoyagi_watanabe(m: int, h: int, n: int) -> float:
    """lambda of reduced-rank regression (M inputs, H hidden, N outputs) at true rank 0 (Aoyagi & Watanabe 2005)."""
    if m + h < n:
        return m * h / 2
    if n + h < m:
        return h * n / 2
    if m + n < h:
        return m * n / 2
    return (2 * m * n + 2 * h * n + 2 * m * h - n**2 - m**2 - h**2 + (m + h + n) % 2) / 8


@pytest.mark.parametrize(("m", "h", "n", "true"), [(5, 3, 5, 6.5), (4, 3, 8, 6.0), (8, 3, 4, 6.0)])
def test_reduced_rank_regression_matches_aoyagi_and_watanabe(m, h, n, true):
    """devinterp's test: y = noise (true rank 0), x, y ~ N(0, I), 1000 samples, full batch; B A trained by
    Adam (lr 1e-2, 5000 steps) on the mean squared error; 3 chains of 2000 draws, eps 6e-5, gamma_loc 1,
    n beta = 1000 / ln 1000; the estimate within 30% of the formula."""
    import optax

    assert _aoyagi_watanabe(m, h, n) == true
    rng = np.random.default_rng(42)
    x, y = (jnp.asarray(rng.normal(size=(1000, k)), jnp.float32) for k in (m, n))

    def loss(w, batch):
        return jnp.mean((x @ w["A"].T @ w["B"].T - y) ** 2)

    w = {"A": jnp.asarray(rng.normal(size=(h, m)) / m**0.5, jnp.float32),
         "B": jnp.asarray(rng.normal(size=(n, h)) / h**0.5, jnp.float32)}  # fmt: skip
    adam = optax.adam(1e-2)

    @jax.jit
    def train(w):
        def step(carry, _):
            w, state = carry
            updates, state = adam.update(jax.grad(loss)(w, None), state)
            return (optax.apply_updates(w, updates), state), None

        return jax.lax.scan(step, (w, adam.init(w)), None, length=5000)[0][0]

    est = sgld.estimate(loss, train(w), nbeta=NBETA, localization=1.0, step_size=6e-5, chains=3, draws=2000, seed=42)
    assert float(est.mean[0]) == pytest.approx(true, rel=0.3), (float(est.mean[0]), float(est.std[0]))


def test_a_run_saved_before_the_paired_diagnostic_reads_as_lagged(tmp_path):
    """llc.toml of a run written before ``mala`` existed: its acceptance was devinterp 1.x's lagged one,
    and a resume must not relabel it; a config a user writes without the key gets the default."""
    from supjax import ConfigError, llc
    from supjax.engine.spec import resume_diff

    (tmp_path / "llc.toml").write_text("step_sizes = [1e-4]\nchains = 2\n")
    saved = llc.LlcSpec.saved(tmp_path / "llc.toml")
    assert saved.mala == "lagged" and llc.LlcSpec.from_toml(tmp_path / "llc.toml").mala == "paired"
    with pytest.raises(ConfigError, match="the config differs in mala"):  # a resume refuses to relabel it
        resume_diff(saved, llc.LlcSpec(step_sizes=(1e-4,), chains=2), tmp_path, "llc.toml")
    assert resume_diff(saved, saved.replace(progress=False), tmp_path, "llc.toml").mala == "lagged"
