"""Where a run directory stands, while a sweep trains it or after it stopped: ``supjax status RUN``.

Read from the files alone, without loading a checkpoint or importing the trainer, for a run of
any wing: its config and table (the toy models' ``config.toml`` and ``batches.json``, or an SAE
run's ``sae.toml`` and ``saes.csv``), ``progress.json`` (the step the running or last sweep
reached, its rate, divergences so far; written by the engine's driver at every chunk end), the
step names under the checkpoint directories (what is checkpointed), ``lock`` (whether a process
holds the directory) and the finished tables.
"""

from __future__ import annotations

import csv
import json
import time
import tomllib
from pathlib import Path

from supjax import lock
from supjax.config import SweepSpec
from supjax.engine import rundir
from supjax.errors import RunDirError


def run_status(path: str | Path) -> dict:
    """The state of the run in ``path`` as plain values (what ``supjax status --json`` prints)."""
    path = Path(path)
    if (path / "sae.toml").is_file():
        wing = _sae_run(path)
    elif (path / "llc.toml").is_file():
        wing = _llc_run(path)
    elif (path / "config.toml").is_file() and (path / "batches.json").is_file():
        wing = _toy_run(path)
    else:
        raise RunDirError(
            path, "holds no run (no config.toml and batches.json, nor sae.toml or llc.toml); pass a run directory"
        )
    try:
        progress = json.loads((path / "progress.json").read_text()) if (path / "progress.json").is_file() else {}
    except (ValueError, OSError) as err:
        raise RunDirError(path, f"has a damaged progress.json ({err}); rerun with --resume") from None
    holder = lock.holder(path)
    rows = []
    for k, (models, directory) in enumerate(zip(wing["batches"], wing["checkpoints"], strict=True)):
        last = max(_checkpoint_steps(directory), default=0)
        reached = last
        if progress.get("batch") == k:
            reached = max(reached, int(progress.get("step", 0)))
        elif progress.get("batch", -1) > k:
            reached = wing["steps"]
        rows.append({"batch": k, "models": models, "step": reached, "checkpointed": last})
    done = sum(r["step"] * r["models"] for r in rows)
    total = wing["steps"] * sum(wing["batches"])
    finished = wing["finished"]
    status = {
        "run": str(path),
        "kind": wing["kind"],
        "models": sum(wing["batches"]),
        "steps": wing["steps"],
        "batches": rows,
        "model_steps_done": done,
        "model_steps_total": total,
        "finished": finished,
        "running": holder is not None,
        "holder": holder,
        "diverged": progress.get("diverged", []),
        "resume": wing["resume"],
    }
    if progress:
        elapsed = float(progress["updated"]) - float(progress["started"])
        rate = progress.get("model_steps_trained", 0) / elapsed if elapsed > 0 else None
        status.update(elapsed_s=elapsed, model_steps_per_s=rate, updated=progress["updated"])
        if rate and not finished:
            status["eta_s"] = (total - done) / rate
    return status


def _toy_run(path: Path) -> dict:
    spec = SweepSpec.from_toml(path / "config.toml")
    try:
        batches = json.loads((path / "batches.json").read_text())
    except (ValueError, OSError) as err:
        raise RunDirError(path, f"has a damaged batches.json ({err}); start a new run") from None
    return {
        "kind": "toy",
        "steps": spec.steps,
        "batches": [len(b) for b in batches],
        "checkpoints": [path / "checkpoints" / f"batch-{k:03d}" for k in range(len(batches))],
        "finished": (path / "losses.npy").is_file() and (path / "models.csv").is_file(),
        "resume": f"supjax sweep {path}/config.toml --out {path} --resume",
    }


def _sae_run(path: Path) -> dict:
    wing = _one_batch_run(path, "sae", "sae.toml", "steps", "saes.csv", "sae_summary.csv")
    if not (path / "batches.json").is_file():  # one batch (and every run written before batches)
        return wing
    try:
        with open(path / "saes.csv", newline="") as f:
            models = [int(row["model"]) for row in csv.DictReader(f)]
    except (ValueError, OSError, KeyError, TypeError) as err:
        raise RunDirError(path, f"has a damaged saes.csv ({err}); start a new run") from None
    batches = rundir.read_batches(path, sorted(set(models)))
    wing["batches"] = [sum(m in set(b) for m in models) for b in batches]  # the SAEs of each batch
    wing["checkpoints"] = [rundir.batch_directory(path, "checkpoints", k, len(batches)) for k in range(len(batches))]
    return wing


def _llc_run(path: Path) -> dict:
    return _one_batch_run(path, "llc", "llc.toml", "draws", "chains.csv", "llc_summary.csv")


def _one_batch_run(path: Path, kind: str, config: str, steps: str, table: str, finished: str) -> dict:
    """A wing's run trained in one batch (SAEs, LLC chains): its config, its table and its finished table."""
    try:
        count = int(tomllib.loads((path / config).read_text())[steps])
        with open(path / table, newline="") as f:
            models = sum(1 for _ in csv.DictReader(f))
    except (ValueError, OSError, KeyError, tomllib.TOMLDecodeError) as err:
        raise RunDirError(path, f"has a damaged {config} or {table} ({err}); start a new run") from None
    return {
        "kind": kind,
        "steps": count,
        "batches": [models],
        "checkpoints": [path / "checkpoints"],
        "finished": (path / finished).is_file(),
        "resume": f"supjax {kind} TOY_RUN --config {path}/{config} --out {path} --resume",
    }


def _checkpoint_steps(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def format_status(status: dict) -> str:
    """A few lines for people: the batches, the holder, rate and ETA, divergences."""
    batches = len(status["batches"])
    what = {"sae": "SAEs", "llc": "chains"}.get(status.get("kind"), "models")
    lines = [f"run {status['run']}: {status['models']} {what} x {status['steps']} steps, {batches} batch(es)"]
    for row in status["batches"]:
        lines.append(
            f"  batch {row['batch'] + 1}: {row['models']} {what}, step {row['step']} of {status['steps']}"
            f" (checkpointed at {row['checkpointed']})"
        )
    share = status["model_steps_done"] / max(status["model_steps_total"], 1)
    if status["finished"]:
        state = "finished; results written"
    elif status["running"]:
        state = f"running: the lock is held by {lock.describe(status['holder'])}"
    else:
        state = f"stopped (no process holds it); continue with: {status['resume']}"
    lines.append(f"  {share:.1%} done; {state}")
    if "elapsed_s" in status:
        rate = status.get("model_steps_per_s")
        timing = f"  elapsed {_duration(status['elapsed_s'])}"
        if rate:
            step = {"sae": "SAE-steps", "llc": "chain-steps"}.get(status.get("kind"), "model-steps")
            timing += f", {rate:.1f} {step}/s"
        if "eta_s" in status and status["running"]:
            timing += f", about {_duration(status['eta_s'])} to go"
        age = time.time() - status["updated"]
        lines.append(timing + (f" (last report {_duration(age)} ago)" if status["running"] else ""))
    diverged = status["diverged"]
    lines.append(f"  diverged: {len(diverged)} {what} {diverged[:10]}" if diverged else "  diverged: none so far")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
