"""The compiled program of any wing, on one screen (PureJaxRL's ``make_train(config) -> train``).

A wing writes the step of ONE model (:class:`OneModel`) and its ``make_train(static) ->``
:class:`Program`: ``init`` (every model's first state) and ``train``, the models' step vmapped over
each group and scanned by :func:`windows` (a ``scan`` over windows of ``log_every`` steps of a
``scan`` over steps, the logged values averaged over each window). It registers ``make_train`` for
its ``Static`` type (:func:`register`); :data:`init_states` and :data:`train_chunk` jit whichever
program the static belongs to, cached on the static (the compile key: what sets shapes and code).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from supjax.engine import cache

cache.enable()


class OneModel(NamedTuple):
    """ONE model of a wing, written without a batch axis: the engine vmaps and scans it."""

    init: Any  # (...) -> the model's first state
    step: Any  # (state, hyper, data, t, ...) -> (state, logged values)


class Program(NamedTuple):
    """A wing's whole program: ``init(*init_args) -> states`` and
    ``train(states, inputs, first_step, num_windows) -> (states, logs)`` with ``logs`` one dict per
    group of ``{name: [windows, *group shape]}`` window means."""

    init: Any
    train: Any


_PROGRAMS: dict[type, Callable[[Any], Program]] = {}


def register(static_type: type, make_train: Callable[[Any], Program]) -> None:
    """Make ``make_train`` the program of every static of ``static_type`` (a wing's compile key)."""
    _PROGRAMS[static_type] = make_train


def make_train(static) -> Program:
    """The registered program of ``static``'s wing."""
    return _PROGRAMS[type(static)](static)


def windows(step: Callable, zeros: Callable, log_every: int) -> Callable:
    """``train(states, first_step, num_windows) -> (states, logs)`` from a step of every group.

    ``step(states, t) -> (states, stats)`` advances every model one step (t: the global step);
    ``stats`` is a pytree of per-model values, summed over each window of ``log_every`` steps from
    ``zeros()`` and divided by ``log_every``: the logs are ``[num_windows, ...]`` window means.
    """

    def train(states, first_step, num_windows: int):
        def one_window(states, w):
            def one_step(carry, t):
                states, totals = carry
                states, stats = step(states, t)
                return (states, jax.tree.map(jnp.add, totals, stats)), None

            steps = first_step + w * log_every + jnp.arange(log_every)
            (states, totals), _ = jax.lax.scan(one_step, (states, zeros()), steps)
            return states, jax.tree.map(lambda total: total / log_every, totals)

        return jax.lax.scan(one_window, states, jnp.arange(num_windows))

    return train


# Programs that run once a run (the initial states, an evaluation) are compiled for compile time on a
# CPU: LLVM's optimisation level 1 compiles a sweep's draws (threefry, inverse erf) 5 to 10x faster
# than XLA's default level, and to the same bits (benchmarks/bitwise.py and the engine's tests; level 0
# rounds otherwise). The training chunks, which run for the whole sweep, keep the default: level 1
# neither compiles them faster nor keeps their bits.
QUICK_COMPILE = {"cpu": {"xla_backend_optimization_level": 1}}


def jit_once(fun=None, **jit_kwargs):
    """``jax.jit(fun, **jit_kwargs)`` for a program run once a run: on a backend of
    :data:`QUICK_COMPILE`, compiled with its options. Usable as ``@jit_once(static_argnames=...)``."""
    if fun is None:
        return functools.partial(jit_once, **jit_kwargs)
    quick = {backend: jax.jit(fun, compiler_options=kw, **jit_kwargs) for backend, kw in QUICK_COMPILE.items()}
    default = jax.jit(fun, **jit_kwargs)

    @functools.wraps(fun)
    def run(*args, **kwargs):
        return quick.get(jax.default_backend(), default)(*args, **kwargs)

    return run


@jit_once(static_argnames="static")
def init_states(static, *init_args):
    """The initial state of every model of the program of ``static``."""
    return make_train(static).init(*init_args)


@functools.partial(jax.jit, static_argnames=("static", "num_windows"), donate_argnames="states")
def train_chunk(static, states, inputs, first_step, num_windows: int):
    """``num_windows * log_every`` steps of the program of ``static``, the states donated (updated
    in place): ``(states, logs)``."""
    return make_train(static).train(states, inputs, first_step, num_windows)
