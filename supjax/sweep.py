"""Train a whole SweepSpec grid: width groups, each one ``jit(scan(vmap(step)))``.

Layout of a width group. Its models form a [D, G] array: D data streams (one per
distribution x activation density x seed) by G weight decays. A step draws the random
bits once per seed, turns them into one batch per stream, and runs the one-model step
vmapped twice: over G with the batch broadcast (so XLA fuses the G models into one
wide matrix product), and over D with the batch mapped. With ``shared_data = false``
every model is its own stream (G = 1).

Randomness depends only on (seed, model identity, step), never on the grid or the
chunking: a model trained alone, in a larger grid, or in chunks of any size draws the
same numbers. Models with the same seed see the same uniform bits at every step
(common random numbers), which makes width and weight-decay comparisons less noisy.
"""

from __future__ import annotations

import functools
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from supjax import data, model, optim, results
from supjax.config import SweepSpec

_INIT_TAG, _DATA_TAG = 1, 2
# Aim for about this much dense work per compiled chunk: seconds on a CPU, tens of ms on
# a GPU; chunk boundaries are where the progress bar moves and results come back.
_CHUNK_FLOPS = 5e11


@dataclass(frozen=True)
class WidthGroup:
    """The models of one width, laid out [D, G] (see module docstring)."""

    m: int
    model_index: np.ndarray  # [D * G] indices into the sweep's model table
    shape: tuple[int, int]  # (D, G)
    arrays: dict  # traced inputs of the compiled chunk


def model_table(spec: SweepSpec) -> list[dict]:
    """One dict per model, in training order: width, then distribution, density, seed, weight decay."""
    rows = []
    for m in spec.widths:
        for label in spec.distributions:
            family, arg = data.parse_distribution(label)
            for density in spec.activation_densities:
                expected_active = float(data.feature_probabilities(label, spec.n, density).sum())
                for seed in spec.seeds:
                    for gamma in spec.weight_decays:
                        lr_w, lr_b = (
                            optim.width_scaled_learning_rates(spec.lr, m)
                            if spec.lr_width_scaling
                            else (spec.lr, spec.lr)
                        )
                        rows.append(
                            {
                                "index": len(rows),
                                "m": m,
                                "weight_decay": gamma,
                                "distribution": label,
                                "alpha": arg if family == "power" else float("nan"),
                                "activation_density": density,
                                "expected_active": expected_active,
                                "seed": seed,
                                "lr_w": lr_w,
                                "lr_b": lr_b,
                            }
                        )
    return rows


def _identity(row: dict) -> int:
    """A 32-bit tag for a model from its values, not its position in the grid."""
    text = f"{row['m']}|{row['weight_decay']!r}|{row['distribution']}|{row['activation_density']!r}"
    return zlib.crc32(text.encode())


def _seed_key(seed: int, tag: int) -> jax.Array:
    return jax.random.fold_in(jax.random.key(seed), tag)


def width_groups(spec: SweepSpec, rows: list[dict]) -> list[WidthGroup]:
    groups = []
    per_width = len(rows) // len(spec.widths)
    num_decays = len(spec.weight_decays)
    for w, m in enumerate(spec.widths):
        group_rows = rows[w * per_width : (w + 1) * per_width]
        shape = (per_width // num_decays, num_decays) if spec.shared_data else (per_width, 1)
        streams = group_rows[:: shape[1]]  # the first model of each stream
        if spec.shared_data:
            # One bit stream per seed, shared by every distribution and density.
            seeds = list(dict.fromkeys(r["seed"] for r in streams))
            stream_keys = [_seed_key(s, _DATA_TAG) for s in seeds]
            stream_of = np.array([seeds.index(r["seed"]) for r in streams], np.int32)
        else:
            stream_keys = [jax.random.fold_in(_seed_key(r["seed"], _DATA_TAG), _identity(r)) for r in group_rows]
            stream_of = np.arange(len(group_rows), dtype=np.int32)
        tables = [
            data.sampler_tables(data.feature_probabilities(r["distribution"], spec.n, r["activation_density"]))
            for r in streams
        ]
        init_keys = [jax.random.fold_in(_seed_key(r["seed"], _INIT_TAG), _identity(r)) for r in group_rows]

        arrays = {
            "init_keys": jnp.stack(init_keys).reshape(shape),
            "stream_keys": jnp.stack(stream_keys),
            "stream_of": stream_of,
            "thresholds": np.stack([t for t, _ in tables]),
            "scales": np.stack([s for _, s in tables]),
            **{
                k: np.array([r[k] for r in group_rows], np.float32).reshape(shape)
                for k in ("weight_decay", "lr_w", "lr_b")
            },
        }
        groups.append(WidthGroup(m, np.array([r["index"] for r in group_rows]), shape, arrays))
    return groups


@functools.lru_cache(maxsize=64)
def _compiled(n: int, m: int, batch_size: int, log_every: int, steps: int, warmup_steps: int, final_fraction: float):
    """The init and chunk programs for one width; cached so repeated sweeps reuse them."""

    def optimizer(hyper):
        def schedule(peak):
            return optim.warmup_cosine_schedule(peak, warmup_steps, steps, final_fraction)

        return optim.toy_model_optimizer(schedule(hyper["lr_w"]), schedule(hyper["lr_b"]), hyper["weight_decay"])

    def init_one(key, hyper):
        params = model.init_params(key, n, m)
        return {"params": params, "opt_state": optimizer(hyper).init(params)}

    def step_one(state, hyper, x):
        mse, grads = jax.value_and_grad(model.mean_squared_error)(state["params"], x)
        updates, opt_state = optimizer(hyper).update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"params": params, "opt_state": opt_state}, n * mse

    # [D, G] models: map the batch over D, broadcast it over G.
    step_group = jax.vmap(jax.vmap(step_one, in_axes=(0, 0, None)), in_axes=(0, 0, 0))

    def hyper_of(arrays):
        return {k: arrays[k] for k in ("weight_decay", "lr_w", "lr_b")}

    @jax.jit
    def init(arrays):
        return jax.vmap(jax.vmap(init_one))(arrays["init_keys"], hyper_of(arrays))

    def batch(arrays, t):
        bits = jax.vmap(lambda k: jax.random.bits(jax.random.fold_in(k, t), (batch_size, n), jnp.uint32))(
            arrays["stream_keys"]
        )
        return jax.vmap(data.features_from_bits)(bits[arrays["stream_of"]], arrays["thresholds"], arrays["scales"])

    @functools.partial(jax.jit, static_argnames="num_windows", donate_argnums=0)
    def train_chunk(state, arrays, first_step, num_windows: int):
        """Train ``num_windows * log_every`` steps; return the state and window-mean losses."""
        hyper = hyper_of(arrays)

        def one_step(carry, t):
            state, total = carry
            state, loss = step_group(state, hyper, batch(arrays, t))
            return (state, total + loss), None

        def one_window(state, w):
            start = first_step + w * log_every
            zeros = jnp.zeros(arrays["weight_decay"].shape, jnp.float32)
            (state, total), _ = jax.lax.scan(one_step, (state, zeros), start + jnp.arange(log_every))
            return state, total / log_every

        return jax.lax.scan(one_window, state, jnp.arange(num_windows))

    return init, train_chunk


def _chunk_windows(spec: SweepSpec, group: WidthGroup) -> int:
    total = spec.num_logs
    if spec.chunk_steps is not None:
        return min(total, max(1, spec.chunk_steps // spec.log_every))
    flops_per_window = 10.0 * spec.batch_size * spec.n * group.m * len(group.model_index) * spec.log_every
    return int(min(total, max(1, round(_CHUNK_FLOPS / flops_per_window))))


def run_sweep(spec: SweepSpec, out: str | Path | None = None) -> results.Run:
    """Train every model of ``spec``; write the run directory ``out`` if given.

    Returns a :class:`supjax.results.Run`: the model table, loss curves
    ``losses: [models, steps // log_every]`` (window means of n x MSE) and final
    parameters. Example:

        >>> run = run_sweep(SweepSpec(n=100, widths=(8,), weight_decays=(-1.0, 1.0), steps=200,
        ...                           warmup_steps=20, batch_size=256, progress=False))
        >>> run.losses.shape
        (2, 20)
    """
    spec = spec.validate()
    if out is not None:
        results.prepare_run_dir(out)
    rows = model_table(spec)
    groups = width_groups(spec, rows)
    losses = np.zeros((len(rows), spec.num_logs), np.float32)
    params = {}
    progress = _progress(spec, len(rows) * spec.steps)
    started = time.perf_counter()
    for group in groups:
        init, train_chunk = _compiled(
            spec.n, group.m, spec.batch_size, spec.log_every, spec.steps, spec.warmup_steps, spec.final_lr_fraction
        )
        arrays = jax.device_put(group.arrays)
        state = init(arrays)
        chunk = _chunk_windows(spec, group)
        done = 0
        while done < spec.num_logs:
            windows = min(chunk, spec.num_logs - done)
            state, logs = train_chunk(state, arrays, jnp.int32(done * spec.log_every), num_windows=windows)
            logs = np.asarray(logs).reshape(windows, -1)
            losses[group.model_index, done : done + windows] = logs.T
            done += windows
            progress.set_postfix_str(f"m={group.m}", refresh=False)
            progress.update(windows * spec.log_every * len(group.model_index))
        final = jax.device_get(state["params"])
        params[group.m] = {
            "W": final["W"].reshape(-1, spec.n, group.m),
            "b": final["b"].reshape(-1, spec.n),
            "index": group.model_index,
        }
    progress.close()
    info = {"seconds": time.perf_counter() - started, "device": str(jax.devices()[0].device_kind)}
    run = results.Run(spec=spec, models=rows, losses=losses, params=params, info=info)
    if out is not None:
        results.save_run(run, out)
    return run


def _progress(spec: SweepSpec, total: int):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit="model-step",
        unit_scale=True,
        disable=not spec.progress,
        desc=f"supjax: {spec.num_models} models",
        smoothing=0.1,
    )
