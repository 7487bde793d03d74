"""The run directory of any wing: created empty and writable, written atomically.

What a wing keeps there is its own (its config, its table, its tables at the end); the engine
adds ``checkpoints/``, ``snapshots/``, ``progress.json`` and the ``lock`` (:mod:`supjax.lock`).
Every file is written through a temporary file and a rename, so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from supjax import lock
from supjax.errors import RunDirError


def prepare(path: str | Path, marker: str, starting: tuple[str, ...] = (), what: str = "a run") -> Path:
    """Refuse a directory holding a run (its ``marker`` file; ``what``: the run, in the error line) or
    anything else, then create ``path``.

    A wing writes its ``marker`` last when it starts a run, so a directory without it holds no run
    to resume; one whose files are only those a start writes before its marker (``starting``, the
    lock, temporary files) is the leftover of a start that was cut off, and is started again."""
    path = Path(path)
    if (path / marker).is_file():
        raise RunDirError(path, f"holds {what}; add --resume to continue it, or choose a new --out")
    leftovers = {*starting, "lock", ".write-test"}
    if path.exists() and (
        not path.is_dir() or any(p.name not in leftovers and not p.name.endswith(".tmp") for p in path.iterdir())
    ):
        raise RunDirError(path, "exists and is not empty; choose a new --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise RunDirError(path, f"cannot write there ({err.strerror}); choose a writable --out") from None
    return path


def claim(
    stack, out: str | Path, resume: bool, marker: str, starting: tuple[str, ...] = (), what: str = "a run"
) -> Path:
    """The run directory ``out`` of a wing trained in one batch, held until ``stack`` closes: a new run
    first refuses a directory another process holds, then one that holds a run or anything but a
    cut-off start (:func:`prepare`); then the lock is taken (:mod:`supjax.lock`). A resumed run checks
    its saved config before it claims the directory."""
    out = Path(out)
    if not resume:
        lock.refuse_if_held(out)
        prepare(out, marker, starting, what)
    stack.enter_context(lock.hold(out))
    return out


def batch_directory(out: str | Path, kind: str, batch: int = 0, batches: int = 1) -> Path:
    """Where batch ``batch`` of ``batches`` keeps its ``kind`` (``checkpoints``, ``snapshots``): the
    run's own folder when the run trains in one batch, else ``kind/batch-KKK``. Absolute, as orbax
    reads paths."""
    folder = Path(out).resolve() / kind
    return folder / f"batch-{batch:03d}" if batches > 1 else folder


def read_batches(path: str | Path, models) -> list[list[int]] | None:
    """The run's ``batches.json`` (the models trained together, batch by batch), None where the run
    has none; one line if it is damaged or does not hold each of ``models`` (indices) exactly once."""
    file = Path(path) / "batches.json"
    if not file.is_file():
        return None
    try:
        batches = json.loads(file.read_text())
        lists = isinstance(batches, list) and all(isinstance(b, list) and b for b in batches)
        once = lists and sorted(i for b in batches for i in b) == sorted(models)
    except (ValueError, OSError, TypeError, RecursionError) as err:
        raise RunDirError(path, f"has a damaged batches.json ({type(err).__name__}); start a new run") from None
    if not once:
        raise RunDirError(path, "its batches.json does not hold each of its models once; start a new run")
    return [[int(i) for i in b] for b in batches]


def save_atomic(path: Path, write, mode: str = "wb") -> None:
    """``write(file)`` into ``path`` through a temporary file, so a reader never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, mode, **({"newline": ""} if "b" not in mode else {})) as f:
        write(f)
    os.replace(tmp, path)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` into ``path`` through a temporary file, so a reader never sees half of it."""
    save_atomic(path, lambda f: f.write(text), mode="w")


CHECKSUMS = "checksums.json"


def seal(path: str | Path, names: list[str]) -> None:
    """Write ``checksums.json``: the SHA-256 of every file ``names`` (relative to ``path``; a folder stands for
    every file under it) of a finished run, so that a reader finds a damaged table instead of reading
    wrong numbers (:func:`verify`). Written last, atomically."""
    path = Path(path)
    digests = {}
    for name in names:
        target = path / name
        files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
        for file in files:
            digests[str(file.relative_to(path))] = hashlib.sha256(file.read_bytes()).hexdigest()
    write_atomic(path / CHECKSUMS, json.dumps(digests, indent=1, sort_keys=True) + "\n")


def verify(path: str | Path, again: str) -> None:
    """Check the files of a finished run against its ``checksums.json`` (a run written before supjax
    kept them has none, and is read as it is); ``again``: how to write them again, for the error line."""
    path = Path(path)
    if not (path / CHECKSUMS).is_file():
        return
    try:
        digests = json.loads((path / CHECKSUMS).read_text())
        assert isinstance(digests, dict) and all(isinstance(v, str) for v in digests.values())
    except (ValueError, OSError, AssertionError):
        raise RunDirError(path, f"has a damaged {CHECKSUMS}; {again}") from None
    for name, digest in digests.items():
        file = path / name
        try:
            same = hashlib.sha256(file.read_bytes()).hexdigest() == digest
        except OSError:
            same = False
        if not same:
            raise RunDirError(path, f"its {name} is missing or damaged (not the file the run wrote); {again}")
