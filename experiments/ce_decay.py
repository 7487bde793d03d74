"""Why does weight decay not make superposition weak under cross-entropy?

    python experiments/ce_decay.py [--steps 3000] [--figures figures]

``experiments/beyond.py`` found that with cross-entropy, gamma = +1 keeps nearly every row of W
at norm > 1/2 (strong superposition), where squared error drops the rare features (weak). Two
explanations are tested here:

(A) *The optimizer.* AdamW divides each gradient by its own running scale, and the softmax sends
    some gradient to every row on every sample, so a rare feature's small but steady gradient
    would move its row as fast as a common one's. Test: train the same models with plain SGD,
    whose step is proportional to the gradient, at the same decay per step (lr |gamma| = 1%, as
    AdamW's lr 0.01 and gamma = +1). SGD's lr is the best of a small grid at gamma = 0, per loss.
(B) *The loss.* With one active feature, logits x W W^T + b pick the right feature whenever
    ||W_t||^2 > W_t . W_j for all j, which holds for any distinct rows of equal norm at any
    width, so the loss keeps falling as the norms grow. Weight decay then meets a gradient that
    never vanishes, rare rows included; squared error instead has a target scale (the output
    must equal v), and behind the ReLU a rare row gated off by a negative bias gains nothing.
    Test: the change in loss when every row (or only the rarer half) grows by 10%, and for
    squared error the share of a feature's active samples whose output is not gated off.

One model per case: n = 300, m = 16, alpha = 1, batch 512, warmup then cosine decay, as in
``beyond_quick.toml``. Writes ``figures/ce_decay`` (PNG, PDF) and ``runs/ce_decay.json``.
"""

from __future__ import annotations

import argparse
import json
import time

import common
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from matplotlib.figure import Figure

from supjax import data, model, optim, plots

N, M, ALPHA, BATCH = 300, 16, 1.0, 512
ADAM_LR, ADAM_DECAY = 0.01, 1.0
SGD_LRS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
RANKS = ((0, 10), (10, 50), (50, 150), (150, 300))  # feature-rank buckets, most frequent first


def batch_of(loss: str, p: np.ndarray):
    if loss == "mse":
        return lambda key: data.sample_features(key, p, BATCH)
    return lambda key: data.sample_correlated(key, p / p.sum(), BATCH, N, exclusive=True)


def objective(loss: str):
    return model.mean_squared_error if loss == "mse" else model.cross_entropy


def optimizer(kind: str, lr: float, gamma: float, steps: int) -> optax.GradientTransformation:
    schedule = optim.warmup_cosine_schedule(lr, steps // 10, steps)
    if kind == "adamw":
        return optim.toy_model_optimizer(schedule, schedule, gamma)
    return optax.partition(
        {
            "W": optax.chain(optim.add_signed_weight_decay(gamma), optax.scale_by_learning_rate(schedule)),
            "b": optax.scale_by_learning_rate(schedule),
        },
        {"W": "W", "b": "b"},
    )


def train(loss: str, kind: str, lr: float, gamma: float, steps: int, seed: int = 0):
    """One model; returns its parameters and the mean loss of the last tenth of training."""
    p = data.feature_probabilities(f"power:{ALPHA}", N)
    draw, value_and_grad = batch_of(loss, p), jax.value_and_grad(objective(loss))
    tx = optimizer(kind, lr, gamma, steps)
    params = model.init_params(jax.random.key(seed), N, M)

    def step(carry, t):
        params, state = carry
        value, grads = value_and_grad(params, draw(jax.random.fold_in(jax.random.key(seed + 1), t)))
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), value

    (params, _), losses = jax.jit(lambda c: jax.lax.scan(step, c, jnp.arange(steps)))((params, tx.init(params)))
    return jax.device_get(params), float(np.mean(losses[-steps // 10 :]))


def norms_by_rank(W: np.ndarray) -> list[float]:
    norms = np.linalg.norm(W, axis=1)
    return [float(norms[a:b].mean()) for a, b in RANKS]


def gate_open(params, p: np.ndarray, samples: int = 65536) -> list[float]:
    """Squared error: of the samples where feature i is active, the share with z_i > 0, by rank."""
    x = data.sample_features(jax.random.key(99), p, samples)
    z = (x @ params["W"]) @ params["W"].T + params["b"]
    active = np.asarray(x > 0)
    opened = np.asarray(z > 0) & active
    return [float(opened[:, a:b].sum() / max(active[:, a:b].sum(), 1)) for a, b in RANKS]


def scale_gain(loss: str, params, p: np.ndarray, rows: slice, factor: float = 1.1) -> float:
    """Relative change of the loss when the rows ``rows`` of W grow by ``factor`` (b kept)."""
    x = batch_of(loss, p)(jax.random.key(98))
    x = jnp.concatenate([x, *(batch_of(loss, p)(jax.random.key(k)) for k in range(97, 90, -1))])
    W = jnp.asarray(params["W"])
    grown = {"W": W.at[rows].multiply(factor), "b": params["b"]}
    f = objective(loss)
    return float(f(grown, x) / f(params, x) - 1.0)


def accuracy(params, p: np.ndarray) -> float:
    """Cross-entropy: the share of samples whose largest logit is their active feature."""
    x = batch_of("cross_entropy", p)(jax.random.key(98))
    z = (x @ params["W"]) @ params["W"].T + params["b"]
    return float(jnp.mean(jnp.argmax(z, -1) == jnp.argmax(x, -1)))


def main(argv=None) -> dict:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(prog="experiments/ce_decay.py", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--figures", default=str(common.REPO / "figures"))
    parser.add_argument("--out", default="runs/ce_decay.json")
    parser.add_argument("--sgd-lrs", type=float, nargs="+", default=SGD_LRS, help="SGD learning rates to try")
    args = parser.parse_args(argv)
    p = data.feature_probabilities(f"power:{ALPHA}", N)
    results = {"n": N, "m": M, "alpha": ALPHA, "batch_size": BATCH, "steps": args.steps, "ranks": RANKS}
    for loss in ("mse", "cross_entropy"):
        tuning = {lr: train(loss, "sgd", lr, 0.0, args.steps)[1] for lr in args.sgd_lrs}
        tuning = {lr: v for lr, v in tuning.items() if np.isfinite(v)}
        sgd_lr = min(tuning, key=tuning.get)
        cases = {}
        for kind, lr in (("adamw", ADAM_LR), ("sgd", sgd_lr)):
            for sign in (-1.0, 1.0):
                gamma = sign * ADAM_DECAY * ADAM_LR / lr  # decay per step lr * |gamma| = 1%
                params, final = train(loss, kind, lr, gamma, args.steps)
                norms = np.linalg.norm(params["W"], axis=1)
                case = {
                    "lr": lr,
                    "weight_decay": gamma,
                    "final_loss": final,
                    "phi_half": float(np.mean(norms > 0.5)),
                    "norms_by_rank": norms_by_rank(params["W"]),
                    "norms": norms.tolist(),
                }
                case["scale_gain_all"] = scale_gain(loss, params, p, slice(None))
                case["scale_gain_rare"] = scale_gain(loss, params, p, slice(*RANKS[-1]))
                if loss == "mse":
                    case["gate_open_by_rank"] = gate_open(params, p)
                else:
                    case["accuracy"] = accuracy(params, p)
                cases[f"{kind} gamma={'+' if sign > 0 else '-'}"] = case
        results[loss] = {"sgd_lr_tuning": tuning, "cases": cases}
    results["seconds"] = time.perf_counter() - started
    results["machine"] = common.machine()
    out = common.REPO / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    draw(results, common.Path(args.figures))
    report(results)
    return results


def draw(results: dict, figures) -> None:
    with matplotlib.rc_context(plots.STYLE):
        fig = Figure(figsize=(9, 4.2), layout="constrained")
        axes = fig.subplots(1, 2)
        colours = {"gamma=-": "C0", "gamma=+": "C3"}
        for ax, loss in zip(axes, ("mse", "cross_entropy"), strict=True):
            for name, case in results[loss]["cases"].items():
                kind, sign = name.split()
                norms = np.asarray(case["norms"])
                ax.plot(
                    np.arange(1, len(norms) + 1),
                    norms,
                    color=colours[sign],
                    ls="-" if kind == "adamw" else "--",
                    lw=1.2,
                    label=f"{'AdamW' if kind == 'adamw' else 'SGD'}, {'growth' if sign == 'gamma=-' else 'decay'}:"
                    f" phi_1/2 {case['phi_half']:.2f}",
                )
            ax.axhline(0.5, color="0.6", lw=0.6)
            ax.set_xscale("log")
            ax.set_xlabel("feature rank i (p_i ~ 1/i)")
            ax.set_title("squared error (ReLU)" if loss == "mse" else "cross-entropy", loc="right", fontsize=9)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
        for ax in axes:
            ax.set_ylabel("row norm ||W_i||")
        common.label_panels(axes)
        fig.suptitle(
            f"n = {N}, m = {M}, alpha = {ALPHA}, {results['steps']} steps; AdamW gamma = -1 / +1,"
            " SGD at the same decay per step",
            fontsize=9,
        )
        plots.save(fig, figures / "ce_decay")


def report(results: dict) -> None:
    for loss in ("mse", "cross_entropy"):
        print(f"{loss}: SGD lr {min(results[loss]['sgd_lr_tuning'], key=results[loss]['sgd_lr_tuning'].get)}")
        for name, case in results[loss]["cases"].items():
            gate = case.get("gate_open_by_rank")
            print(
                f"  {name:<13} lr {case['lr']:<6g} gamma {case['weight_decay']:+.3g} loss {case['final_loss']:.4f}"
                f" phi_1/2 {case['phi_half']:.2f} norms by rank {np.round(case['norms_by_rank'], 2).tolist()}"
                + f" loss change at 1.1 x W: all {case['scale_gain_all']:+.3f} rare {case['scale_gain_rare']:+.4f}"
                + (f" gate open {np.round(gate, 2).tolist()}" if gate else f" accuracy {case['accuracy']:.3f}")
            )
    print(f"{results['seconds']:.0f} s on {results['machine']}")


if __name__ == "__main__":
    main()
