"""The local learning coefficient: SGLD chains around a trained w*, and devinterp's estimator.

Singular learning theory's local learning coefficient lambda (LLC) of a model at a minimum w*
is its effective dimension there (d/2 for a regular model of d parameters, less where the loss
is degenerate). devinterp (Lau et al. 2023; timaeus-research/devinterp) estimates it from
stochastic-gradient Langevin dynamics localized at w*; supjax follows its conventions exactly:

* the step (its ``SGLD`` with ``localization`` gamma_loc, not the weight decay gamma):
  ``w <- w - (eps/2) [n beta grad L_B(w) + gamma_loc (w - w*)] + sqrt(eps) xi``, ``xi ~ N(0, I)``,
  with ``L_B`` the batch mean loss and ``n beta`` the inverse temperature (devinterp's ``nbeta``;
  its default ``B / ln B`` for a batch of B, :func:`default_nbeta`); optionally every coordinate
  is clipped to a box ``w* +- bounding_box``;
* the estimate ``lambda_hat = n beta (E[L(w)] - L(w*))``, E over the chain's draws. devinterp
  2.0.1's ``compute_llc`` averages the loss over every step, burn-in included, from the first
  step at w* itself: so does supjax with ``burn_in = 0`` (the default). ``L(w*)`` is measured on
  the same batches as the draws, so the difference is paired (devinterp 2.0.1 subtracts one
  ``init_loss`` of 32 batches shared by the chains: the same expectation, a larger spread);
* the MALA acceptance, a diagnostic only (nothing is rejected): for the potential
  ``U(w) = n beta L_B(w) + (gamma_loc/2) ||w - w*||^2`` and its gradient g,
  ``min(1, exp(U(w) - U(w') + log q(w|w') - log q(w'|w)))`` with
  ``log q(w'|w) = -||w' - w + (eps/2) g(w)||^2 / (2 eps)``. ``paired`` (the default) judges the
  transition w_{t-1} -> w_t with both sides' U and g on batch t, one more gradient a step: it tends
  to 1 as eps -> 0. ``lagged`` is devinterp 1.x's ``MalaAcceptanceRate``, each side on the batch of
  its own step, so that batch noise, not the step size, sets it (about 0.5 to 0.6 at batches of 32 to
  256 at any eps; devinterp 2.0.1 ships no acceptance diagnostic). A chain's first step has no
  transition and counts as accepted.

The loss convention matters for n beta. The toy models' loss is the squared error summed over
the features (n x the mean squared error over features, the paper's reported loss): with L so
defined, n beta plays its usual role. A loss averaged over the n features instead would need
n times the n beta of the summed one for the same posterior and the same lambda_hat. Tables say
which convention they use (``loss_convention``).

:func:`chain_step` is ONE chain's step (the engine vmaps it); :func:`estimate` runs chains for any
loss function, for the known answers (a quadratic, devinterp's normal crossing, reduced-rank
regression) and for a model outside the toy wing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from supjax.engine import program as engine


class SgldHyper(NamedTuple):
    """One chain's traced hyperparameters (scalars in the one-chain step)."""

    nbeta: Any  # n beta, the inverse temperature times the sample size
    localization: Any  # gamma_loc, the pull toward w*
    step_size: Any  # eps


class ChainState(NamedTuple):
    w: Any  # the chain's position, a pytree like w*
    previous: Any  # (w, g, U) of the last step, for the MALA acceptance of the next transition
    diverged_at: Any  # the step the chain's loss or position stopped being finite; -1 while alive


def default_nbeta(batch_size: int) -> float:
    """devinterp's default inverse temperature ``n beta = B / ln B`` for batches of B (B >= 2)."""
    return batch_size / math.log(batch_size)


def init_chain(w_star) -> ChainState:
    """A chain starting at w*: its 'previous' step is w* itself (the first transition is accepted)."""
    zeros = jax.tree.map(jnp.zeros_like, w_star)
    return ChainState(w_star, (w_star, zeros, jnp.float32(0.0)), jnp.int32(-1))


def _dot(a, b):
    return sum(jnp.sum(x * y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def chain_step(
    loss_and_grad: Callable,
    state: ChainState,
    w_star,
    hyper: SgldHyper,
    batch,
    key,
    t,
    bounding_box: float | None = None,
    mala: str = "paired",
):
    """ONE SGLD step of one chain at step t: ``(state, stats)``.

    ``loss_and_grad(w, batch) -> (L_B(w), grad L_B(w))`` (the batch mean loss); ``key`` draws the
    noise. ``stats``: ``losses`` L_B(w_t) and ``reference`` L_B(w*) on the same batch, ``acceptance``
    (MALA, of the transition into w_t: ``mala = "paired"`` on this batch, ``"lagged"`` as devinterp 1.x),
    ``below`` (1 where L_B(w_t) < L_B(w*)); NaN once diverged.
    """
    nbeta, gamma, eps = hyper.nbeta, hyper.localization, hyper.step_size

    def potential_and_drift(w):
        loss, grad = loss_and_grad(w, batch)
        offset = jax.tree.map(jnp.subtract, w, w_star)
        drift = jax.tree.map(lambda g, d: nbeta * g + gamma * d, grad, offset)
        return loss, nbeta * loss + 0.5 * gamma * _dot(offset, offset), drift

    loss, potential, drift = potential_and_drift(state.w)
    reference, _ = loss_and_grad(w_star, batch)

    w_prev, g_prev, u_prev = state.previous
    if mala == "paired":  # the previous point on this step's batch too
        _, u_prev, g_prev = potential_and_drift(w_prev)
    back = jax.tree.map(lambda a, b, g: a - b + 0.5 * eps * g, w_prev, state.w, drift)
    forth = jax.tree.map(lambda a, b, g: a - b + 0.5 * eps * g, state.w, w_prev, g_prev)
    log_ratio = u_prev - potential + (_dot(forth, forth) - _dot(back, back)) / (2.0 * eps)
    first = t == 0
    acceptance = jnp.where(first, 1.0, jnp.minimum(1.0, jnp.exp(jnp.minimum(log_ratio, 0.0))))

    leaves, tree = jax.tree.flatten(state.w)
    keys = jax.random.split(key, len(leaves))
    noise = [jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves, strict=True)]
    noise = jax.tree.unflatten(tree, noise)
    w_new = jax.tree.map(lambda w, g, xi: w - 0.5 * eps * g + jnp.sqrt(eps) * xi, state.w, drift, noise)
    if bounding_box is not None:
        w_new = jax.tree.map(lambda w, c: jnp.clip(w, c - bounding_box, c + bounding_box), w_new, w_star)

    finite = jnp.isfinite(loss) & jnp.all(jnp.array([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(w_new)]))
    alive = state.diverged_at < 0
    keep = alive & finite
    w_kept = jax.tree.map(lambda a, b: jnp.where(keep, a, b), w_new, state.w)
    previous = jax.tree.map(lambda a, b: jnp.where(keep, a, b), (state.w, drift, potential), state.previous)
    diverged_at = jnp.where(alive & ~finite, t, state.diverged_at).astype(jnp.int32)
    nan = jnp.float32(jnp.nan)
    stats = {
        "losses": jnp.where(alive, loss, nan),
        "reference": jnp.where(alive, reference, nan),
        "acceptance": jnp.where(alive, acceptance, nan),
        "below": jnp.where(alive, (loss < reference).astype(jnp.float32), nan),
    }
    return ChainState(w_kept, previous, diverged_at), stats


class Estimate(NamedTuple):
    """Chains of :func:`estimate`, each ``[settings, chains]`` (traces ``[settings, chains, draws]``)."""

    llc: np.ndarray  # lambda_hat of each chain
    losses: np.ndarray  # the trace of L_B(w_t)
    reference: np.ndarray  # the trace of L_B(w*)
    acceptance: np.ndarray  # the MALA acceptance trace
    below: np.ndarray  # 1 where the draw's loss was below L(w*)
    diverged_at: np.ndarray  # the step each chain diverged, -1 if never

    @property
    def mean(self) -> np.ndarray:
        """lambda_hat averaged over the chains: ``[settings]``."""
        return np.nanmean(self.llc, axis=-1)

    @property
    def std(self) -> np.ndarray:
        """The chains' standard deviation of lambda_hat: ``[settings]``."""
        return np.nanstd(self.llc, axis=-1)


def estimate(
    loss: Callable,
    w_star,
    *,
    nbeta,
    localization,
    step_size,
    chains: int = 4,
    draws: int = 200,
    burn_in: int = 0,
    seed: int = 0,
    batch: Callable | None = None,
    bounding_box: float | None = None,
    mala: str = "paired",
) -> Estimate:
    """lambda_hat at ``w_star`` of ``loss(w, batch) -> L_B(w)`` (the batch mean loss), ``chains`` chains
    of ``draws`` SGLD steps for every setting: ``nbeta``, ``localization`` and ``step_size`` are
    scalars or equal-length sequences (one setting each; traced, so a calibration grid compiles
    once). ``batch(key, t)`` draws step t's batch (None: full batch, ``loss(w, None)``). The first
    ``burn_in`` draws are left out of lambda_hat. ``mala``: how the acceptance diagnostic judges a
    transition (``"paired"`` or devinterp 1.x's ``"lagged"``; see the module docstring).

    Example:
        >>> quadratic = lambda w, batch: 0.5 * jnp.sum(w**2)
        >>> est = estimate(quadratic, jnp.zeros(10), nbeta=100.0, localization=0.0, step_size=1e-3, draws=2000)
        >>> round(float(est.mean[0]))  # d / 2
        5
    """
    values = (nbeta, localization, step_size)
    settings = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, np.float32)) for v in values))
    hyper = SgldHyper(*(jnp.asarray(s) for s in settings))
    k = len(settings[0])
    grid = jax.tree.map(lambda a: jnp.broadcast_to(a[:, None], (k, chains)), hyper)
    stats = _run_chains(loss, w_star, grid, seed, draws, batch, bounding_box, mala)
    return _estimate(*(np.asarray(stats[name]) for name in ("losses", "reference", "acceptance", "below")),
                     np.asarray(stats["diverged_at"]), np.asarray(settings[0]), burn_in)  # fmt: skip


def llc_of(losses: np.ndarray, reference: np.ndarray, nbeta, burn_in: int = 0) -> np.ndarray:
    """lambda_hat = n beta (mean L(w_t) - mean L(w*)) over the draws after ``burn_in`` (last axis)."""
    return np.asarray(nbeta) * (np.mean(losses[..., burn_in:], -1) - np.mean(reference[..., burn_in:], -1))


def _estimate(losses, reference, acceptance, below, diverged_at, nbeta, burn_in) -> Estimate:
    llc = llc_of(losses, reference, nbeta[:, None], burn_in)
    return Estimate(llc, losses, reference, acceptance, below, diverged_at)


@functools.partial(jax.jit, static_argnames=("loss", "draws", "batch", "bounding_box", "mala"))
def _run_chains(loss, w_star, grid: SgldHyper, seed: int, draws: int, batch, bounding_box, mala):
    loss_and_grad = jax.value_and_grad(loss)
    settings, chains = grid.nbeta.shape
    noise_keys = jax.random.split(jax.random.key(seed), settings * chains).reshape(settings, chains)
    # every chain its own batches; the settings share a chain's batches (common random numbers)
    data_keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), 0x11C), chains)

    def one_chain(hyper, key, data_key):
        def step(state, t):
            draw = None if batch is None else batch(jax.random.fold_in(data_key, t), t)
            noise = jax.random.fold_in(key, t)
            return chain_step(loss_and_grad, state, w_star, hyper, draw, noise, t, bounding_box, mala)

        def zeros():
            return {name: jnp.float32(0.0) for name in ("losses", "reference", "acceptance", "below")}

        state, logs = engine.windows(step, zeros, 1)(init_chain(w_star), 0, draws)
        return {**logs, "diverged_at": state.diverged_at}

    return jax.vmap(jax.vmap(one_chain, in_axes=(0, 0, 0)), in_axes=(0, 0, None))(grid, noise_keys, data_keys)
