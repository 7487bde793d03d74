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
