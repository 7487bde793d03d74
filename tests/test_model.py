import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supjax import data, model


def test_init_scales():
    params = model.init_params(jax.random.key(1), 2000, 50)
    assert params["W"].shape == (2000, 50) and params["b"].shape == (2000,)
    assert float(jnp.std(params["W"])) == pytest.approx(50**-0.5, rel=0.02)
    assert float(jnp.std(params["b"])) == pytest.approx(1.0, rel=0.05)


def test_forward_is_relu_of_x_w_wt_plus_b():
    params = model.init_params(jax.random.key(2), 30, 5)
    x = data.sample_features(jax.random.key(3), data.feature_probabilities("power:1.0", 30), 16)
    W, b, xs = (np.asarray(a, np.float64) for a in (params["W"], params["b"], x))
    expected = np.maximum(xs @ W @ W.T + b, 0)
    np.testing.assert_allclose(model.forward(params, x), expected, rtol=1e-5, atol=1e-5)


def test_loss_is_n_times_mse_and_zero_model_costs_four_thirds_e():
    n = 500
    p = data.feature_probabilities("power:1.2", n)
    x = data.sample_features(jax.random.key(4), p, 100_000)
    zero = {"W": jnp.zeros((n, 8)), "b": jnp.zeros(n)}
    loss = float(model.loss(zero, x))
    assert loss == pytest.approx(n * float(model.mean_squared_error(zero, x)), rel=1e-5)
    assert loss == pytest.approx(4 / 3 * p.sum(), rel=0.02)


@pytest.mark.parametrize("tile", [None, 64, 16])
def test_hand_written_gradient_equals_autodiff(tile):
    n, m = 120, 7
    params = model.init_params(jax.random.key(5), n, m)
    params["b"] = params["b"] - 0.5  # some units off, some on: both branches of the ReLU
    x = data.sample_features(jax.random.key(6), data.feature_probabilities("power:0.8", n, 0.3), 256)
    mse, grads = model.mse_and_grad(params, x, tile)
    ref_mse, ref_grads = jax.value_and_grad(model.mean_squared_error)(params, x)
    np.testing.assert_allclose(mse, ref_mse, rtol=1e-5)
    for k in ("W", "b"):
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=1e-4, atol=1e-7)


def test_active_entries_hold_each_rows_nonzeros_and_flag_overflow():
    x = data.sample_features(jax.random.key(3), data.feature_probabilities("power:0.5", 40, 0.5), 32)
    counts = np.sum(np.asarray(x) != 0, axis=1)
    index, value, fits = model.active_entries(x, int(counts.max()))
    assert bool(fits)
    rebuilt = np.zeros_like(np.asarray(x))
    np.add.at(rebuilt, (np.arange(32)[:, None], np.asarray(index)), np.asarray(value))
    np.testing.assert_array_equal(rebuilt, x)  # padding slots are index 0, value 0
    assert not bool(model.active_entries(x, int(counts.max()) - 1)[2])


@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_x_products_equal_the_dense_step(weighted):
    n, m = 300, 9
    params = model.init_params(jax.random.key(5), n, m)
    p = data.feature_probabilities("power:1.0", n)
    x = data.sample_features(jax.random.key(6), p, 256)
    importance = jnp.asarray(data.feature_importance("power:0.5", n), jnp.float32) if weighted else None
    index, value, fits = model.active_entries(x, data.active_capacity(p.sum()))
    assert bool(fits) and index.shape == (256, 16)
    mse, grads = model.mse_and_grad(params, x, 64, importance, (index, value))
    ref_mse, ref_grads = model.mse_and_grad(params, x, 64, importance)
    np.testing.assert_allclose(mse, ref_mse, rtol=1e-6)
    for k in ("W", "b"):
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=1e-5, atol=1e-8)


def test_batch_tile_choice():
    assert model.default_batch_tile(2048, "cpu") == 256
    assert model.default_batch_tile(8192, "gpu") == 8192
    assert model.default_batch_tile(300, "cpu") == 300
    assert model.default_batch_tile(1031, "cpu") == 1031  # prime: no tiling
    with pytest.raises(ValueError, match="divide"):
        model.mse_and_grad(model.init_params(jax.random.key(0), 10, 2), jnp.zeros((12, 10)), 5)


def test_importance_weights_the_loss_and_ones_change_nothing():
    n = 50
    params = model.init_params(jax.random.key(7), n, 4)
    x = data.sample_features(jax.random.key(8), data.feature_probabilities("power:1.0", n), 64)
    ones = jnp.asarray(data.feature_importance("uniform", n), jnp.float32)
    assert model.loss(params, x, ones) == model.loss(params, x)  # exactly
    mse, grads = model.mse_and_grad(params, x, 16, ones)
    plain_mse, plain_grads = model.mse_and_grad(params, x, 16)
    assert mse == plain_mse and bool(jnp.all(grads["W"] == plain_grads["W"]))
    weights = jnp.asarray(data.feature_importance("geometric:0.9", n), jnp.float32)
    mse, grads = model.mse_and_grad(params, x, 16, weights)
    ref_mse, ref_grads = jax.value_and_grad(model.mean_squared_error)(params, x, weights)
    np.testing.assert_allclose(mse, ref_mse, rtol=1e-5)
    np.testing.assert_allclose(grads["W"], ref_grads["W"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(data.feature_importance("geometric:0.9", 4), 0.9 ** np.arange(4))
    np.testing.assert_allclose(data.feature_importance("power:2", 3), [1, 1 / 4, 1 / 9])


def test_cross_entropy_of_the_frequency_model_is_the_entropy():
    # W = 0 and b = log p predict p for every sample: the expected loss is H(p).
    n = 40
    p = data.feature_probabilities("power:1.2", n)
    params = {"W": jnp.zeros((n, 3)), "b": jnp.asarray(np.log(p), jnp.float32)}
    per_sample = model.cross_entropy_per_sample(params, jnp.eye(n) * 1.7)  # one active feature each
    entropy = -np.sum(p * np.log(p))
    assert float(jnp.dot(per_sample, jnp.asarray(p, jnp.float32))) == pytest.approx(entropy, rel=1e-5)
    # Soft targets: two equal active features put half the weight on each.
    x = jnp.zeros((1, n)).at[0, :2].set(0.5)
    expected = -0.5 * (np.log(p[0]) + np.log(p[1]))
    assert float(model.cross_entropy_per_sample(params, x)[0]) == pytest.approx(expected, rel=1e-5)
    assert float(model.cross_entropy(params, jnp.zeros((3, n)))) == 0.0  # no active feature, no loss
