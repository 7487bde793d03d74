"""The driver of a sweep: batches of models, compiled chunks, checkpoints, progress, hosts.

``run_sweep(spec, out)`` reads top to bottom:

1. the model table and the batches that fit the device (:mod:`supjax.layout`);
2. for each batch: its layout, then :func:`train_batch`, which restores the newest
   checkpoint, runs the compiled chunks of :mod:`supjax.program` until the last step and
   saves a checkpoint every ``checkpoint_every`` steps;
3. the run's tables, written into ``out`` (:mod:`supjax.results`).

Around it: the run directory's lock (:mod:`supjax.lock`), signals (SIGTERM and SIGINT stop
after the chunk in flight, checkpointed), and ``RUN/progress.json`` at every chunk end.
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

import jax
import jax.numpy as jnp
import numpy as np

from supjax import checkpoint, layout, lock, model, program, results
from supjax.config import ConfigError, SweepSpec
from supjax.errors import Interrupted, RunDirError

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
        stop = stack.enter_context(_StopOnSignal())
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
            manager = checkpoint.manager(checkpoint.batch_directory(out, k), spec.max_to_keep) if out else None
            snapshots = None
            if out is not None and spec.snapshot_schedule:
                snapshots = checkpoint.manager(checkpoint.snapshot_directory(out, k), max_to_keep=None)
            report.start_batch(k, the_layout)
            try:
                batch_losses, batch_states = train_batch(the_layout, manager, report, stop, snapshots)
            except Interrupted as stopped:
                raise Interrupted(stopped.signum, stopped.step, spec.steps, k, len(batches), out) from None
            for group, state in zip(the_layout.groups, batch_states, strict=True):
                real = group.model_index >= 0
                losses[group.model_index[real]] = batch_losses[group.local_index[real]]
                states.append((group, state))
        run = _assemble(spec, rows, losses, states, report.seconds())
        if writer:
            _save_results(run, out)
            run.path = Path(out)
        _sync_hosts("supjax: run saved")
    return run


class _StopOnSignal:
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


def _open_run(spec: SweepSpec, out, resume: bool, primary: bool) -> tuple[SweepSpec, list[dict], list[list[int]]]:
    """(spec, model table, batches): resolved and, for a new run directory, written."""
    if out is not None and not primary:
        _sync_hosts("supjax: run directory ready")  # process 0 writes it; every host trains its batches
    if out is not None and (resume or not primary):
        spec, batches = results.resume_layout(out, spec)
        rows = layout.model_table(spec)
    else:
        spec = resolve_driving(spec)
        rows = layout.model_table(spec)
        batches = layout.split_batches(spec, rows)
        if out is not None:
            results.start_run_dir(out, spec, rows, batches)
    if out is not None and primary:
        _sync_hosts("supjax: run directory ready")
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


def resolve_driving(spec: SweepSpec) -> SweepSpec:
    """The spec with this backend's batch tile and stream loop written in (a run directory
    keeps them, so a resume on another device trains the same program)."""
    backend = jax.default_backend()
    return spec.replace(
        batch_tile=spec.batch_tile or model.default_batch_tile(spec.batch_size, backend),
        stream_loop=spec.stream_loop or layout.default_stream_loop(),
    )


def train_batch(
    the_layout: layout.Layout, manager=None, report=None, stop=None, snapshots=None
) -> tuple[np.ndarray, tuple]:
    """Train the models of ``the_layout`` to the last step; return (losses, final states).

    ``losses: [len(the_layout.rows), steps // log_every]`` in the layout's row order; the
    states are host copies, one TrainState per width group. With an orbax ``manager`` the
    batch starts from its newest readable checkpoint and saves one every
    ``spec.checkpoint_every`` steps and at the end. ``report`` (a :class:`_Report`) hears of
    every chunk; when ``stop`` has caught a signal, the batch checkpoints the step it reached
    and raises :class:`Interrupted`. With a ``snapshots`` manager the parameters of every
    model are kept at each step of ``spec.snapshot_schedule`` (chunks end there).
    """
    spec, static, devices = the_layout.spec, the_layout.static, the_layout.devices
    hypers = _put(tuple(g.hyper for g in the_layout.groups), devices, sharded=True)
    streams = _put(the_layout.streams, devices, sharded=False)
    states = program.init_states(static, _put(tuple(g.init_keys for g in the_layout.groups), devices, True), hypers)
    losses = np.zeros((len(the_layout.rows), spec.num_logs), np.float32)
    done = saved_at = 0
    saved = {"index": tuple(g.model_index for g in the_layout.groups), "key_data": the_layout.streams.keys}
    if manager is not None:
        # Restored on the host, so a run may resume on another number of devices.
        restored = checkpoint.restore_latest(manager)
        if restored is not None:
            step, state = restored
            if not np.array_equal(state["key_data"], saved["key_data"]):
                raise ConfigError("--resume", str(manager.directory), "its data keys differ from this config's")
            states = _put(layout.relayout(the_layout, state, states), devices, sharded=True)
            losses, done = np.asarray(state["losses"]), int(step) // spec.log_every
            saved_at = int(step)
    if report is not None:
        report.chunk(done * spec.log_every, saved_at, losses[:, :done], restored=True)
    chunk = _chunk_windows(the_layout)
    every = checkpoint_interval(spec) // spec.log_every
    snapshot_at = [s // spec.log_every for s in spec.snapshot_schedule] if snapshots is not None else []
    while done < spec.num_logs:
        if stop is not None and stop.signum is not None:
            raise Interrupted(stop.signum, done * spec.log_every, spec.steps, 0, 1, None)
        windows = min(chunk, spec.num_logs - done, every - done % every, *(w - done for w in snapshot_at if w > done))
        first = jnp.int32(done * spec.log_every)
        states, logs = program.train_chunk(static, states, hypers, streams, first, num_windows=windows)
        for group, log in zip(the_layout.groups, _to_host(_ready(logs)), strict=True):
            real = group.local_index >= 0
            losses[group.local_index[real], done : done + windows] = np.asarray(log).reshape(windows, -1).T[real]
        done += windows
        stopping = stop is not None and stop.signum is not None
        if done in snapshot_at:  # before the checkpoint: a resume from it never skips a snapshot
            kept = tuple({"params": state.params, "diverged_at": state.diverged_at} for state in states)
            checkpoint.save(snapshots, done * spec.log_every, {"index": saved["index"], "states": kept})
        if manager is not None and (done % every == 0 or done == spec.num_logs or stopping):
            saved_at = done * spec.log_every
            by_name = tuple(state._asdict() for state in states)
            checkpoint.save(manager, saved_at, {**saved, "states": by_name, "losses": losses, "step": saved_at})
        if report is not None:
            report.chunk(done * spec.log_every, saved_at, losses[:, :done])
    return losses, _to_host(states)


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


def train(the_layout: layout.Layout) -> results.Run:
    """Train one layout in memory (no checkpoints) and return its models as a Run."""
    spec = the_layout.spec
    batch_losses, batch_states = train_batch(the_layout)
    rows = layout.model_table(spec)
    losses = np.full((len(rows), spec.num_logs), np.nan, np.float32)
    for group in the_layout.groups:
        real = group.model_index >= 0
        losses[group.model_index[real]] = batch_losses[group.local_index[real]]
    return _assemble(spec, rows, losses, list(zip(the_layout.groups, batch_states, strict=True)), 0.0)


def _assemble(spec: SweepSpec, rows: list[dict], losses: np.ndarray, states: list, seconds: float) -> results.Run:
    """The Run of trained ``states``: ``(group, host TrainState)`` pairs of every batch."""
    rows = [dict(r) for r in rows]
    parts: dict[int, list] = {}
    for group, state in states:
        real = group.model_index >= 0  # drop the padding of multi-device groups
        for i, step in zip(group.model_index[real], state.diverged_at.reshape(-1)[real], strict=True):
            rows[i]["diverged_at"] = int(step)
        params = {k: np.asarray(v).reshape(-1, *np.shape(v)[2:])[real] for k, v in state.params.items()}
        parts.setdefault(group.m, []).append({**params, "index": group.model_index[real]})
    params = {m: {k: np.concatenate([p[k] for p in ps]) for k in ps[0]} for m, ps in parts.items()}
    info = {"seconds": seconds, "device": str(jax.devices()[0].device_kind)}
    return results.Run(spec, rows, losses, params, dict(spec.feature_probabilities), info)


# ---- devices and hosts --------------------------------------------------------------------------


def _put(tree, devices: int, sharded: bool):
    """Global arrays from host values: split on the leading (D) axis, or replicated."""
    if devices == 1:
        return jax.device_put(tree)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:devices]), (program.MODEL_AXIS,))
    spec = jax.sharding.PartitionSpec(program.MODEL_AXIS) if sharded else jax.sharding.PartitionSpec()
    sharding = jax.sharding.NamedSharding(mesh, spec)

    def put(value):
        value = np.asarray(value)
        return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

    return jax.tree.map(put, tree)


def _to_host(tree):
    """Host numpy copies of (possibly multi-host) global arrays."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def _sync_hosts(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


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

    def start_batch(self, batch: int, the_layout: layout.Layout) -> None:
        if batch > 0:
            self.done_before += self.models * self.spec.steps
        self.batch, self.rows, self.models, self.step = batch, the_layout.rows, len(the_layout.rows), 0

    def chunk(self, step: int, checkpointed: int, losses: np.ndarray, restored: bool = False) -> None:
        """The batch reached ``step`` (``losses``: its logged windows so far)."""
        new = (step - self.step) * self.models
        self.bar.update(new)
        self.trained += 0 if restored else new
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
            "checkpointed": checkpointed,
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
