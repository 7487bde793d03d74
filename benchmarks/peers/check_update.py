"""The peer computes supjax's update: K steps of torch_instances' update (float32, eager) against
K steps of supjax's one-model update, from the same W, b and the same fixed batch x (numpy
arrays handed to both), for weight decays of both signs. Exits 1 if they differ beyond float32 rounding.

    python benchmarks/peers/check_update.py     # needs torch, jax and supjax in one python

supjax's step is composed as supjax.program.make_step composes it: jax.value_and_grad of
supjax.model.mean_squared_error, then supjax.optim.toy_model_optimizer with
supjax.optim.warmup_cosine_schedule for the W and b learning rates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_instances as peer

from supjax import model, optim

GAMMAS = (-1.0, -0.3, 0.5)
# Small shapes; W and b get different learning rates (a swap would show), and warmup 3 of 10
# steps puts updates 1-2 in the warmup and 3-5 on the cosine.
SETTINGS = dict(n=64, m=8, batch=256, steps=5, lr_w=0.02, lr_b=0.05, warmup=3, total=10)


def inputs(n: int, m: int, batch: int, seed: int = 0):
    """W: [G, n, m], b: [G, n] (the paper's init) and one batch x: [B, n] (alpha = 1), float32."""
    rng = np.random.default_rng(seed)
    p = np.arange(1, n + 1.0) ** -1.0
    p /= p.sum()
    x = (rng.random((batch, n)) < p) * rng.uniform(0, 2, (batch, n))
    w = rng.normal(0, m**-0.5, (len(GAMMAS), n, m))
    b = rng.normal(0, 1, (len(GAMMAS), n))
    return (a.astype(np.float32) for a in (w, b, x))


def supjax_steps(w, b, x, gamma, s):
    """``s['steps']`` steps of supjax's update of one model: (W, b, losses) as numpy."""

    def schedule(peak):
        return optim.warmup_cosine_schedule(peak, s["warmup"], s["total"])

    tx = optim.toy_model_optimizer(schedule(s["lr_w"]), schedule(s["lr_b"]), gamma)
    params = {"W": jnp.asarray(w), "b": jnp.asarray(b)}
    state = tx.init(params)
    x = jnp.asarray(x)

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(model.mean_squared_error)(params, x)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, x.shape[-1] * value

    losses = []
    for _ in range(s["steps"]):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    return np.asarray(params["W"]), np.asarray(params["b"]), np.asarray(losses)


def peer_steps(w, b, x, s):
    """The same steps of the peer's update, all weight decays as one [1, G] instances axis."""
    update = peer.make_update([GAMMAS], [(s["lr_w"], s["lr_b"])], s["warmup"], s["total"])
    state = [peer.fresh(torch.from_numpy(w)[None], torch.from_numpy(b)[None])]
    x, count, losses = torch.from_numpy(x)[None], torch.zeros(()), []
    for _ in range(s["steps"]):
        state, loss = update(state, x, count)
        count = count + 1
        losses.append(loss[0][0].numpy())
    return state[0]["W"][0].numpy(), state[0]["b"][0].numpy(), np.stack(losses, axis=1)


def relative_difference(ours, theirs) -> float:
    """max |ours - theirs| / max |theirs|: the difference relative to the array's scale."""
    theirs = np.asarray(theirs, np.float64)
    return float(np.max(np.abs(np.asarray(ours, np.float64) - theirs)) / np.max(np.abs(theirs)))


def check(rtol: float = 1e-4, atol: float = 1e-6, settings: dict = SETTINGS) -> dict:
    """Run both updates; return the relative difference of W, b and the losses per weight decay.

    Raises AssertionError unless every entry satisfies |peer - supjax| <= atol + rtol |supjax|.
    The atol (8 float32 ulps of 1) admits rounding in entries that an update brought near 0;
    one step moves W by about lr = 0.02, so a wrong term of the update shows far above it.
    """
    s = settings
    w, b, x = inputs(s["n"], s["m"], s["batch"])
    peer_w, peer_b, peer_losses = peer_steps(w, b, x, s)
    report = {}
    for i, gamma in enumerate(GAMMAS):
        ref_w, ref_b, ref_losses = supjax_steps(w[i], b[i], x, gamma, s)
        assert not np.allclose(ref_w, w[i], rtol=1e-3), "the reference did not move W"
        pairs = {"W": (peer_w[i], ref_w), "b": (peer_b[i], ref_b), "loss": (peer_losses[i], ref_losses)}
        for name, (ours, theirs) in pairs.items():
            np.testing.assert_allclose(ours, theirs, rtol, atol, err_msg=f"{name}, gamma = {gamma}")
        report[gamma] = {name: relative_difference(*pair) for name, pair in pairs.items()}
    return report


def main() -> None:
    torch.set_num_threads(1)  # deterministic sums for the check; timing runs use every core
    try:
        report = check()
    except AssertionError as err:
        print(f"check_update: FAILED: {err}")
        raise SystemExit(1) from None
    worst = max(v for r in report.values() for v in r.values())
    parts = "; ".join(f"gamma {g:+}: W {r['W']:.1e}, b {r['b']:.1e}, loss {r['loss']:.1e}" for g, r in report.items())
    steps = SETTINGS["steps"]
    print(f"check_update: ok, {steps} steps agree to {worst:.1e} (max |peer - supjax| / max |supjax|: {parts})")


if __name__ == "__main__":
    main()
