"""The toy model of superposition for ONE model; batch over models with ``jax.vmap``.

Parameters are ``{"W": [n, m], "b": [n]}``; the forward pass is
y = ReLU(x W W^T + b) for a row-vector batch ``x: [B, n]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Params = dict[str, jax.Array]


def init_params(key: jax.Array, n: int, m: int) -> Params:
    """W ~ N(0, 1/m) of shape [n, m], b ~ N(0, 1) of shape [n] (the paper's init)."""
    key_w, key_b = jax.random.split(key)
    return {
        "W": jax.random.normal(key_w, (n, m), jnp.float32) / jnp.sqrt(jnp.float32(m)),
        "b": jax.random.normal(key_b, (n,), jnp.float32),
    }


def forward(params: Params, x: jax.Array) -> jax.Array:
    """y = ReLU(x W W^T + b); ``x: [B, n] -> y: [B, n]``. Costs 4 B n m flops."""
    hidden = x @ params["W"]
    return jax.nn.relu(hidden @ params["W"].T + params["b"])


def mean_squared_error(params: Params, x: jax.Array) -> jax.Array:
    """The training objective of the paper's code: squared error averaged over B and n."""
    return jnp.mean(jnp.square(forward(params, x) - x))


def loss(params: Params, x: jax.Array) -> jax.Array:
    """The reported loss: squared error summed over features, averaged over the batch.

    Equals n x :func:`mean_squared_error`. An untrained model with zero output costs
    sum_i E[x_i^2] = (4/3) sum_i p_i.
    """
    return jnp.mean(jnp.sum(jnp.square(forward(params, x) - x), axis=-1))
