"""The ``supjax`` command line. Every command is one Python call as well.

The core is short: every wing registers its own commands (:data:`WINGS`: a module with
``add(commands) -> {name: handler}``), and ``analyze`` and ``plot`` go to the wing whose run
directory they are given (a module's ``RUN_KINDS``, a list of :class:`RunKind`).
Every error is one ``supjax: error: ...`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from supjax.errors import Interrupted, SupjaxError, SupjaxWarning


class RunKind(NamedTuple):
    """A wing's run directories: how to tell one, and its ``analyze`` and ``plot`` (each takes the args)."""

    is_run: Callable[[str], bool]
    analyze: Callable
    plot: Callable


# The wings' command modules, in the order their commands are listed.
WINGS = ("supjax.cli.toy", "supjax.cli.llm", "supjax.cli.sae", "supjax.cli.llc")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="supjax", description="supjax: every command is one Python call as well.")
    commands = parser.add_subparsers(dest="command", required=True)
    handlers, run_kinds = {}, []
    for name in WINGS:
        wing = importlib.import_module(name)
        handlers |= wing.add(commands)
        run_kinds = [*getattr(wing, "RUN_KINDS", []), *run_kinds]  # the first wing's kind is the fallback

    status = commands.add_parser("status", help="where a run stands: batches, steps, lock, rate, ETA, divergences")
    status.add_argument("run", help="run directory (running or stopped)")
    status.add_argument("--json", action="store_true", help="print one JSON object")

    analyze = commands.add_parser("analyze", help="write the tables of a run (toy models: summary and exponents)")
    analyze.add_argument("run", help="run directory")
    analyze.add_argument("--over-time", action="store_true", help="also every metric at every snapshot: trajectory.csv")

    plot = commands.add_parser("plot", help="draw the figures of a run (analyses it first if needed)")
    plot.add_argument("run", help="run directory")
    plot.add_argument("--out", help="figure directory (default: RUN/figures)")

    args = parser.parse_args(argv)
    python_format = warnings.formatwarning

    def one_line(message, category, filename, lineno, line=None) -> str:
        """A supjax warning as one ``supjax: warning: ...`` line; any other as Python formats it. Only
        the format changes: a caller recording warnings (pytest.warns) still records them."""
        if issubclass(category, SupjaxWarning):
            return f"supjax: warning: {message}\n"
        return python_format(message, category, filename, lineno, line)

    warnings.formatwarning = one_line
    try:
        return _run(args, handlers, run_kinds)
    finally:
        warnings.formatwarning = python_format


def _run(args, handlers: dict, run_kinds: list) -> int:
    try:
        if args.command in ("analyze", "plot"):
            kind = next(kind for kind in run_kinds if kind.is_run(args.run))
            return (kind.analyze if args.command == "analyze" else kind.plot)(args)
        if args.command == "status":
            return _status(args.run, args.json)
        return handlers[args.command](args)
    except SupjaxError as err:
        print(f"supjax: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(
            f"supjax: error: {err.filename or ''}: {err.strerror or err}; check the path and free space",
            file=sys.stderr,
        )
        return 2
    except Interrupted as stopped:  # a sweep stopped by a signal, checkpointed
        print(f"supjax: {stopped}", file=sys.stderr)
        return stopped.exit_code
    except KeyboardInterrupt:
        print("supjax: interrupted", file=sys.stderr)
        return 130


def _status(run: str, as_json: bool) -> int:
    from supjax import status

    state = status.run_status(run)
    print(json.dumps(state, indent=1) if as_json else status.format_status(state))
    return 0


def add_reader_command(commands, name: str, help: str, spec: str):
    """``supjax NAME RUN --config TOML --out DIR [--set] [--resume] [--quiet]``: a wing that reads a toy run."""
    command = commands.add_parser(name, help=help)
    command.add_argument("run", help="toy-model run directory (written by supjax sweep)")
    command.add_argument("--config", required=True, help=f"TOML file with {spec} keys")
    command.add_argument("--out", required=True, help=f"{name.upper()} run directory to create")
    command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    command.add_argument("--resume", action="store_true", help=f"continue the interrupted {name.upper()} run in --out")
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    return command


def figure_folder(run: str, out: str | None) -> Path:
    """Where ``supjax plot RUN [--out DIR]`` writes."""
    return Path(out) if out else Path(run) / "figures"
