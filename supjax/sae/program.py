"""The SAE wing's compiled program, on one screen: one SAE's step, vmapped over the SAEs of a toy
model, mapped over the toy models of a width, scanned in the engine's windows of steps
(:func:`supjax.engine.program.windows`), registered for :class:`Static` so that the engine's jitted
``init_states`` and ``train_chunk`` run it.

Each step draws every data stream's batch x once (supjax's sampler, :func:`supjax.data.sample_streams`,
one bit stream shared by every distribution), forms each toy model's hidden activation
h = c x W (``[T, B, m]`` per width; c the model's input scale) once, and steps every group of
SAEs on it: a group is one architecture at one width, laid out ``[T, S]`` (T toy models by S SAEs
each). The S SAEs of a toy model read the same h, ``vmap``ped in blocks of ``sae_block`` and the
blocks one after the other inside the step: all S at once on an accelerator, 8 at a time on a CPU,
where 64 SAEs' [B, D] arrays fall out of the cache (an elementwise pass took 9 times as long per
SAE at 64 as at 8 on the 2-core CPU, a batched product 5 times, and the whole sweep ran 2.8 times
slower). :class:`Static` sets shapes and code; :class:`~supjax.sae.architectures.SaeHyper`,
:class:`State` and :class:`Toys` are traced arrays, so a new l1 coefficient, k, learning rate,
dictionary ratio (a mask over the padded dictionary) or seed compiles nothing.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from supjax import data, sharding
from supjax.engine import program as engine
from supjax.engine.program import OneModel, Program
from supjax.sae import architectures
from supjax.sae.architectures import SaeHyper

# fold_in values of the two batches that are not training steps (steps stay below 2^30).
EVAL_STEP, SCALE_STEP = 2**31 - 1, 2**31 - 2


class GroupShape(NamedTuple):
    """One group: an architecture at width m, laid out [T, S]; ``width``: its position in ``Static.widths``."""

    architecture: str
    m: int
    shape: tuple[int, int]
    width: int


@dataclasses.dataclass(frozen=True)
class Static(data.SamplerStatic):
    """Everything that sets shapes or code: the compile key (the toy run's sampler fields, then the sweep's)."""

    batch_size: int
    steps: int
    log_every: int
    warmup_steps: int  # of the penalty coefficient
    decay_steps: int  # of the learning rate, at the end
    dictionary: int  # D, the padded dictionary size
    k_max: int
    bandwidth: float
    initial_threshold: float
    threshold_rate: float
    eval_batch_size: int
    sae_block: int  # SAEs vmapped together (resolved); the blocks of a toy model run in sequence
    model_loop: str
    widths: tuple[int, ...]
    groups: tuple[GroupShape, ...]
    devices: int = 1  # the groups' T axis (and the toy models' arrays) split over this many devices


class State(NamedTuple):
    params: Any  # pure dict (see supjax.sae.architectures); batched, every leaf gains [T, S]
    opt_state: Any
    buffers: Any  # running estimates that are not parameters (batchtopk's threshold)


class Toys(NamedTuple):
    """The toy models the SAEs read, per width: their rows, data streams and input scales."""

    streams: Any  # supjax.data.Streams: keys [1, 2], seed_of [S], sampler tables [S, ...], correlation
    W: tuple  # per width: [T_m, n, m]
    reads: tuple  # per width: [T_m] the data stream of each toy model
    scale: tuple  # per width: [T_m] the input scale c


def definition(static: Static, architecture: str) -> architectures.SaeDef:
    return architectures.get(architecture, static)


def make_step(static: Static, architecture: str) -> OneModel:
    """ONE SAE: its :class:`~supjax.sae.architectures.SaeDef` and Adam (the lr decayed at the end)."""
    sae = definition(static, architecture)

    def optimizer(hyper: SaeHyper):
        def schedule(count):
            if not static.decay_steps:
                return hyper.lr
            return hyper.lr * jnp.minimum(1.0, (static.steps - count) / static.decay_steps)

        clip = [optax.clip_by_global_norm(sae.clip_norm)] if sae.clip_norm else []
        return optax.chain(*clip, optax.adam(schedule))

    def init(params, hyper: SaeHyper) -> State:
        return State(params, optimizer(hyper).init(params), sae.init_buffers())

    def step(state: State, hyper: SaeHyper, h, t):
        if sae.penalty and static.warmup_steps:
            hyper = hyper._replace(sparsity=hyper.sparsity * jnp.minimum(1.0, (t + 1.0) / static.warmup_steps))
        (_, stats), grads = sae.loss_and_grad(state.params, h, hyper)
        if sae.unit_norm_decoder:  # no gradient along a row: it would only change the norm
            rows = _unit_rows(state.params["W_dec"])
            grads = {**grads, "W_dec": grads["W_dec"] - jnp.sum(grads["W_dec"] * rows, -1, keepdims=True) * rows}
        updates, opt_state = optimizer(hyper).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if sae.unit_norm_decoder:
            params = {**params, "W_dec": _unit_rows(params["W_dec"])}
        buffers = sae.update_buffers(state.buffers, stats)
        return State(params, opt_state, buffers), {"losses": stats["mse"], "l0": stats["l0"]}

    return OneModel(init, step)


def block_size(sae_block: int, saes: int) -> int:
    """SAEs vmapped together: the largest divisor of ``saes`` up to ``sae_block``."""
    return max(d for d in range(1, min(sae_block, saes) + 1) if saes % d == 0)


def _unit_rows(W):
    return W / jnp.linalg.norm(W, axis=-1, keepdims=True)


def hidden(x, toys: Toys, width: int):
    """h = c x W of every toy model of one width: ``x: [S, B, n] -> [T, B, m]``."""
    return jnp.einsum("tbn,tnm->tbm", x[toys.reads[width]], toys.W[width]) * toys.scale[width][:, None, None]


def make_train(static: Static) -> Program:
    """Every group's [T, S] SAEs: the one-SAE step vmapped over S (h broadcast), mapped or vmapped
    over the T toy models (``model_loop``), a ``scan`` over windows of ``log_every`` steps of a
    ``scan`` over steps, the data drawn once a step for all of them."""
    one = {a: make_step(static, a) for a in dict.fromkeys(g.architecture for g in static.groups)}

    def step_group(group: GroupShape, states, hypers, h, t):
        block = jax.vmap(one[group.architecture].step, in_axes=(0, 0, None, None))
        size = block_size(static.sae_block, group.shape[1])

        def saes(states, hypers, h, t):  # [S] -> blocks [S / size, size], vmapped within, mapped across
            if size == group.shape[1]:
                return block(states, hypers, h, t)
            blocks = jax.tree.map(lambda a: a.reshape(-1, size, *a.shape[1:]), (states, hypers))
            out = jax.lax.map(lambda b: block(*b, h, t), blocks)
            return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), out)

        if static.model_loop == "vmap":
            return jax.vmap(saes, in_axes=(0, 0, 0, None))(states, hypers, h, t)
        return jax.lax.map(lambda row: saes(*row, t), (states, hypers, h))

    def step_every_group(states: tuple, t, hypers: tuple, toys: Toys):
        x = data.sample_streams(static, toys.streams, t)  # [S, B, n]: every stream's batch, drawn once a step
        h = [hidden(x, toys, w) for w in range(len(static.widths))]
        out = [
            step_group(g, state, hyper, h[g.width], t)
            for g, state, hyper in zip(static.groups, states, hypers, strict=True)
        ]
        return tuple(state for state, _ in out), tuple(stats for _, stats in out)

    def train_windows(states: tuple, hypers: tuple, toys: Toys, first_step, num_windows: int):
        def zeros():  # this device's [T, S] of every group
            return tuple({"losses": jnp.zeros_like(h.sparsity), "l0": jnp.zeros_like(h.sparsity)} for h in hypers)

        step = functools.partial(step_every_group, hypers=hypers, toys=toys)
        return engine.windows(step, zeros, static.log_every)(states, first_step, num_windows)

    def train(states: tuple, inputs: tuple, first_step, num_windows: int):
        """``inputs``: (hypers, toys); the logs: per group {"losses" (the mse), "l0"}: [windows, T, S] window means."""
        chunk = functools.partial(train_windows, num_windows=num_windows)
        return sharding.over_models(chunk, static, logs=True, in_specs=TRAIN_SPECS)(states, *inputs, first_step)

    def init(params: tuple, hypers: tuple) -> tuple:
        def init_groups(params, hypers):
            groups = zip(static.groups, params, hypers, strict=True)
            return tuple(jax.vmap(jax.vmap(one[g.architecture].init))(p, h) for g, p, h in groups)

        return sharding.over_models(init_groups, static)(params, hypers)

    return Program(init, train)


# Over several devices: the states, hyperparameters and toy models' arrays split on T, the data streams everywhere.
TOY_SPECS = Toys(streams=sharding.EVERYWHERE, W=sharding.MODELS, reads=sharding.MODELS, scale=sharding.MODELS)
TRAIN_SPECS = (sharding.MODELS, sharding.MODELS, TOY_SPECS, sharding.EVERYWHERE)


engine.register(Static, make_train)


@engine.jit_once(static_argnames="static")
def sample_batch(static: Static, streams, step):
    """Every data stream's batch of ``static.batch_size`` samples drawn at ``step``: ``[S, B, n]``. With
    ``batch_size = eval_batch_size`` this one program draws the evaluation batch (:data:`EVAL_STEP`)
    and the input-scale batch (:data:`SCALE_STEP`)."""
    return data.sample_streams(static, streams, step)


def eval_static(static: Static) -> Static:
    """The sampler's fields of ``static`` at the evaluation batch size, the rest blank: the key of
    :func:`sample_batch`'s one program, shared by every SAE grid on the same toy run."""
    blank = {"steps": 0, "log_every": 0, "warmup_steps": 0, "decay_steps": 0, "dictionary": 0, "k_max": 0}
    blank |= {"bandwidth": 0.0, "initial_threshold": 0.0, "threshold_rate": 0.0, "sae_block": 0, "model_loop": ""}
    blank |= {"devices": 1}
    return dataclasses.replace(static, **blank, batch_size=static.eval_batch_size, widths=(), groups=())


@engine.jit_once
def input_scales(x, W: tuple, reads: tuple) -> tuple:
    """The input scale c = sqrt(m) / E||x W|| of every toy model (``W``, ``reads``: per width, as in
    :class:`Toys`) over the batch ``x: [S, B, n]`` drawn at :data:`SCALE_STEP` (Anthropic's
    normalisation E||h|| = sqrt(m)); 1 for a model whose h is always 0."""
    scales = []
    for weights, read in zip(W, reads, strict=True):
        norm = jnp.mean(jnp.linalg.norm(jnp.einsum("tbn,tnm->tbm", x[read], weights), axis=-1), axis=-1)
        scales.append(jnp.where(norm > 0, jnp.sqrt(weights.shape[-1]) / jnp.where(norm > 0, norm, 1.0), 1.0))
    return tuple(scales)


# ---- evaluation: every SAE on one fresh batch, in one jitted pass -----------------------------------


def make_evaluate(static: Static):
    """``evaluate(states, hypers, toys, x) -> (per group measures, per width feature frequencies)``.

    ``x``: the evaluation batch, ``eval_batch_size`` samples drawn at :data:`EVAL_STEP` (never a
    training step) by :func:`sample_batch`.
    Per SAE: ``squared_error`` and ``variance`` (sums over the batch of ||h - h_hat||^2 and
    ||h - mean h||^2), ``l2_ratio`` (mean ||h_hat|| / ||h|| over samples with h != 0), ``l0``,
    ``alive: [D]`` (latents active on some sample) and ``cosine: [n, D]``, |cos| between every
    true feature direction W_i / ||W_i|| and every decoder row (-1 at padded latents, 0 for a
    zero row W_i). Per toy model: ``frequency: [n]``, the share of samples where x_i != 0.
    """
    saes = {a: definition(static, a) for a in dict.fromkeys(g.architecture for g in static.groups)}

    def measure(sae, state: State, hyper: SaeHyper, h, W_unit):
        f = sae.encode(state.params, h, hyper, state.buffers)
        h_hat = architectures.decode(state.params, f)
        norm_in, norm_out = jnp.linalg.norm(h, axis=-1), jnp.linalg.norm(h_hat, axis=-1)
        nonzero = norm_in > 0
        decoder = _unit_rows(state.params["W_dec"])
        cosine = jnp.where(hyper.mask > 0, jnp.abs(W_unit @ decoder.T), -1.0)
        return {
            "squared_error": jnp.sum((h - h_hat) ** 2),
            "variance": jnp.sum((h - jnp.mean(h, axis=0)) ** 2),
            "l2_ratio": jnp.sum(jnp.where(nonzero, norm_out / jnp.where(nonzero, norm_in, 1.0), 0.0))
            / jnp.maximum(jnp.sum(nonzero), 1),
            "norm_ratio": jnp.sqrt(jnp.sum(norm_out**2) / jnp.maximum(jnp.sum(norm_in**2), 1e-30)),
            "l0": jnp.mean(jnp.sum(f > 0, axis=-1)),
            "alive": jnp.any(f > 0, axis=0),
            "cosine": cosine,
        }

    def evaluate(states: tuple, hypers: tuple, toys: Toys, x):
        h = [hidden(x, toys, w) for w in range(len(static.widths))]
        units = []
        for W in toys.W:
            norms = jnp.linalg.norm(W, axis=-1, keepdims=True)
            units.append(jnp.where(norms > 1e-12, W / jnp.where(norms > 1e-12, norms, 1.0), 0.0))
        measured = []
        for g, state, hyper in zip(static.groups, states, hypers, strict=True):  # one SAE at a time: memory

            def model(row, sae=saes[g.architecture]):
                state, hyper, h, unit = row
                return jax.lax.map(lambda one: measure(sae, *one, h, unit), (state, hyper))

            measured.append(jax.lax.map(model, (state, hyper, h[g.width], units[g.width])))
        frequency = tuple(jnp.mean(x[reads] != 0, axis=1) for reads in toys.reads)
        return tuple(measured), frequency

    return evaluate


@engine.jit_once(static_argnames="static")
def sae_evaluate(static: Static, states: tuple, hypers: tuple, toys: Toys, x):
    """Jitted :func:`make_evaluate`."""
    return make_evaluate(static)(states, hypers, toys, x)
