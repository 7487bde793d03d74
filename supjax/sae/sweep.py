"""The driver of an SAE sweep: ``run_sae(toy_run, spec, out)`` reads top to bottom.

1. the toy models (a run directory or a :class:`supjax.results.Run`; the spec's selection) and the
   layout (:mod:`supjax.sae.layout`), all checks done before anything compiles;
2. the run directory: a new one is written (its config, the toy models, the SAE table), or, with
   ``resume``, the saved one must match in every field that changes results;
3. the compiled chunks of :mod:`supjax.sae.program` from the newest readable checkpoint to the last
   step, with a checkpoint every ``checkpoint_every`` steps, at the end, and when SIGTERM or SIGINT
   asks to stop (after the chunk in flight); a resumed run gives the same numbers;
4. the tables and the evaluation (:mod:`supjax.sae.evaluate`) written into ``out``.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from supjax import checkpoint, lock
from supjax.config import DRIVING
from supjax.errors import ConfigError, Interrupted, RunDirError
from supjax.results import Run, load_run, prepare_run_dir, write_atomic
from supjax.sae import layout, program
from supjax.sae.results import SaeRun, ToyModels, spec_toml, write_saes
from supjax.sae.spec import SaeSpec
from supjax.sweep import StopOnSignal, checkpoint_interval

# Aim for about this much product work per compiled chunk on a CPU (a few seconds), at most this
# many steps; chunk ends are where the progress bar moves, checkpoints are written and a signal is answered.
_CHUNK_FLOPS_CPU, _CHUNK_FLOPS_ACCELERATOR, _CHUNK_STEPS = 5e11, 5e13, 1000


class SaeInterrupted(Interrupted):
    """An SAE sweep stopped by a signal after checkpointing: one line, and the command that continues it."""

    def __init__(self, signum: int, step: int, steps: int, out, toy):
        Exception.__init__(self)
        self.signum, self.step, self.steps, self.out = signum, step, steps, out
        self.batch, self.batches, self.exit_code = 0, 1, 128 + signum
        if out is None:
            self.then = "no run directory was given, so nothing was saved"
        else:
            config = Path(out) / "sae.toml"
            self.then = f"continue with: supjax sae {toy or 'RUN'} --config {config} --out {out} --resume"

    def __str__(self) -> str:
        return f"interrupted at step {self.step} of {self.steps}; {self.then}"


def run_sae(toy: str | Path | Run, spec: SaeSpec, out: str | Path | None = None, resume: bool = False) -> SaeRun:
    """Train every SAE of ``spec`` on the selected toy models of ``toy`` (a run directory or a
    :class:`~supjax.results.Run`); with ``out``, checkpoint into it, and write its tables and the
    evaluation. ``resume=True`` continues an interrupted run in ``out`` with the same numbers.

    Example:
        >>> saes = run_sae("runs/phase", SaeSpec(architectures=("topk",), ks=(1, 2), steps=2000), out="runs/sae")
        >>> summary, features = saes.evaluate()  # one row per SAE: mcc, fvu, sae_l0, ...
    """
    spec = spec.validate()
    source = str(Path(toy).resolve()) if isinstance(toy, (str, Path)) else (str(toy.path) if toy.path else None)
    run = load_run(toy) if isinstance(toy, (str, Path)) else toy
    chosen = spec.check_against(run.spec.n, run.models)
    toys = ToyModels.from_run(run, chosen)
    with contextlib.ExitStack() as stack:
        stop = stack.enter_context(StopOnSignal())
        if out is not None:
            out = Path(out)
            if not resume:
                lock.refuse_if_held(out)
                if (out / "sae.toml").is_file():
                    raise RunDirError(out, "holds an SAE run; add --resume to continue it, or choose a new --out")
                prepare_run_dir(out)
            else:
                _check_resume(out, spec, toys)
            stack.enter_context(lock.hold(out))
        plan = layout.plan(spec, toys)
        if out is not None and not resume:
            write_atomic(out / "sae.toml", spec_toml(spec))
            toys.save(out)
            write_saes(out, plan.rows)
        started = time.perf_counter()
        losses, l0, states = _train(plan, out, stop, source)
        info = {"toy_run": source, "seconds": time.perf_counter() - started, "device": jax.devices()[0].device_kind}
        index = tuple(g.index for g in plan.groups)
        states = tuple({"params": s.params, "buffers": s.buffers} for s in states)
        result = SaeRun(spec, toys, plan.rows, losses, l0, states, index, info, out)
        if out is not None:
            np.save(out / "losses.npy", losses)
            np.save(out / "l0.npy", l0)
            write_atomic(out / "run.json", json.dumps(info, indent=2) + "\n")
            result.evaluate(write=True)
    return result


def _train(plan: layout.Layout, out, stop, source) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Train the layout's SAEs to the last step from the newest checkpoint: (losses, l0, host states)."""
    spec, static = plan.spec, plan.static
    hypers = tuple(g.hyper for g in plan.groups)
    states = program.sae_init_states(static, tuple(g.params for g in plan.groups), hypers)
    logs = spec.steps // spec.log_every
    losses = np.zeros((len(plan.rows), logs), np.float32)
    l0 = np.zeros_like(losses)
    done = 0
    manager = None
    if out is not None:
        manager = checkpoint.manager(Path(out) / "checkpoints", spec.max_to_keep)
        like = _saved(states, losses, l0, 0, plan)
        restored = checkpoint.restore_latest(manager, jax.tree.map(np.asarray, like))
        if restored is not None:
            step, saved = restored
            if not np.array_equal(saved["key_data"], plan.arrays.streams.keys):
                raise ConfigError("--resume", str(out), "its data keys differ from this config's")
            states = jax.tree.map(jnp.asarray, tuple(program.State(**s) for s in saved["states"]))
            losses, l0, done = np.array(saved["losses"]), np.array(saved["l0"]), int(step) // spec.log_every
    every = checkpoint_interval(spec) // spec.log_every if manager is not None else logs
    ends = {every * k for k in range(1, logs // every + 1)} | {logs}
    windows = _chunk_windows(plan, math.gcd(every, logs))
    bar = _progress(spec, len(plan.rows), done * spec.log_every)
    with bar:
        while done < logs:
            first = jnp.int32(done * spec.log_every)
            states, chunk = program.sae_train_chunk(static, states, hypers, plan.arrays, first, num_windows=windows)
            for group, values in zip(plan.groups, jax.tree.map(np.asarray, chunk), strict=True):
                flat = group.index.reshape(-1)
                losses[flat, done : done + windows] = values["mse"].reshape(windows, -1).T
                l0[flat, done : done + windows] = values["l0"].reshape(windows, -1).T
            done += windows
            bar.update(windows * spec.log_every * len(plan.rows))
            step = done * spec.log_every
            if manager is not None and (done in ends or stop.signum is not None):
                checkpoint.save(manager, step, _saved(states, losses, l0, step, plan))
            if stop.signum is not None and done < logs:
                raise SaeInterrupted(stop.signum, step, spec.steps, out, source)
    return losses, l0, jax.tree.map(np.asarray, states)


def _saved(states, losses, l0, step: int, plan: layout.Layout) -> dict:
    return {
        "states": tuple(s._asdict() for s in states),
        "index": tuple(g.index for g in plan.groups),
        "losses": losses,
        "l0": l0,
        "step": step,
        "key_data": plan.arrays.streams.keys,
    }


def _check_resume(out: Path, spec: SaeSpec, toys: ToyModels) -> None:
    """Refuse a resume whose config or toy models differ from the saved ones (one line)."""
    if not (out / "sae.toml").is_file() or not (out / "toy_weights.npz").is_file():
        raise RunDirError(out, "holds no SAE run to resume; drop --resume to start one")
    saved = SaeSpec.from_toml(out / "sae.toml")
    fields = [f for f in SaeSpec.field_names() if SaeSpec.__dataclass_fields__[f].metadata["role"] != DRIVING]
    differing = [f for f in fields if getattr(saved, f) != getattr(spec, f)]
    if differing:
        keys = ", ".join(f"{k} ({getattr(saved, k)!r} -> {getattr(spec, k)!r})" for k in differing)
        raise ConfigError("--resume", str(out), f"the config differs in {keys}; resume with the saved sae.toml")
    if not ToyModels.load(out).same_as(toys):
        raise ConfigError("--resume", str(out), "its toy models differ from this run's; pass the toy run it started on")


def _chunk_windows(plan: layout.Layout, period: int) -> int:
    """Windows per chunk: the largest divisor of ``period`` (the windows between checkpoints, and of
    the run) up to the target, so every chunk has one length and the program compiles once."""
    spec = plan.spec
    if spec.chunk_steps is not None:
        target = spec.chunk_steps // spec.log_every
    else:
        flops = _CHUNK_FLOPS_CPU if jax.default_backend() == "cpu" else _CHUNK_FLOPS_ACCELERATOR
        target = round(min(flops / max(plan.flops_per_step, 1.0), _CHUNK_STEPS) / spec.log_every)
    return max(d for d in range(1, period + 1) if period % d == 0 and d <= max(1, target))


def _progress(spec: SaeSpec, saes: int, done: int):
    from tqdm.auto import tqdm

    return tqdm(
        total=spec.steps * saes,
        initial=done * saes,
        unit="SAE-step",
        unit_scale=True,
        disable=not spec.progress,
        desc=f"supjax sae: {saes} SAEs",
        smoothing=0.1,
    )
