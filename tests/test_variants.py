"""Model variants (supjax.variants) and the program's switches: stream loop, precision, fused gradient."""

import re
import textwrap

import numpy as np
import pytest

from supjax import ConfigError, SweepSpec, analysis, load_run, run_sweep
from supjax.cli import main


@pytest.fixture
def spec():
    return SweepSpec(
        n=48,
        batch_size=128,
        widths=(6,),
        weight_decays=(-1.0, 0.1),
        alphas=(0.5, 1.0),
        steps=600,
        warmup_steps=60,
        lr=0.02,
        progress=False,
    )


def bias_only_loss(spec: SweepSpec) -> np.ndarray:
    """The best loss that ignores x, per distribution: y_i = p_i costs Var(x_i) = 4p/3 - p^2."""
    return {k: float(np.sum(4 * p / 3 - p**2)) for k, p in spec.feature_probabilities.items()}


@pytest.mark.parametrize("name", ["untied", "hidden_relu", "linear"])
def test_every_variant_trains_below_the_loss_that_ignores_x(spec, name):
    # A small decay lets each model choose what to represent; growth (gamma < 0) forces every
    # row to unit norm, which a linear model, with no ReLU to filter interference, pays for.
    spec = spec.replace(weight_decays=(0.1,))
    run = run_sweep(spec.replace(model=name))
    assert np.all(np.isfinite(run.losses))
    floor = bias_only_loss(spec)
    for row, loss in zip(run.models, run.final_loss(), strict=True):
        key = f"{row['distribution']}@{row['activation_density']!r}"
        assert loss < 0.85 * floor[key], (name, row, loss, floor[key])
    assert set(run.params[6]) >= {"W", "b", "index"}
    if name == "untied":
        assert run.params[6]["W_decoder"].shape == (spec.num_models, spec.n, 6)


def test_the_tied_models_autodiff_path_equals_its_fused_gradient(spec):
    fused = run_sweep(spec)
    autodiff = run_sweep(spec.replace(fused_gradient=False))
    np.testing.assert_allclose(autodiff.final_loss(), fused.final_loss(), rtol=1e-3)
    np.testing.assert_allclose(autodiff.losses[:, :5], fused.losses[:, :5], rtol=1e-5)  # same init, same data


@pytest.mark.parametrize("tile", [None, 32], ids=["one-tile", "four-tiles"])
def test_both_stream_loops_agree_and_compile_once(spec, tile, compile_log):
    # Two data streams per width (two alphas) and, with tile 32, four batch tiles a step.
    spec = spec.replace(batch_tile=tile or spec.batch_size, steps=200, warmup_steps=20, n=40 + (tile or 0) // 8)
    runs = {}
    for loop in ("map", "vmap"):
        with compile_log:
            runs[loop] = run_sweep(spec.replace(stream_loop=loop))
        assert compile_log.count("train_chunk") >= 1
        with compile_log:  # other traced values: no new program
            run_sweep(spec.replace(stream_loop=loop, weight_decays=(-0.5, 1.0), alphas=(0.7, 1.3), seeds=(3,)))
        assert compile_log.count("train_chunk") == compile_log.count("init_states") == 0
    np.testing.assert_allclose(runs["vmap"].final_loss(), runs["map"].final_loss(), rtol=1e-4)


@pytest.mark.parametrize(
    ("precision", "level"), [("float32", "HIGHEST"), ("tensorfloat32", "HIGH"), ("bfloat16", "DEFAULT")]
)
def test_every_product_of_the_step_carries_its_precision(spec, precision, level):
    """XLA:CPU computes every level in float32, so the losses cannot tell: read the lowered program."""
    import jax.numpy as jnp

    from supjax import layout
    from supjax.engine import program

    job = layout.plan(spec.replace(precision=precision, steps=20, warmup_steps=2)).job()
    states = program.init_states(job.static, *job.init_args)
    lowered = program.train_chunk.lower(job.static, states, job.inputs, jnp.int32(0), num_windows=1)
    text = lowered.as_text()
    dots = re.findall(r"stablehlo\.dot_general[^\n]*", text)
    assert len(dots) >= 5, "h = x W, z = h W^T, dz W, x^T dh, dz^T h"
    assert all(f"precision = [{level}, {level}]" in dot for dot in dots), dots
    # bfloat16 is real on every backend: bf16 operands, float32 accumulation and result.
    operands = "bf16" if precision == "bfloat16" else "f32"
    for dot in dots:
        inputs, output = re.search(r": \((.*)\) -> (.*)$", dot).groups()
        assert re.findall(r"x(f32|bf16)>", inputs) == [operands] * 2 and output.endswith("xf32>"), dot


@pytest.mark.parametrize(
    ("field", "value"),
    [("model", "convolutional"), ("model", "nowhere.at_all:Model"), ("precision", "float16"), ("stream_loop", "scan")],
)
def test_a_bad_switch_is_one_config_error_naming_its_field(spec, field, value, tmp_path, capsys):
    with pytest.raises(ConfigError) as err:
        spec.replace(**{field: value})
    assert err.value.field == field and "\n" not in str(err.value)
    config = tmp_path / "c.toml"
    config.write_text(f'n = 48\nwidths = [4]\n{field} = "{value}"\n')
    assert main(["sweep", str(config), "--out", str(tmp_path / "out")]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and field in line and value in line


def test_variant_rules_are_config_errors(spec):
    with pytest.raises(ConfigError, match="tied"):
        spec.replace(model="untied", loss="cross_entropy")
    with pytest.raises(ConfigError, match="sparse"):
        spec.replace(model="linear", sparse_products=True)
    with pytest.raises(ConfigError, match="sparse"):
        spec.replace(fused_gradient=False, sparse_products=True)


MODULE = """
import jax
import jax.numpy as jnp
from flax import nnx


class Gated(nnx.Module):
    def __init__(self, n, m, *, rngs):
        self.W = nnx.Param(jax.random.normal(rngs.params(), (n, m)) / m**0.5)
        self.b = nnx.Param(jnp.zeros(n))
        self.gate = nnx.Param(jnp.ones(n))

    def __call__(self, x):
        return jax.nn.relu(self.gate * (x @ self.W @ self.W.T) + self.b)


class Narrow(nnx.Module):
    def __init__(self, n, m, *, rngs):
        self.V = nnx.Param(jnp.zeros((n, m)))

    def __call__(self, x):
        return x
"""


def test_a_users_nnx_module_trains_in_a_sweep_and_is_analysed(spec, tmp_path, monkeypatch):
    (tmp_path / "my_toys.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = spec.replace(weight_decays=(0.1,))
    run = run_sweep(spec.replace(model="my_toys:Gated"), out=tmp_path / "run")
    floor = bias_only_loss(spec)
    assert np.all(run.final_loss() < 0.85 * min(floor.values()))
    assert set(run.params[6]) == {"W", "b", "gate", "index"}
    summary, _ = analysis.analyze(tmp_path / "run")
    assert summary.represented_fraction.between(0, 1).all() and summary.mean_squared_overlap.gt(0).all()
    with pytest.raises(ConfigError, match="parameter W of shape"):
        spec.replace(model="my_toys:Narrow")
    with pytest.raises(ConfigError, match="has no Missing"):
        spec.replace(model="my_toys:Missing")


def test_untied_runs_resume_bitwise_and_report_decoder_rows(spec, tmp_path):
    import shutil

    spec = spec.replace(model="untied", steps=1200, warmup_steps=100, checkpoint_every=400, max_to_keep=5)
    whole = run_sweep(spec, out=tmp_path / "whole")
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "whole", cut)
    for name in ("1200", "800"):  # back to the checkpoint at step 400, as if killed there
        shutil.rmtree(cut / "checkpoints" / "batch-000" / name)
    (cut / "losses.npy").unlink()
    resumed = run_sweep(spec, out=cut, resume=True)
    np.testing.assert_array_equal(resumed.losses, whole.losses)
    for key in ("W", "W_decoder", "b"):
        np.testing.assert_array_equal(load_run(cut).params[6][key], whole.params[6][key])
    summary, _ = analysis.analyze(cut)
    assert {"decoder_represented_fraction", "decoder_mean_squared_overlap", "encoder_decoder_alignment"} <= set(
        summary.columns
    )
    assert summary.encoder_decoder_alignment.between(-1, 1).all()
    # From independent inits, a small decay aligns the encoder and decoder rows of the features it keeps.
    assert summary[summary.weight_decay > 0].encoder_decoder_alignment.min() > 0.5


@pytest.mark.parametrize("fused", [True, False])
def test_every_declared_target_is_the_one_the_loss_compares_with(fused):
    """For each ``target`` the config accepts, the reported loss is sum_i (y_i - target(x_i))^2 averaged
    over the batch, y = ReLU(x W W^T + b), checked in numpy on signed features (where x and |x| differ)."""
    import dataclasses

    import jax
    import jax.numpy as jnp

    from supjax import variants
    from supjax.config import choices_of

    (field,) = [f for f in dataclasses.fields(SweepSpec) if f.name == "target"]
    rng = np.random.default_rng(3)
    x = (rng.uniform(-1, 1, (32, 6)) * (rng.random((32, 6)) < 0.4)).astype(np.float32)
    params = {"W": rng.normal(size=(6, 2)).astype(np.float32), "b": rng.normal(size=6).astype(np.float32)}
    y = np.maximum(x @ params["W"] @ params["W"].T + params["b"], 0.0)
    expected = {"identity": x, "abs": np.abs(x)}
    losses = {}
    for target in choices_of(field):
        definition = variants.get("tied", target=target, fused_gradient=fused)
        loss, _ = definition.loss_and_grad(jax.tree.map(jnp.asarray, params), jnp.asarray(x))
        losses[target] = float(loss)
        assert losses[target] == pytest.approx(np.mean(np.sum((y - expected[target]) ** 2, axis=1)), rel=1e-5)
    assert set(losses) == set(expected) and losses["identity"] != pytest.approx(losses["abs"])


def test_an_untied_hidden_relu_computes_abs_of_signed_features():
    """ARENA's computation in superposition: x_i ~ U(-1, 1) with probability p, target |x_i|. The
    best output that ignores x costs Var(|x_i|) = p/3 - p^2/4 a feature. |x| = ReLU(x) + ReLU(-x)
    needs two hidden units of opposite sign a feature and a decoder free of the encoder: the tied
    hidden-ReLU model can give ReLU(w^2 x_i) at best, so it does worse."""
    p = 0.05
    spec = SweepSpec(
        n=20,
        batch_size=512,
        widths=(20,),
        weight_decays=(0.0,),
        distribution=(f"constant:{p}",),
        feature_values="uniform_-1_1",
        target="abs",
        model="untied_hidden_relu",
        bias_init="zeros",
        steps=3000,
        warmup_steps=100,
        lr=0.02,
        progress=False,
    )
    untied = run_sweep(spec).final_loss()[0]
    assert untied < 0.45 * spec.n * (p / 3 - p**2 / 4)
    assert run_sweep(spec.replace(model="hidden_relu")).final_loss()[0] > 1.2 * untied


def test_the_fused_gradient_follows_the_target(spec):
    spec = spec.replace(feature_values="uniform_-1_1", target="abs", steps=100, warmup_steps=10)
    fused, autodiff = run_sweep(spec), run_sweep(spec.replace(fused_gradient=False))
    np.testing.assert_allclose(autodiff.losses[:, :5], fused.losses[:, :5], rtol=1e-5)
    assert not np.allclose(fused.losses, run_sweep(spec.replace(target="identity")).losses, rtol=1e-2)


def test_bfloat16_products_are_real_on_the_cpu_and_close_to_float32(spec):
    """bf16 operands change the numbers (XLA:CPU would ignore a mere precision hint), by about
    bf16's rounding, not more: the losses of the first windows agree to 1e-2."""
    spec = spec.replace(steps=100, warmup_steps=10)
    exact, mixed = run_sweep(spec), run_sweep(spec.replace(precision="bfloat16"))
    assert np.all(np.isfinite(mixed.losses)) and not np.array_equal(mixed.losses, exact.losses)
    np.testing.assert_allclose(mixed.losses[:, :3], exact.losses[:, :3], rtol=1e-2)
