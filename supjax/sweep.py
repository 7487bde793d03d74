"""Train a whole SweepSpec grid in one ``jit(scan(vmap(step)))`` over width groups.

Layout. The models of one width form a [D, G] array: D data streams (one per
distribution x activation density x seed) by G weight decays. A step draws the random
bits once per seed, turns them into one batch per stream, and runs the one-model step
vmapped twice: over G with the batch broadcast (so XLA fuses the G models into one
wide matrix product), and over D with the batch mapped. Every width reads the same
batches, so the data (the costliest part of a step on a CPU) is made once per step
for the whole grid. With ``shared_data = false`` every model is its own stream (G = 1).

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
HYPER_FIELDS = ("weight_decay", "lr_w", "lr_b")
# Aim for about this much dense work per compiled chunk: seconds on a CPU, tens of ms on
# a GPU; chunk boundaries are where the progress bar moves and results come back.
_CHUNK_FLOPS = 5e11


@dataclass(frozen=True)
class WidthGroup:
    """The models of one width, laid out [D, G] (see module docstring)."""

    m: int
    model_index: np.ndarray  # [D * G] indices into the sweep's model table
    shape: tuple[int, int]  # (D, G)
    streams: tuple[int, int]  # the slice of the plan's data streams its D rows read
    arrays: dict  # init_keys, weight_decay, lr_w, lr_b: [D, G]


@dataclass(frozen=True)
class Plan:
    """What one compiled program trains: width groups that share the per-step data."""

    spec: SweepSpec
    rows: list[dict]
    groups: tuple[WidthGroup, ...]
    data: dict  # stream_keys [S], stream_of [D], thresholds [D, n], scales [D, n]

    @property
    def static(self) -> tuple:
        """Everything that sets shapes or loop lengths: the cache key of the compiled program."""
        s = self.spec
        layout = tuple((g.m, g.shape, g.streams) for g in self.groups)
        tile = s.batch_tile or model.default_batch_tile(s.batch_size, jax.default_backend())
        return (s.n, s.batch_size, s.log_every, s.steps, s.warmup_steps, s.final_lr_fraction, tile, layout)

    @property
    def flops_per_step(self) -> float:
        """Dense work of one step of every model: 10 B n m each."""
        return sum(10.0 * self.spec.batch_size * self.spec.n * g.m * len(g.model_index) for g in self.groups)


def model_table(spec: SweepSpec) -> list[dict]:
    """One dict per model, in training order: width, then distribution, density, seed, weight decay."""
    rows = []
    for m in spec.widths:
        lr_w, lr_b = optim.width_scaled_learning_rates(spec.lr, m) if spec.lr_width_scaling else (spec.lr, spec.lr)
        for label in spec.distributions:
            family, arg = data.parse_distribution(label)
            for density in spec.activation_densities:
                expected_active = float(data.feature_probabilities(label, spec.n, density).sum())
                for seed in spec.seeds:
                    for gamma in spec.weight_decays:
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


def plan(spec: SweepSpec) -> Plan:
    """Lay the grid out as width groups over shared data streams."""
    rows = model_table(spec)
    per_width = len(rows) // len(spec.widths)
    num_decays = len(spec.weight_decays) if spec.shared_data else 1
    groups, streams = [], []
    for w, m in enumerate(spec.widths):
        group_rows = rows[w * per_width : (w + 1) * per_width]
        shape = (per_width // num_decays, num_decays)
        if spec.shared_data:
            # Every width reads the same streams: one per distribution x density x seed.
            streams = group_rows[::num_decays]
            span = (0, len(streams))
        else:
            span = (len(streams), len(streams) + len(group_rows))
            streams = streams + group_rows
        arrays = {
            "init_keys": jnp.stack(
                [jax.random.fold_in(_seed_key(r["seed"], _INIT_TAG), _identity(r)) for r in group_rows]
            ),
            **{k: np.array([r[k] for r in group_rows], np.float32) for k in HYPER_FIELDS},
        }
        arrays = {k: v.reshape(shape) for k, v in arrays.items()}
        groups.append(WidthGroup(m, np.array([r["index"] for r in group_rows]), shape, span, arrays))

    if spec.shared_data:
        # One bit stream per seed, shared by every distribution and density.
        seeds = list(dict.fromkeys(r["seed"] for r in streams))
        stream_keys = [_seed_key(s, _DATA_TAG) for s in seeds]
        stream_of = [seeds.index(r["seed"]) for r in streams]
    else:
        stream_keys = [jax.random.fold_in(_seed_key(r["seed"], _DATA_TAG), _identity(r)) for r in streams]
        stream_of = list(range(len(streams)))
    tables = [
        data.sampler_tables(data.feature_probabilities(r["distribution"], spec.n, r["activation_density"]))
        for r in streams
    ]
    data_arrays = {
        "stream_keys": jnp.stack(stream_keys),
        "stream_of": np.array(stream_of, np.int32),
        "thresholds": np.stack([t for t, _ in tables]),
        "scales": np.stack([s for _, s in tables]),
    }
    return Plan(spec, rows, tuple(groups), data_arrays)


def one_model_step(n: int, steps: int, warmup_steps: int, final_fraction: float, batch_tile: int | None = None):
    """``(init_one, step_one)`` for ONE model; hyperparameters arrive as traced scalars.

    ``init_one(key, hyper, m) -> state`` and ``step_one(state, hyper, x, t) -> (state, loss)``
    with ``hyper = {"weight_decay", "lr_w", "lr_b"}``, ``t`` the step number, and the
    reported loss n x MSE of the batch before the update (NaN once the model diverged:
    its state then stays frozen and ``state["diverged_at"]`` holds the step, else -1).
    ``batch_tile``: see :func:`supjax.model.mse_and_grad`.
    """

    def optimizer(hyper):
        def schedule(peak):
            return optim.warmup_cosine_schedule(peak, warmup_steps, steps, final_fraction)

        return optim.toy_model_optimizer(schedule(hyper["lr_w"]), schedule(hyper["lr_b"]), hyper["weight_decay"])

    def init_one(key, hyper, m):
        params = model.init_params(key, n, m)
        return {"params": params, "opt_state": optimizer(hyper).init(params), "diverged_at": jnp.int32(-1)}

    def step_one(state, hyper, x, t):
        mse, grads = model.mse_and_grad(state["params"], x, batch_tile)
        updates, opt_state = optimizer(hyper).update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        # A model whose loss or weights stop being finite keeps its last finite state and
        # the step it diverged at; vmapped neighbours never see its NaNs.
        finite = jnp.isfinite(mse) & jnp.all(jnp.array([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))
        alive = state["diverged_at"] < 0
        new = {"params": params, "opt_state": opt_state}
        kept = jax.tree.map(lambda a, b: jnp.where(alive & finite, a, b), new, {k: state[k] for k in new})
        kept["diverged_at"] = jnp.where(alive & ~finite, t, state["diverged_at"]).astype(jnp.int32)
        return kept, jnp.where(alive, n * mse, jnp.nan)

    return init_one, step_one


@functools.lru_cache(maxsize=32)
def compile_plan(static: tuple):
    """The init and chunk programs for a :attr:`Plan.static`; cached across sweeps."""
    n, batch_size, log_every, steps, warmup_steps, final_fraction, batch_tile, layout = static
    init_one, step_one = one_model_step(n, steps, warmup_steps, final_fraction, batch_tile)

    # [D, G] models: map the batch over D, broadcast it over G.
    step_group = jax.vmap(jax.vmap(step_one, in_axes=(0, 0, None, None)), in_axes=(0, 0, 0, None))

    def hyper_of(arrays):
        return {k: arrays[k] for k in HYPER_FIELDS}

    @jax.jit
    def init(groups):
        return tuple(
            jax.vmap(jax.vmap(functools.partial(init_one, m=m)))(arrays["init_keys"], hyper_of(arrays))
            for (m, _, _), arrays in zip(layout, groups, strict=True)
        )

    def batch(streams, t):
        """The step-t batch of every stream: [D, B, n]."""
        bits = jax.vmap(lambda k: jax.random.bits(jax.random.fold_in(k, t), (batch_size, n), jnp.uint32))(
            streams["stream_keys"]
        )
        return jax.vmap(data.features_from_bits)(bits[streams["stream_of"]], streams["thresholds"], streams["scales"])

    @functools.partial(jax.jit, static_argnames="num_windows", donate_argnums=0)
    def train_chunk(states, groups, streams, first_step, num_windows: int):
        """Train ``num_windows * log_every`` steps; return states and window-mean losses [windows, D, G]."""
        hypers = tuple(hyper_of(arrays) for arrays in groups)

        def one_step(carry, t):
            x = batch(streams, t)
            states, totals = [], []
            for (_, _, (lo, hi)), state, total, hyper in zip(layout, *carry, hypers, strict=True):
                state, loss = step_group(state, hyper, x[lo:hi], t)
                states.append(state)
                totals.append(total + loss)
            return (tuple(states), tuple(totals)), None

        def one_window(states, w):
            start = first_step + w * log_every
            zeros = tuple(jnp.zeros(shape, jnp.float32) for _, shape, _ in layout)
            (states, totals), _ = jax.lax.scan(one_step, (states, zeros), start + jnp.arange(log_every))
            return states, tuple(total / log_every for total in totals)

        return jax.lax.scan(one_window, states, jnp.arange(num_windows))

    return init, train_chunk


def _chunk_windows(the_plan: Plan) -> int:
    spec = the_plan.spec
    if spec.chunk_steps is not None:
        return min(spec.num_logs, max(1, spec.chunk_steps // spec.log_every))
    windows = _CHUNK_FLOPS / (the_plan.flops_per_step * spec.log_every)
    return int(min(spec.num_logs, max(1, round(windows))))


def run_sweep(spec: SweepSpec, out: str | Path | None = None) -> results.Run:
    """Train every model of ``spec``; write the run directory ``out`` if given.

    Returns a :class:`supjax.results.Run`: the model table (with ``diverged_at``: the
    step a model's loss stopped being finite, -1 if never), loss curves
    ``losses: [models, steps // log_every]`` (window means of n x MSE, NaN after a
    divergence) and final parameters. Example:

        >>> run = run_sweep(SweepSpec(n=100, widths=(8,), weight_decays=(-1.0, 1.0), steps=200,
        ...                           warmup_steps=20, batch_size=256, progress=False))
        >>> run.losses.shape
        (2, 20)
    """
    spec = spec.validate()
    if out is not None:
        results.prepare_run_dir(out)
    run = train(plan(spec))
    if out is not None:
        results.save_run(run, out)
    return run


def train(the_plan: Plan) -> results.Run:
    """Train the models of a :class:`Plan` for all its steps."""
    spec = the_plan.spec
    init, train_chunk = compile_plan(the_plan.static)
    groups = jax.device_put(tuple(g.arrays for g in the_plan.groups))
    streams = jax.device_put(the_plan.data)
    losses = np.zeros((len(the_plan.rows), spec.num_logs), np.float32)
    progress = _progress(spec, len(the_plan.rows) * spec.steps)
    started = time.perf_counter()
    states = init(groups)
    chunk, done = _chunk_windows(the_plan), 0
    while done < spec.num_logs:
        windows = min(chunk, spec.num_logs - done)
        states, logs = train_chunk(states, groups, streams, jnp.int32(done * spec.log_every), num_windows=windows)
        for group, log in zip(the_plan.groups, logs, strict=True):
            losses[group.model_index, done : done + windows] = np.asarray(log).reshape(windows, -1).T
        done += windows
        progress.update(windows * spec.log_every * len(the_plan.rows))
    progress.close()
    rows = [dict(row) for row in the_plan.rows]
    params = {}
    for group, state in zip(the_plan.groups, jax.device_get(states), strict=True):
        final = state["params"]
        params[group.m] = {
            "W": final["W"].reshape(-1, spec.n, group.m),
            "b": final["b"].reshape(-1, spec.n),
            "index": group.model_index,
        }
        for index, step in zip(group.model_index, state["diverged_at"].reshape(-1), strict=True):
            rows[index]["diverged_at"] = int(step)
    probabilities = {
        results.distribution_key(label, density): data.feature_probabilities(label, spec.n, density)
        for label in spec.distributions
        for density in spec.activation_densities
    }
    info = {"seconds": time.perf_counter() - started, "device": str(jax.devices()[0].device_kind)}
    return results.Run(spec, rows, losses, params, probabilities, info)


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
