"""The paper's AdamW with signed weight decay, as optax transformations, and its schedules.

Every hyperparameter may be a traced array, so one compiled step serves a whole vmapped
population of weight decays and learning rates.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax


def add_signed_weight_decay(weight_decay, eps: float = 1e-8, mask=None) -> optax.GradientTransformation:
    """Add the paper's signed weight decay term to the updates (before the lr scaling).

    With gamma = ``weight_decay`` and rows W_i (last axis), the added term is
    ``|gamma| d(W)`` where

    * gamma >= 0 (decay): d(W) = W, so a following ``scale_by_learning_rate`` gives
      W <- W (1 - lr gamma), torch's decoupled AdamW decay;
    * gamma < 0 (growth): d(W) = W (1 - 1 / (||W_i|| + eps)), giving
      W <- W + lr gamma W (1 - 1/(||W_i|| + eps)): a descent step on
      (|gamma|/2) sum_i (||W_i|| - 1)^2 that pulls every row toward unit norm.

    The term uses the parameters before the step, as the paper's code does.

    Example:
        >>> tx = optax.chain(optax.scale_by_adam(), add_signed_weight_decay(-0.5),
        ...                  optax.scale_by_learning_rate(1e-2))
    """

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params):
        if params is None:
            raise ValueError("add_signed_weight_decay needs params: call update(grads, state, params)")
        gamma = jnp.asarray(weight_decay, jnp.float32)

        def add(u, p):
            row_norms = jnp.linalg.norm(p, axis=-1, keepdims=True) + eps
            direction = jnp.where(gamma >= 0, p, p * (1.0 - 1.0 / row_norms))
            return u + jnp.abs(gamma) * direction

        return jax.tree.map(add, updates, params), state

    tx = optax.GradientTransformation(init_fn, update_fn)
    return optax.masked(tx, mask) if mask is not None else tx


def adamw(
    learning_rate,
    weight_decay,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    mask=None,
) -> optax.GradientTransformation:
    """AdamW with signed weight decay (exp/adamw.py of the paper's code).

    W <- W - lr (|gamma| d(W) + m_hat / (sqrt(v_hat) + eps)), see
    :func:`add_signed_weight_decay`; ``learning_rate`` is a number or a schedule.
    """
    return optax.chain(
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
        add_signed_weight_decay(weight_decay, eps=eps, mask=mask),
        optax.scale_by_learning_rate(learning_rate),
    )


def toy_model_optimizer(
    w_learning_rate, b_learning_rate, weight_decay, bias_weight_decay: bool = False
) -> optax.GradientTransformation:
    """AdamW for a toy model's parameters: signed weight decay and the W learning rate on
    every matrix (ndim >= 2: W, and W_decoder of the untied model), plain Adam with the b
    learning rate on every other parameter (the biases), as the paper's code.

    ``bias_weight_decay``: the biases get the same decoupled decay,
    b <- b - lr_b (m_hat / (sqrt(v_hat) + eps) + gamma b), which is torch's
    ``AdamW(model.parameters())`` (TMS's optimizer) for gamma = ``weight_decay`` >= 0.
    """
    bias = [optax.scale_by_adam(), optax.scale_by_learning_rate(b_learning_rate)]
    if bias_weight_decay:
        bias.insert(1, optax.add_decayed_weights(weight_decay))
    return optax.partition(
        {
            "W": adamw(w_learning_rate, weight_decay),
            "b": optax.chain(*bias),
        },
        lambda params: jax.tree.map(lambda p: "W" if jnp.ndim(p) >= 2 else "b", params),
    )


def warmup_cosine_schedule(peak, warmup_steps: int, total_steps: int, final_fraction: float = 0.05):
    """The paper's ``get_lr``: linear warmup, then cosine decay to ``final_fraction * peak``.

    For update number t = count + 1: lr = peak t / warmup while t < warmup, then
    lr_min + (peak - lr_min) (1 + cos(pi (t - warmup) / (total - warmup))) / 2. With
    ``warmup_steps >= total_steps`` the warmup is dropped, as in the paper's code.
    ``peak`` may be a traced array; the step counts are static.
    """
    lowest = final_fraction * peak

    def cosine(t, length):
        return lowest + (peak - lowest) * 0.5 * (1.0 + jnp.cos(math.pi * t / length))

    def schedule(count):
        t = jnp.asarray(count, jnp.float32) + 1.0
        if warmup_steps >= total_steps:
            return cosine(t, total_steps)
        return jnp.where(
            t < warmup_steps, peak * t / warmup_steps, cosine(t - warmup_steps, total_steps - warmup_steps)
        )

    return schedule


def width_scaled_learning_rates(lr: float, m: int) -> tuple[float, float]:
    """exp-17's width scaling: W lr = lr (8/m)^0.25, b lr = 2/m."""
    return lr * (8.0 / m) ** 0.25, 2.0 / m
