"""The LLC wing's compiled program, on one screen: one SGLD chain's step (:func:`supjax.llc.sgld.chain_step`)
of a toy model's loss, vmapped over the settings of a w* and over the (w*, chain) rows of a width,
scanned in the engine's windows of draws; registered for :class:`Static`, so the engine's jitted
``init_states`` and ``train_chunk`` run it.

The loss is the toy model's reported loss (:func:`supjax.variants.definition`): for the squared
error, summed over the n features and averaged over the batch, so its gradient is n times the
gradient of the mean squared error the toy model trained on. Each step draws every data stream's
batch once (:func:`supjax.data.sample_streams`): stream (feature law, chain c) reads bit stream c,
so the chains of a w* see independent batches and every setting of a chain sees the same ones.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from supjax import data, model, variants
from supjax.engine import program as engine
from supjax.engine.program import Program
from supjax.llc import sgld

LOGS = ("losses", "reference", "acceptance", "below")


class GroupShape(NamedTuple):
    """One width: its [R, K] chains (R = w* x chains rows, K settings) and the stream each row reads."""

    m: int
    shape: tuple[int, int]
    reads: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Static(data.SamplerStatic):
    """Everything that sets shapes or code: the compile cache key (the toy run's sampler fields, its model's
    fields with batch_tile set to the LLC batch, untiled, then the chains')."""

    model: str
    target: str
    fused_gradient: bool
    batch_tile: int
    weight_init: str
    bias_init: str
    precision: str
    # the chains
    batch_size: int
    steps: int  # the draws of every chain
    log_every: int
    bounding_box: float | None
    mala: str  # the acceptance diagnostic: "paired" (one batch) or "lagged" (devinterp 1.x)
    groups: tuple[GroupShape, ...]


class Inputs(NamedTuple):
    """The traced inputs of a chunk."""

    hypers: tuple  # per group: SgldHyper, [R, K] each
    anchors: tuple  # per group: w*, a params dict with leading [R]
    keys: tuple  # per group: [R, K, 2] noise key data
    streams: Any  # supjax.data.Streams: one stream per (feature law, chain)


def make_train(static: Static) -> Program:
    """Every group's [R, K] chains: the one-chain step vmapped over K settings (one w*, one batch) and
    over R rows, the data drawn once a step for all of them."""
    definition = variants.definition(static)
    scale = static.n if model.LOSSES[static.loss].squared_error else 1.0

    def loss_and_grad(w, x):
        loss, grad = definition.loss_and_grad(w, x)
        return loss, jax.tree.map(lambda g: g * scale, grad)

    def one_chain(state, w_star, hyper, x, key_data, t):
        key = jax.random.fold_in(jax.random.wrap_key_data(key_data), t)
        return sgld.chain_step(loss_and_grad, state, w_star, hyper, x, key, t, static.bounding_box, static.mala)

    settings = jax.vmap(one_chain, in_axes=(0, None, 0, None, 0, None))
    rows = jax.vmap(settings, in_axes=(0, 0, 0, 0, 0, None))

    def step_every_group(states: tuple, t, inputs: Inputs):
        x = data.sample_streams(static, inputs.streams, t)  # [S, B, n]
        out = [
            rows(state, anchor, hyper, x[jnp.asarray(g.reads)], keys, t)
            for g, state, anchor, hyper, keys in zip(
                static.groups, states, inputs.anchors, inputs.hypers, inputs.keys, strict=True
            )
        ]
        return tuple(s for s, _ in out), tuple(stats for _, stats in out)

    def zeros():
        return tuple({name: jnp.zeros(g.shape) for name in LOGS} for g in static.groups)

    def init(anchors: tuple) -> tuple:
        def one_group(g, anchor):
            return jax.vmap(lambda w: jax.vmap(lambda _: sgld.init_chain(w))(jnp.arange(g.shape[1])))(anchor)

        return tuple(one_group(g, a) for g, a in zip(static.groups, anchors, strict=True))

    def train(states: tuple, inputs: Inputs, first_step, num_windows: int):
        step = functools.partial(step_every_group, inputs=inputs)
        with jax.default_matmul_precision(static.precision):
            return engine.windows(step, zeros, static.log_every)(states, first_step, num_windows)

    return Program(init, train)


engine.register(Static, make_train)
