"""What supjax says when the input is wrong: one line, naming the thing and the fix.

Every error a user can cause is a :class:`SupjaxError`; the CLI prints ``str(err)`` after
``supjax: error:`` and exits 2. Each kind names what it is about in its own words:

* :class:`ConfigError`: a sweep setting (a config field, a CLI option standing for one);
* :class:`ConfigFileError`: a config file that cannot be read as TOML;
* :class:`RunDirError`: a run directory (missing, unfinished, damaged, in use);
* :class:`CheckpointError`: a checkpoint that cannot be written or read;
* :class:`WeightFileError`: a weight file (safetensors, npy, a hub cache entry);
* :class:`InputFileError`: any other file the user hands in (a loss table, a tokenizer, text);
* :class:`OptionError`: a command-line option (or the library argument behind it) that is
  not a sweep setting: ``--device``, ``--sample-rows``, ``--group-by``.

:class:`Interrupted` is not an error but a stop the user asked for (SIGTERM, SIGINT): the
CLI prints it as one line too and exits 128 + the signal.

Warnings (a fallback, a lock taken over, a slow setting) are :class:`SupjaxWarning`, raised with
:func:`warn`; the CLI prints each as one ``supjax: warning: ...`` line.

This module imports nothing of supjax, so every layer may raise these.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


class SupjaxWarning(UserWarning):
    """Something a person should know that does not stop the work, said in one line."""


def warn(message: str, stacklevel: int = 2) -> None:
    """Warn with :class:`SupjaxWarning` (shown once per place that warns, as Python's default filter does)."""
    warnings.warn(message, SupjaxWarning, stacklevel=stacklevel + 1)


class SupjaxError(Exception):
    """Bad input, said in one line: ``str(err)`` names the thing, what is wrong, and the fix."""


class ConfigError(SupjaxError, ValueError):
    """A bad sweep setting. ``str(err)`` is one line naming field, value and fix."""

    def __init__(self, field_name: str, value: Any, fix: str):
        self.field = field_name
        self.value = value
        self.fix = fix
        super().__init__(f"config field '{field_name}' = {value!r}: {fix}")


class _PathError(SupjaxError):
    kind = "path"

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.kind} {self.path}: {problem}")


class RunDirError(_PathError):
    """A run directory that is missing, unfinished, damaged or in use: path, problem, fix."""

    kind = "run directory"


class CheckpointError(_PathError):
    """A checkpoint that cannot be written or read: its path, why, and the fix."""

    kind = "checkpoint"


class WeightFileError(_PathError):
    """A weight file that is missing, damaged or not what was asked for: path, problem, fix."""

    kind = "weight file"


class ConfigFileError(_PathError):
    """A config file that is missing, unreadable or not TOML: its path, the problem, the fix."""

    kind = "config file"


class InputFileError(_PathError):
    """An input file other than weights (a CSV table, a tokenizer.json, a text file): path, problem, fix."""

    kind = "file"


class OptionError(SupjaxError, ValueError):
    """A bad command-line option that is not a sweep setting. ``str(err)`` names option, value and fix."""

    def __init__(self, option: str, value: Any, fix: str):
        self.option = option
        self.value = value
        self.fix = fix
        super().__init__(f"option {option} = {value!r}: {fix}")


class Interrupted(Exception):
    """A sweep stopped by a signal after checkpointing the chunk in flight.

    ``str(err)`` is the one line to print; ``exit_code`` is 128 + the signal (143 for
    SIGTERM, 130 for SIGINT).
    """

    def __init__(self, signum: int, step: int, steps: int, batch: int, batches: int, out):
        self.signum, self.step, self.steps = signum, step, steps
        self.batch, self.batches, self.out = batch, batches, out
        self.exit_code = 128 + signum
        where = f"step {step} of {steps}" + (f" (batch {batch + 1} of {batches})" if batches > 1 else "")
        if out is None:
            then = "no run directory was given, so nothing was saved"
        else:
            then = f"continue with: supjax sweep {Path(out) / 'config.toml'} --out {out} --resume"
        super().__init__(f"interrupted at {where}; {then}")


class ReaderInterrupted(Interrupted):
    """A run of a wing that reads a toy run (``supjax sae``, ``supjax llc``), stopped by a signal after
    checkpointing: one line, and the command that continues it."""

    def __init__(
        self, wing: str, signum: int, step: int, steps: int, out, toy, unit: str = "step", batch: int = 0,
        batches: int = 1,
    ):  # fmt: skip
        Exception.__init__(self)
        self.signum, self.step, self.steps, self.out = signum, step, steps, out
        self.batch, self.batches, self.exit_code = batch, batches, 128 + signum
        if out is None:
            then = "no run directory was given, so nothing was saved"
        else:
            config = Path(out) / f"{wing}.toml"
            then = f"continue with: supjax {wing} {toy or 'RUN'} --config {config} --out {out} --resume"
        where = f" (batch {batch + 1} of {batches})" if batches > 1 else ""
        self.message = f"interrupted at {unit} {step} of {steps}{where}; {then}"

    def __str__(self) -> str:
        return self.message
