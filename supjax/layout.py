"""Where the models of a sweep go: the model table, width groups over shared data streams,
batches that fit the device, padding for several devices, and relayout on resume.

The models of one width form a [D, G] group: D data streams (one per distribution x
activation density x seed) by G = weight decays x importances, which read the same batch
at every step.
Every width reads the same batches too, so the data (the costliest part of a step on a
CPU) is drawn once per step for the whole grid. With ``shared_data = false`` every model
is its own stream (G = 1).

Randomness depends only on (seed, model identity, step), never on the grid or the
chunking: a model trained alone, in a larger grid, or in chunks of any size draws the
same numbers. Models with the same seed see the same uniform bits at every step (common
random numbers), which makes width and weight-decay comparisons less noisy. Importance is
not part of a model's identity: models that differ only in importance start from the same
weights and read the same batches, with or without shared data.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from supjax import data, model, sharding
from supjax.config import RESULT, STATIC, SweepSpec, fields_of
from supjax.data import Streams
from supjax.engine import table
from supjax.engine.driver import Job
from supjax.engine.layout import PADDING, Placement, free_memory
from supjax.errors import ConfigError, warn
from supjax.program import GroupShape, Hyper, Static, hyper_type

_INIT_TAG, _DATA_TAG = 1, 2


def model_table(spec: SweepSpec) -> list[dict]:
    """One dict per model, in training order: width, then distribution, density, seed,
    importance, weight decay (the last two make up a group's G axis); derived from the spec's
    declarations (:mod:`supjax.engine.table`)."""
    return table.rows(spec)


@dataclass(frozen=True)
class Group(Placement):
    """The models of one width, laid out [D, G] (``shape``): their model and row indices
    (:class:`~supjax.engine.layout.Placement`, with the padding for several devices), the data
    stream each of the D rows reads, initial keys and traced hyperparameters."""

    m: int = 0
    reads: tuple[int, ...] = ()  # the data stream each of the D rows reads
    init_keys: np.ndarray | None = None  # [D, G, 2] key data
    hyper: Hyper | None = None  # [D, G] each; importance [D, G, n] or None


@dataclass(frozen=True)
class Layout:
    """One batch of models that train together in one compiled program, sharing each step's data."""

    spec: SweepSpec
    rows: list[dict]  # the batch's rows of the model table, in table order
    groups: tuple[Group, ...]
    streams: Streams  # host arrays
    devices: int = 1  # the D axis of every group is split over this many devices

    @property
    def static(self) -> Static:
        """The compiled program's static spec (its cache key): the spec's static and result
        fields and the layout's groups, devices and sparse slots."""
        spec = {name: getattr(self.spec, name) for name in fields_of(STATIC, RESULT)}
        groups = tuple(GroupShape(g.m, g.shape, g.reads) for g in self.groups)
        return Static(**spec, sparse_capacity=self.sparse_capacity, devices=self.devices, groups=groups)

    @property
    def sparse_capacity(self) -> int:
        """Slots per row of the sparse x products (0: dense), from the densest stream."""
        if not self.spec.sparse_products or not model.LOSSES[self.spec.loss].squared_error:
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
        """Sum of m over the real models (padding excluded)."""
        return sum(g.m * len(g.indices) for g in self.groups)

    def job(self) -> Job:
        """What the engine's driver trains: the program, its inputs on the devices, what it logs."""
        spec, devices = self.spec, self.devices
        hypers = sharding.put(tuple(g.hyper for g in self.groups), devices, sharded=True)
        streams = sharding.put(self.streams, devices, sharded=False)
        keys = sharding.put(tuple(g.init_keys for g in self.groups), devices, sharded=True)
        return Job(
            static=self.static,
            groups=self.groups,
            rows=len(self.rows),
            logs=("losses",),
            init_args=(keys, hypers),
            inputs=(hypers, streams),
            key_data=self.streams.keys,
            flops_per_step=self.flops_per_step,
            devices=devices,
            chunk_steps=spec.chunk_steps,
            checkpoint_every=spec.checkpoint_every,
            snapshot_steps=spec.snapshot_schedule,
        )


def resolve_for_backend(spec: SweepSpec, backend: str | None = None) -> SweepSpec:
    """The spec with the backend's choice of every unset ``result`` field written in (a run
    directory keeps them, so a resume on another device trains the same program): the batch
    tile (about 256 rows on a CPU, the whole batch elsewhere) and the stream loop (``map`` on a
    CPU, ``vmap`` on accelerators; see :func:`supjax.program.make_train`)."""
    backend = backend or jax.default_backend()
    if spec.precision == "bfloat16" and backend == "cpu" and not model.native_bfloat16():
        warn(
            "precision = bfloat16 on a CPU without bfloat16 arithmetic (no AVX-512 BF16 or AMX) is emulated: it ran "
            "at 0.5x float32 on such a CPU; float32 is faster here"
        )
    return spec.replace(
        batch_tile=spec.batch_tile or model.default_batch_tile(spec.batch_size, backend),
        stream_loop=spec.stream_loop or ("map" if backend == "cpu" else "vmap"),
    )


def models_per_stream(spec: SweepSpec) -> int:
    """G: the models of one width that read one data stream (weight decays x importances)."""
    return table.models_per_stream(spec) if spec.shared_data else 1


def _identity(row: dict) -> int:
    """A 32-bit tag for a model from its values, not its position in the grid."""
    text = f"{row['m']}|{row['weight_decay']!r}|{row['distribution']}|{row['activation_density']!r}"
    return zlib.crc32(text.encode())


def _seed_key(seed: int, tag: int) -> jax.Array:
    return jax.random.fold_in(jax.random.key(seed), tag)


def _stream_of(row: dict, shared: bool, spec_class=SweepSpec) -> tuple:
    """The data stream a model reads: its stream-level axes (its identity too, without shared data)."""
    stream = tuple(row[name] for name in table.level_of(spec_class, table.STREAM))
    return stream if shared else (row["m"], row["weight_decay"], *stream)


def plan(spec: SweepSpec, indices: list[int] | None = None, devices: int = 1) -> Layout:
    """Lay models out as width groups over shared data streams.

    ``indices`` (default: all) picks a batch of the model table; it must be a union of
    :func:`blocks`. With several ``devices`` each group's D is padded to a multiple of them
    by repeating its last stream's models (index -1, results dropped). Unset ``result`` fields
    take the backend's choice (:func:`resolve_for_backend`).
    """
    spec = resolve_for_backend(spec)
    every_row = model_table(spec)
    rows = every_row if indices is None else [every_row[i] for i in sorted(indices)]
    num_decays = models_per_stream(spec)  # G
    position = {r["index"]: k for k, r in enumerate(rows)}
    first_row = {}
    for r in rows:
        first_row.setdefault(_stream_of(r, spec.shared_data, type(spec)), r)
    streams = list(first_row)
    groups = []
    for m in dict.fromkeys(r["m"] for r in rows):
        group_rows = [r for r in rows if r["m"] == m]
        real = len(group_rows)
        group_rows += group_rows[-num_decays:] * (-(len(group_rows) // num_decays) % devices)
        shape = (len(group_rows) // num_decays, num_decays)
        reads = tuple(streams.index(_stream_of(r, spec.shared_data, type(spec))) for r in group_rows[::num_decays])
        keys = jnp.stack([jax.random.fold_in(_seed_key(r["seed"], _INIT_TAG), _identity(r)) for r in group_rows])
        hyper = _hyper(spec, group_rows, shape)
        index = np.array([r["index"] if k < real else PADDING for k, r in enumerate(group_rows)])
        local = np.array([position[i] if i != PADDING else PADDING for i in index])
        init_keys = np.asarray(jax.random.key_data(keys)).reshape(*shape, -1)
        groups.append(Group(index, local, shape, m=m, reads=reads, init_keys=init_keys, hyper=hyper))

    stream_rows = [first_row[s] for s in streams]
    if spec.shared_data:
        # One bit stream per seed, shared by every distribution and density.
        seeds = list(dict.fromkeys(r["seed"] for r in stream_rows))
        keys = [_seed_key(s, _DATA_TAG) for s in seeds]
        seed_of = [seeds.index(r["seed"]) for r in stream_rows]
    else:
        keys = [jax.random.fold_in(_seed_key(r["seed"], _DATA_TAG), _identity(r)) for r in stream_rows]
        seed_of = list(range(len(stream_rows)))
    probabilities = [spec.probabilities(r["distribution"], r["activation_density"]) for r in stream_rows]
    key_data = np.asarray(jax.random.key_data(jnp.stack(keys)))
    the_streams = data.make_streams(spec, probabilities, key_data, seed_of, spec.correlation)
    return Layout(spec, rows, tuple(groups), the_streams, devices)


def _hyper(spec: SweepSpec, rows: list[dict], shape: tuple[int, int]) -> Hyper:
    """The traced hyperparameters of a group's rows, [D, G] each; importance [D, G, n] (None if uniform)."""
    scalars = {k: np.array([r[k] for r in rows], np.float32).reshape(shape) for k in table.traced(type(spec))}
    importance = None
    if any(label != "uniform" for label in spec.importance_labels):
        vectors = {label: data.feature_importance(label, spec.n).astype(np.float32) for label in spec.importance_labels}
        importance = np.stack([vectors[r["importance"]] for r in rows]).reshape(*shape, spec.n)
    return hyper_type(type(spec))(**scalars, importance=importance)


def blocks(spec: SweepSpec, rows: list[dict]) -> list[list[int]]:
    """The smallest units a batch is made of: the G models of one width that share a data
    stream (every weight decay and importance), or single models with ``shared_data = false``."""
    size = models_per_stream(spec)
    return [list(range(i, i + size)) for i in range(0, len(rows), size)]


def split_batches(spec: SweepSpec, rows: list[dict]) -> list[list[int]]:
    """Batches of model indices that fit the device: whole :func:`blocks`, in table order.

    At most ``spec.max_models_per_batch`` models each, and at most half the free device
    memory by :func:`model_bytes` (the rest is XLA's working room).
    """
    budget = 0.5 * free_memory()
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
