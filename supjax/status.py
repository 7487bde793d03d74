"""Where a run directory stands, while a sweep trains it or after it stopped: ``supjax status RUN``.

Read from the files alone, without loading a checkpoint or importing the trainer:
``config.toml`` and ``batches.json`` (the models and batches), ``progress.json`` (the step
the running or last sweep reached, its rate, divergences so far; written at every chunk
end), the step names under ``checkpoints/batch-KKK/`` (what is checkpointed), ``lock``
(whether a process holds the directory) and ``losses.npy`` (finished).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from supjax import lock
from supjax.config import SweepSpec
from supjax.errors import RunDirError


def run_status(path: str | Path) -> dict:
    """The state of the run in ``path`` as plain values (what ``supjax status --json`` prints)."""
    path = Path(path)
    if not (path / "config.toml").is_file() or not (path / "batches.json").is_file():
        raise RunDirError(path, "holds no run (no config.toml or batches.json); pass a directory made by supjax sweep")
    spec = SweepSpec.from_toml(path / "config.toml")
    try:
        batches = json.loads((path / "batches.json").read_text())
        progress = json.loads((path / "progress.json").read_text()) if (path / "progress.json").is_file() else {}
    except (ValueError, OSError) as err:
        raise RunDirError(path, f"has a damaged batches.json or progress.json ({err}); rerun with --resume") from None
    holder = lock.holder(path)
    finished = (path / "losses.npy").is_file() and (path / "models.csv").is_file()
    rows = []
    for k, models in enumerate(batches):
        checkpointed = _checkpoint_steps(path / "checkpoints" / f"batch-{k:03d}")
        last = max(checkpointed, default=0)
        reached = last
        if progress.get("batch") == k:
            reached = max(reached, int(progress.get("step", 0)))
        elif progress.get("batch", -1) > k:
            reached = spec.steps
        rows.append({"batch": k, "models": len(models), "step": reached, "checkpointed": last})
    done = sum(r["step"] * r["models"] for r in rows)
    total = spec.steps * spec.num_models
    status = {
        "run": str(path),
        "models": spec.num_models,
        "steps": spec.steps,
        "batches": rows,
        "model_steps_done": done,
        "model_steps_total": total,
        "finished": finished,
        "running": holder is not None,
        "holder": holder,
        "diverged": progress.get("diverged", []),
    }
    if progress:
        elapsed = float(progress["updated"]) - float(progress["started"])
        rate = progress.get("model_steps_trained", 0) / elapsed if elapsed > 0 else None
        status.update(elapsed_s=elapsed, model_steps_per_s=rate, updated=progress["updated"])
        if rate and not finished:
            status["eta_s"] = (total - done) / rate
    return status


def _checkpoint_steps(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def format_status(status: dict) -> str:
    """A few lines for people: the batches, the holder, rate and ETA, divergences."""
    batches = len(status["batches"])
    lines = [f"run {status['run']}: {status['models']} models x {status['steps']} steps, {batches} batch(es)"]
    for row in status["batches"]:
        lines.append(
            f"  batch {row['batch'] + 1}: {row['models']} models, step {row['step']} of {status['steps']}"
            f" (checkpointed at {row['checkpointed']})"
        )
    share = status["model_steps_done"] / max(status["model_steps_total"], 1)
    if status["finished"]:
        state = "finished; results written"
    elif status["running"]:
        state = f"running: the lock is held by {lock.describe(status['holder'])}"
    else:
        state = f"stopped (no process holds it); continue with: supjax sweep {status['run']}/config.toml"
        state += f" --out {status['run']} --resume"
    lines.append(f"  {share:.1%} done; {state}")
    if "elapsed_s" in status:
        rate = status.get("model_steps_per_s")
        timing = f"  elapsed {_duration(status['elapsed_s'])}"
        if rate:
            timing += f", {rate:.1f} model-steps/s"
        if "eta_s" in status and status["running"]:
            timing += f", about {_duration(status['eta_s'])} to go"
        age = time.time() - status["updated"]
        lines.append(timing + (f" (last report {_duration(age)} ago)" if status["running"] else ""))
    diverged = status["diverged"]
    lines.append(f"  diverged: {len(diverged)} model(s) {diverged[:10]}" if diverged else "  diverged: none so far")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
