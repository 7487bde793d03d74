"""The LLC wing's run: ``run_llc(toy_run, spec, out)`` reads top to bottom.

1. the toy run and its selected w* (:func:`supjax.llc.layout.anchors_of`) and the layout, every
   check done before anything compiles;
2. the run directory: a new one is written (``llc.toml``, the chain table ``chains.csv``), or, with
   ``resume``, the saved config must match in every field that changes results;
3. the engine's driver (:func:`supjax.engine.driver.train`) from the newest readable checkpoint to the
   last draw, with its hooks (checkpoints, progress.json, SIGTERM and SIGINT after the chunk in flight);
4. the traces (``traces.npz``) and the tables (``llc.csv`` per chain, ``llc_summary.csv`` per w* and
   setting: :mod:`supjax.llc.results`) written into ``out``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import time
from pathlib import Path

import jax
import numpy as np

from supjax.engine import driver, rundir
from supjax.engine.spec import resume_diff
from supjax.errors import ConfigError, ReaderInterrupted, RunDirError
from supjax.llc import layout
from supjax.llc.results import LlcRun, write_tables
from supjax.llc.spec import LlcSpec
from supjax.results import Run, read_toy_run, to_toml, write_atomic


class LlcInterrupted(ReaderInterrupted):
    """An LLC run stopped by a signal after checkpointing."""

    def __init__(self, signum: int, step: int, steps: int, out, toy):
        super().__init__("llc", signum, step, steps, out, toy, unit="draw")


def run_llc(toy: str | Path | Run, spec: LlcSpec, out: str | Path | None = None, resume: bool = False) -> LlcRun:
    """Estimate the LLC of every selected toy model of ``toy`` (a run directory or a
    :class:`~supjax.results.Run`) with every setting of ``spec``; with ``out``, checkpoint into it and
    write its tables. ``resume=True`` continues an interrupted run in ``out`` with the same numbers.

    Example:
        >>> llc = run_llc("runs/phase", LlcSpec(step_sizes=(1e-4, 3e-4), chains=4, draws=400), out="runs/llc")
        >>> llc.summary()  # one row per w* and setting: llc_mean, llc_std, acceptance, passes, ...
    """
    spec = spec.validate()
    run, source = read_toy_run(toy)
    anchors = layout.anchors_of(run, spec)
    with contextlib.ExitStack() as stack:
        stop = stack.enter_context(driver.StopOnSignal())
        if out is not None:
            if resume:
                spec = _check_resume(Path(out), spec, source)
            out = rundir.claim(stack, out, resume, "llc.toml", ("toy_run.json", "chains.csv"))
        plan = layout.plan(spec, run, anchors)
        if out is not None and not resume:
            write_atomic(out / "toy_run.json", json.dumps({"toy_run": source}) + "\n")
            _write_chains(out, plan.rows)
            write_atomic(out / "llc.toml", to_toml(_flat(spec)) + _selection_toml(spec))  # last: a run to resume
        started = time.perf_counter()
        bar = driver.Report(spec.draws, [len(plan.rows)], out, spec.progress, unit="draw", what="chains")
        report = stack.enter_context(bar)

        def interrupted(signum: int, step: int) -> LlcInterrupted:
            return LlcInterrupted(signum, step, spec.draws, out, source)

        ids = [r["chain_index"] for r in plan.rows]
        logs, _ = driver.train_one_batch(plan.job(), out, stop, report, ids, spec.max_to_keep, interrupted)
        info = {"toy_run": source, "seconds": time.perf_counter() - started, "device": jax.devices()[0].device_kind}
        result = LlcRun(spec, plan.rows, logs, info, out)
        if out is not None:
            np.savez(out / "traces.npz", **result.traces)
            write_atomic(out / "run.json", json.dumps(info, indent=2) + "\n")
            rundir.seal(out, ["llc.toml", "chains.csv", "traces.npz"])
            write_tables(result)
    return result


def _flat(spec: LlcSpec) -> dict:
    values = spec.to_dict()
    values.pop("select")
    return values


def _selection_toml(spec: LlcSpec) -> str:
    if not spec.select:
        return ""
    return "\n[select]\n" + to_toml({k: list(v) for k, v in spec.select.items()})


def _write_chains(out: Path, rows: list[dict]) -> None:
    def write(f):
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    rundir.save_atomic(out / "chains.csv", write, mode="w")


def _check_resume(out: Path, spec: LlcSpec, source) -> LlcSpec:
    """The spec to resume with; refuses one whose config or toy run differs from the saved ones (one line)."""
    if not (out / "llc.toml").is_file() or not (out / "toy_run.json").is_file():
        raise RunDirError(out, "holds no LLC run to resume; drop --resume to start one")
    spec = resume_diff(LlcSpec.saved(out / "llc.toml"), spec, out, "llc.toml")
    saved = json.loads((out / "toy_run.json").read_text()).get("toy_run")
    if source is not None and saved is not None and saved != source:
        raise ConfigError("--resume", str(out), f"it estimated the toy run {saved}; pass that run")
    return spec
