import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from supjax import model, optim


def paper_get_lr(step, lr, n_steps, warmup_steps, final=0.05):
    """exp-10's get_lr, transcribed."""
    step = step + 1
    min_lr = final * lr
    if warmup_steps < n_steps:
        if step < warmup_steps:
            return lr * step / warmup_steps
        return (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (n_steps - warmup_steps))) + min_lr
    return (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * step / n_steps)) + min_lr


class PaperAdamW:
    """exp/adamw.py in NumPy (float64): signed decay of W before the Adam step, none on b."""

    def __init__(self, params, weight_decay, betas=(0.9, 0.999), eps=1e-8):
        self.gamma, self.betas, self.eps = weight_decay, betas, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params, grads, lrs):
        self.t += 1
        b1, b2 = self.betas
        W = params["W"]
        if self.gamma >= 0:
            params["W"] = W * (1 - self.gamma * lrs["W"])
        else:
            norms = np.linalg.norm(W, axis=1, keepdims=True) + self.eps
            params["W"] = W + lrs["W"] * self.gamma * W * (1 - 1 / norms)
        for k in params:
            g = grads[k]
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            denom = np.sqrt(self.v[k]) / math.sqrt(1 - b2**self.t) + self.eps
            params[k] = params[k] - lrs[k] / (1 - b1**self.t) * self.m[k] / denom


def numpy_grads(params, x):
    """Hand-derived gradient of mean((ReLU(x W W^T + b) - x)^2)."""
    W, b = params["W"], params["b"]
    h = x @ W
    z = h @ W.T + b
    dz = 2 * (np.maximum(z, 0) - x) * (z > 0) / x.size
    return {"W": x.T @ (dz @ W) + dz.T @ h, "b": dz.sum(0)}


@pytest.mark.parametrize("gamma", [-1.0, -0.3, 0.0, 0.5, 1.0])
def test_update_matches_the_papers_adamw(gamma):
    n, m, steps, warmup = 40, 6, 12, 5
    lr_w, lr_b = 0.05, 0.02
    params = model.init_params(jax.random.key(0), n, m)
    reference = {k: np.asarray(v, np.float64) for k, v in params.items()}
    paper = PaperAdamW(reference, gamma)
    tx = optim.toy_model_optimizer(
        optim.warmup_cosine_schedule(jnp.float32(lr_w), warmup, steps),
        optim.warmup_cosine_schedule(jnp.float32(lr_b), warmup, steps),
        jnp.float32(gamma),  # traced-able array, not a Python constant
    )
    state = tx.init(params)
    rng = np.random.default_rng(1)
    for t in range(steps):
        x = (rng.random((32, n)) < 0.2) * rng.random((32, n)) * 2
        grads = jax.grad(model.mean_squared_error)(params, jnp.asarray(x, jnp.float32))
        np.testing.assert_allclose(grads["W"], numpy_grads(reference, x)["W"], atol=1e-6)
        # Both sides step from the same gradient, so the comparison isolates the optimizer.
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        lrs = {"W": paper_get_lr(t, lr_w, steps, warmup), "b": paper_get_lr(t, lr_b, steps, warmup)}
        paper.step(reference, {k: np.asarray(v, np.float64) for k, v in grads.items()}, lrs)
        for k in ("W", "b"):
            np.testing.assert_allclose(params[k], reference[k], atol=1e-6, rtol=0)
            reference[k] = np.asarray(params[k], np.float64)  # no float32 drift across steps


@pytest.mark.parametrize("warmup, total", [(2000, 20000), (0, 100), (50, 40), (1, 3)])
def test_schedule_matches_get_lr(warmup, total):
    schedule = optim.warmup_cosine_schedule(0.01, warmup, total)
    ours = np.asarray(jax.vmap(schedule)(jnp.arange(total)))
    theirs = np.array([paper_get_lr(t, 0.01, total, warmup) for t in range(total)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-9)


def test_growth_pulls_rows_to_unit_norm():
    # With zero gradients, repeated growth steps alone take every row norm toward 1.
    W = jnp.asarray(np.random.default_rng(0).normal(size=(50, 4)) * np.geomspace(0.1, 3, 50)[:, None], jnp.float32)
    tx = optax.chain(optim.add_signed_weight_decay(-1.0), optax.scale_by_learning_rate(0.1))
    state = tx.init(W)
    for _ in range(200):
        updates, state = tx.update(jnp.zeros_like(W), state, W)
        W = optax.apply_updates(W, updates)
    np.testing.assert_allclose(jnp.linalg.norm(W, axis=1), 1.0, atol=1e-3)


def test_width_scaling_is_exp17s():
    assert optim.width_scaled_learning_rates(0.02, 8) == (0.02, 0.25)
    lr_w, lr_b = optim.width_scaled_learning_rates(0.02, 1024)
    assert lr_w == pytest.approx(0.02 * (8 / 1024) ** 0.25) and lr_b == pytest.approx(2 / 1024)
