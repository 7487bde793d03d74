"""Parameter snapshots along training: which steps a run kept, and the weights at each.

A sweep with ``snapshot_steps`` keeps the full batched parameters (and the divergence
steps) of every model at those steps, in ``RUN/snapshots/batch-KKK/STEP`` (orbax, beside
the bounded resume checkpoints). This module reads them back in the layout of
:attr:`supjax.results.Run.params`, so everything that measures a run's final weights
measures a snapshot the same way. It imports nothing from the training side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from supjax import checkpoint
from supjax.errors import RunDirError
from supjax.results import params_by_width


def snapshot_steps(path: str | Path) -> list[int]:
    """The steps kept by every batch of the run in ``path`` (empty: no snapshots)."""
    batches = sorted((Path(path) / "snapshots").glob("batch-*"))
    if not batches:
        return []
    kept = [{int(p.name) for p in batch.iterdir() if p.name.isdigit()} for batch in batches]
    return sorted(set.intersection(*kept))


def load_snapshot(path: str | Path, step: int) -> dict[int, dict[str, np.ndarray]]:
    """``{m: {"W": [k, n, m], "b": [k, n], ..., "diverged_at": [k], "index": [k]}}`` at ``step``."""
    batches = sorted((Path(path) / "snapshots").glob("batch-*"))
    if not batches or step not in snapshot_steps(path):
        raise RunDirError(path, f"has no snapshot of step {step}; its snapshots are {snapshot_steps(path)}")
    saved = []
    for batch in batches:
        state = checkpoint.restore(batch, step)
        # diverged_at rides along as a parameter-shaped leaf so params_by_width lays it out too
        states = [{"params": {**g["params"], "diverged_at": g["diverged_at"]}} for g in state["states"]]
        saved.append({"states": states, "index": state["index"]})
    return params_by_width(saved)
