from pathlib import Path

import numpy as np
import pytest

from supjax import SweepSpec, load_run, run_sweep


def test_a_vmapped_model_trains_as_it_would_alone():
    grid = SweepSpec(
        n=80,
        batch_size=128,
        widths=(6,),
        weight_decays=(-1.0, -0.5, 0.5, 1.0),
        alphas=(1.0, 1.5),
        steps=300,
        warmup_steps=30,
        log_every=5,
        progress=False,
    )
    together = run_sweep(grid)
    alone = run_sweep(grid.replace(weight_decays=(0.5,), alphas=(1.5,)))
    row = next(r for r in together.models if r["weight_decay"] == 0.5 and r["alpha"] == 1.5)
    np.testing.assert_allclose(alone.losses[0], together.losses[row["index"]], rtol=1e-5)
    np.testing.assert_allclose(alone.weights(0)[0], together.weights(row["index"])[0], rtol=1e-4, atol=1e-5)


def test_same_config_and_seed_give_identical_results(tiny_spec):
    first, second = run_sweep(tiny_spec), run_sweep(tiny_spec)
    np.testing.assert_array_equal(first.losses, second.losses)
    for m in tiny_spec.widths:
        np.testing.assert_array_equal(first.params[m]["W"], second.params[m]["W"])
    other_seed = run_sweep(tiny_spec.replace(seeds=(1,)))
    # Another seed: other numbers (every loss differs) from the same law (the mean final loss over
    # the grid agrees to 30%; a single tiny model's final loss varies by more from seed to seed).
    assert np.all(first.losses != other_seed.losses)
    assert other_seed.final_loss().mean() == pytest.approx(first.final_loss().mean(), rel=0.3)


def test_chunking_does_not_change_results(tiny_spec):
    whole = run_sweep(tiny_spec.replace(chunk_steps=200))
    pieces = run_sweep(tiny_spec.replace(chunk_steps=30))  # 3 windows a chunk, and a tail of 2
    np.testing.assert_array_equal(whole.losses, pieces.losses)


def test_shared_data_is_common_and_independent_data_is_not(tiny_spec):
    spec = tiny_spec.replace(weight_decays=(0.5,), widths=(4,), seeds=(0, 1))
    shared = run_sweep(spec)
    independent = run_sweep(spec.replace(shared_data=False))
    # Same seed and init, so only the data stream differs between the two modes: the first window
    # (the same init on other batches) differs by sampling noise only, a few percent.
    assert np.all(shared.losses[:, 0] != independent.losses[:, 0])
    np.testing.assert_allclose(independent.losses[:, 0], shared.losses[:, 0], rtol=0.1)
    # Independent streams are fixed by each model's identity: adding a model leaves them alone.
    grown = run_sweep(spec.replace(shared_data=False, weight_decays=(0.5, -0.5)))
    kept = [r["index"] for r in grown.models if r["weight_decay"] == 0.5]
    np.testing.assert_allclose(grown.losses[kept], independent.losses, rtol=1e-5)


def test_the_two_regimes_appear_on_a_short_cpu_run():
    spec = SweepSpec(
        n=200,
        batch_size=512,
        widths=(8, 16, 32),
        weight_decays=(-1.0, 1.0),
        steps=2000,
        warmup_steps=200,
        progress=False,
    )
    run = run_sweep(spec)
    for row in run.models:
        W, _ = run.weights(row["index"])
        represented = np.mean(np.linalg.norm(W, axis=1) > 0.5)
        if row["weight_decay"] < 0:
            assert represented > 0.95, (row, represented)  # strong superposition: every feature kept
        else:
            assert represented < 0.3, (row, represented)  # weak: only the most frequent few
    strong = run.final_loss()[[r["index"] for r in run.models if r["weight_decay"] < 0]]
    assert strong[0] > strong[1] > strong[2]  # loss falls with width


def test_run_directory_round_trips(tiny_spec, tmp_path):
    run = run_sweep(tiny_spec, out=tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    assert loaded.spec == run.spec == tiny_spec.replace(batch_tile=128, stream_loop="map")  # resolved, kept
    np.testing.assert_array_equal(loaded.losses, run.losses)
    assert loaded.models == run.models
    for i in range(tiny_spec.num_models):
        np.testing.assert_array_equal(loaded.weights(i)[0], run.weights(i)[0])
    table = loaded.table()
    assert list(table["m"]) == [4, 4, 8, 8] and table["final_loss"].notna().all()


def test_grid_values_are_traced_not_compiled_in(tiny_spec, compile_log):
    spec = tiny_spec.replace(n=56)  # shapes no other test compiles
    with compile_log:
        run_sweep(spec)
    assert compile_log.count("train_chunk") >= 1 and compile_log.count("init_states") == 1  # the log sees them
    with compile_log:
        run_sweep(spec.replace(weight_decays=(-0.3, 0.7), alphas=(1.7,), lr=0.02, seeds=(5,)))
    assert compile_log.count("train_chunk") == compile_log.count("init_states") == 0


@pytest.mark.parametrize("m", [4, 8])
def test_training_lowers_the_loss(tiny_spec, m):
    run = run_sweep(tiny_spec.replace(widths=(m,)))
    assert np.all(np.isfinite(run.losses))
    assert np.all(run.losses[:, -1] < run.losses[:, 0])


def test_the_benchmarks_flop_count_is_what_xla_counts_for_a_step(tiny_spec):
    import jax
    import jax.numpy as jnp

    from supjax import bench, model

    # bench counts 10 B n m flops per model-step; XLA's own count of one untiled step must agree.
    n, m, batch = 256, 128, 512
    params = model.init_params(jax.random.key(0), n, m)
    compiled = jax.jit(lambda p, x: model.mse_and_grad(p, x, batch)).lower(params, jnp.ones((batch, n))).compile()
    cost = compiled.cost_analysis()
    counted = (cost[0] if isinstance(cost, list) else cost)["flops"]
    spec = tiny_spec.replace(n=n, widths=(m,), batch_size=batch)
    assert counted == pytest.approx(bench.dense_flops(spec, 1), rel=0.02)

    ours = bench.measure(tiny_spec, 10)
    assert ours["models"] == tiny_spec.num_models and ours["steps"] == 10 and ours["model_steps_per_s"] > 0
    # A model's program memory holds at least W and its two Adam moments.
    assert ours["memory_per_model_bytes"] > 3 * 4 * tiny_spec.n * min(tiny_spec.widths)


def test_the_baselines_paper_recipe_draws_the_same_law():
    import jax
    import jax.numpy as jnp

    from supjax import bench

    p = np.array([0.3, 0.05, 0.0])
    x = np.asarray(bench.paper_batch(jax.random.key(0), jnp.asarray(p, jnp.float32), 200_000), np.float64)
    np.testing.assert_allclose(x.mean(0), p, atol=5e-3)
    np.testing.assert_allclose((x**2).mean(0), 4 * p / 3, atol=1e-2)


def test_a_diverging_model_is_frozen_flagged_and_harms_no_neighbour(tiny_spec):
    from supjax import layout, sweep

    healthy = sweep.train_in_memory(layout.plan(tiny_spec))
    the_layout = layout.plan(tiny_spec)
    the_layout.groups[1].hyper.lr_w[0, 0] = 1e30  # model 2: m = 8, gamma = -1
    broken = sweep.train_in_memory(the_layout)
    victim = int(the_layout.groups[1].model_index[0])
    assert broken.models[victim]["diverged_at"] >= 0
    assert np.isnan(broken.losses[victim, -1]) and np.isnan(broken.final_loss()[victim])
    W, _ = broken.weights(victim)
    assert np.all(np.isfinite(W))  # frozen at its last finite state
    others = [i for i in range(tiny_spec.num_models) if i != victim]
    assert all(broken.models[i]["diverged_at"] == -1 for i in others)
    np.testing.assert_array_equal(broken.losses[others], healthy.losses[others])
    assert broken.table()["diverged"].tolist() == [i == victim for i in range(tiny_spec.num_models)]


def test_run_keeps_the_feature_probabilities_it_trained_on(tiny_spec, tmp_path):
    from supjax import data

    spec = tiny_spec.replace(distribution=("power", "linear"), activation_densities=(0.0, 0.5))
    run = run_sweep(spec, out=tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    for row in loaded.models:
        expected = data.feature_probabilities(row["distribution"], spec.n, row["activation_density"])
        np.testing.assert_array_equal(loaded.feature_probabilities(row["index"]), expected)
    assert run.final_loss(100).shape == (spec.num_models,)
    # The final loss averages the last 100 steps: 10 windows of log_every = 10.
    np.testing.assert_allclose(run.final_loss(100), run.losses[:, -10:].mean(1))


def test_sparse_products_train_as_the_dense_step_does(tiny_spec, monkeypatch):
    from supjax import data

    dense = run_sweep(tiny_spec).losses
    np.testing.assert_allclose(run_sweep(tiny_spec.replace(sparse_products=True)).losses, dense, rtol=1e-5)
    # A capacity every batch overflows: each step falls back to the dense products (a
    # truncated sparse x would miss most of the data and the losses would part).
    monkeypatch.setattr(data, "active_capacity", lambda expected: 1)
    np.testing.assert_allclose(run_sweep(tiny_spec.replace(sparse_products=True)).losses, dense, rtol=1e-5)


def test_importance_is_a_sweep_option(tiny_spec):
    import jax
    import jax.numpy as jnp

    from supjax import data, model

    plain = run_sweep(tiny_spec)
    np.testing.assert_array_equal(run_sweep(tiny_spec.replace(importance="power:0")).losses, plain.losses)
    # With a learning rate too small to move the parameters, the first logged window is the
    # importance-weighted loss of the initial model; a sweep that dropped the weights anywhere
    # between the config and the fused loss-and-gradient would log the plain loss instead.
    still = tiny_spec.replace(importance="geometric:0.5", lr=1e-9, steps=20, warmup_steps=2)
    run = run_sweep(still)
    weights = jnp.asarray(data.feature_importance("geometric:0.5", still.n), jnp.float32)
    for row in run.models:
        W, b = run.weights(row["index"])
        x = data.sample_features(jax.random.key(row["index"]), run.feature_probabilities(row["index"]), 20_000)
        params = {"W": jnp.asarray(W), "b": jnp.asarray(b)}
        weighted, unweighted = float(model.loss(params, x, weights)), float(model.loss(params, x))
        assert weighted < 0.5 * unweighted  # the weights matter for this model
        assert run.losses[row["index"], 0] == pytest.approx(weighted, rel=0.15)


def test_correlated_features_are_a_sweep_option(tiny_spec):
    plain = run_sweep(tiny_spec)
    for options in ({"correlation_block": 4, "correlation": 0.5}, {"correlation_block": 4, "exclusive_blocks": True}):
        spec = tiny_spec.replace(**options)
        run = run_sweep(spec)
        # The marginals p_i are kept, so the first window (the same init) costs about the same;
        # the joint law differs, so every number differs.
        assert np.all(np.isfinite(run.losses)) and np.all(run.losses[:, 0] != plain.losses[:, 0])
        np.testing.assert_allclose(run.losses[:, 0], plain.losses[:, 0], rtol=0.15)
        np.testing.assert_array_equal(run_sweep(spec).losses, run.losses)  # reproducible


@pytest.mark.parametrize("loss", ["cross_entropy", "soft_cross_entropy"])
def test_cross_entropy_toy_trains(tiny_spec, loss):
    run = run_sweep(tiny_spec.replace(loss=loss, steps=400, lr=0.02))
    assert np.all(np.isfinite(run.losses))
    assert np.all(run.losses[:, -1] < run.losses[:, 0])
    assert run.losses[:, 0].mean() > 0.5 * np.log(tiny_spec.n)  # starts near a uniform guess


def test_cross_entropy_draws_exactly_one_feature_per_sample(tiny_spec):
    import jax

    from supjax import data, layout

    spec = tiny_spec.replace(loss="cross_entropy")
    tables = {k: v[0] for k, v in layout.plan(spec).streams.tables.items()}
    draws = data.correlated_draws(jax.random.key(0), "exclusive", 4096, spec.n, spec.n)
    active = np.asarray(data.correlated_features(draws, tables, "exclusive", spec.n, 0.0)) > 0
    assert np.all(active.sum(1) == 1)
    p = data.feature_probabilities("power:1.0", spec.n)
    np.testing.assert_allclose(active.mean(0), p / p.sum(), atol=0.03)


def test_unit_values_make_every_active_feature_one(tiny_spec):
    import jax

    from supjax import data

    p = data.feature_probabilities("power:1.0", 64)
    thresholds, scales = data.sampler_tables(p)
    bits = jax.random.bits(jax.random.key(0), (256, 64), np.uint32)
    x = np.asarray(data.features_from_bits(bits, thresholds, scales, unit=True))
    assert set(np.unique(x)) <= {0.0, 1.0} and x.max() == 1.0
    # inside a sweep: cross-entropy with unit values draws one-hot rows, and the first logged loss is the
    # cross-entropy of the initial parameters on the first batch, -log softmax(x W W^T + b)_t
    from supjax import layout
    from supjax.engine import program

    spec = tiny_spec.replace(loss="cross_entropy", unit_values=True, steps=1, log_every=1, warmup_steps=0)
    job = layout.plan(spec).job()
    batch = np.asarray(data.sample_streams(job.static, job.inputs[1], 0))[0]
    assert np.all(batch.sum(axis=1) == 1.0) and set(np.unique(batch)) == {0.0, 1.0}
    first = program.init_states(job.static, *job.init_args)[0]  # width 4: [D, G] states
    W, b = (np.asarray(first.params[k][0, 0], np.float64) for k in ("W", "b"))
    logits = batch @ W @ W.T + b
    log_softmax = logits - logits.max(axis=1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(axis=1, keepdims=True))
    expected = -np.mean(log_softmax[batch == 1.0])
    assert run_sweep(spec).losses[0, 0] == pytest.approx(expected, rel=1e-5)


def test_bench_writes_one_named_result_file_with_the_issues_keys(tiny_spec, tmp_path, monkeypatch, capsys):
    import json

    from supjax import bench
    from supjax.cli import main

    monkeypatch.setitem(bench.WORKLOADS, "tiny", tiny_spec)
    assert main(["bench", "tiny", "--steps", "10", "--precision", "tensorfloat32", "--out", str(tmp_path)]) == 0
    (written,) = tmp_path.glob("*.json")
    result = json.loads(written.read_text())
    assert written.name == bench.result_name(result) and written.name.endswith("-tiny-tensorfloat32.json")
    assert result["precision"] == "tensorfloat32" and result["models"] == tiny_spec.num_models
    assert result["steps"] == 10 and result["model_steps_per_s"] == pytest.approx(
        result["models"] * 10 / result["train_seconds"]
    )
    assert "tensorfloat32 products" in capsys.readouterr().out

    for argv, named in (
        (["bench", "tiny", "--precision", "float16"], "--precision"),
        (["bench", "tiny", "--out", str(written)], "--out"),
        (["bench", "nope"], "workload"),
    ):
        assert main(argv) == 2
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0 and named in error and "config field" not in error


def test_the_paper_grid_workload_is_the_papers_1020_models():
    from supjax import bench
    from supjax.config import SweepSpec

    grid = SweepSpec.from_toml(Path(__file__).parents[1] / "experiments" / "grid_paper.toml")
    workload = bench.WORKLOADS["paper-grid"]
    assert workload.num_models == 1020
    for field in ("n", "batch_size", "steps", "warmup_steps", "lr", "widths", "weight_decays", "alphas"):
        assert getattr(workload, field) == pytest.approx(getattr(grid, field)), field


def test_bfloat16_on_a_cpu_without_bfloat16_arithmetic_warns_with_the_measured_factor(tiny_spec, monkeypatch):
    import warnings

    from supjax import layout, model
    from supjax.errors import SupjaxWarning

    spec = tiny_spec.replace(precision="bfloat16")
    monkeypatch.setattr(model, "native_bfloat16", lambda: False)
    with pytest.warns(SupjaxWarning, match=r"emulated: it ran at 0\.5x float32"):
        layout.resolve_for_backend(spec, "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layout.resolve_for_backend(spec, "gpu")  # accelerators have it
        layout.resolve_for_backend(tiny_spec, "cpu")  # float32 asks for nothing
        monkeypatch.setattr(model, "native_bfloat16", lambda: True)
        layout.resolve_for_backend(spec, "cpu")


@pytest.mark.slow
def test_a_program_read_from_the_persistent_cache_computes_what_a_fresh_compile_computes(tmp_path):
    """Two fresh processes with one cache directory: the first compiles and writes the programs, the second
    reads them back (it writes none) and trains to the same bits; with the cache off, the same bits again."""
    import os
    import subprocess
    import sys

    script = (
        "import sys, numpy as np, supjax\n"
        "spec = supjax.SweepSpec(n=32, batch_size=64, widths=(4, 6), weight_decays=(-1.0, 1.0), steps=40,"
        " warmup_steps=4, progress=False)\n"
        "np.save(sys.argv[1], supjax.run_sweep(spec).losses)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    cache = tmp_path / "cache"

    def run(name, where):
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], capture_output=True, text=True,
                              env={**env, "SUPJAX_CACHE_DIR": where}, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return np.load(tmp_path / f"{name}.npy")

    first = run("first", str(cache))
    written = {p.name for p in cache.iterdir()}
    second = run("second", str(cache))
    assert written and {p.name for p in cache.iterdir()} == written  # read back, nothing new compiled
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, run("uncached", "off"))
    assert not (tmp_path / "off").exists()


def test_programs_run_once_compile_for_compile_time_to_the_bits_of_the_default_level():
    """On a CPU the initial states (like the SAEs' evaluation) compile at LLVM's level 1 (engine.jit_once),
    several times faster than at XLA's default level: they are the default level's bits, for both of the
    weight draws (level 0 would round the inverse erf otherwise)."""
    import jax

    from supjax import layout
    from supjax.engine import program

    assert program.QUICK_COMPILE["cpu"] == {"xla_backend_optimization_level": 1}
    default = jax.jit(program.init_states.__wrapped__, static_argnames="static")
    for weight_init in ("normal", "xavier_normal"):
        spec = SweepSpec(n=40, batch_size=32, widths=(3, 5), weight_decays=(-1.0, 1.0), steps=20, warmup_steps=2,
                         weight_init=weight_init, progress=False)  # fmt: skip
        job = layout.plan(layout.resolve_for_backend(spec)).job()
        quick = jax.tree.leaves(program.init_states(job.static, *job.init_args))
        fresh = jax.tree.leaves(default(job.static, *job.init_args))
        assert len(quick) == len(fresh) > 4
        for a, b in zip(quick, fresh, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
