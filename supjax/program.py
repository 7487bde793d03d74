"""The toy wing's compiled program, on one screen: one model's step, vmapped over a width group,
scanned over steps (PureJaxRL's ``make_train(config) -> train``).

``make_train(static)`` returns the engine's :class:`~supjax.engine.program.Program`: ``init``
(every model's first state) and ``train`` (:func:`supjax.engine.program.windows` of steps; each step
draws every data stream's batch once and steps every width group on it). It is registered for
:class:`Static`, so the engine's jitted ``init_states`` and ``train_chunk`` run it. The split is in
the types: :class:`Static` sets shapes and code (a new value compiles a new program); :class:`Hyper`,
:class:`TrainState` and :class:`~supjax.data.Streams` are traced arrays.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from supjax import data, model, optim, sharding, variants
from supjax.config import RESULT, STATIC, SweepSpec, fields_of
from supjax.data import Streams
from supjax.engine import program as engine
from supjax.engine import table
from supjax.engine.program import OneModel, Program

# The compile cache key: the spec's static and result fields (resolved for the backend) and the layout.
LAYOUT_FIELDS = (("sparse_capacity", int), ("devices", int), ("groups", tuple))  # slots, devices, GroupShapes
Static = dataclasses.make_dataclass(
    "Static", [*((f, Any) for f in fields_of(STATIC, RESULT)), *LAYOUT_FIELDS], frozen=True
)


class GroupShape(NamedTuple):
    """One width group: width m, its [D, G] layout, the data stream each of its D rows reads."""

    m: int
    shape: tuple[int, int]
    reads: tuple[int, ...]


# Per-model hyperparameters, [D, G] each (scalars in the one-model step): the traced columns of the
# model table (weight_decay, lr_w, lr_b: supjax.engine.table), then the importance I of each model's
# squared error [D, G, n], or None where every model's is uniform (no multiply).
def hyper_type(spec_class=SweepSpec) -> type:
    return table.hyper_type(spec_class, "importance", module=__name__)


Hyper = hyper_type()


class TrainState(NamedTuple):
    params: Any  # a pure dict: {"W": [n, m], "b": [n], ...}; batched, every leaf gains [D, G]
    opt_state: Any
    diverged_at: Any  # the step the loss or weights stopped being finite; -1 while alive


def make_step(static) -> OneModel:
    """ONE model: its :class:`supjax.variants.ModelDef` and the signed-weight-decay AdamW."""
    definition = variants.definition(static)

    def optimizer(hyper: Hyper):
        def schedule(peak):
            return optim.warmup_cosine_schedule(peak, static.warmup_steps, static.steps, static.final_lr_fraction)

        decay_bias = static.bias_weight_decay
        return optim.toy_model_optimizer(schedule(hyper.lr_w), schedule(hyper.lr_b), hyper.weight_decay, decay_bias)

    def init(key, hyper: Hyper, m: int) -> TrainState:
        params = definition.init(key, static.n, m)
        return TrainState(params, optimizer(hyper).init(params), jnp.int32(-1))

    def step(state: TrainState, hyper: Hyper, x, t, active=None):
        loss, grads = definition.loss_and_grad(state.params, x, hyper.importance, active)
        updates, opt_state = optimizer(hyper).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # A diverging model keeps its last finite state; its vmapped neighbours never see its NaNs.
        finite = jnp.isfinite(loss) & jnp.all(jnp.array([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))
        alive = state.diverged_at < 0
        kept = jax.tree.map(lambda a, b: jnp.where(alive & finite, a, b), (params, opt_state), state[:2])
        diverged_at = jnp.where(alive & ~finite, t, state.diverged_at).astype(jnp.int32)
        return TrainState(*kept, diverged_at), jnp.where(alive, loss, jnp.nan)

    return OneModel(init, step)


def make_train(static) -> Program:
    """Every width group's [D, G] models: the one-model step vmapped over the G weight decays and
    importances (the batch broadcast: one wide product) and mapped (CPU) or vmapped over D streams."""
    one = make_step(static)
    step_models = jax.vmap(one.step, in_axes=(0, 0, None, None, None))
    if static.stream_loop == "vmap":
        step_group = jax.vmap(step_models, in_axes=(0, 0, 0, None, 0))
    else:  # D in sequence: 1.5-2x faster on a CPU, where XLA's batched products lose their layout

        def step_group(states, hypers, x, t, active):
            return jax.lax.map(lambda row: step_models(row[0], row[1], row[2], t, row[3]), (states, hypers, x, active))

    def init(init_keys: tuple, hypers: tuple) -> tuple:
        groups = zip(static.groups, init_keys, hypers, strict=True)
        return tuple(jax.vmap(jax.vmap(functools.partial(one.init, m=g.m)))(_keys(k), h) for g, k, h in groups)

    def step_every_group(states: tuple, t, hypers: tuple, streams: Streams):
        x = data.sample_streams(static, streams, t)  # [S, B, n]: every stream's batch, drawn once a step

        def step_all(active):
            out = [
                step_group(state, hyper, sharding.rows(static, g, x), t, sharding.rows(static, g, active))
                for g, state, hyper in zip(static.groups, states, hypers, strict=True)
            ]
            return tuple(s for s, _ in out), tuple({"losses": loss} for _, loss in out)

        if not static.sparse_capacity:
            return step_all(None)
        # A batch with a row of more nonzeros than the sparse slots (about 1e-9 of rows) takes the dense products.
        active, fits = model.active_batches(x, static.sparse_capacity)
        return jax.lax.cond(fits, step_all, lambda _: step_all(None), active)

    def train_windows(states: tuple, hypers: tuple, streams: Streams, first_step, num_windows: int):
        """``num_windows * log_every`` steps: (states, per group {"losses": [windows, D, G]} window means)."""

        def zeros():
            return tuple({"losses": jnp.zeros_like(h.weight_decay)} for h in hypers)

        step = functools.partial(step_every_group, hypers=hypers, streams=streams)
        return engine.windows(step, zeros, static.log_every)(states, first_step, num_windows)

    def init_precise(init_keys: tuple, hypers: tuple) -> tuple:
        with jax.default_matmul_precision(static.precision):
            return sharding.over_models(init, static)(init_keys, hypers)

    def train(states: tuple, inputs: tuple, first_step, num_windows: int):
        """``inputs``: (hypers, streams)."""
        chunk = functools.partial(train_windows, num_windows=num_windows)
        with jax.default_matmul_precision(static.precision):
            return sharding.over_models(chunk, static, logs=True)(states, *inputs, first_step)

    return Program(init_precise, train)


def _keys(key_data):
    return jax.random.wrap_key_data(key_data)


engine.register(Static, make_train)
