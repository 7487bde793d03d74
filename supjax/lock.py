"""One writer per run directory: an advisory lock held by the process that trains it.

A sweep holds ``RUN/lock`` locked (``flock``, exclusive) from the moment it takes the
directory until it returns; the file says who holds it (pid, host, start time). The
operating system drops the lock when the process dies, however it dies, so a lock file
whose lock is free but which still names a holder was left by a dead process: the next
sweep takes it over with a warning. The file itself stays (empty) after a clean finish.
Multi-host runs lock once, on process 0, which writes the directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from supjax.errors import RunDirError, warn

LOCK_NAME = "lock"


def holder(directory: str | Path) -> dict | None:
    """``{"pid", "host", "since"}`` of the process holding the directory's lock, or None."""
    path = Path(directory) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read(path) or {"pid": None, "host": None, "since": None}
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def refuse_if_held(directory: str | Path) -> None:
    """Raise :class:`RunDirError` naming the holder if another process holds the lock."""
    who = holder(directory)
    if who is not None:
        raise RunDirError(directory, f"is in use by {describe(who)}; wait for it to finish or stop it first")


@contextlib.contextmanager
def hold(directory: str | Path):
    """Hold the run directory's lock for the ``with`` block (creating the directory)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(
                directory, f"is in use by {describe(_read(path) or {})}; wait for it to finish or stop it first"
            ) from None
        left = _read(path)
        if left:
            warn(f"taking over the lock of {directory}, left by {describe(left)}, which is gone", stacklevel=3)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        try:
            yield record
        finally:
            os.ftruncate(fd, 0)  # a clean release leaves an empty file: no holder to take over from
    finally:
        os.close(fd)  # drops the lock


def _read(path: Path) -> dict | None:
    try:
        text = path.read_text()
        return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None


def describe(who: dict) -> str:
    pid, host, since = who.get("pid"), who.get("host"), who.get("since")
    text = f"process {pid}" if pid is not None else "another process"
    if host:
        text += f" on {host}"
    if since:
        text += f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}"
    return text
