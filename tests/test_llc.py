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
