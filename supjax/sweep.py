"""The toy wing's sweep: batches of models, each trained by the engine's driver, and the run's tables.

``run_sweep(spec, out)`` reads top to bottom:

1. the model table and the batches that fit the device (:mod:`supjax.layout`);
2. for each batch: its layout, then :func:`train_batch`, the engine's driver
   (:func:`supjax.engine.driver.train`) with the batch's hooks in order: the snapshot, the
   checkpoint, the report (progress bar and ``RUN/progress.json``) and the stop check
   (SIGTERM and SIGINT stop after the chunk in flight, checkpointed);
3. the run's tables, written into ``out`` (:mod:`supjax.results`).

Around it: the run directory's lock (:mod:`supjax.lock`).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
from pathlib import Path

import jax
import numpy as np

from supjax import checkpoint, layout, lock, results, sharding
from supjax.config import SweepSpec
from supjax.engine import driver
from supjax.engine.driver import Checkpoints, ChunkEnd, Memory, StopOnSignal
from supjax.errors import Interrupted, RunDirError

__all__ = ["ChunkEnd", "run_sweep", "train_batch", "train_in_memory"]


def run_sweep(spec: SweepSpec, out: str | Path | None = None, resume: bool = False) -> results.Run:
    """Train every model of ``spec``; write the run directory ``out`` if given.

    Returns a :class:`supjax.results.Run`: the model table (with ``diverged_at``: the
    step a model's loss stopped being finite, -1 if never), loss curves
    ``losses: [models, steps // log_every]`` (window means of n x MSE, NaN after a
    divergence) and final parameters. With ``out``, every batch of models checkpoints
    into ``out/checkpoints``; ``resume=True`` continues an interrupted run there and
    gives the same numbers as an uninterrupted one. One process writes a run directory
    at a time (see :mod:`supjax.lock`). SIGTERM or SIGINT stops the sweep after the chunk
    in flight, checkpointed, with :class:`Interrupted`; a second signal exits at once.
    Example:

        >>> run = run_sweep(SweepSpec(n=100, widths=(8,), weight_decays=(-1.0, 1.0), steps=200,
        ...                           warmup_steps=20, batch_size=256, progress=False))
        >>> run.losses.shape
        (2, 20)
    """
    spec = spec.validate()
    primary = jax.process_index() == 0
    writer = out is not None and primary
    with contextlib.ExitStack() as stack:
        stop = stack.enter_context(StopOnSignal())
        if writer and not resume:
            lock.refuse_if_held(out)  # before any other reason to refuse the directory
        spec, rows, batches = _open_run(spec, out, resume, primary)
        if writer:
            stack.enter_context(lock.hold(out))
        losses = np.full((len(rows), spec.num_logs), np.nan, np.float32)
        states = []
        sizes = [len(b) for b in batches]
        report = stack.enter_context(driver.Report(spec.steps, sizes, out if writer else None, spec.progress))
        for k, indices in enumerate(batches):
            the_layout = layout.plan(spec, indices, jax.device_count())
            job = the_layout.job()
            if out is not None:
                start = Checkpoints(checkpoint.batch_directory(out, k), job, stop, spec.max_to_keep)
            else:
                start = Memory(job)
            report.start_batch([r["index"] for r in the_layout.rows], start)
            interrupted = functools.partial(_interrupted, steps=spec.steps, batch=k, batches=len(batches), out=out)
            kept = checkpoint.snapshot_directory(out, k) if out is not None else None
            hooks = [*driver.snapshots(kept, job, _snapshot), start, report, stop.check(spec.steps, interrupted)]
            batch_losses, batch_states = train_batch(the_layout, start, hooks)
            for group, state in zip(the_layout.groups, batch_states, strict=True):
                losses[group.indices] = batch_losses[group.rows]
                states.append((group, state))
        run = _assemble(spec, rows, losses, states, report.seconds())
        if writer:
            _save_results(run, out)
            run.path = Path(out)
        sharding.sync_hosts("supjax: run saved")
    return run


def train_batch(the_layout: layout.Layout, start=None, hooks=()) -> tuple[np.ndarray, tuple]:
    """Train the models of ``the_layout`` to the last step; return (losses, final host states).

    ``losses: [len(the_layout.rows), steps // log_every]`` in the layout's row order, one
    TrainState per width group. ``start`` gives the first states (:class:`~supjax.engine.driver.Checkpoints`:
    the newest readable checkpoint; by default the initial states); ``hooks`` run at every chunk end
    (see :mod:`supjax.engine.driver`).
    """
    start = start if start is not None else Memory(the_layout.job())
    logs, states = driver.train(start.job, start, hooks)  # the job start was made for: its inputs on the devices once
    return logs["losses"], states


def _snapshot(state) -> dict:
    """What a snapshot keeps of a width group's state."""
    return {"params": state.params, "diverged_at": state.diverged_at}


def _interrupted(signum: int, step: int, *, steps: int, batch: int, batches: int, out) -> Interrupted:
    return Interrupted(signum, step, steps, batch, batches, out)


def _open_run(spec: SweepSpec, out, resume: bool, primary: bool) -> tuple[SweepSpec, list[dict], list[list[int]]]:
    """(spec, model table, batches): resolved and, for a new run directory, written."""
    if out is not None and not primary:
        sharding.sync_hosts("supjax: run directory ready")  # process 0 writes it; every host trains its batches
    if out is not None and (resume or not primary):
        spec, batches = results.saved_spec_and_batches(out, spec)
        rows = layout.model_table(spec)
    else:
        spec = layout.resolve_for_backend(spec)
        rows = layout.model_table(spec)
        batches = layout.split_batches(spec, rows)
        if out is not None:
            results.start_run_dir(out, spec, rows, batches)
    if out is not None and primary:
        sharding.sync_hosts("supjax: run directory ready")
    return spec, rows, batches


def _save_results(run: results.Run, out) -> None:
    try:
        results.save_run(run, out)
    except OSError as err:
        needed = run.losses.nbytes + sum(p.nbytes for p in run.probabilities.values()) + 200 * len(run.models)
        free = shutil.disk_usage(out).free
        raise RunDirError(
            out,
            f"could not write the results ({err.strerror or err}); they need about {needed / 1e6:.1f} MB "
            f"and {free / 1e6:.1f} MB are free; free space, then rerun with --resume",
        ) from None


def train_in_memory(the_layout: layout.Layout) -> results.Run:
    """Train one layout without a run directory and return its models as a Run."""
    spec = the_layout.spec
    batch_losses, batch_states = train_batch(the_layout)
    rows = layout.model_table(spec)
    losses = np.full((len(rows), spec.num_logs), np.nan, np.float32)
    for group in the_layout.groups:
        losses[group.indices] = batch_losses[group.rows]
    return _assemble(spec, rows, losses, list(zip(the_layout.groups, batch_states, strict=True)), 0.0)


def _assemble(spec: SweepSpec, rows: list[dict], losses: np.ndarray, states: list, seconds: float) -> results.Run:
    """The Run of trained ``states``: ``(group, host TrainState)`` pairs of every batch."""
    rows = [dict(r) for r in rows]
    parts: dict[int, list] = {}
    for group, state in states:
        for i, step in zip(group.indices, group.real(state.diverged_at), strict=True):
            rows[i]["diverged_at"] = int(step)
        params = {k: group.real(v) for k, v in state.params.items()}
        parts.setdefault(group.m, []).append({**params, "index": group.indices})
    params = {m: {k: np.concatenate([p[k] for p in ps]) for k in ps[0]} for m, ps in parts.items()}
    info = {"seconds": seconds, "device": str(jax.devices()[0].device_kind)}
    return results.Run(spec, rows, losses, params, dict(spec.feature_probabilities), info)
