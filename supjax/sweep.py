"""The driver of a sweep: batches of models, compiled chunks, checkpoints, progress, hosts.

``run_sweep(spec, out)`` reads top to bottom:

1. the model table and the batches that fit the device (:mod:`supjax.layout`);
2. for each batch: its layout, then :func:`train_batch`, which restores the newest
   checkpoint and runs the compiled chunks of :mod:`supjax.program` until the last step;
   at every chunk end it runs the batch's chunk-end steps in order: the snapshot, the
   checkpoint, the report (progress bar and ``RUN/progress.json``) and the stop check
   (SIGTERM and SIGINT stop after the chunk in flight, checkpointed);
3. the run's tables, written into ``out`` (:mod:`supjax.results`).

Around it: the run directory's lock (:mod:`supjax.lock`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from supjax import checkpoint, layout, lock, program, results, sharding
from supjax.config import SweepSpec
from supjax.errors import ConfigError, Interrupted, RunDirError

# Aim for about this much dense work per compiled chunk, and at most this many steps (small
# models run far below the flop rate): a few seconds on a CPU (about 1e11 flop/s) and about a
# second on an accelerator (about 5e13), where a CPU-sized chunk would be 10 ms of work and the
# host round trip would rule. Chunk ends are where the progress bar moves, results come back
# and a signal is answered.
_CHUNK_FLOPS_CPU = 5e11
_CHUNK_FLOPS_ACCELERATOR = 5e13
_CHUNK_STEPS = 1000


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
        report = stack.enter_context(_Report(spec, batches, out if writer else None))
        for k, indices in enumerate(batches):
            the_layout = layout.plan(spec, indices, jax.device_count())
            start = Checkpoints(out, k, the_layout, stop) if out is not None else Memory(the_layout)
            report.start_batch(k, the_layout, start)
            chunk_ends = [*_snapshots(out, k, the_layout), start, report, stop.check(spec.steps, k, len(batches), out)]
            batch_losses, batch_states = train_batch(the_layout, start, chunk_ends)
            for group, state in zip(the_layout.groups, batch_states, strict=True):
                losses[group.indices] = batch_losses[group.rows]
                states.append((group, state))
        run = _assemble(spec, rows, losses, states, report.seconds())
        if writer:
            _save_results(run, out)
            run.path = Path(out)
        sharding.sync_hosts("supjax: run saved")
    return run


def train_batch(the_layout: layout.Layout, start, chunk_ends=()) -> tuple[np.ndarray, tuple]:
    """Train the models of ``the_layout`` to the last step; return (losses, final host states).

    ``losses: [len(the_layout.rows), steps // log_every]`` in the layout's row order, one
    TrainState per width group. ``start`` gives the first states (:class:`Checkpoints`: the
    newest readable checkpoint; :class:`Memory`: the initial states); at every chunk end each
    of ``chunk_ends`` is called in order with the :class:`ChunkEnd`; chunks end at every
    snapshot step and checkpoint step.
    """
    spec, static, devices = the_layout.spec, the_layout.static, the_layout.devices
    hypers = sharding.put(tuple(g.hyper for g in the_layout.groups), devices, sharded=True)
    streams = sharding.put(the_layout.streams, devices, sharded=False)
    keys = sharding.put(tuple(g.init_keys for g in the_layout.groups), devices, sharded=True)
    states, losses, done = start.restore(program.init_states(static, keys, hypers))
    for end in chunk_ends:
        end(ChunkEnd(done * spec.log_every, states, losses[:, :done], restored=True))
    ends = {checkpoint_interval(spec) // spec.log_every * k for k in range(1, spec.num_logs + 1)}
    ends |= {s // spec.log_every for s in spec.snapshot_schedule} | {spec.num_logs}
    while done < spec.num_logs:
        windows = min(_chunk_windows(the_layout), min(e for e in ends if e > done) - done)
        first = jnp.int32(done * spec.log_every)
        states, logs = program.train_chunk(static, states, hypers, streams, first, num_windows=windows)
        for group, log in zip(the_layout.groups, sharding.to_host(_ready(logs)), strict=True):
            losses[group.rows, done : done + windows] = group.real(np.moveaxis(np.asarray(log), 0, -1))
        done += windows
        for end in chunk_ends:
            end(ChunkEnd(done * spec.log_every, states, losses[:, :done]))
    return losses, sharding.to_host(states)


class ChunkEnd(NamedTuple):
    """Where a batch stands at a chunk end: the step reached, the (device) states, the losses so far."""

    step: int
    states: tuple
    losses: np.ndarray  # [rows, windows so far]
    restored: bool = False  # the start of training (from a checkpoint or the initial states)


class Memory:
    """A batch trained without a run directory: it starts from the initial states."""

    def __init__(self, the_layout: layout.Layout):
        self.layout, self.saved_at = the_layout, 0

    def restore(self, states):
        return states, np.zeros((len(self.layout.rows), self.layout.spec.num_logs), np.float32), 0

    def __call__(self, end: ChunkEnd) -> None:
        pass


class Checkpoints(Memory):
    """A batch's resume checkpoints, ``RUN/checkpoints/batch-KKK/STEP``: it starts from the newest
    readable one (restored on the host, so a run may resume on another number of devices) and
    saves one every ``checkpoint_every`` steps, at the end, and when a signal asks to stop."""

    def __init__(self, out, k: int, the_layout: layout.Layout, stop: StopOnSignal):
        super().__init__(the_layout)
        spec = the_layout.spec
        self.manager = checkpoint.manager(checkpoint.batch_directory(out, k), spec.max_to_keep)
        self.every, self.stop = checkpoint_interval(spec), stop
        self.saved = {"index": tuple(g.model_index for g in the_layout.groups), "key_data": the_layout.streams.keys}

    def restore(self, states):
        states, losses, done = super().restore(states)
        restored = checkpoint.restore_latest(self.manager)
        if restored is None:
            return states, losses, done
        step, state = restored
        if not np.array_equal(state["key_data"], self.saved["key_data"]):
            raise ConfigError("--resume", str(self.manager.directory), "its data keys differ from this config's")
        states = sharding.put(layout.relayout(self.layout, state, states), self.layout.devices, sharded=True)
        self.saved_at = int(step)
        return states, np.asarray(state["losses"]), self.saved_at // self.layout.spec.log_every

    def __call__(self, end: ChunkEnd) -> None:
        due = end.step % self.every == 0 or end.step == self.layout.spec.steps or self.stop.signum is not None
        if end.restored or not due:
            return
        by_name = tuple(state._asdict() for state in end.states)
        losses = np.zeros((len(self.layout.rows), self.layout.spec.num_logs), np.float32)
        losses[:, : end.losses.shape[1]] = end.losses
        checkpoint.save(self.manager, end.step, {**self.saved, "states": by_name, "losses": losses, "step": end.step})
        self.saved_at = end.step


def _snapshots(out, k: int, the_layout: layout.Layout) -> list:
    """The snapshot step of a batch, if its run keeps snapshots (before its checkpoint step, so a
    resume from that checkpoint never skips a snapshot)."""
    spec = the_layout.spec
    if out is None or not spec.snapshot_schedule:
        return []
    manager = checkpoint.manager(checkpoint.snapshot_directory(out, k), max_to_keep=None)
    index = tuple(g.model_index for g in the_layout.groups)

    def keep(end: ChunkEnd) -> None:
        if end.step in spec.snapshot_schedule and not end.restored:
            kept = tuple({"params": state.params, "diverged_at": state.diverged_at} for state in end.states)
            checkpoint.save(manager, end.step, {"index": index, "states": kept})

    return [keep]


class StopOnSignal:
    """SIGTERM and SIGINT (main thread only) ask the driver to stop after the chunk in flight,
    which :func:`train_batch` checkpoints; a second signal exits at once."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            os._exit(128 + signum)
        self.signum = signum

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def check(self, steps: int, batch: int, batches: int, out):
        """The chunk-end step that stops a batch once a signal came (after its checkpoint); a
        batch that reached its last step finishes, and the next one stops at its start."""

        def stop_if_asked(end: ChunkEnd) -> None:
            if self.signum is not None and not (end.step == steps and not end.restored):
                raise Interrupted(self.signum, end.step, steps, batch, batches, out)

        return stop_if_asked


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


def _ready(tree):
    """``tree`` once computed, waiting in short sleeps so that a second signal is handled
    at once (a blocking wait would hold the signal until the chunk ends)."""
    leaves = jax.tree.leaves(tree)
    while not all(leaf.is_ready() for leaf in leaves):
        time.sleep(0.01)
    return tree


def checkpoint_interval(spec: SweepSpec) -> int:
    """Steps between checkpoints: ``checkpoint_every``, by default a tenth of the run."""
    if spec.checkpoint_every is not None:
        return spec.checkpoint_every
    return max(spec.log_every, spec.steps // 10 // spec.log_every * spec.log_every)


def _chunk_windows(the_layout: layout.Layout) -> int:
    spec = the_layout.spec
    if spec.chunk_steps is not None:
        return min(spec.num_logs, max(1, spec.chunk_steps // spec.log_every))
    flops = _CHUNK_FLOPS_CPU if jax.default_backend() == "cpu" else _CHUNK_FLOPS_ACCELERATOR
    windows = min(flops / the_layout.flops_per_step, _CHUNK_STEPS) / spec.log_every
    return int(min(spec.num_logs, max(1, round(windows))))


def train_in_memory(the_layout: layout.Layout) -> results.Run:
    """Train one layout without a run directory and return its models as a Run."""
    spec = the_layout.spec
    batch_losses, batch_states = train_batch(the_layout, Memory(the_layout))
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


class _Report:
    """Where a sweep stands, at every chunk end: the progress bar (model-steps/s, ETA) and,
    with a run directory, ``RUN/progress.json``, which ``supjax status`` reads."""

    def __init__(self, spec: SweepSpec, batches: list[list[int]], out):
        from tqdm.auto import tqdm

        self.spec, self.batches, self.out = spec, batches, out
        self.total = spec.steps * sum(len(b) for b in batches)
        self.bar = tqdm(
            total=self.total,
            unit="model-step",
            unit_scale=True,
            disable=not (spec.progress and jax.process_index() == 0),
            desc=f"supjax: {spec.num_models} models",
            smoothing=0.1,
        )
        self.started, self.clock = time.time(), time.perf_counter()
        self.done_before = 0  # model-steps of the batches before this one
        self.trained = 0  # model-steps this process trained (restored ones excluded): the rate
        self.diverged: set[int] = set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()

    def seconds(self) -> float:
        return time.perf_counter() - self.clock

    def start_batch(self, batch: int, the_layout: layout.Layout, checkpoints: Memory) -> None:
        if batch > 0:
            self.done_before += self.models * self.spec.steps
        self.batch, self.rows, self.models, self.step = batch, the_layout.rows, len(the_layout.rows), 0
        self.checkpoints = checkpoints

    def __call__(self, end: ChunkEnd) -> None:
        """The batch reached ``end.step`` (``end.losses``: its logged windows so far)."""
        step, losses = end.step, end.losses
        new = (step - self.step) * self.models
        self.bar.update(new)
        self.trained += 0 if end.restored else new
        self.step = step
        if losses.shape[1]:
            self.diverged |= {row["index"] for row, nan in zip(self.rows, np.isnan(losses[:, -1]), strict=True) if nan}
        if self.out is None:
            return
        state = {
            "pid": os.getpid(),
            "batch": self.batch,
            "batches": len(self.batches),
            "models_in_batch": self.models,
            "step": step,
            "steps": self.spec.steps,
            "checkpointed": self.checkpoints.saved_at,
            "model_steps_done": self.done_before + step * self.models,
            "model_steps_total": self.total,
            "model_steps_trained": self.trained,
            "started": self.started,
            "updated": time.time(),
            "diverged": sorted(self.diverged),
        }
        try:
            results.write_atomic(Path(self.out) / "progress.json", json.dumps(state) + "\n")
        except OSError:
            pass  # advisory; a full disk is reported by the checkpoint that follows
