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

from supjax import checkpoint, data, model, optim, results
from supjax.config import ConfigError, SweepSpec

_INIT_TAG, _DATA_TAG = 1, 2
MODEL_AXIS = "models"
HYPER_FIELDS = ("weight_decay", "lr_w", "lr_b")
# Aim for about this much dense work per compiled chunk: seconds on a CPU, tens of ms on
# a GPU; chunk boundaries are where the progress bar moves and results come back.
_CHUNK_FLOPS = 5e11


@dataclass(frozen=True)
class WidthGroup:
    """The models of one width, laid out [D, G] (see module docstring)."""

    m: int
    model_index: np.ndarray  # [D * G] indices into the sweep's model table; -1 for padding
    local_index: np.ndarray  # [D * G] positions in the plan's rows; -1 for padding
    shape: tuple[int, int]  # (D, G)
    streams: tuple[int, ...]  # the plan's data stream each of the D rows reads
    arrays: dict  # init_keys, weight_decay, lr_w, lr_b: [D, G]


@dataclass(frozen=True)
class Plan:
    """What one compiled program trains: width groups that share the per-step data."""

    spec: SweepSpec
    rows: list[dict]
    groups: tuple[WidthGroup, ...]
    data: dict  # stream_keys [S, 2] (key data), stream_of [D], thresholds, scales [D, n], importance [n]
    devices: int = 1  # the D axis of every group is split over this many devices

    @property
    def static(self) -> tuple:
        """Everything that sets shapes or loop lengths: the cache key of the compiled program."""
        s = self.spec
        layout = tuple((g.m, g.shape, g.streams) for g in self.groups)
        tile = s.batch_tile or model.default_batch_tile(s.batch_size, jax.default_backend())
        sequential = jax.default_backend() == "cpu"
        schedule = (s.n, s.batch_size, s.log_every, s.steps, s.warmup_steps, s.final_lr_fraction)
        block = s.n if s.loss == "cross_entropy" else s.correlation_block
        weighted = s.importance != "uniform"  # uniform weights skip the multiply on the hot path
        data_law = (s.sampler, block, s.unit_values, s.loss, weighted)
        return (*schedule, tile, self.sparse_capacity, sequential, self.devices, data_law, layout)

    @property
    def sparse_capacity(self) -> int:
        """Slots per row of the sparse x products (0: dense), from the densest stream."""
        s = self.spec
        if not s.sparse_products or s.loss != "mse":
            return 0
        return max(data.active_capacity(r["expected_active"]) for r in self.rows)

    @property
    def flops_per_step(self) -> float:
        """Dense work of one step of every model: 10 B n m each."""
        return 10.0 * self.spec.batch_size * self.spec.n * self._total_width

    @property
    def work_flops_per_step(self) -> float:
        """Product work actually done: 6 B n m + 4 B K m per model with K sparse slots, else 10 B n m."""
        capacity = self.sparse_capacity
        if not capacity:
            return self.flops_per_step
        return self.spec.batch_size * (6.0 * self.spec.n + 4.0 * capacity) * self._total_width

    @property
    def _total_width(self) -> int:
        """Sum of m over the plan's real models (padding excluded)."""
        return sum(g.m * int(np.sum(g.model_index >= 0)) for g in self.groups)


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


def blocks(spec: SweepSpec, rows: list[dict]) -> list[list[int]]:
    """The smallest units a batch is made of: the G models of one width that share a data
    stream (every weight decay), or single models with ``shared_data = false``."""
    size = len(spec.weight_decays) if spec.shared_data else 1
    return [list(range(i, i + size)) for i in range(0, len(rows), size)]


def _stream_of(row: dict, shared: bool) -> tuple:
    if shared:
        return (row["distribution"], row["activation_density"], row["seed"])
    return (row["m"], row["weight_decay"], row["distribution"], row["activation_density"], row["seed"])


def plan(spec: SweepSpec, indices: list[int] | None = None, devices: int = 1) -> Plan:
    """Lay models out as width groups over shared data streams.

    ``indices`` (default: all) picks a batch of the model table; it must be a union of
    :func:`blocks`. ``Plan.rows`` keeps the batch's rows in table order. With several
    ``devices`` each group's D is padded to a multiple of them by repeating its last
    stream's models (index -1, results dropped).
    """
    table = model_table(spec)
    rows = table if indices is None else [table[i] for i in sorted(indices)]
    num_decays = len(spec.weight_decays) if spec.shared_data else 1
    position = {r["index"]: k for k, r in enumerate(rows)}
    streams = list(dict.fromkeys(_stream_of(r, spec.shared_data) for r in rows))
    first_row = {}
    for r in rows:
        first_row.setdefault(_stream_of(r, spec.shared_data), r)
    groups = []
    for m in dict.fromkeys(r["m"] for r in rows):
        group_rows = [r for r in rows if r["m"] == m]
        real = len(group_rows)
        group_rows += group_rows[-num_decays:] * (-(len(group_rows) // num_decays) % devices)
        shape = (len(group_rows) // num_decays, num_decays)
        reads = tuple(streams.index(_stream_of(r, spec.shared_data)) for r in group_rows[::num_decays])
        arrays = {
            "init_keys": jax.random.key_data(
                jnp.stack([jax.random.fold_in(_seed_key(r["seed"], _INIT_TAG), _identity(r)) for r in group_rows])
            ),
            **{k: np.array([r[k] for r in group_rows], np.float32) for k in HYPER_FIELDS},
        }
        arrays = {k: np.asarray(v).reshape(*shape, *np.shape(v)[1:]) for k, v in arrays.items()}
        index = np.array([r["index"] if k < real else -1 for k, r in enumerate(group_rows)])
        local = np.array([position[i] if i >= 0 else -1 for i in index])
        groups.append(WidthGroup(m, index, local, shape, reads, arrays))

    stream_rows = [first_row[s] for s in streams]
    if spec.shared_data:
        # One bit stream per seed, shared by every distribution and density.
        seeds = list(dict.fromkeys(r["seed"] for r in stream_rows))
        stream_keys = [_seed_key(s, _DATA_TAG) for s in seeds]
        bits_of = [seeds.index(r["seed"]) for r in stream_rows]
    else:
        stream_keys = [jax.random.fold_in(_seed_key(r["seed"], _DATA_TAG), _identity(r)) for r in stream_rows]
        bits_of = list(range(len(stream_rows)))
    data_arrays = {
        "stream_keys": np.asarray(jax.random.key_data(jnp.stack(stream_keys))),
        "stream_of": np.array(bits_of, np.int32),
        "tables": _stack([_sampler_tables(spec, r) for r in stream_rows]),
        "importance": data.feature_importance(spec.importance, spec.n).astype(np.float32),
        "correlation": np.float32(spec.correlation),
    }
    return Plan(spec, rows, tuple(groups), data_arrays, devices)


def _sampler_tables(spec: SweepSpec, row: dict) -> dict[str, np.ndarray]:
    p = data.feature_probabilities(row["distribution"], spec.n, row["activation_density"])
    if spec.sampler == "independent":
        thresholds, scales = data.sampler_tables(p)
        return {"thresholds": thresholds, "scales": scales}
    if spec.loss == "cross_entropy":  # one active feature per sample, drawn with probability p_i / sum p
        return data.correlated_tables(p / p.sum(), "exclusive", spec.n)
    return data.correlated_tables(p, spec.sampler, spec.correlation_block)


def _stack(tables: list[dict]) -> dict:
    return {k: np.stack([t[k] for t in tables]) for k in tables[0]}


def one_model_step(
    n: int, steps: int, warmup_steps: int, final_fraction: float, batch_tile: int | None = None, loss: str = "mse"
):
    """``(init_one, step_one)`` for ONE model; hyperparameters arrive as traced scalars.

    ``init_one(key, hyper, m) -> state`` and ``step_one(state, hyper, x, t[, importance])
    -> (state, loss)`` with ``hyper = {"weight_decay", "lr_w", "lr_b"}``, ``t`` the step
    number, ``importance: [n]`` the feature weights of the squared error, and the
    reported loss of the batch before the update: n x MSE, or the mean cross-entropy with
    ``loss = "cross_entropy"`` / ``"soft_cross_entropy"`` (NaN once the model diverged:
    its state then stays frozen and ``state["diverged_at"]`` holds the step, else -1).
    ``batch_tile`` and ``active`` (the sparse form of x): see :func:`supjax.model.mse_and_grad`.
    """

    def optimizer(hyper):
        def schedule(peak):
            return optim.warmup_cosine_schedule(peak, warmup_steps, steps, final_fraction)

        return optim.toy_model_optimizer(schedule(hyper["lr_w"]), schedule(hyper["lr_b"]), hyper["weight_decay"])

    def init_one(key, hyper, m):
        params = model.init_params(key, n, m)
        return {"params": params, "opt_state": optimizer(hyper).init(params), "diverged_at": jnp.int32(-1)}

    def step_one(state, hyper, x, t, importance=None, active=None):
        if loss == "mse":
            value, grads = model.mse_and_grad(state["params"], x, batch_tile, importance, active)
            reported = n * value
        else:
            value, grads = jax.value_and_grad(model.cross_entropy)(state["params"], x)
            reported = value
        updates, opt_state = optimizer(hyper).update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        # A model whose loss or weights stop being finite keeps its last finite state and
        # the step it diverged at; vmapped neighbours never see its NaNs.
        finite = jnp.isfinite(value) & jnp.all(jnp.array([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))
        alive = state["diverged_at"] < 0
        new = {"params": params, "opt_state": opt_state}
        kept = jax.tree.map(lambda a, b: jnp.where(alive & finite, a, b), new, {k: state[k] for k in new})
        kept["diverged_at"] = jnp.where(alive & ~finite, t, state["diverged_at"]).astype(jnp.int32)
        return kept, jnp.where(alive, reported, jnp.nan)

    return init_one, step_one


@functools.lru_cache(maxsize=32)
def compile_plan(static: tuple):
    """The init and chunk programs for a :attr:`Plan.static`; cached across sweeps."""
    (
        n,
        batch_size,
        log_every,
        steps,
        warmup_steps,
        final_fraction,
        batch_tile,
        capacity,
        sequential,
        devices,
        sampler,
        layout,
    ) = static
    sampler, block, unit, loss_kind, weighted = sampler
    init_one, step_one = one_model_step(n, steps, warmup_steps, final_fraction, batch_tile, loss_kind)

    # [D, G] models: broadcast the batch over G (one wide product for the G models), map
    # it over D. On a CPU, D in sequence is 1.5-2x faster than a vmap over D (XLA's
    # batched products there lose the cache-friendly layout); on accelerators, vmap.
    step_models = jax.vmap(step_one, in_axes=(0, 0, None, None, None, None))
    if sequential:

        def step_group(state, hyper, x, t, importance, active):
            def one_row(row):
                state, hyper, x, active = row
                return step_models(state, hyper, x, t, importance, active)

            return jax.lax.map(one_row, (state, hyper, x, active))

    else:
        step_group = jax.vmap(step_models, in_axes=(0, 0, 0, None, None, 0))

    def hyper_of(arrays):
        return {k: arrays[k] for k in HYPER_FIELDS}

    def init(groups):
        return tuple(
            jax.vmap(jax.vmap(functools.partial(init_one, m=m)))(
                jax.random.wrap_key_data(arrays["init_keys"]), hyper_of(arrays)
            )
            for (m, _, _), arrays in zip(layout, groups, strict=True)
        )

    def batch(streams, t):
        """The step-t batch of every stream: [D, B, n]."""
        keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(jax.random.wrap_key_data(streams["stream_keys"]))
        tables, seed_of = streams["tables"], streams["stream_of"]
        if sampler == "independent":
            bits = jax.vmap(lambda k: jax.random.bits(k, (batch_size, n), jnp.uint32))(keys)
            make = functools.partial(data.features_from_bits, unit=unit)
            return jax.vmap(make)(bits[seed_of], tables["thresholds"], tables["scales"])
        draws = jax.vmap(lambda k: data.correlated_draws(k, sampler, batch_size, n, block))(keys)
        draws = jax.tree.map(lambda a: a[seed_of], draws)

        def one_stream(draw, table):
            return data.correlated_features(draw, table, sampler, block, streams["correlation"], unit)

        return jax.vmap(one_stream)(draws, tables)

    def group_batch(x, shape, reads):
        """The batches this device's D rows of a group read: [D_local, B, n]."""
        if devices == 1 and reads == tuple(range(reads[0], reads[0] + len(reads))):
            return x[reads[0] : reads[0] + len(reads)]
        local = shape[0] // devices
        first = jax.lax.axis_index(MODEL_AXIS) * local if devices > 1 else 0
        return x[jax.lax.dynamic_slice(jnp.asarray(reads, jnp.int32), (first,), (local,))]

    def chunk(states, groups, streams, first_step, num_windows: int):
        hypers = tuple(hyper_of(arrays) for arrays in groups)

        def one_step(carry, t):
            x = batch(streams, t)
            step = functools.partial(step_all, t=t, x=x, importance=streams["importance"] if weighted else None)
            if not capacity:
                return step(carry, active=None), None
            # The sparse products need every row's nonzeros to fit the capacity; a batch
            # that does not (about 1e-9 of rows) takes the dense products instead.
            index, value, fits = jax.vmap(lambda a: model.active_entries(a, capacity))(x)
            sparse, dense = (functools.partial(step, active=a) for a in ((index, value), None))
            return jax.lax.cond(jnp.all(fits), sparse, dense, carry), None

        def step_all(carry, t, x, importance, active):
            states, totals = [], []
            for (_, shape, reads), state, total, hyper in zip(layout, *carry, hypers, strict=True):
                active_rows = None if active is None else tuple(group_batch(a, shape, reads) for a in active)
                state, loss = step_group(state, hyper, group_batch(x, shape, reads), t, importance, active_rows)
                states.append(state)
                totals.append(total + loss)
            return tuple(states), tuple(totals)

        def one_window(states, w):
            start = first_step + w * log_every
            zeros = tuple(jnp.zeros_like(hyper["weight_decay"]) for hyper in hypers)
            (states, totals), _ = jax.lax.scan(one_step, (states, zeros), start + jnp.arange(log_every))
            return states, tuple(total / log_every for total in totals)

        return jax.lax.scan(one_window, states, jnp.arange(num_windows))

    if devices > 1:
        # Every model is independent: each device runs the one-device program on its
        # share of D, so results equal a one-device run's.
        mesh = _mesh(devices)
        models, everywhere = jax.sharding.PartitionSpec(MODEL_AXIS), jax.sharding.PartitionSpec()
        init = jax.shard_map(init, mesh=mesh, in_specs=(models,), out_specs=models)
        chunk_windows = chunk

        def chunk(states, groups, streams, first_step, num_windows: int):
            return jax.shard_map(
                functools.partial(chunk_windows, num_windows=num_windows),
                mesh=mesh,
                in_specs=(models, models, everywhere, everywhere),
                out_specs=(models, jax.sharding.PartitionSpec(None, MODEL_AXIS)),
                check_vma=False,
            )(states, groups, streams, first_step)

    train_chunk = functools.partial(jax.jit, static_argnames="num_windows", donate_argnums=0)(chunk)
    train_chunk.__doc__ = (
        "Train ``num_windows * log_every`` steps; return states and window-mean losses [windows, D, G]."
    )
    return jax.jit(init), train_chunk


def device_count() -> int:
    """Devices a sweep spreads its models over: all of them (across hosts, too)."""
    return jax.device_count()


def _mesh(devices: int) -> jax.sharding.Mesh:
    return jax.sharding.Mesh(np.array(jax.devices()[:devices]), (MODEL_AXIS,))


def _put(tree, devices: int, sharded: bool):
    """Global arrays from host values: split on the leading (D) axis, or replicated."""
    if devices == 1:
        return jax.device_put(tree)
    mesh = _mesh(devices)
    spec = jax.sharding.PartitionSpec(MODEL_AXIS) if sharded else jax.sharding.PartitionSpec()
    sharding = jax.sharding.NamedSharding(mesh, spec)

    def put(value):
        value = np.asarray(value)
        return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

    return jax.tree.map(put, tree)


def _to_host(tree):
    """Host numpy copies of (possibly multi-host) global arrays."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def _chunk_windows(the_plan: Plan) -> int:
    spec = the_plan.spec
    if spec.chunk_steps is not None:
        return min(spec.num_logs, max(1, spec.chunk_steps // spec.log_every))
    windows = _CHUNK_FLOPS / (the_plan.flops_per_step * spec.log_every)
    return int(min(spec.num_logs, max(1, round(windows))))


def train_batch(the_plan: Plan, manager=None, progress=None) -> tuple[np.ndarray, tuple]:
    """Train the models of ``the_plan`` to the last step; return (losses, final states).

    ``losses: [len(the_plan.rows), steps // log_every]`` in the plan's row order; the
    states are host copies, one per width group. With an orbax ``manager`` the batch
    starts from its newest readable checkpoint and saves one every
    ``spec.checkpoint_every`` steps and at the end.
    """
    spec = the_plan.spec
    init, train_chunk = compile_plan(the_plan.static)
    groups = _put(tuple(g.arrays for g in the_plan.groups), the_plan.devices, sharded=True)
    streams = _put(the_plan.data, the_plan.devices, sharded=False)
    states = init(groups)
    losses = np.zeros((len(the_plan.rows), spec.num_logs), np.float32)
    done = 0
    saved = {"index": tuple(g.model_index for g in the_plan.groups), "key_data": the_plan.data["stream_keys"]}
    if manager is not None:
        # Restored on the host, so a run may resume on another number of devices.
        restored = checkpoint.restore_latest(manager)
        if restored is not None:
            step, state = restored
            if not np.array_equal(state["key_data"], saved["key_data"]):
                raise ConfigError("--resume", str(manager.directory), "its data keys differ from this config's")
            states = _put(_relayout(the_plan, state, states), the_plan.devices, sharded=True)
            losses, done = np.asarray(state["losses"]), int(step) // spec.log_every
    if progress is not None:
        progress.update(done * spec.log_every * len(the_plan.rows))
    chunk = _chunk_windows(the_plan)
    every = checkpoint_interval(spec) // spec.log_every
    while done < spec.num_logs:
        windows = min(chunk, spec.num_logs - done, every - done % every)
        states, logs = train_chunk(states, groups, streams, jnp.int32(done * spec.log_every), num_windows=windows)
        for group, log in zip(the_plan.groups, _to_host(logs), strict=True):
            real = group.local_index >= 0
            losses[group.local_index[real], done : done + windows] = np.asarray(log).reshape(windows, -1).T[real]
        done += windows
        if progress is not None:
            progress.update(windows * spec.log_every * len(the_plan.rows))
        if manager is not None and (done % every == 0 or done == spec.num_logs):
            step = done * spec.log_every
            checkpoint.save(manager, step, {**saved, "states": states, "losses": losses, "step": step})
    return losses, _to_host(states)


def _relayout(the_plan: Plan, saved: dict, like: tuple) -> tuple:
    """Saved group states in this plan's [D, G] layout and pytree types (those of ``like``),
    matched model by model: the padding for several devices may differ from the run
    that saved them."""
    states = []
    for group, state, index, template in zip(the_plan.groups, saved["states"], saved["index"], like, strict=True):
        row_of = {int(i): k for k, i in enumerate(np.asarray(index)) if i >= 0}
        rows = [row_of[int(i)] for i in group.model_index if i >= 0]
        rows += [rows[-1]] * int(np.sum(group.model_index < 0))  # padding copies the last model
        leaves = [_take_models(a, rows, group.shape) for a in jax.tree.leaves(state)]
        expected = jax.tree.leaves(template)
        if [a.shape for a in leaves] != [a.shape for a in expected]:
            raise ConfigError(
                "--resume", f"width {group.m}", "the checkpoint holds another model layout; start a new run"
            )
        states.append(jax.tree.unflatten(jax.tree.structure(template), leaves))
    return tuple(states)


def _take_models(a, rows: list[int], shape: tuple[int, int]) -> np.ndarray:
    a = np.asarray(a)
    return a.reshape(-1, *a.shape[2:])[rows].reshape(*shape, *a.shape[2:])


def checkpoint_interval(spec: SweepSpec) -> int:
    """Steps between checkpoints: ``checkpoint_every``, by default a tenth of the run."""
    if spec.checkpoint_every is not None:
        return spec.checkpoint_every
    return max(spec.log_every, spec.steps // 10 // spec.log_every * spec.log_every)


def split_batches(spec: SweepSpec, rows: list[dict]) -> list[list[int]]:
    """Batches of model indices that fit the device: whole :func:`blocks`, in table order.

    At most ``spec.max_models_per_batch`` models each, and at most half the free device
    memory by :func:`model_bytes` (the rest is XLA's working room).
    """
    budget = 0.5 * _free_memory()
    limit = spec.max_models_per_batch or len(rows)
    tile = spec.batch_tile or model.default_batch_tile(spec.batch_size, jax.default_backend())
    batches, current, used = [], [], 0.0
    for block in blocks(spec, rows):
        cost = sum(model_bytes(spec.n, rows[i]["m"], tile) for i in block) + stream_bytes(spec.n, spec.batch_size)
        if cost > budget:
            raise ConfigError(
                "batch_size",
                spec.batch_size,
                f"{len(block)} models of width {rows[block[0]]['m']} do not fit in "
                f"{budget / 2**30:.1f} GiB; lower batch_size or n",
            )
        if current and (len(current) + len(block) > limit or used + cost > budget):
            batches.append(current)
            current, used = [], 0.0
        current += block
        used += cost
    return [*batches, current]


def model_bytes(n: int, m: int, batch_tile: int) -> float:
    """Device bytes one model needs: W, b and two Adam moments twice over (donation and
    update), gradients, and six [tile, n] float32 temporaries of the fused step."""
    return 4.0 * (6 * (n * m + n) + 2 * n * m + 6 * batch_tile * n)


def stream_bytes(n: int, batch_size: int) -> float:
    """Device bytes of one data stream's batch: the random bits and the features."""
    return 8.0 * batch_size * n


def _free_memory() -> float:
    device = jax.local_devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return float(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        import os

        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 16.0 * 2**30


def run_sweep(spec: SweepSpec, out: str | Path | None = None, resume: bool = False) -> results.Run:
    """Train every model of ``spec``; write the run directory ``out`` if given.

    Returns a :class:`supjax.results.Run`: the model table (with ``diverged_at``: the
    step a model's loss stopped being finite, -1 if never), loss curves
    ``losses: [models, steps // log_every]`` (window means of n x MSE, NaN after a
    divergence) and final parameters. With ``out``, every batch of models checkpoints
    into ``out/checkpoints``; ``resume=True`` continues an interrupted run there and
    gives the same numbers as an uninterrupted one. Example:

        >>> run = run_sweep(SweepSpec(n=100, widths=(8,), weight_decays=(-1.0, 1.0), steps=200,
        ...                           warmup_steps=20, batch_size=256, progress=False))
        >>> run.losses.shape
        (2, 20)
    """
    spec = spec.validate()
    rows = model_table(spec)
    primary = jax.process_index() == 0
    if out is not None and resume:
        spec, batches = results.resume_layout(out, spec)
    else:
        if spec.batch_tile is None:
            spec = spec.replace(batch_tile=model.default_batch_tile(spec.batch_size, jax.default_backend()))
        batches = split_batches(spec, rows)
        if out is not None and primary:
            results.start_run_dir(out, spec, rows, batches)
    _sync_hosts("supjax: run directory ready")
    if out is not None and not primary:  # every host trains process 0's batches
        spec, batches = results.resume_layout(out, spec)
    losses = np.full((len(rows), spec.num_logs), np.nan, np.float32)
    widths: dict[int, list] = {}
    progress = _progress(spec.replace(progress=spec.progress and primary), len(rows) * spec.steps)
    started = time.perf_counter()
    for k, indices in enumerate(batches):
        the_plan = plan(spec, indices, device_count())
        manager = checkpoint.manager(checkpoint.batch_directory(out, k), spec.max_to_keep) if out else None
        batch_losses, states = train_batch(the_plan, manager, progress)
        for group, state in zip(the_plan.groups, states, strict=True):
            real = group.model_index >= 0
            losses[group.model_index[real]] = batch_losses[group.local_index[real]]
            widths.setdefault(group.m, []).append((group, state))
    progress.close()
    run = _assemble(spec, rows, losses, widths, time.perf_counter() - started)
    if out is not None and primary:
        try:
            results.save_run(run, out)
        except OSError as err:
            raise ConfigError(
                "--out", str(out), f"could not write the results ({err.strerror}); free space, then rerun with --resume"
            ) from None
    _sync_hosts("supjax: run saved")
    return run


def _sync_hosts(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def train(the_plan: Plan) -> results.Run:
    """Train one plan in memory (no checkpoints) and return its models as a Run."""
    losses, states = train_batch(the_plan)
    table = model_table(the_plan.spec)
    full = np.full((len(table), the_plan.spec.num_logs), np.nan, np.float32)
    widths = {}
    for group, state in zip(the_plan.groups, states, strict=True):
        real = group.model_index >= 0
        full[group.model_index[real]] = losses[group.local_index[real]]
        widths.setdefault(group.m, []).append((group, state))
    return _assemble(the_plan.spec, table, full, widths, 0.0)


def _assemble(spec: SweepSpec, rows: list[dict], losses: np.ndarray, widths: dict, seconds: float) -> results.Run:
    rows = [dict(r) for r in rows]
    params = {}
    for m, parts in widths.items():
        W, b, index = [], [], []
        for group, state in parts:
            real = group.model_index >= 0  # drop the padding of multi-device groups
            W.append(state["params"]["W"].reshape(-1, spec.n, m)[real])
            b.append(state["params"]["b"].reshape(-1, spec.n)[real])
            index.append(group.model_index[real])
            for i, step in zip(group.model_index[real], state["diverged_at"].reshape(-1)[real], strict=True):
                rows[i]["diverged_at"] = int(step)
        params[m] = {"W": np.concatenate(W), "b": np.concatenate(b), "index": np.concatenate(index)}
    probabilities = {
        results.distribution_key(label, density): data.feature_probabilities(label, spec.n, density)
        for label in spec.distributions
        for density in spec.activation_densities
    }
    info = {"seconds": seconds, "device": str(jax.devices()[0].device_kind)}
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
