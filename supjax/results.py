"""Run directories: what a sweep writes and how to read it back.

A run directory holds

* ``config.toml``: the resolved SweepSpec (``supjax sweep DIR/config.toml`` reruns it);
* ``models.csv``: one row per model (index, m, weight_decay, distribution, alpha,
  activation_density, expected_active, seed, lr_w, lr_b, diverged_at: the step its loss
  stopped being finite, -1 if never);
* ``losses.npy``: ``[models, steps // log_every]`` float32, window means of n x MSE;
* ``probabilities.npz``: the feature frequencies p: [n] of every distribution and density;
* ``params/m{m}.npz``: final ``W: [k, n, m]``, ``b: [k, n]`` and ``index: [k]`` of each width;
* ``run.json``: versions, device, wall time.

This module imports nothing from the training side, so the analysis can read runs
without jax.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from supjax.config import ConfigError, SweepSpec

COLUMNS = (
    "index",
    "m",
    "weight_decay",
    "distribution",
    "alpha",
    "activation_density",
    "expected_active",
    "seed",
    "lr_w",
    "lr_b",
    "diverged_at",
)


@dataclass
class Run:
    """A finished sweep: the spec, the model table, loss curves and final parameters."""

    spec: SweepSpec
    models: list[dict]
    losses: np.ndarray  # [models, logs]
    params: dict[int, dict[str, np.ndarray]]  # width -> {"W": [k, n, m], "b": [k, n], "index": [k]}
    probabilities: dict[str, np.ndarray]  # distribution_key(label, density) -> p: [n]
    info: dict = field(default_factory=dict)

    def weights(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(W [n, m], b [n]) of model ``index``."""
        group = self.params[self.models[index]["m"]]
        k = int(np.flatnonzero(group["index"] == index)[0])
        return group["W"][k], group["b"][k]

    def feature_probabilities(self, index: int) -> np.ndarray:
        """The feature frequencies p: [n] that model ``index`` was trained on."""
        row = self.models[index]
        return self.probabilities[distribution_key(row["distribution"], row["activation_density"])]

    def final_loss(self, last_steps: int = 100) -> np.ndarray:
        """Mean loss over the last ``last_steps`` training steps of every model: ``[models]``.

        The paper's final loss (its code logs every step); with ``log_every`` > 1 this is
        the mean of the last ``last_steps // log_every`` logged windows (at least one).
        NaN for a model that diverged.
        """
        windows = max(1, last_steps // self.spec.log_every)
        return self.losses[:, -windows:].mean(axis=1)

    def table(self):
        """The model table as a pandas DataFrame, with ``final_loss``."""
        import pandas as pd

        frame = pd.DataFrame(self.models, columns=COLUMNS)
        frame["final_loss"] = self.final_loss()
        frame["diverged"] = frame["diverged_at"] >= 0
        return frame


def distribution_key(label: str, activation_density: float) -> str:
    """The name under which a run stores the probabilities of a distribution and density."""
    return f"{label}@{float(activation_density)!r}"


def prepare_run_dir(path: str | Path) -> Path:
    """Refuse an existing non-empty directory, then create ``path``."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError("--out", str(path), "exists and is not empty; choose a new directory or remove it")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            "--out", str(path), f"cannot write there ({err.strerror}); choose a writable directory"
        ) from None
    return path


def save_run(run: Run, path: str | Path) -> None:
    """Write ``run`` into the directory ``path`` (created by :func:`prepare_run_dir`)."""
    path = Path(path)
    (path / "params").mkdir(exist_ok=True)
    _write_atomic(path / "config.toml", to_toml(run.spec.to_dict()))
    with open(path / "models.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(run.models)
    np.save(path / "losses.npy", run.losses)
    np.savez(path / "probabilities.npz", **run.probabilities)
    for m, group in run.params.items():
        np.savez(path / "params" / f"m{m}.npz", **group)
    _write_atomic(path / "run.json", json.dumps(run.info, indent=2) + "\n")


def load_run(path: str | Path) -> Run:
    """Read a run directory written by ``supjax sweep`` or :func:`supjax.run_sweep`."""
    path = Path(path)
    for name in ("config.toml", "models.csv", "losses.npy", "probabilities.npz"):
        if not (path / name).is_file():
            raise ConfigError("RUN_DIR", str(path), f"has no {name}; pass a directory written by `supjax sweep`")
    spec = SweepSpec.from_toml(path / "config.toml")
    with open(path / "models.csv", newline="") as f:
        models = [_typed_row(row) for row in csv.DictReader(f)]
    params = {}
    for file in sorted((path / "params").glob("m*.npz")):
        with np.load(file) as z:
            params[int(file.stem[1:])] = {k: z[k] for k in z.files}
    with np.load(path / "probabilities.npz") as z:
        probabilities = {k: z[k] for k in z.files}
    info = json.loads((path / "run.json").read_text()) if (path / "run.json").is_file() else {}
    return Run(spec, models, np.load(path / "losses.npy"), params, probabilities, info)


def to_toml(values: dict) -> str:
    """Flat TOML for numbers, strings, booleans and lists of them (None is left out)."""
    lines = []
    for key, value in values.items():
        if value is None:
            continue
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def _typed_row(row: dict) -> dict:
    out = dict(row)
    for key in ("index", "m", "seed", "diverged_at"):
        out[key] = int(row[key])
    for key in ("weight_decay", "alpha", "activation_density", "expected_active", "lr_w", "lr_b"):
        out[key] = float(row[key]) if row[key] not in ("", "nan") else math.nan
    return out


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
