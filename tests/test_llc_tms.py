"""The LLC's known answers in Chen et al.'s TMS (arXiv 2310.06301): 6 features, 2 hidden dimensions,
one active feature per input (x = mu e_i, mu ~ U[0, 1]), ReLU(W^T W x + b), the squared error summed
over features. The pentagon (a dead sixth column) has lambda = 7, the hexagon 8.5 (and the 5+ pentagon,
whose sixth bias is 1/12, 8.5 too); the SGLD estimate tells a trained pentagon from a hexagon.

The estimator is the paper's: lambda_hat = n beta (E L_n(w) - L_n(w*)), beta = 1 / ln n, L_n the loss on
n draws of the data law (:func:`supjax.tms_llc.empirical_loss`, exact, full batch), chains localized at
w*. The sample size is 5e5, not the paper's 5000 (its Table K.1, as ztreisman/arc-llc transcribes it:
7.71 +- 0.85 for the pentagon, 9.03 +- 0.59 for the hexagon): at n = 5000 the estimate is pre-asymptotic
and follows the localization (experiments/llc_tms.py, 8 chains of 20000 draws: gamma_loc = 1 gives 8.65
and 9.61, gamma_loc = 10 gives 7.08 and 7.89). At n = 5e5, n beta = 38100 dwarfs gamma_loc = 100 in every
curved direction (n beta times the smallest nonzero Hessian eigenvalue, 0.021 at the hexagon, is 785),
while gamma_loc = 100 keeps the pentagon's dead column near its flat region (excursions of
1 / sqrt(100) = 0.1 against the 0.24 at which its weights start to interfere with the other outputs); the
estimate no longer follows gamma_loc (on the population loss, 100000 draws of eps 2e-6: 7.03 and 8.54 at
gamma_loc = 30, 7.00 and 8.41 at 100). The step 4e-6 keeps eps a / 4 under 5% in the stiffest direction
(a = n beta x 1.25 + gamma_loc) and the MALA acceptance near 0.98; 6000 draws after the burn-in are ten
correlation times (2 / (eps a) = 565 steps) of the softest curved direction.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from supjax import tms_llc
from supjax.llc import sgld

N = 500_000
SGLD = dict(nbeta=sgld.default_nbeta(N), localization=100.0, step_size=4e-6, chains=4, draws=8000, burn_in=2000)


@pytest.fixture(scope="module")
def data():
    """n = 5e5 draws of the data law."""
    return tms_llc.empirical(tms_llc.sample(jax.random.key(2023), N))


@pytest.fixture(scope="module")
def llc(data):
    """``llc(w*)``: the SGLD estimate on L_n at w* (one compiled program for every w*)."""

    def loss(w, _):
        return tms_llc.empirical_loss(w, data)

    return lambda w_star: sgld.estimate(loss, w_star, **SGLD)


@jax.jit
def _population_grad_and_hessian(w):
    flat, unravel = ravel_pytree(w)

    def loss(v):
        return tms_llc.population_loss(unravel(v))

    return jnp.linalg.norm(jax.grad(loss)(flat)), jax.hessian(loss)(flat)


@jax.jit
def _empirical_loss_and_grad_norm(w, data):
    loss, grad = jax.value_and_grad(tms_llc.empirical_loss)(w, data)
    return loss, jnp.linalg.norm(ravel_pytree(grad)[0])


@jax.jit
def _both_losses_and_grads(w, x, data):
    return jax.value_and_grad(tms_llc.empirical_loss)(w, data), jax.value_and_grad(tms_llc.batch_loss)(w, x)


@pytest.mark.parametrize(("name", "k", "positive"), [("5", 5, 0), ("5+", 5, 1), ("6", 6, 0)])
def test_the_kgons_are_critical_points_with_the_papers_losses_and_lambda_is_half_the_hessian_rank(name, k, positive):
    w = tms_llc.kgon(k, positive=positive, rotation=0.3)
    assert tms_llc.variant(w) == name
    assert float(tms_llc.population_loss(w)) == pytest.approx(tms_llc.KGON_LOSS[name], abs=1e-5)
    gradient, hessian = _population_grad_and_hessian(w)
    assert float(gradient) < 1e-5  # (l*, b*) to the paper's 5 digits
    # every one is minimally singular: lambda = rank / 2 (the pentagon: 4 flat directions, the rotation and
    # its dead column's W and b; the 5+ pentagon and the hexagon: the rotation only)
    eigenvalues = np.linalg.eigvalsh(np.asarray(hessian, np.float64))
    assert np.all(eigenvalues > -1e-4) and np.sum(eigenvalues > 1e-3) / 2 == tms_llc.KGON_LLC[name]
    assert np.min(eigenvalues[eigenvalues > 1e-3]) > 0.02  # and the rank is unambiguous


def test_the_dead_column_is_flat_and_the_5_plus_bias_is_the_papers_gap():
    pentagon = tms_llc.kgon(5)
    moved = {"W": pentagon["W"].at[5].set(jnp.array([0.1, -0.15])), "b": pentagon["b"].at[5].set(-0.3)}
    assert float(tms_llc.population_loss(moved)) == pytest.approx(float(tms_llc.population_loss(pentagon)), abs=1e-7)
    gap = float(tms_llc.population_loss(pentagon) - tms_llc.population_loss(tms_llc.kgon(5, positive=1)))
    assert gap == pytest.approx(1 / 144, abs=1e-6)  # 1 / (4 c^2) at the positive bias 1 / (2c)


def test_the_empirical_loss_is_the_batch_loss_exactly_and_tends_to_the_population_loss(data):
    x = tms_llc.sample(jax.random.key(0), 3000)
    small = tms_llc.empirical(x)
    for seed in range(3):
        kw, kb = jax.random.split(jax.random.key(seed))
        w = {"W": jax.random.normal(kw, (6, 2)), "b": 0.5 * jax.random.normal(kb, (6,))}
        (exact, exact_grad), (by_batch, batch_grad) = _both_losses_and_grads(w, x, small)
        assert float(exact) == pytest.approx(float(by_batch), rel=1e-5)
        for name in ("W", "b"):
            np.testing.assert_allclose(exact_grad[name], batch_grad[name], rtol=1e-4, atol=1e-5)
    for k in (5, 6):
        w = tms_llc.kgon(k)
        loss, grad_norm = _empirical_loss_and_grad_norm(w, data)
        assert float(loss) == pytest.approx(float(tms_llc.population_loss(w)), abs=5e-4)
        assert float(grad_norm) < 2e-3  # w* is critical for L_n too, to O(n^-1/2)
    with pytest.raises(ValueError, match="one active feature"):
        tms_llc.empirical(jnp.ones((2, 6)))


def _check_chains(est):
    assert np.all(est.diverged_at == -1) and np.nanmean(est.acceptance) > 0.9
    # the paper's rule drops a chain whose draws fall below L(w*) (it left w*'s phase): none here
    assert np.all(np.nanmean(est.below[0], axis=-1) <= 0.05)


def test_sgld_gives_the_pentagon_7_and_the_hexagon_8_5(llc):
    pentagon, hexagon = llc(tms_llc.kgon(5)), llc(tms_llc.kgon(6))
    for est in (pentagon, hexagon):
        _check_chains(est)
    (p, sp), (h, sh) = ((float(e.mean[0]), float(e.std[0])) for e in (pentagon, hexagon))
    assert abs(p - 7.0) < 0.15 * 7.0, (p, sp)
    assert abs(h - 8.5) < 0.15 * 8.5, (h, sh)
    # told apart: the difference of 1.5 is many standard errors, and each is nearest its own value
    assert h - p > 4 * math.hypot(sp, sh) / math.sqrt(SGLD["chains"]), (p, sp, h, sh)
    assert abs(p - 7.0) < abs(p - 8.5) and abs(h - 8.5) < abs(h - 7.0)


def test_a_trained_model_is_told_by_its_llc_as_its_geometry_says(data, llc):
    """Adam on L_n from 16 random initializations ends at pentagons (the sixth row short, its bias
    negative), 5+ pentagons, hexagons and squares; at the first of each of the pentagon, the 5+ pentagon
    and the hexagon, lambda_hat rounded to the nearer of 7 and 8.5 is the lambda of the k-gon that
    :func:`supjax.tms_llc.variant` reads off the weights. A 5+ pentagon reads 8.5, as the hexagon does: the
    LLC tells a pentagon from a hexagon, not a 5+ pentagon from a hexagon."""
    adam = optax.adam(1e-2)

    def init(key):
        kw, kb = jax.random.split(key)
        return {"W": 0.5 * jax.random.normal(kw, (6, 2)), "b": -0.1 * jnp.abs(jax.random.normal(kb, (6,)))}

    @jax.jit
    def train(keys):
        def step(carry, _):
            w, state = carry
            updates, state = adam.update(jax.grad(tms_llc.empirical_loss)(w, data), state)
            return (optax.apply_updates(w, updates), state), None

        def one(key):
            w = init(key)
            return jax.lax.scan(step, (w, adam.init(w)), None, length=3000)[0][0]

        return jax.vmap(one)(keys)

    trained = train(jnp.stack([jax.random.key(seed) for seed in range(16)]))
    first = {}
    for index in range(16):
        w = jax.tree.map(lambda a, i=index: a[i], trained)
        first.setdefault(tms_llc.variant(w), w)
    assert {"5", "5+", "6"} <= set(first), sorted(map(str, first))
    for name in ("5", "5+", "6"):
        w = first[name]
        assert float(_empirical_loss_and_grad_norm(w, data)[1]) < 1e-3, name  # trained to a critical point
        est = llc(w)
        _check_chains(est)
        estimate = float(est.mean[0])
        nearest = min((7.0, 8.5), key=lambda value, e=estimate: abs(e - value))
        assert nearest == tms_llc.KGON_LLC[name], (name, estimate, float(est.std[0]))
