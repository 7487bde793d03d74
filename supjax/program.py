"""The compiled program of a sweep: one model's step, batched over width groups, scanned over steps.

The whole training run, top to bottom (each a few lines below):

* :func:`make_step`: ONE model, ``step_one(state, hyper, x, t) -> (state, loss)``;
* :func:`make_group_step`: one width group of [D, G] models, ``step_one`` vmapped over the
  G weight decays x importances (the batch broadcast, so XLA fuses them into one wide
  product) and mapped or vmapped over the D data streams (``Static.stream_loop``);
* :func:`train`: ``scan`` over windows of ``log_every`` steps of a ``scan`` over steps;
  each step draws every stream's batch once and steps every width group on it;
* :data:`init_states` and :data:`train_chunk`: both jitted, cached by ``jax.jit`` on the
  hashable :class:`Static`.

The static/traced split is in the types: :class:`Static` sets shapes and code (a new
value compiles a new program); :class:`Hyper` (per-model hyperparameters),
:class:`TrainState` (per-model state) and :class:`Streams` (the data streams' keys and
sampler tables) are traced arrays, so a grid over their values costs no recompilation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from supjax import data, model, optim, variants

MODEL_AXIS = "models"


class GroupShape(NamedTuple):
    """The static shape of one width group: width m, its [D, G] layout, the stream each D row reads."""

    m: int
    shape: tuple[int, int]
    reads: tuple[int, ...]


@dataclass(frozen=True)
class Static:
    """Everything that sets shapes or code: the compile cache key of :data:`train_chunk`."""

    n: int
    batch_size: int
    steps: int
    warmup_steps: int
    final_lr_fraction: float
    log_every: int
    batch_tile: int
    model: str  # see supjax.variants
    fused_gradient: bool  # the tied model's hand-fused gradient (else autodiff)
    loss: str  # mse | cross_entropy | soft_cross_entropy
    precision: str  # float32 | tensorfloat32 | bfloat16: every product of the step
    stream_loop: str  # map | vmap: the loop over a group's data streams
    sampler: str  # independent | copula | exclusive
    correlation_block: int
    unit_values: bool
    value_max: float  # active values are U(0, value_max): 2 (the paper), 1 (TMS)
    weighted: bool  # some importance is not uniform (uniform everywhere skips the multiply)
    weight_init: str  # normal | xavier_normal (see supjax.model.init_weight)
    bias_init: str  # normal | zeros
    bias_weight_decay: bool  # b decays with W's weight decay (torch's AdamW on every parameter)
    sparse_capacity: int  # slots per row of the sparse x products; 0: dense
    devices: int  # the D axis of every group is split over this many devices
    groups: tuple[GroupShape, ...]


class Hyper(NamedTuple):
    """Per-model hyperparameters, each ``[D, G]`` (a scalar inside the one-model step), and
    the importance I of each model's squared error, ``[D, G, n]`` (``[n]`` inside the step),
    or None where every model's is uniform: the step then skips the multiply."""

    weight_decay: Any
    lr_w: Any
    lr_b: Any
    importance: Any = None


class TrainState(NamedTuple):
    """One model's training state; batched, every leaf gains the leading [D, G] axes."""

    params: Any  # a pure dict: {"W": [n, m], "b": [n], ...}
    opt_state: Any
    diverged_at: Any  # the step the loss or weights stopped being finite; -1 while alive


class Streams(NamedTuple):
    """The data streams of a batch of models (replicated on every device)."""

    keys: Any  # [seeds, 2] key data: one bit stream per seed (or per model without shared data)
    seed_of: Any  # [S] the bit stream each data stream reads
    tables: Any  # sampler tables of every stream, [S, ...] (see supjax.data)
    correlation: Any  # the within-block correlation rho


def make_step(static: Static):
    """``(init_one, step_one)`` for ONE model; hyperparameters arrive as traced scalars.

    ``init_one(key, hyper, m) -> TrainState``; ``step_one(state, hyper, x, t, active) ->
    (state, loss)`` with ``x: [B, n]``, ``t`` the step number, ``active`` the sparse form of
    x or None (see :func:`supjax.model.mse_and_grad`); the squared error is weighted by
    ``hyper.importance: [n]`` unless it is None. The loss is that of the batch before the
    update: sum_i I_i (y_i - x_i)^2 averaged over the batch (n x MSE for uniform I), or the
    mean cross-entropy; NaN once the model diverged, its state then frozen.
    """

    def optimizer(hyper: Hyper):
        def schedule(peak):
            return optim.warmup_cosine_schedule(peak, static.warmup_steps, static.steps, static.final_lr_fraction)

        return optim.toy_model_optimizer(
            schedule(hyper.lr_w), schedule(hyper.lr_b), hyper.weight_decay, static.bias_weight_decay
        )

    def init_one(key, hyper: Hyper, m: int) -> TrainState:
        params = variants.init(static.model, key, static.n, m, static.weight_init, static.bias_init)
        return TrainState(params, optimizer(hyper).init(params), jnp.int32(-1))

    def objective(params, x, importance, active):
        """(training objective, reported loss, gradient)."""
        if static.loss != "mse":
            value, grads = jax.value_and_grad(model.cross_entropy)(params, x)
            return value, value, grads
        if static.model == "tied" and static.fused_gradient:
            value, grads = model.mse_and_grad(params, x, static.batch_tile, importance, active)
        else:

            def mse(p):
                return model.output_mean_squared_error(variants.apply(static.model, p, x), x, importance)

            value, grads = jax.value_and_grad(mse)(params)
        return value, static.n * value, grads

    def step_one(state: TrainState, hyper: Hyper, x, t, active=None):
        value, reported, grads = objective(state.params, x, hyper.importance, active)
        updates, opt_state = optimizer(hyper).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # A model whose loss or weights stop being finite keeps its last finite state and
        # the step it diverged at; vmapped neighbours never see its NaNs.
        finite = jnp.isfinite(value) & jnp.all(jnp.array([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))
        alive = state.diverged_at < 0
        kept = jax.tree.map(lambda a, b: jnp.where(alive & finite, a, b), (params, opt_state), state[:2])
        diverged_at = jnp.where(alive & ~finite, t, state.diverged_at).astype(jnp.int32)
        return TrainState(*kept, diverged_at), jnp.where(alive, reported, jnp.nan)

    return init_one, step_one


def make_group_step(static: Static):
    """``step_group(state, hyper, x, t, active)`` for a [D, G] group, ``x: [D, B, n]``.

    The batch is broadcast over G and mapped over D. On a CPU, D in sequence (``map``) is
    1.5-2x faster than a vmap over D (XLA's batched products there lose the cache-friendly
    layout); on accelerators, ``vmap``.
    """
    step_decays = jax.vmap(make_step(static)[1], in_axes=(0, 0, None, None, None))
    if static.stream_loop == "vmap":
        return jax.vmap(step_decays, in_axes=(0, 0, 0, None, 0))

    def step_group(state, hyper, x, t, active):
        def one_stream(row):
            state, hyper, x, active = row
            return step_decays(state, hyper, x, t, active)

        return jax.lax.map(one_stream, (state, hyper, x, active))

    return step_group


def sample(static: Static, streams: Streams, t) -> jax.Array:
    """The step-t batch of every data stream: ``[S, B, n]``."""
    n, batch, block = static.n, static.batch_size, static.correlation_block
    keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(jax.random.wrap_key_data(streams.keys))
    if static.sampler == "independent":
        bits = jax.vmap(lambda k: jax.random.bits(k, (batch, n), jnp.uint32))(keys)
        make = functools.partial(data.features_from_bits, unit=static.unit_values)
        return jax.vmap(make)(bits[streams.seed_of], streams.tables["thresholds"], streams.tables["scales"])
    draws = jax.vmap(lambda k: data.correlated_draws(k, static.sampler, batch, n, block, static.value_max))(keys)
    draws = jax.tree.map(lambda a: a[streams.seed_of], draws)

    def one_stream(draw, table):
        return data.correlated_features(draw, table, static.sampler, block, streams.correlation, static.unit_values)

    return jax.vmap(one_stream)(draws, streams.tables)


def _rows(static: Static, group: GroupShape, x):
    """The batches the D rows of ``group`` on this device read: ``[D_local, ...]``."""
    reads = group.reads
    if static.devices == 1 and reads == tuple(range(reads[0], reads[0] + len(reads))):
        return x[reads[0] : reads[0] + len(reads)]
    local = group.shape[0] // static.devices
    first = jax.lax.axis_index(MODEL_AXIS) * local if static.devices > 1 else 0
    return x[jax.lax.dynamic_slice(jnp.asarray(reads, jnp.int32), (first,), (local,))]


def train(static: Static, states: tuple, hypers: tuple, streams: Streams, first_step, num_windows: int):
    """Train ``num_windows * log_every`` steps from ``first_step``: ``(states, window-mean losses)``.

    ``states`` and ``hypers`` hold one entry per width group, each batched [D, G]; the
    losses come back as one ``[windows, D, G]`` array per group.
    """
    step_group = make_group_step(static)

    def step_all(carry, t, x, active):
        states, totals = carry
        new_states, new_totals = [], []
        for group, state, hyper, total in zip(static.groups, states, hypers, totals, strict=True):
            sparse = None if active is None else tuple(_rows(static, group, a) for a in active)
            state, loss = step_group(state, hyper, _rows(static, group, x), t, sparse)
            new_states.append(state)
            new_totals.append(total + loss)
        return tuple(new_states), tuple(new_totals)

    def one_step(carry, t):
        x = sample(static, streams, t)
        if not static.sparse_capacity:
            return step_all(carry, t, x, None), None
        # The sparse products need every row's nonzeros to fit the capacity; a batch
        # that does not (about 1e-9 of rows) takes the dense products instead.
        index, value, fits = jax.vmap(lambda a: model.active_entries(a, static.sparse_capacity))(x)
        sparse = functools.partial(step_all, t=t, x=x, active=(index, value))
        dense = functools.partial(step_all, t=t, x=x, active=None)
        return jax.lax.cond(jnp.all(fits), sparse, dense, carry), None

    def one_window(states, w):
        start = first_step + w * static.log_every
        zeros = tuple(jnp.zeros_like(hyper.weight_decay) for hyper in hypers)
        (states, totals), _ = jax.lax.scan(one_step, (states, zeros), start + jnp.arange(static.log_every))
        return states, tuple(total / static.log_every for total in totals)

    with jax.default_matmul_precision(static.precision):
        return jax.lax.scan(one_window, states, jnp.arange(num_windows))


def init(static: Static, init_keys: tuple, hypers: tuple) -> tuple:
    """The initial state of every model: one [D, G] TrainState per width group."""
    init_one = make_step(static)[0]
    with jax.default_matmul_precision(static.precision):
        return tuple(
            jax.vmap(jax.vmap(functools.partial(init_one, m=group.m)))(jax.random.wrap_key_data(keys), hyper)
            for group, keys, hyper in zip(static.groups, init_keys, hypers, strict=True)
        )


def _sharded(fn, static: Static, out_specs):
    """``fn`` run by every device on its share of D (models are independent, so results
    equal a one-device run's); the trailing arguments are replicated."""
    mesh = jax.sharding.Mesh(np.array(jax.devices()[: static.devices]), (MODEL_AXIS,))
    models, everywhere = jax.sharding.PartitionSpec(MODEL_AXIS), jax.sharding.PartitionSpec()

    def run(*args):
        specs = (models, models, *[everywhere] * (len(args) - 2))
        return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=out_specs, check_vma=False)(*args)

    return run


@functools.partial(jax.jit, static_argnames="static")
def init_states(static: Static, init_keys: tuple, hypers: tuple) -> tuple:
    """Jitted :func:`init`; ``init_keys``: one [D, G, 2] key-data array per group."""
    fn = functools.partial(init, static)
    if static.devices > 1:
        fn = _sharded(fn, static, jax.sharding.PartitionSpec(MODEL_AXIS))
    return fn(init_keys, hypers)


@functools.partial(jax.jit, static_argnames=("static", "num_windows"), donate_argnames="states")
def train_chunk(static: Static, states: tuple, hypers: tuple, streams: Streams, first_step, num_windows: int):
    """Jitted :func:`train`, the states donated (updated in place)."""
    fn = functools.partial(train, static, num_windows=num_windows)
    if static.devices > 1:
        specs = (jax.sharding.PartitionSpec(MODEL_AXIS), jax.sharding.PartitionSpec(None, MODEL_AXIS))
        fn = _sharded(fn, static, specs)
    return fn(states, hypers, streams, first_step)
