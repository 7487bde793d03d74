"""Anthropic's toy models of superposition (TMS) in supjax: constant sparsity, importance as a
traced grid axis, TMS's conventions, the figures, and the two results TMS's figures rest on
(the pentagon at n = 5, m = 2; the regions of the n = 2, m = 1 phase diagram)."""

from __future__ import annotations

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supjax import SweepSpec, analysis, data, layout, load_run, metrics, model, optim, plots, program, run_sweep, tms
from supjax.config import ConfigError

# ---- constant sparsity and relative importance ------------------------------------------------


def test_constant_distribution_is_one_probability_for_every_feature_not_normalised():
    np.testing.assert_array_equal(data.feature_probabilities("constant:0.05", 7), np.full(7, 0.05))
    assert data.canonical_label("constant:.5") == "constant:0.5"
    spec = SweepSpec(n=6, widths=(2,), distribution=["constant:1", "constant:0.1"], steps=10, warmup_steps=0)
    assert spec.distributions == ("constant:1.0", "constant:0.1")
    assert spec.probabilities("constant:0.1", 0.0).sum() == pytest.approx(0.6)  # n P, not 1
    for bad in ("constant", "constant:0", "constant:1.5", "constant:x"):
        with pytest.raises(ConfigError, match="distribution"):
            SweepSpec(n=6, widths=(2,), distribution=[bad]).validate()


def test_relative_importance_weights_feature_one_by_one_and_every_other_by_r():
    np.testing.assert_array_equal(data.feature_importance("relative:0.3", 4), [1.0, 0.3, 0.3, 0.3])
    assert data.canonical_importance("relative:.3") == "relative:0.3"
    with pytest.raises(ConfigError, match="importance"):
        data.feature_importance("relative:-1", 3)


# ---- importance as a grid axis ------------------------------------------------------------------


def _grid(**changes) -> SweepSpec:
    base = dict(n=24, batch_size=64, widths=(3,), weight_decays=(-1.0, 0.5), steps=60, warmup_steps=6)
    return SweepSpec(**{**base, "log_every": 10, "progress": False, **changes}).validate()


def test_importances_lay_out_along_g_beside_the_weight_decays():
    spec = _grid(importances=["geometric:0.9", "relative:0.5"], seeds=(0, 1))
    assert spec.num_models == 8 and layout.models_per_stream(spec) == 4
    rows = layout.model_table(spec)
    assert [r["importance"] for r in rows[:4]] == ["geometric:0.9"] * 2 + ["relative:0.5"] * 2
    the_layout = layout.plan(spec)
    (group,) = the_layout.groups
    assert group.shape == (2, 4), "D = 2 seeds by G = 2 importances x 2 weight decays"
    assert group.hyper.importance.shape == (2, 4, spec.n)
    np.testing.assert_array_equal(group.hyper.importance[1, 2], data.feature_importance("relative:0.5", spec.n))
    # With one weighted importance and with uniform importance, the old layout: G = weight decays.
    assert layout.plan(_grid()).groups[0].shape == (1, 2)


def test_uniform_importance_skips_the_multiply():
    uniform, weighted = layout.plan(_grid()), layout.plan(_grid(importances=["uniform", "relative:0.5"]))
    assert uniform.groups[0].hyper.importance is None
    assert weighted.groups[0].hyper.importance.shape == (1, 4, 24)

    def multiplies(the_layout):
        """Multiplications in the traced step of one model (shapes only, nothing runs)."""
        one = program.make_step(the_layout.static)
        hyper = jax.tree.map(lambda a: a[0, 0], the_layout.groups[0].hyper)
        state = jax.eval_shape(lambda key: one.init(key, hyper, 3), jax.random.key(0))
        x = jax.ShapeDtypeStruct((the_layout.spec.batch_size, the_layout.spec.n), jnp.float32)
        return str(jax.make_jaxpr(one.step)(state, hyper, x, 0)).count(" mul ")

    assert multiplies(weighted) > multiplies(uniform)


def test_a_grid_over_importances_costs_no_recompilation(compile_log):
    spec = _grid(n=26, importances=["geometric:0.9", "relative:0.5"])  # shapes no other test compiles
    with compile_log:
        first = run_sweep(spec)
    assert compile_log.count("train_chunk") >= 1 and compile_log.count("init_states") == 1
    with compile_log:
        second = run_sweep(spec.replace(importances=["power:1.0", "relative:3.0"]))
    assert compile_log.count("train_chunk") == compile_log.count("init_states") == 0
    assert not np.allclose(first.losses, second.losses)


def test_a_model_in_an_importance_grid_trains_as_it_would_alone():
    grid = run_sweep(_grid(importances=["geometric:0.9", "relative:0.5"]))
    alone = run_sweep(_grid(importance="relative:0.5"))
    as_a_grid = run_sweep(_grid(importances=["relative:0.5"]))
    np.testing.assert_array_equal(as_a_grid.losses, alone.losses)  # the old field is the one-entry axis
    kept = [r["index"] for r in grid.models if r["importance"] == "relative:0.5"]
    np.testing.assert_allclose(grid.losses[kept], alone.losses, rtol=1e-5)
    np.testing.assert_allclose(grid.params[3]["W"][kept], alone.params[3]["W"], rtol=1e-4, atol=1e-6)


def test_the_tables_carry_each_models_importance_and_old_runs_still_load(tmp_path):
    spec = _grid(importances=["uniform", "relative:0.5"])
    run_sweep(spec, out=tmp_path / "run")
    summary, exponents = analysis.analyze(tmp_path / "run")
    assert sorted(summary.importance.unique()) == ["relative:0.5", "uniform"]
    assert set(exponents.importance) == {"relative:0.5", "uniform"}  # one fit per importance
    with open(tmp_path / "run" / "models.csv") as f:
        assert [r["importance"] for r in csv.DictReader(f)] == [r["importance"] for r in layout.model_table(spec)]
    # A run from before the axis: one importance field, no column in models.csv.
    old = tmp_path / "old"
    run_sweep(_grid(importance="geometric:0.9"), out=old)
    (old / "checksums.json").unlink()  # nor did runs then keep checksums
    with open(old / "models.csv") as f:
        rows = list(csv.DictReader(f))
    with open(old / "models.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k != "importance"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    assert {r["importance"] for r in load_run(old).models} == {"geometric:0.9"}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"importance": "power:1", "importances": ["uniform", "relative:0.5"]}, "importance", "not both"),
        ({"importances": ["relative:0.5", "relative:.5"]}, "importances", "duplicates"),
        ({"importances": ["zipf"]}, "importances", "unknown family"),
        ({"importances": ["uniform", "power:1"], "loss": "cross_entropy"}, "importances", "mse"),
        ({"feature_values": "uniform_0_3"}, "feature_values", "uniform_0_1"),
        ({"feature_values": "uniform_0_1", "unit_values": True}, "unit_values", "drop"),
        ({"weight_init": "he"}, "weight_init", "xavier_normal"),
        ({"bias_init": "ones"}, "bias_init", "zeros"),
        ({"bias_weight_decay": True}, "bias_weight_decay", ">= 0"),
        ({"importances": ["uniform", "power:1"], "max_models_per_batch": 3}, "max_models_per_batch", "at least 4"),
    ],
)
def test_bad_tms_settings_are_refused_in_one_line(changes, field, message):
    with pytest.raises(ConfigError, match=message) as caught:
        _grid(**changes)
    assert caught.value.field == field and "\n" not in str(caught.value)


# ---- TMS's conventions --------------------------------------------------------------------------


def test_tms_values_are_uniform_on_zero_one():
    x = np.asarray(data.sample_features(jax.random.key(0), np.full(8, 0.5), 20_000, value_max=1.0))
    active = x[x > 0]
    assert 0 < active.min() and active.max() < 1
    assert active.mean() == pytest.approx(0.5, abs=0.01) and np.mean(x > 0) == pytest.approx(0.5, abs=0.01)
    tables = layout.plan(_grid(feature_values="uniform_0_1")).streams.tables
    paper = layout.plan(_grid()).streams.tables
    np.testing.assert_array_equal(tables["scales"] * 2, paper["scales"])


def test_xavier_normal_init_and_a_zero_bias():
    params = model.init_params(jax.random.key(1), 3000, 40, "xavier_normal", "zeros")
    assert np.std(params["W"]) == pytest.approx(np.sqrt(2 / 3040), rel=0.02)
    assert not np.any(params["b"])
    paper = model.init_params(jax.random.key(1), 3000, 40)
    assert np.std(paper["W"]) == pytest.approx(np.sqrt(1 / 40), rel=0.02) and np.std(paper["b"]) > 0.9


def test_bias_weight_decay_is_torch_adamw_on_every_parameter():
    """One step of torch.optim.AdamW(lr, weight_decay): p <- p (1 - lr wd) - lr g / (|g| + eps)."""
    lr, decay, eps = 0.01, 0.3, 1e-8
    params = {"W": jnp.array([[0.5, -2.0]]), "b": jnp.array([1.5])}
    grads = {"W": jnp.array([[0.2, 0.4]]), "b": jnp.array([-0.1])}
    tx = optim.toy_model_optimizer(lr, lr, decay, bias_weight_decay=True)
    updates, _ = tx.update(grads, tx.init(params), params)
    for k in params:
        expected = params[k] * (1 - lr * decay) - lr * grads[k] / (jnp.abs(grads[k]) + eps)
        np.testing.assert_allclose(params[k] + updates[k], expected, rtol=1e-6)
    plain = optim.toy_model_optimizer(lr, lr, decay)
    updates, _ = plain.update(grads, plain.init(params), params)
    np.testing.assert_allclose(params["b"] + updates["b"], params["b"] - lr * grads["b"] / (0.1 + eps), rtol=1e-6)


def test_tms_spec_holds_the_notebooks_settings():
    spec = tms.spec(n=5, widths=[2], distribution=tms.sparsity_distributions(tms.INTRO_DENSITIES))
    assert (spec.batch_size, spec.steps, spec.lr, spec.weight_decays) == (1024, 10_000, 1e-3, (0.01,))
    assert (spec.warmup_steps, spec.final_lr_fraction, spec.target_values) == (0, 1.0, (0.0, 1.0))
    assert spec.weight_init == "xavier_normal" and spec.bias_init == "zeros" and spec.bias_weight_decay
    np.testing.assert_allclose([tms.density(d) for d in spec.distributions], 20.0 ** -np.linspace(0, 1, 10))
    schedule = optim.warmup_cosine_schedule(spec.lr, spec.warmup_steps, spec.steps, spec.final_lr_fraction)
    np.testing.assert_allclose([schedule(t) for t in (0, 5000, 9999)], 1e-3, rtol=1e-6)  # constant


# ---- geometry -----------------------------------------------------------------------------------


def test_polygon_and_pair_geometry():
    angles = 2 * np.pi * np.arange(5) / 5 + 0.3
    pentagon = 1.1 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    np.testing.assert_allclose(tms.adjacent_angles(pentagon), 72.0)
    assert tms.is_regular_polygon(pentagon) and not tms.is_regular_polygon(pentagon[[0, 1, 2, 3, 3]])
    np.testing.assert_allclose(metrics.superposition(jnp.asarray(pentagon)), 1.5, rtol=1e-5)
    np.testing.assert_allclose(metrics.superposition(jnp.eye(3, 2)), 0.0, atol=1e-7)
    assert [tms.pair_state(w) for w in ([[1.0], [0.1]], [[0.0], [-1.0]], [[0.9], [-1.0]], [[0.9], [1.0]])] == [
        "feature 1 only",
        "feature 2 only",
        "antipodal pair",
        "other",
    ]


# ---- what TMS shows -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pentagons():
    """n = 5, m = 2 with TMS's conventions, dense and at 1 - S = 0.05, eight seeds."""
    spec = tms.spec(
        n=5, widths=[2], distribution=tms.sparsity_distributions([1.0, 0.05]), importance="geometric:0.9",
        seeds=list(range(8)), steps=4000, lr=3e-3, batch_size=512, log_every=100, progress=False,
    )  # fmt: skip
    return run_sweep(spec)


def test_sparse_features_learn_the_regular_pentagon_in_most_seeds(pentagons):
    sparse = [r["index"] for r in pentagons.models if r["distribution"] == "constant:0.05"]
    regular = [tms.is_regular_polygon(pentagons.weights(i)[0]) for i in sparse]
    assert sum(regular) >= 5, f"{sum(regular)} of {len(regular)} seeds learned the pentagon"
    dense = [r["index"] for r in pentagons.models if r["distribution"] == "constant:1.0"]
    for i in dense:  # dense: the two most important features, orthogonal; the rest dropped
        W = pentagons.weights(i)[0]
        norms = np.linalg.norm(W, axis=1)
        assert np.all(norms[:2] > 0.5) and np.all(norms[2:] < 0.5), norms
        np.testing.assert_allclose(np.sort(tms.adjacent_angles(W)), [90.0, 270.0], atol=10)


@pytest.fixture(scope="module")
def phases():
    """n = 2, m = 1 at one dense and one sparse density, importance of feature 2 from 0.3 to 3."""
    spec = tms.spec(
        n=2, widths=[1], distribution=tms.sparsity_distributions([1.0, 0.03]),
        importances=["relative:0.3", "relative:1.0", "relative:3.0"], seeds=list(range(4)),
        steps=4000, lr=3e-3, batch_size=512, log_every=100, progress=False, stream_loop="vmap",
    )  # fmt: skip
    return run_sweep(spec)


def test_the_pair_phase_diagram_has_tms_regions(phases):
    cells = tms.phase_cells(phases).set_index(["density", "relative_importance"])["state"]
    assert cells[(1.0, 0.3)] == "feature 1 only"  # dense: the more important feature takes the dimension
    assert cells[(1.0, 3.0)] == "feature 2 only"
    assert cells[(0.03, 1.0)] == "antipodal pair"  # sparse and equal importance: both, antipodal


def test_the_tms_figures_are_drawn_from_a_run(pentagons, phases, tmp_path):
    table = pentagons.table()
    best = tms.best_of_seeds(table[table.m == 2])  # one importance, one weight decay: one model per sparsity
    best = best.iloc[np.argsort([-tms.density(d) for d in best.distribution])]  # densest first, as the panels
    weights = [pentagons.weights(int(i)) for i in best["index"]]  # (W [5, 2], b [5]) per sparsity

    # features in 2-D: per sparsity, an arrow from the origin to each row W_i, and a dot at its tip
    figures = {"features_2d": plots.plot_features_2d(pentagons)}
    for ax, (W, _) in zip(figures["features_2d"].axes, weights, strict=True):
        arrows, tips = ax.collections
        np.testing.assert_allclose(np.stack(arrows.get_segments()), np.stack([np.zeros_like(W), W], axis=1))
        np.testing.assert_allclose(tips.get_offsets(), W)

    # per sparsity: bars of ||W_i||, and the image W W^T (TMS's W^T W) with the bias b after a blank column
    figures["gram_and_norms"] = plots.plot_gram_and_norms(pentagons)
    for k, (W, b) in enumerate(weights):
        ax_norms, ax_gram = figures["gram_and_norms"].axes[2 * k : 2 * k + 2]
        np.testing.assert_allclose([bar.get_height() for bar in ax_norms.patches], np.linalg.norm(W, axis=1))
        image = ax_gram.get_images()[0].get_array()
        assert image.shape == (5, 7), f"[n, n + 2]: {image.shape}"
        np.testing.assert_allclose(image[:, :5], W @ W.T, rtol=1e-6)
        assert image.mask[:, 5].all() and not image.mask[:, [0, 1, 2, 3, 4, 6]].any()
        np.testing.assert_allclose(image[:, 6], b)

    # dimensions per feature m / ||W||_F^2 against 1/(1 - S)
    figures["sticky"] = plots.plot_sticky(pentagons)
    (line,) = [line for line in figures["sticky"].axes[0].get_lines() if line.get_label() == r"$m / \|W\|_F^2$"]
    np.testing.assert_allclose(line.get_xdata(), [1 / tms.density(d) for d in best.distribution])
    np.testing.assert_allclose(line.get_ydata(), [2 / np.sum(W**2) for W, _ in weights], rtol=1e-6)

    # the pair phase diagram: cell [importance r, density] is the state of its best seed (tms.phase_cells)
    figures["phase"] = plots.plot_phase_diagram(phases)
    states = tms.phase_cells(phases).pivot(index="relative_importance", columns="density", values="state")
    codes = states.sort_index().sort_index(axis=1).map(tms.PAIR_STATES.index).to_numpy()
    np.testing.assert_array_equal(figures["phase"].axes[0].collections[0].get_array(), codes)
    assert list(plots.PHASE_COLOURS) == list(tms.PAIR_STATES)

    for name, fig in figures.items():  # and each renders
        png, pdf = plots.save(fig, tmp_path / name)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"


# ---- the experiment -----------------------------------------------------------------------------


def test_the_tms_experiment_runs_at_smoke_scale_and_reuses_its_runs(tmp_path):
    import importlib
    import sys
    from pathlib import Path

    experiments = Path(__file__).resolve().parents[1] / "experiments"
    if str(experiments) not in sys.path:
        sys.path.insert(0, str(experiments))
    script, common = importlib.import_module("tms"), importlib.import_module("common")
    runs = tmp_path / "runs"
    numbers = script.main(["--scale", "smoke", "--out", str(runs), "--figures", str(tmp_path / "figures"), "--quiet"])
    stems = ("tms_features_2d", "tms_features_2d_uniform", "tms_gram_norms", "tms_sticky", "tms_phase")
    for stem in stems:
        png, pdf = tmp_path / "figures" / f"{stem}_smoke.png", tmp_path / "figures" / f"{stem}_smoke.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    assert numbers["phase"]["cells"] == 9 and numbers["phase"]["seeds"] == 2
    assert set(numbers["pentagon"]) == {"uniform", "geometric:0.9"}
    assert numbers["pentagon"]["uniform"]["of_seeds"] == 2
    assert len(numbers["sticky"]) == 4
    for part in script.PARTS:
        header = (runs / part / "summary.csv").read_text().splitlines()[0].split(",")
        assert "importance" in header
    spec = script.load_specs("smoke")["phase"]
    assert common.run_or_reuse("tms-phase", "smoke", spec, runs / "phase").timing["reused"]  # a rerun only redraws


def test_the_quick_config_keeps_tms_conventions_and_fits_the_cpu_budget():
    import tomllib
    from pathlib import Path

    tables = tomllib.loads((Path(__file__).resolve().parents[1] / "experiments" / "tms_quick.toml").read_text())
    assert {k: tables["conventions"][k] for k in tms.CONVENTIONS} == tms.CONVENTIONS
    specs = {
        part: SweepSpec.from_dict({**tables["conventions"], **tables[part]}) for part in ("pentagon", "sticky", "phase")
    }
    np.testing.assert_allclose(
        [tms.density(d) for d in specs["pentagon"].distributions], tms.INTRO_DENSITIES, rtol=1e-5
    )
    assert specs["pentagon"].importance_labels == ("uniform", "geometric:0.9") and len(specs["phase"].seeds) >= 4
    flops = sum(10.0 * s.batch_size * s.n * sum(s.widths) * s.num_models * s.steps for s in specs.values())
    assert flops / 20e9 < 10 * 60  # dense work at 20 GFLOP/s, what the busy 2-core CPU gave
