import math

import jax
import numpy as np
import pytest

from supjax import ConfigError, data


def test_sampler_moments_match_the_feature_law():
    # E[x_i] = p_i and E[x_i^2] = 4 p_i / 3 for x_i = u_i v_i, u ~ Bernoulli(p), v ~ U(0, 2).
    p = np.array([0.5, 0.2, 0.05, 0.01, 0.001, 1.0, 0.0])
    x = np.asarray(data.sample_features(jax.random.key(0), p, 400_000), dtype=np.float64)
    count = x.shape[0]
    mean, second = x.mean(0), (x**2).mean(0)
    mean_se = np.sqrt((4 * p / 3 - p**2) / count)
    second_se = np.sqrt((16 * p / 5 - (4 * p / 3) ** 2) / count)
    np.testing.assert_array_less(np.abs(mean - p), 5 * mean_se + 1e-12)
    np.testing.assert_array_less(np.abs(second - 4 * p / 3), 5 * second_se + 1e-12)
    active = x[:, 0][x[:, 0] > 0]
    assert 0 < active.min() and active.max() < 2
    assert abs(np.mean(active < 1.0) - 0.5) < 0.01  # the value is U(0, 2), not skewed


def test_sampler_keeps_tiny_probabilities_exact():
    # A float32 uniform has 23 random bits; our integer thresholds resolve 2^-32.
    p = np.array([6.1e-7, 1e-9, 0.3])
    thresholds, _ = data.sampler_tables(p)
    np.testing.assert_allclose(thresholds / 2.0**32, p, rtol=0, atol=2.0**-32)


@pytest.mark.parametrize(
    "label, expect",
    [
        ("power:1.5", lambda i, n: i**-1.5),
        ("exponential:400", lambda i, n: np.exp(-(i - 1) / 400)),
        ("linear", lambda i, n: (n - (i - 1)) / n),
    ],
)
def test_families_follow_their_laws_and_sum_to_one(label, expect):
    n = 1000
    p = data.feature_probabilities(label, n)
    i = np.arange(1, n + 1, dtype=np.float64)
    q = expect(i, n)
    np.testing.assert_allclose(p, q / q.sum(), rtol=1e-12)
    assert p.sum() == pytest.approx(1.0)


def test_activation_density_spans_the_papers_range():
    # exp-15: alpha = 1, n = 1000, s from 0 to 1 takes E = sum p from 1 to about 7.5.
    expected = [data.feature_probabilities("power:1.0", 1000, s).sum() for s in (0.0, 0.5, 1.0)]
    assert expected[0] == pytest.approx(1.0)
    assert expected[2] == pytest.approx(7.485, abs=0.01)
    assert expected[0] < expected[1] < expected[2]
    assert data.feature_probabilities("power:1.0", 1000, 1.0).max() == pytest.approx(1.0)


def test_explicit_vector_is_used_as_given(tmp_path):
    p = np.linspace(0.5, 0.01, 20)
    np.save(tmp_path / "p.npy", p)
    np.testing.assert_array_equal(data.feature_probabilities(f"file:{tmp_path / 'p.npy'}", 20), p)
    with pytest.raises(ConfigError, match="shape"):
        data.feature_probabilities(f"file:{tmp_path / 'p.npy'}", 30)
    np.save(tmp_path / "bad.npy", p * 3)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        data.feature_probabilities(f"file:{tmp_path / 'bad.npy'}", 20)


@pytest.mark.parametrize("label", ["zipf", "linear:2", "power:x", "exponential:-3", "file:"])
def test_bad_distribution_labels_are_named(label):
    with pytest.raises(ConfigError, match="distribution"):
        data.parse_distribution(label)


def _normal_cdf(z):
    return 0.5 * (1 + np.vectorize(math.erf)(z / np.sqrt(2)))


def _joint_activation(p_i, p_j, rho):
    """P(u_i = u_j = 1) under the Gaussian copula: integrate over the shared normal."""
    z_i, z_j = (float(jax.scipy.special.ndtri(np.float32(p))) for p in (p_i, p_j))
    g = np.linspace(-8, 8, 4001)
    density = np.exp(-(g**2) / 2) / np.sqrt(2 * np.pi)
    scale = np.sqrt(1 - rho)
    inner = _normal_cdf((z_i - np.sqrt(rho) * g) / scale) * _normal_cdf((z_j - np.sqrt(rho) * g) / scale)
    return np.trapezoid(density * inner, g)


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.8])
def test_copula_keeps_marginals_and_reaches_the_block_correlation(rho):
    p = np.array([0.3, 0.1, 0.05, 0.2, 0.02, 0.4, 0.1, 0.15])
    count = 300_000
    active = np.asarray(data.sample_correlated(jax.random.key(3), p, count, block=4, rho=rho)) > 0
    se = np.sqrt(p * (1 - p) / count)
    np.testing.assert_array_less(np.abs(active.mean(0) - p), 5 * se)
    for i, j in [(0, 1), (2, 3), (5, 7)]:  # pairs inside a block
        expected = _joint_activation(p[i], p[j], rho)
        assert abs((active[:, i] & active[:, j]).mean() - expected) < 5 * np.sqrt(expected / count)
    across = (active[:, 0] & active[:, 4]).mean()  # different blocks stay independent
    assert abs(across - p[0] * p[4]) < 5 * np.sqrt(p[0] * p[4] / count)


def test_exclusive_blocks_keep_marginals_and_one_feature_a_block():
    p = np.array([0.3, 0.1, 0.05, 0.2, 1e-6, 0.4, 0.1, 0.15])
    x = np.asarray(data.sample_correlated(jax.random.key(4), p, 300_000, block=4, exclusive=True), np.float64)
    active = x > 0
    assert active.reshape(-1, 2, 4).sum(-1).max() == 1
    se = np.sqrt(p * (1 - p) / x.shape[0])
    np.testing.assert_array_less(np.abs(active.mean(0) - p), 5 * se + 1e-6)
    np.testing.assert_allclose(x.mean(0), p, atol=5 * 2 * se.max())
    assert abs(np.mean(x[active] < 1.0) - 0.5) < 0.01  # values stay U(0, 2)
    with pytest.raises(ConfigError, match="sum above 1"):
        data.correlated_tables(np.full(8, 0.3), "exclusive", 4)
