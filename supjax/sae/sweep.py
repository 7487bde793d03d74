"""The SAE wing's sweep: ``run_sae(toy_run, spec, out)`` reads top to bottom.

1. the toy models (a run directory or a :class:`supjax.results.Run`; the spec's selection), the SAE
   table and the batches of toy models that fit the device (:mod:`supjax.sae.layout`), all checks
   done before anything compiles;
2. the run directory: a new one is written (its config with the backend's choices resolved, the toy
   models, the SAE table, the batches), or, with ``resume``, the saved one must match in every field
   that changes results (:func:`supjax.engine.spec.resume_diff`) and its batches are kept;
3. batch by batch, the engine's driver (:func:`supjax.engine.driver.train`) from the newest readable
   checkpoint to the last step, with its hooks: a checkpoint every ``checkpoint_every`` steps, at the
   end, and when SIGTERM or SIGINT asks to stop (after the chunk in flight), and the report (progress
   bar and ``RUN/progress.json``, which ``supjax status`` reads); a resumed run gives the same numbers;
4. the tables and the evaluation (:mod:`supjax.sae.evaluate`) written into ``out``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from pathlib import Path

import jax
import numpy as np

from supjax.engine import driver, rundir
from supjax.engine.spec import resume_diff
from supjax.errors import ConfigError, ReaderInterrupted, RunDirError
from supjax.results import Run, read_toy_run, write_atomic
from supjax.sae import layout
from supjax.sae.results import SaeRun, read_batches, spec_toml, unpadded_groups, write_saes
from supjax.sae.spec import SaeSpec
from supjax.sae.toys import ToyModels

# What a start writes before sae.toml (toy_weights.npz through a temporary file, toy_weights.tmp.npz).
SAE_STARTING = (
    "toy_config.toml", "toy_models.csv", "toy_weights.tmp.npz", "toy_weights.npz", "saes.csv", "batches.json"
)  # fmt: skip


class SaeInterrupted(ReaderInterrupted):
    """An SAE sweep stopped by a signal after checkpointing."""

    def __init__(self, signum: int, step: int, steps: int, out, toy, batch: int = 0, batches: int = 1):
        super().__init__("sae", signum, step, steps, out, toy, batch=batch, batches=batches)


def run_sae(toy: str | Path | Run, spec: SaeSpec, out: str | Path | None = None, resume: bool = False) -> SaeRun:
    """Train every SAE of ``spec`` on the selected toy models of ``toy`` (a run directory or a
    :class:`~supjax.results.Run`); with ``out``, checkpoint into it, and write its tables and the
    evaluation. ``resume=True`` continues an interrupted run in ``out`` with the same numbers.

    Example:
        >>> saes = run_sae("runs/phase", SaeSpec(architectures=("topk",), ks=(1, 2), steps=2000), out="runs/sae")
        >>> summary, features = saes.evaluate()  # one row per SAE: mcc, fvu, sae_l0, ...
    """
    spec = spec.validate()
    run, source = read_toy_run(toy)
    chosen = spec.check_against(run.spec.n, run.models)
    toys = ToyModels.from_run(run, chosen)
    with contextlib.ExitStack() as stack:
        stop = stack.enter_context(driver.StopOnSignal())
        if out is not None:
            if resume:
                spec = _check_resume(Path(out), spec, toys)
            out = rundir.claim(stack, out, resume, "sae.toml", SAE_STARTING, what="an SAE run")
        spec = layout.resolve_for_backend(spec)  # after the resume diff: a saved sae_block is kept
        devices = jax.device_count()
        if resume:
            batches = read_batches(out, toys)
            layout.check_batches_fit(spec, toys, batches, devices)
        else:
            batches = layout.split_batches(spec, toys, devices)
        table = layout.sae_table(spec, toys)
        if out is not None and not resume:
            toys.save(out)
            write_saes(out, table)
            write_atomic(out / "batches.json", json.dumps(batches) + "\n")
            write_atomic(out / "sae.toml", spec_toml(spec))  # last: a run to resume
        started = time.perf_counter()
        per_batch = [sum(r["model"] in set(b) for r in table) for b in batches]
        report = stack.enter_context(driver.Report(spec.steps, per_batch, out, spec.progress, "SAE-step", "SAEs"))
        losses, l0 = (np.full((len(table), spec.steps // spec.log_every), np.nan, np.float32) for _ in range(2))
        index, states = [], []
        for k, models in enumerate(batches):
            plan = layout.plan(spec, toys.subset(models), devices, table)
            ids = [r["sae"] for r in plan.rows]
            interrupted = functools.partial(SaeInterrupted, steps=spec.steps, out=out, toy=source, batch=k,
                                            batches=len(batches))  # fmt: skip
            logs, batch_states = driver.train_one_batch(
                plan.job(), out, stop, report, ids, spec.max_to_keep, interrupted, kept, k, len(batches)
            )
            losses[ids], l0[ids] = logs["losses"], logs["l0"]
            groups = unpadded_groups(tuple(g.index for g in plan.groups), tuple(map(kept, batch_states)))
            index += groups[0]
            states += groups[1]
        info = {"toy_run": source, "seconds": time.perf_counter() - started, "device": jax.devices()[0].device_kind}
        result = SaeRun(spec, toys, table, losses, l0, tuple(states), tuple(index), info, out, batches)
        if out is not None:
            np.save(out / "losses.npy", losses)
            np.save(out / "l0.npy", l0)
            write_atomic(out / "run.json", json.dumps(info, indent=2) + "\n")
            tables = ["sae.toml", "saes.csv", "toy_config.toml", "toy_models.csv", "toy_weights.npz", "losses.npy"]
            tables += ["batches.json"] if (out / "batches.json").is_file() else []  # none in a run from before batches
            last = (
                rundir.batch_directory(out, "checkpoints", k, len(batches)) / str(spec.steps)
                for k in range(len(batches))
            )
            rundir.seal(out, [*tables, "l0.npy", *(str(f.relative_to(out.resolve())) for f in last)])
            result.evaluate(write=True)
    return result


def kept(state) -> dict:
    """What a snapshot and a finished run keep of a group's state: the parameters and the buffers."""
    return {"params": state.params, "buffers": state.buffers}


def _check_resume(out: Path, spec: SaeSpec, toys: ToyModels) -> SaeSpec:
    """The spec to resume with; refuses one whose config or toy models differ from the saved ones (one line)."""
    if not (out / "sae.toml").is_file() or not (out / "toy_weights.npz").is_file():
        raise RunDirError(out, "holds no SAE run to resume; drop --resume to start one")
    spec = resume_diff(SaeSpec.from_toml(out / "sae.toml"), spec, out, "sae.toml")
    if not ToyModels.load(out).same_as(toys):
        raise ConfigError("--resume", str(out), "its toy models differ from this run's; pass the toy run it started on")
    return spec
