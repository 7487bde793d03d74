"""The strongest rival to supjax: the toy model trained the Anthropic-TMS / ARENA way in PyTorch.

One [A, G, n, m] parameter tensor per width m (an "instances" axis: A feature distributions x
G weight decays), one shared batch per distribution per step (every width and weight decay reads
it), the gradient by ``torch.func.grad``, the paper's signed-weight-decay AdamW vectorised over
the instances, and optionally ``torch.compile`` of the whole step and bf16 autocast on the
products. No supjax inside: this is the code a researcher who would not use supjax writes.

    python benchmarks/peers/torch_instances.py [WORKLOAD] [--steps 20] [--compile] [--bf16] [--out DIR]

Prints one line and, with ``--out``, writes one JSON in the schema of ``supjax bench --out``
(device, workload, precision, models, steps, train_seconds, model_steps_per_s, ...) plus
``trainer`` and ``machine``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from table import machine  # the CPU model and core count every JSON of run.sh carries

# The shapes of supjax.bench.WORKLOADS, copied so that the peer needs no supjax.
PAPER = dict(n=1000, batch=2048, widths=(10, 15, 25, 39, 63, 100), steps=20000, warmup=2000, lr=1e-2, scaled=False)
DECAYS = tuple(-1.0 + 2.0 * i / 9 for i in range(10))
WORKLOADS = {
    "demo": dict(n=300, batch=1024, widths=(8, 12, 16, 24, 32, 48), steps=2000, warmup=200, lr=1e-2, scaled=False,
                 gammas=(-1.0, -0.3, 0.3, 1.0), alphas=(0.8, 1.4)),
    "paper-slice": dict(PAPER, gammas=DECAYS, alphas=(1.0,)),
    "paper-grid": dict(PAPER, gammas=DECAYS, alphas=tuple(np.arange(17) / 8)),
    "large": dict(n=10240, batch=8192, widths=tuple(2**k for k in range(3, 11)), steps=40000, warmup=2000,
                  lr=0.02, scaled=True, gammas=(-1.0,), alphas=(1.2,)),
}  # fmt: skip


def probabilities(alphas, n: int) -> torch.Tensor:
    """p: [A, n], p_i ∝ i^-alpha normalised to sum 1, one row per alpha."""
    p = np.arange(1, n + 1, dtype=np.float64)[None, :] ** -np.asarray(alphas, np.float64)[:, None]
    return torch.tensor(p / p.sum(axis=1, keepdims=True), dtype=torch.float32)


def schedule(peak: float, warmup: int, total: int, final: float = 0.05):
    """The paper's get_lr: linear warmup, cosine to ``final * peak``; ``t`` = update number (a tensor)."""

    def cosine(t, length):
        return final * peak + (1 - final) * peak * 0.5 * (1 + torch.cos(math.pi * t / length))

    def lr(t):
        if warmup >= total:
            return cosine(t, total)
        return torch.where(t < warmup, peak * t / warmup, cosine(t - warmup, total - warmup))

    return lr


def init(widths, a: int, g: int, n: int) -> list[dict]:
    """Per width: W ~ N(0, 1/m) [A, G, n, m], b ~ N(0, 1) [A, G, n], Adam moments at zero."""
    return [fresh(torch.randn(a, g, n, m) / math.sqrt(m), torch.randn(a, g, n)) for m in widths]


def fresh(w: torch.Tensor, b: torch.Tensor) -> dict:
    """One width's training state from its parameters: Adam's moments at zero."""
    zeros = torch.zeros_like
    return dict(W=w, b=b, mW=zeros(w), vW=zeros(w), mb=zeros(b), vb=zeros(b))


def mse(w, b, x):
    """(sum over instances of each one's mean squared error, the [A, G] errors); x: [A, B, n]."""
    h = torch.einsum("abn,agnm->agbm", x, w)
    y = torch.relu(torch.einsum("agbm,agnm->agbn", h, w) + b[:, :, None, :])
    errors = (y - x[:, None]).square().mean(dim=(-2, -1))
    return errors.sum(), errors


def make_update(gammas, lrs, warmup: int, total: int, bf16: bool = False):
    """``update(state, x, count) -> (state, [A, G] losses per width)``: one AdamW step on batch x.

    ``gammas``: [A, G] weight decays; ``lrs``: (W lr, b lr) per width; ``count``: updates done
    so far (a float tensor). Adam (0.9, 0.999, 1e-8) on W and b; the signed weight decay
    |gamma| d(W) joins W's Adam direction before the lr (d = W for gamma >= 0, else
    W (1 - 1/(||W_i|| + eps)), rows i). Losses are n x MSE of the batch before the update.
    """
    gamma = torch.as_tensor(gammas, dtype=torch.float32)[:, :, None, None]
    schedules = [(schedule(lr_w, warmup, total), schedule(lr_b, warmup, total)) for lr_w, lr_b in lrs]
    grad = torch.func.grad(mse, argnums=(0, 1), has_aux=True)

    def adam(p, g, m, v, c1, c2):
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        return (m / c1) / ((v / c2).sqrt() + 1e-8), m, v

    def update(state, x, count):
        t = count + 1.0
        c1, c2 = 1.0 - 0.9**t, 1.0 - 0.999**t
        new, losses = [], []
        for s, (lr_w, lr_b) in zip(state, schedules, strict=True):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                (g_w, g_b), errors = grad(s["W"], s["b"], x)
            d_w, m_w, v_w = adam(s["W"], g_w, s["mW"], s["vW"], c1, c2)
            d_b, m_b, v_b = adam(s["b"], g_b, s["mb"], s["vb"], c1, c2)
            rows = s["W"].norm(dim=-1, keepdim=True) + 1e-8
            decay = torch.where(gamma >= 0, s["W"], s["W"] * (1.0 - 1.0 / rows))
            w = s["W"] - lr_w(t) * (d_w + gamma.abs() * decay)
            new.append(dict(W=w, b=s["b"] - lr_b(t) * d_b, mW=m_w, vW=v_w, mb=m_b, vb=v_b))
            losses.append(x.shape[-1] * errors)
        return new, losses

    return update


def make_step(update, p: torch.Tensor, batch: int):
    """``step(state, count)``: draw a fresh batch per distribution (one uniform per entry:
    u < p_i is the mask, 2 u / p_i the U(0, 2) value), then ``update``."""

    def step(state, count):
        u = torch.rand(p.shape[0], batch, p.shape[1])
        x = torch.where(u < p[:, None], 2.0 * u / p[:, None], 0.0)
        return update(state, x, count)

    return step


def measure(workload: str, steps: int, compiled: bool, bf16: bool, warmup_steps: int = 2, seed: int = 0) -> dict:
    """Time ``steps`` steps of every model of ``workload`` after ``1 + warmup_steps`` untimed ones
    (the first, which compiles, timed apart as compile_seconds)."""
    spec = WORKLOADS[workload]
    torch.manual_seed(seed)
    a, g, n = len(spec["alphas"]), len(spec["gammas"]), spec["n"]
    lrs = [(spec["lr"] * (8 / m) ** 0.25, 2 / m) if spec["scaled"] else (spec["lr"],) * 2 for m in spec["widths"]]
    gammas = [spec["gammas"]] * a
    update = make_update(gammas, lrs, spec["warmup"], spec["steps"], bf16)
    step = make_step(update, probabilities(spec["alphas"], n), spec["batch"])
    step = torch.compile(step) if compiled else step
    state, count = init(spec["widths"], a, g, n), torch.zeros(())
    started = time.perf_counter()
    state, losses = step(state, count)
    compile_s = time.perf_counter() - started
    for _ in range(warmup_steps):
        count = count + 1
        state, losses = step(state, count)
    started = time.perf_counter()
    logs = []
    for _ in range(steps):
        count = count + 1
        state, losses = step(state, count)
        logs.append(losses)
    seconds = time.perf_counter() - started
    if not all(torch.isfinite(loss).all() for losses in logs for loss in losses):
        raise FloatingPointError("peer losses are not finite")
    models = a * g * len(spec["widths"])
    precision = "bfloat16" if bf16 else "float32"
    trainer = f"torch-instances-{'compiled' if compiled else 'eager'}-{'bf16' if bf16 else 'float32'}"
    return {
        "date": time.strftime("%Y-%m-%d"),
        "device": "cpu:cpu",
        "torch": torch.__version__,
        "workload": workload,
        "precision": precision,
        "sparse_products": False,
        "trainer": trainer,
        "models": models,
        "steps": steps,
        "train_seconds": seconds,
        "compile_seconds": compile_s,
        "model_steps_per_s": models * steps / seconds,
        "peak_device_bytes": None,
        "n": n,
        "batch_size": spec["batch"],
        "warmup_steps": 1 + warmup_steps,
        "dense_flops_per_s": 10.0 * spec["batch"] * n * sum(spec["widths"]) * a * g * steps / seconds,
        "samples_per_s": models * steps * spec["batch"] / seconds,
        "final_loss_mean": float(torch.cat([loss.flatten() for loss in logs[-1]]).mean()) if logs else None,
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", nargs="?", default="paper-slice", choices=sorted(WORKLOADS))
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after the warm-up)")
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed steps after the first (compiling) one")
    parser.add_argument("--compile", action="store_true", help="torch.compile the whole step")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on the products (float32 master state)")
    parser.add_argument("--out", help="write the JSON to DIR/DATE-cpu-WORKLOAD-TRAINER.json")
    args = parser.parse_args()
    result = measure(args.workload, args.steps, args.compile, args.bf16, args.warmup_steps)
    print(
        f"{result['trainer']:<32} {result['workload']}: {result['model_steps_per_s']:8.1f} model-steps/s "
        f"({result['models']} models x {result['steps']} steps in {result['train_seconds']:.2f} s, "
        f"first step {result['compile_seconds']:.1f} s, {torch.get_num_threads()} threads)"
    )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        name = f"{result['date']}-cpu-{result['workload']}-{result['trainer']}.json"
        (out / name).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
