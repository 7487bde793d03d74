"""The local learning coefficient: devinterp's estimator against known answers (the LLC wing on the engine
is tests/test_llc_wing.py)."""

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
