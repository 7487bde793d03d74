"""The driver of any wing's sweep: compiled chunks of steps and the hooks that run at their ends.

:func:`train` trains one :class:`Job` (a batch of models laid out by its wing) to its last step:
it takes the first states from ``start`` (:class:`Memory`: the initial states; :class:`Checkpoints`:
the newest readable checkpoint), runs :func:`supjax.engine.program.train_chunk` chunk by chunk and,
at every chunk end, calls each hook in order with a :class:`ChunkEnd`: the snapshot
(:func:`snapshots`), the checkpoint, the report (:class:`Report`: progress bar and
``RUN/progress.json``, which ``supjax status`` reads) and the stop check (:class:`StopOnSignal`:
SIGTERM and SIGINT stop after the chunk in flight, checkpointed). Chunks end at every checkpoint
and snapshot step; between them they have one length, so a sweep compiles one chunk program, and a
chunk cut short by one of those steps runs as chunks of powers of two (:func:`cut`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from supjax import checkpoint, sharding
from supjax.engine import layout, program, rundir
from supjax.engine.rundir import write_atomic
from supjax.errors import ConfigError, Interrupted

# Aim for about this much dense work per compiled chunk, and at most this many steps (small
# models run far below the flop rate): a few seconds on a CPU (about 1e11 flop/s) and about a
# second on an accelerator (about 5e13), where a CPU-sized chunk would be 10 ms of work and the
# host round trip would rule. Chunk ends are where the progress bar moves, results come back
# and a signal is answered.
CHUNK_FLOPS_CPU = 5e11
CHUNK_FLOPS_ACCELERATOR = 5e13
CHUNK_STEPS = 1000


class Job(NamedTuple):
    """One batch of models of a wing, ready to train in one compiled program."""

    static: Any  # the program's compile key (has steps and log_every)
    groups: tuple  # one supjax.engine.layout.Placement per group
    rows: int  # models in the job; logs are [rows, steps // log_every] in the job's row order
    logs: tuple[str, ...]  # the names of the logged series (the program's log dicts)
    init_args: tuple  # the device arrays init_states takes
    inputs: Any  # the device arrays train_chunk takes (hyperparameters, data streams)
    key_data: np.ndarray  # the data keys: a resume must read the data the run started on
    flops_per_step: float  # dense work of one step of every model (sizes the chunks)
    devices: int = 1  # the groups' leading axis is split over this many devices
    chunk_steps: int | None = None  # steps per chunk, if the spec fixes them
    checkpoint_every: int | None = None  # steps between checkpoints (None: a tenth of the run)
    snapshot_steps: tuple[int, ...] = ()  # steps whose parameters are kept

    @property
    def num_logs(self) -> int:
        return self.static.steps // self.static.log_every


class ChunkEnd(NamedTuple):
    """Where a job stands at a chunk end: the step reached, the (device) states, the logs so far."""

    step: int
    states: tuple
    logs: dict  # name -> [rows, windows so far]
    restored: bool = False  # the start of training (from a checkpoint or the initial states)

    @property
    def losses(self) -> np.ndarray:
        return self.logs["losses"]


def train(job: Job, start, hooks=()) -> tuple[dict[str, np.ndarray], tuple]:
    """Train ``job`` to its last step: ``({name: [rows, logs]}, host states, one per group)``."""
    log_every, num_logs = job.static.log_every, job.num_logs
    states, logs, done = start.restore(program.init_states(job.static, *job.init_args))
    for hook in hooks:
        hook(ChunkEnd(done * log_every, states, _so_far(logs, done), restored=True))
    every = checkpoint_interval(job) // log_every
    ends = {every * k for k in range(1, num_logs // every + 1)} | {num_logs}
    ends |= {s // log_every for s in job.snapshot_steps}
    length = chunk_windows(job, math.gcd(every, num_logs))
    while done < num_logs:
        windows = cut(length, min(e for e in ends if e > done) - done)
        first = jnp.int32(done * log_every)
        states, chunk = program.train_chunk(job.static, states, job.inputs, first, num_windows=windows)
        for group, values in zip(job.groups, sharding.to_host(ready(chunk)), strict=True):
            for name in job.logs:
                logs[name][group.rows, done : done + windows] = group.real(np.moveaxis(values[name], 0, -1))
        done += windows
        for hook in hooks:
            hook(ChunkEnd(done * log_every, states, _so_far(logs, done)))
    return logs, sharding.to_host(states)


def train_one_batch(
    job: Job, out, stop: StopOnSignal, report: Report, ids: list[int], max_to_keep, interrupted, keep=None,
    batch: int = 0, batches: int = 1,
):  # fmt: skip
    """:func:`train` for one batch of a wing trained in whole batches (the SAEs, the LLC chains): the
    snapshots (``keep(state)`` of every group at the job's snapshot steps), the checkpoints (in the
    batch's folders of ``out``, :func:`supjax.engine.rundir.batch_directory`; neither without ``out``),
    then the report (``ids``: the model of every job row) and the stop check
    (``interrupted(signum, step)``: the exception to raise)."""
    if out is not None:
        start = Checkpoints(rundir.batch_directory(out, "checkpoints", batch, batches), job, stop, max_to_keep)
    else:
        start = Memory(job)
    report.start_batch(ids, start)
    kept = snapshots(rundir.batch_directory(out, "snapshots", batch, batches) if out is not None and keep else None,
                     job, keep)  # fmt: skip
    return train(job, start, [*kept, start, report, stop.check(job.static.steps, interrupted)])


def _so_far(logs: dict, done: int) -> dict:
    return {name: values[:, :done] for name, values in logs.items()}


def checkpoint_interval(job) -> int:
    """Steps between checkpoints: ``checkpoint_every``, by default a tenth of the run."""
    if job.checkpoint_every is not None:
        return job.checkpoint_every
    log_every = job.static.log_every
    return max(log_every, job.static.steps // 10 // log_every * log_every)


def chunk_windows(job: Job, period: int) -> int:
    """Windows per chunk: ``chunk_steps`` if set, else the largest divisor of ``period`` (the windows
    between checkpoints, and of the run) up to a few seconds of work, so that every chunk but those
    cut by a snapshot has one length and the program compiles once."""
    log_every = job.static.log_every
    if job.chunk_steps is not None:
        return max(1, job.chunk_steps // log_every)
    flops = CHUNK_FLOPS_CPU if jax.default_backend() == "cpu" else CHUNK_FLOPS_ACCELERATOR
    target = round(min(flops / max(job.flops_per_step, 1.0), CHUNK_STEPS) / log_every)
    return max(d for d in range(1, period + 1) if period % d == 0 and d <= max(1, target))


def cut(length: int, left: int) -> int:
    """Windows of the next chunk: ``length``, or, when the next checkpoint or snapshot is nearer, the
    largest power of two up to it; so a run compiles at most one program per power of two, however
    its snapshot steps fall (which windows a chunk holds changes no result)."""
    return length if left >= length else 1 << (left.bit_length() - 1)


def ready(tree):
    """``tree`` once computed, waiting in short sleeps so that a second signal is handled
    at once (a blocking wait would hold the signal until the chunk ends)."""
    leaves = jax.tree.leaves(tree)
    while not all(leaf.is_ready() for leaf in leaves):
        time.sleep(0.01)
    return tree


# ---- where training starts, and the checkpoints ------------------------------------------------


class Memory:
    """A job trained without a run directory: it starts from the initial states."""

    def __init__(self, job: Job):
        self.job, self.saved_at = job, 0

    def restore(self, states):
        logs = {name: np.zeros((self.job.rows, self.job.num_logs), np.float32) for name in self.job.logs}
        return states, logs, 0

    def __call__(self, end: ChunkEnd) -> None:
        pass


class Checkpoints(Memory):
    """A job's resume checkpoints in ``directory`` (``STEP`` subdirectories): it starts from the newest
    readable one (restored on the host and laid out model by model, so a run may resume on another
    number of devices) and saves one every ``checkpoint_every`` steps, at the end, and when a signal
    asks to stop. A checkpoint holds every group's state by field name, the logs so far, the step,
    the model index of every row and the data keys."""

    def __init__(self, directory, job: Job, stop: StopOnSignal, max_to_keep: int | None):
        super().__init__(job)
        self.manager = checkpoint.manager(directory, max_to_keep)
        self.every, self.stop = checkpoint_interval(job), stop
        self.saved = {"index": tuple(g.model_index for g in job.groups), "key_data": job.key_data}

    def restore(self, states):
        states, logs, done = super().restore(states)
        restored = checkpoint.restore_latest(self.manager)
        if restored is None:
            return states, logs, done
        step, state = restored
        if not np.array_equal(state["key_data"], self.saved["key_data"]):
            raise ConfigError("--resume", str(self.manager.directory), "its data keys differ from this config's")
        states = layout.relayout(self.job.groups, state, states, str(self.manager.directory))
        states = sharding.put(states, self.job.devices, sharded=True)
        self.saved_at = int(step)
        logs = {name: np.asarray(state[name]) for name in self.job.logs}
        return states, logs, self.saved_at // self.job.static.log_every

    def __call__(self, end: ChunkEnd) -> None:
        due = end.step % self.every == 0 or end.step == self.job.static.steps or self.stop.signum is not None
        if end.restored or not due:
            return
        logs = {}
        for name, values in end.logs.items():
            logs[name] = np.zeros((self.job.rows, self.job.num_logs), np.float32)
            logs[name][:, : values.shape[1]] = values
        states = tuple(state._asdict() for state in end.states)
        checkpoint.save(self.manager, end.step, {**self.saved, "states": states, **logs, "step": end.step})
        self.saved_at = end.step


def snapshots(directory, job: Job, keep) -> list:
    """The snapshot hook of a job whose spec keeps snapshots (put it before the checkpoint, so a
    resume from that checkpoint never skips a snapshot): ``keep(state)`` of every group at every
    snapshot step, saved in ``directory``."""
    if directory is None or not job.snapshot_steps:
        return []
    manager = checkpoint.manager(directory, max_to_keep=None)
    index = tuple(g.model_index for g in job.groups)

    def save(end: ChunkEnd) -> None:
        if end.step in job.snapshot_steps and not end.restored:
            checkpoint.save(manager, end.step, {"index": index, "states": tuple(keep(s) for s in end.states)})

    return [save]


# ---- signals and the report ------------------------------------------------------------------


class StopOnSignal:
    """SIGTERM and SIGINT (main thread only) ask the driver to stop after the chunk in flight,
    which :func:`train` checkpoints; a second signal exits at once."""

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

    def check(self, steps: int, interrupted):
        """The hook that stops a job once a signal came (after its checkpoint) by raising
        ``interrupted(signum, step)``; a job that reached its last step finishes, and the next one
        stops at its start."""

        def stop_if_asked(end: ChunkEnd) -> None:
            if self.signum is not None and not (end.step == steps and not end.restored):
                raise interrupted(self.signum, end.step)

        return stop_if_asked


class Report:
    """Where a sweep stands, at every chunk end: the progress bar (model-steps/s, ETA) and, with a
    run directory, ``RUN/progress.json``, which ``supjax status`` reads. ``batches``: the number of
    models of every batch; ``unit``: what one model-step is called (``model-step``, ``SAE-step``)."""

    def __init__(self, steps: int, batches: list[int], out, show: bool, unit: str = "model-step", what="models"):
        from tqdm.auto import tqdm

        self.steps, self.batches, self.out = steps, batches, out
        self.total = steps * sum(batches)
        self.bar = tqdm(
            total=self.total,
            unit=unit,
            unit_scale=True,
            disable=not (show and jax.process_index() == 0),
            desc=f"supjax: {sum(batches)} {what}",
            smoothing=0.1,
        )
        self.started, self.clock = time.time(), time.perf_counter()
        self.done_before = 0  # model-steps of the batches before this one
        self.trained = 0  # model-steps this process trained (restored ones excluded): the rate
        self.diverged: set[int] = set()
        self.batch, self.models = -1, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()

    def seconds(self) -> float:
        return time.perf_counter() - self.clock

    def start_batch(self, model_index: list[int], checkpoints: Memory) -> None:
        """The next batch starts: ``model_index``, the model of every job row."""
        if self.batch >= 0:
            self.done_before += self.models * self.steps
        self.batch += 1
        self.index, self.models, self.step = model_index, len(model_index), 0
        self.checkpoints = checkpoints

    def __call__(self, end: ChunkEnd) -> None:
        step, losses = end.step, end.losses
        new = (step - self.step) * self.models
        self.bar.update(new)
        self.trained += 0 if end.restored else new
        self.step = step
        if losses.shape[1]:
            self.diverged |= {int(i) for i, nan in zip(self.index, np.isnan(losses[:, -1]), strict=True) if nan}
        if self.out is None:
            return
        state = {
            "pid": os.getpid(),
            "batch": self.batch,
            "batches": len(self.batches),
            "models_in_batch": self.models,
            "step": step,
            "steps": self.steps,
            "checkpointed": self.checkpoints.saved_at,
            "model_steps_done": self.done_before + step * self.models,
            "model_steps_total": self.total,
            "model_steps_trained": self.trained,
            "started": self.started,
            "updated": time.time(),
            "diverged": sorted(self.diverged),
        }
        try:
            write_atomic(Path(self.out) / "progress.json", json.dumps(state) + "\n")
        except OSError:
            pass  # advisory; a full disk is reported by the checkpoint that follows


__all__ = ["Checkpoints", "ChunkEnd", "Interrupted", "Job", "Memory", "Report", "StopOnSignal", "snapshots", "train"]
