"""Batched training checkpoints with orbax: save at chunk ends, restore the newest good one.

Each batch of models (see :mod:`supjax.sweep`) has its own ``CheckpointManager`` under
``RUN/checkpoints/batch-KKK``. A checkpoint holds the whole batched training state
(parameters, optimizer state, divergence steps of every width group), the loss curves
so far, the step, and the key data of the batch's data streams. Orbax writes each step
into a temporary directory and renames it when complete, so a process killed mid-write
leaves no half checkpoint behind; one that is unreadable anyway (a damaged disk, a
truncated file) is skipped with a warning and the one before it is used.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import shutil
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from supjax.errors import CheckpointError, warn

# supjax says what went wrong with a checkpoint in its own one line; orbax's and absl's logs would repeat it
for _name in ("absl", "orbax"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


def batch_directory(run: str | Path, batch: int) -> Path:
    return Path(run).resolve() / "checkpoints" / f"batch-{batch:03d}"


def snapshot_directory(run: str | Path, batch: int) -> Path:
    """Where a batch keeps its parameter snapshots (``snapshot_steps``), every one of them."""
    return Path(run).resolve() / "snapshots" / f"batch-{batch:03d}"


def manager(directory: str | Path, max_to_keep: int | None = 2) -> ocp.CheckpointManager:
    """A synchronous ``CheckpointManager`` keeping the newest ``max_to_keep`` steps."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True)
    return ocp.CheckpointManager(Path(directory).resolve(), options=options)


def save(mgr: ocp.CheckpointManager, step: int, state) -> None:
    """Save ``state`` (any pytree of arrays) as ``step``.

    A step saved before is replaced. If the disk refuses (full, read-only), the partial
    checkpoint is removed, the previous ones stay intact and readable, and
    :class:`CheckpointError` says how much space this checkpoint needs and how much is free.
    """
    try:
        with _quiet("absl", "orbax"):  # orbax logs the failure's traceback before raising it
            if step in mgr.all_steps():  # saved again on a resume (a snapshot): the same arrays
                mgr.delete(step)
            mgr.save(step, args=ocp.args.StandardSave(state), force=True)
            mgr.wait_until_finished()
    except (OSError, ValueError, RuntimeError) as err:
        for partial in Path(mgr.directory).glob(f"{step}.orbax-checkpoint-tmp*"):
            shutil.rmtree(partial, ignore_errors=True)
        free = shutil.disk_usage(mgr.directory).free
        raise CheckpointError(
            mgr.directory,
            f"step {step} could not be written ({_reason(err)}); it needs about {_size(tree_bytes(state))} "
            f"and {_size(free)} are free there; free space, then continue with --resume",
        ) from None


def tree_bytes(tree) -> int:
    """Bytes of the arrays of a pytree (what a checkpoint of it holds, before compression)."""
    return int(sum(getattr(leaf, "nbytes", 0) for leaf in jax.tree.leaves(tree)))


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return ""


@contextlib.contextmanager
def _quiet(*names: str):
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def _failed_reads_quiet():
    """Around a read that may fail: orbax's and asyncio's logs off; the failure itself is reported by the
    caller, in one line. A failed read leaves tasks that log 'Task exception was never retrieved' when
    collected (collected here, while the logs are off), and tensorstore callbacks that, arriving on other
    threads after orbax closed its event loop (during the read or after it), raise 'Event loop is closed' as
    unraisable exceptions: once a process reads checkpoints, those echoes are dropped
    (:func:`_drop_closed_loop_echoes`; nothing else that is unraisable is)."""
    _drop_closed_loop_echoes()
    with _quiet("absl", "orbax", "asyncio"):
        try:
            yield
        except Exception:
            # A failed read's sibling reads may still fail after it on orbax's thread, and their tasks log
            # when collected, perhaps after the logs are back on: from now on those records are dropped.
            _drop_abandoned_read_tasks()
            gc.collect()  # only a failed read leaves tasks behind; a good one costs no collection
            raise


class _AbandonedReadTask(logging.Filter):
    """Drops asyncio's 'Task exception was never retrieved' for a checkpoint read (a tensorstore error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None and record.args and isinstance(record.args, dict):
            exc = record.args.get("exception")
        text = str(getattr(record, "msg", "")) + " " + str(exc or "") + " " + str(record.args or "")
        abandoned = "never retrieved" in text and ("tensorstore" in text or "zarr" in text or "OCDBT" in text)
        return not abandoned


def _drop_abandoned_read_tasks() -> None:
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _AbandonedReadTask) for f in logger.filters):
        logger.addFilter(_AbandonedReadTask())


def _drop_closed_loop_echoes() -> None:
    previous = sys.unraisablehook
    if getattr(previous, "supjax", False):
        return

    def hook(unraisable):
        value = unraisable.exc_value
        if not (isinstance(value, RuntimeError) and "Event loop is closed" in str(value)):
            previous(unraisable)

    hook.supjax = True
    sys.unraisablehook = hook


def restore_latest(mgr: ocp.CheckpointManager, target=None, set_aside: bool = True) -> tuple[int, object] | None:
    """``(step, state)`` of the newest readable checkpoint, or None if there is none.

    With a ``target`` pytree the arrays come back with its structure, shapes, dtypes and
    shardings; without one, as host numpy arrays in the saved structure (whatever the
    device layout it was saved from: several GPUs, several hosts). An unreadable step is
    skipped with a warning; with ``set_aside`` process 0 also renames it
    ``STEP.unreadable`` (kept for inspection, out of the way of the step that will be
    saved again).
    """
    unreadable = []
    for step in sorted(mgr.all_steps(), reverse=True):
        directory = Path(mgr.directory) / str(step)
        try:
            with _failed_reads_quiet():
                if target is not None:
                    state = mgr.restore(step, args=ocp.args.StandardRestore(target))
                else:
                    state = _restore_numpy(directory / "default")
        except Exception as err:  # orbax and tensorstore raise many kinds on damaged files
            unreadable.append((step, _reason(err)))
            if set_aside and jax.process_index() == 0:
                aside = directory.with_name(f"{step}.unreadable")
                while aside.exists():
                    aside = aside.with_name(aside.name + "+")
                directory.rename(aside)
                mgr.reload()
            continue
        if unreadable:
            warn(f"{_unreadable(mgr, unreadable)}; resuming from step {step}", stacklevel=2)
        return step, state
    if unreadable:
        warn(f"{_unreadable(mgr, unreadable)}; starting from step 0", stacklevel=2)
    return None


def _unreadable(mgr, steps: list[tuple[int, str]]) -> str:
    names = ", ".join(str(step) for step, _ in steps)
    reasons = "; ".join(dict.fromkeys(reason for _, reason in steps))
    return f"{mgr.directory}: checkpoint {names} is unreadable ({reasons})"


def restore(directory: str | Path, step: int):
    """The state saved as ``step`` under ``directory``, as host numpy arrays (no manager)."""
    item = Path(directory) / str(step) / "default"
    try:
        return _restore_numpy(item)
    except Exception as err:  # orbax and tensorstore raise many kinds on damaged files
        raise CheckpointError(item.parent, f"is unreadable ({_reason(err)}); the run must write it again") from None


def _restore_numpy(item: Path):
    checkpointer = ocp.StandardCheckpointer()
    metadata = checkpointer.metadata(item)
    tree = getattr(metadata, "item_metadata", metadata)
    tree = getattr(tree, "tree", tree)
    target = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), tree)
    return checkpointer.restore(item, target)


def _reason(err: Exception) -> str:
    text = str(err)
    if "No space left on device" in text or "os_error_code='28'" in text:
        return "no space left on device"
    lines = text.strip().splitlines()
    return (lines[0] if lines else type(err).__name__)[:200]
