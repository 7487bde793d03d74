"""Chen et al.'s toy model of superposition and its k-gon critical points: the LLC's known answers.

Chen, Lau, Mendel, Wei and Murfet (2023), "Dynamical versus Bayesian phase transitions in a toy
model of superposition" (arXiv 2310.06301), study TMS in its high-sparsity limit: c features,
r = 2 hidden dimensions, and inputs with exactly ONE active feature,

    x = mu e_i,   i uniform on {1, ..., c},   mu ~ U[0, 1],

the model ``f(x) = ReLU(W^T W x + b)`` (their W is r x c; supjax's ``W`` is its transpose,
``[c, 2]``, so ``f(x) = ReLU(x W W^T + b)`` as in :func:`supjax.model.forward`) and the loss
``L(w) = E ||x - f(x)||^2``, the squared error summed over the features and averaged over the
samples: supjax's reported loss (:func:`supjax.model.loss`), the paper's ``L = H / (3c)``.

Its critical points in two hidden dimensions are regular k-gons: k columns of ``W`` of length l*
at angles ``2 pi j / k`` with bias b* (:data:`KGON_RADIUS_BIAS`, the paper's values), the other
c - k columns zero. A zero column's bias picks the variant: negative (the column is dead: any
b < 0 is critical, and the loss is flat in all three of the column's parameters while they stay
small) or ``1 / (2c)`` (the paper's k+ variants; at k = 5, c = 6 their loss is 1/(4 c^2) lower).
The local learning coefficients at c = 6 (:data:`KGON_LLC`): the hexagon's 8.5 = (3c - 1) / 2
(18 parameters less the rotation), the pentagon's 7 = (3 x 5 - 1) / 2 (its dead column's three
parameters flat), the 5+ pentagon's 8.5, the hexagon's value: the LLC tells a pentagon from a
hexagon, not a 5+ pentagon from a hexagon. All three points are minimally singular: lambda is
half the rank of the loss's Hessian there.

:func:`population_loss` is the exact loss (each output's ReLU is on over an interval of mu, so the
integral is a polynomial in the interval's ends, the paper's Lemma 3.1) and :func:`empirical_loss`
the exact loss on n draws of the data law (:func:`empirical`), the same polynomial with the
moments of mu summed over the draws, in O(c^2 log n) whatever n: the paper's L_n for
:func:`supjax.llc.sgld.estimate` at any sample size. :func:`variant` reads a trained model's
geometry (:func:`supjax.tms.adjacent_angles`) as one of the paper's k-gons.

Example:
    >>> round(float(population_loss(kgon(6))), 5)  # the paper's L of the hexagon at c = 6
    0.04819
    >>> variant(kgon(5, positive=1)), KGON_LLC["5"], KGON_LLC["6"]
    ('5+', 7.0, 8.5)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from supjax import model, tms

# (l*, b*) of the regular k-gon, the length and bias of its columns (Chen et al. 2023's table of
# the k-gon critical points; the square's are exactly (1, 0)).
KGON_RADIUS_BIAS = {
    4: (1.0, 0.0),
    5: (1.17046, -0.28230),
    6: (1.32053, -0.61814),
    7: (1.44839, -0.96691),
    8: (1.55045, -1.29119),
}
# The paper's losses at c = 6, L = (h_k + c - k) / (3c) ("5": the pentagon with a dead sixth column).
KGON_LOSS = {"5": 0.06874, "5+": 0.06180, "6": 0.04819}
# The paper's local learning coefficients at c = 6.
KGON_LLC = {"5": 7.0, "5+": 8.5, "6": 8.5}


def kgon(k: int, c: int = 6, positive: int = 0, dead_bias: float = -1.0, rotation: float = 0.0) -> dict:
    """The regular k-gon critical point ``{"W": [c, 2], "b": [c]}`` (float32).

    Rows ``0..k-1`` of ``W`` form the k-gon (length l*, angle ``rotation + 2 pi j / k``, bias b*);
    the other c - k rows are zero with bias ``dead_bias`` (negative: dead, the paper's plain
    k-gon), except the first ``positive`` of them, whose bias is ``1 / (2c)`` (the k+ variants).
    """
    if k not in KGON_RADIUS_BIAS:
        raise ValueError(f"k must be one of {sorted(KGON_RADIUS_BIAS)}, got {k}")
    if k > c or not 0 <= positive <= c - k:
        raise ValueError(f"need k <= c and 0 <= positive <= c - k, got k={k}, c={c}, positive={positive}")
    if dead_bias >= 0 and c - k - positive > 0:
        raise ValueError(f"a dead column's bias must be negative, got {dead_bias}")
    length, bias = KGON_RADIUS_BIAS[k]
    angles = rotation + 2 * np.pi * np.arange(k) / k
    W = np.zeros((c, 2))
    W[:k] = length * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    b = np.full(c, dead_bias)
    b[:k] = bias
    b[k : k + positive] = 1.0 / (2 * c)
    return {"W": jnp.asarray(W, jnp.float32), "b": jnp.asarray(b, jnp.float32)}


def variant(params, threshold: float = 0.5, tolerance: float = 5.0) -> str | None:
    """The paper's name for the k-gon that ``params`` is: ``"5"``, ``"5+"``, ``"6"``, ...: k rows of
    ``W`` longer than ``threshold`` whose adjacent angles are all within ``tolerance`` degrees of
    360/k, then a ``+`` for each shorter row with a positive bias. None if the rows are no k-gon."""
    W, b = np.asarray(params["W"]), np.asarray(params["b"])
    short = np.linalg.norm(W, axis=1) <= threshold
    k = int(np.sum(~short))
    if k < 2 or np.any(np.abs(tms.adjacent_angles(W, threshold) - 360.0 / k) > tolerance):
        return None
    return f"{k}" + "+" * int(np.sum(b[short] > 0))


def population_loss(params) -> jax.Array:
    """The exact ``E ||x - f(x)||^2`` under the data law, differentiable (autodiff gives the exact
    gradient: where an output switches on, its two integrands agree)."""
    c = params["W"].shape[0]

    def moments(lo, hi):  # E[mu^p; feature i, lo < mu < hi] for p = 0, 1, 2, and E[mu^2; feature i]
        return [(hi ** (p + 1) - lo ** (p + 1)) / ((p + 1) * c) for p in range(3)], jnp.full((c, 1), 1 / (3 * c))

    return _loss(params, moments)


def sample(key: jax.Array, batch_size: int, c: int = 6) -> jax.Array:
    """``[batch_size, c]`` draws of the data law: one feature, uniform, active with value U[0, 1]."""
    which, value = jax.random.split(key)
    i = jax.random.randint(which, (batch_size,), 0, c)
    mu = jax.random.uniform(value, (batch_size,))
    return jax.nn.one_hot(i, c, dtype=jnp.float32) * mu[:, None]


def batch_loss(params, x: jax.Array) -> jax.Array:
    """The loss on a batch ``x: [B, c]``: the squared error summed over features, averaged over B."""
    return model.loss(params, x)


class Sample(NamedTuple):
    """n draws of the data law as the sufficient statistics of the empirical loss: the keys
    ``2 i + mu`` sorted, and the running sums of ``mu^0, mu^1, mu^2`` over them divided by n."""

    keys: jax.Array  # [n]
    sums: jax.Array  # [3, n + 1]
    n: int


def empirical(x) -> Sample:
    """The :class:`Sample` of inputs ``x: [n, c]`` with at most one active feature each."""
    x = np.asarray(x, np.float64)
    if np.any(np.count_nonzero(x, axis=1) > 1):
        raise ValueError("every input must have at most one active feature")
    feature, value = np.argmax(x, axis=1), np.max(x, axis=1)
    order = np.argsort(2.0 * feature + value, kind="stable")
    keys, value = 2.0 * feature[order] + value[order], value[order]
    sums = np.concatenate([np.zeros((3, 1)), np.cumsum([value**0, value, value**2], axis=1)], axis=1)
    return Sample(jnp.asarray(keys, jnp.float32), jnp.asarray(sums / len(x), jnp.float32), len(x))


def empirical_loss(params, data: Sample) -> jax.Array:
    """The loss on the n inputs of ``data``, exactly :func:`batch_loss` of them, in O(c^2 log n): the
    polynomial of :func:`population_loss` with each moment of mu summed over the inputs whose output
    is on (found by bisection in the sorted keys)."""
    c = params["W"].shape[0]
    rows = 2.0 * jnp.arange(c, dtype=jnp.float32)[:, None]

    def moments(lo, hi):
        start = jnp.searchsorted(data.keys, jax.lax.stop_gradient(rows + lo), side="left")
        stop = jnp.maximum(jnp.searchsorted(data.keys, jax.lax.stop_gradient(rows + hi), side="right"), start)
        first = jnp.searchsorted(data.keys, rows, side="left")  # feature i's inputs: [first, last)
        last = jnp.searchsorted(data.keys, rows + 1.0, side="right")
        return [data.sums[p][stop] - data.sums[p][start] for p in range(3)], data.sums[2][last] - data.sums[2][first]

    return _loss(params, moments)


def _loss(params, moments) -> jax.Array:
    """``sum over i, j`` of the squared error of output j on feature i's inputs. ReLU(mu g_ij + b_j)
    is on for mu in an interval [lo, hi] of [0, 1], where the error is mu p - b_j (p = delta_ij - g_ij),
    and off elsewhere, where it is mu delta_ij; ``moments(lo, hi)`` weighs mu^0, mu^1, mu^2 over each
    interval (``[3][c, c]``) and mu^2 over each feature's inputs (``[c, 1]``)."""
    W, b = params["W"], params["b"]
    c = W.shape[0]
    g = W @ W.T  # g[i, j] = W_i . W_j: output j of input mu e_i is ReLU(mu g[i, j] + b[j])
    beta = jnp.broadcast_to(b[None, :], g.shape)
    target = jnp.eye(c, dtype=g.dtype)
    tiny = 1e-12
    flat = jnp.abs(g) < tiny
    root = -beta / jnp.where(flat, 1.0, g)  # where mu g + b = 0
    lo = jnp.where(g > tiny, jnp.clip(root, 0.0, 1.0), 0.0)
    hi = jnp.where(g < -tiny, jnp.clip(root, 0.0, 1.0), 1.0)
    hi = jnp.where(flat, (beta > 0).astype(g.dtype), jnp.maximum(hi, lo))  # g = 0: on iff b > 0
    (m0, m1, m2), whole = moments(lo, hi)
    p = target - g
    on = p**2 * m2 - 2 * p * beta * m1 + beta**2 * m0
    off = target * (whole - m2)  # the error is mu where the output is off (target 1 on the diagonal)
    return jnp.sum(on + off)
