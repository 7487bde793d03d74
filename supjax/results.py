"""Run directories: what a sweep writes and how to read it back.

A run directory holds

* ``config.toml``: the resolved SweepSpec (``supjax sweep DIR/config.toml`` reruns it);
* ``models.csv``: one row per model, its columns from the spec's declarations
  (:mod:`supjax.engine.table`): index, the grid axes as they nest (m, distribution,
  activation_density, seed, importance, weight_decay), the derived alpha, expected_active, lr_w,
  lr_b, and diverged_at: the step its loss stopped being finite, -1 if never (files written before
  2026-12-07 hold the same columns in another order; they are read by name);
* ``losses.npy``: ``[models, steps // log_every]`` float32, window means of n x MSE;
* ``probabilities.npz``: the feature frequencies p: [n] of every distribution and density;
* ``batches.json``: which models train together (kept so a resume trains the same batches);
* ``checkpoints/batch-KKK/STEP``: orbax checkpoints of every batch; the last one of each
  (STEP = steps) holds the final parameters that :func:`load_run` reads;
* ``run.json``: versions, device, wall time.

This module imports nothing from the training side.
"""

from __future__ import annotations

import csv
import html
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from supjax.config import RESOLVED_FIELDS, RESULT_FIELDS, SweepSpec, distribution_key
from supjax.engine import rundir, table
from supjax.engine.rundir import save_atomic, write_atomic
from supjax.errors import ConfigError, RunDirError

# models.csv's columns, from the spec's declarations (supjax.engine.table).
COLUMNS = table.names(SweepSpec)


@dataclass
class Run:
    """A finished sweep: the spec, the model table, loss curves and final parameters."""

    spec: SweepSpec
    models: list[dict]
    losses: np.ndarray  # [models, logs]
    # width -> {"W": [k, n, m], "b": [k, n], "index": [k]} and any other parameter of the model
    # (the untied model's "W_decoder": [k, n, m])
    params: dict[int, dict[str, np.ndarray]]
    probabilities: dict[str, np.ndarray]  # distribution_key(label, density) -> p: [n]
    info: dict = field(default_factory=dict)
    path: Path | None = None  # the run directory it was loaded from or written to

    def weights(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(W [n, m], b [n]) of model ``index``."""
        group = self.params[self.models[index]["m"]]
        k = int(np.flatnonzero(group["index"] == index)[0])
        return group["W"][k], group["b"][k]

    def feature_probabilities(self, index: int) -> np.ndarray:
        """The feature frequencies p: [n] that model ``index`` was trained on."""
        row = self.models[index]
        return self.probabilities[distribution_key(row["distribution"], row["activation_density"])]

    def final_loss(self, last_steps: int = 100, step: int | None = None) -> np.ndarray:
        """Mean loss over the last ``last_steps`` training steps of every model: ``[models]``.

        The paper's final loss (its code logs every step); with ``log_every`` > 1 this is
        the mean of the last ``last_steps // log_every`` logged windows (at least one).
        With ``step``, the same over the steps before ``step`` (the loss at a snapshot).
        NaN for a model that diverged.
        """
        windows = max(1, last_steps // self.spec.log_every)
        end = self.losses.shape[1] if step is None else step // self.spec.log_every
        return self.losses[:, max(0, end - windows) : end].mean(axis=1)

    def to_xarray(self, steps: str = "all"):
        """The run as an ``xarray.Dataset``: one dimension per grid axis that varies, and ``step``
        (see :mod:`supjax.labelled`); with the run directory's summary and trajectory tables."""
        from supjax import labelled

        return labelled.to_xarray(self, self.path, steps)

    def _repr_html_(self) -> str:
        """The run at a glance in a notebook: the grid, where it lives, the final losses per width."""
        spec, final = self.spec, self.final_loss()
        seconds = self.info.get("seconds")
        trained = f", trained in {seconds:.0f} s on {self.info.get('device', '?')}" if seconds else ""
        where = f"<code>{html.escape(str(self.path))}</code>" if self.path else "in memory (no run directory)"
        axes = [
            (name, values)
            for name, values in (
                ("widths m", spec.widths),
                ("weight decays", spec.weight_decays),
                ("importances", spec.importance_labels),
                ("distributions", spec.distributions),
                ("activation densities", spec.activation_densities),
                ("seeds", spec.seeds),
            )
            if len(values) > 1 or name == "widths m"
        ]
        diverged = sum(row.get("diverged_at", -1) >= 0 for row in self.models)
        widths = np.array([row["m"] for row in self.models])
        gammas = np.array([row["weight_decay"] for row in self.models])
        columns = np.unique(gammas)
        by_width = [
            [f"m = {m}", *(_mean(final[(widths == m) & (gammas == gamma)]) for gamma in columns)]
            for m in np.unique(widths)
        ]
        return (
            f"<div><b>supjax.Run</b>: {len(self.models)} models, n = {spec.n}, {spec.steps} steps, "
            f"model {html.escape(spec.model)}{html.escape(trained)}<br>run directory: {where}"
            + (f"<br><b>{diverged} diverged</b>" if diverged else "")
            + _html_table(["grid axis", "values"], [[k, ", ".join(map(str, v))] for k, v in axes])
            + "final loss (n x MSE, mean of the last 100 steps; mean over the other axes):"
            + _html_table(["", *(f"gamma = {gamma:g}" for gamma in columns)], by_width)
            + "</div>"
        )

    def table(self, step: int | None = None):
        """The model table as a pandas DataFrame, with ``final_loss`` (at ``step`` if given)."""
        import pandas as pd

        frame = pd.DataFrame(self.models, columns=COLUMNS)
        frame["final_loss"] = self.final_loss(step=step)
        diverged_at = frame["diverged_at"]
        frame["diverged"] = (diverged_at >= 0) & (diverged_at < (self.spec.steps if step is None else step))
        return frame


def prepare_run_dir(path: str | Path) -> Path:
    """Refuse an existing non-empty directory, then create ``path``."""
    return rundir.prepare(path, "batches.json", starting=("config.toml", "models.csv"))


def start_run_dir(path: str | Path, spec: SweepSpec, rows: list[dict], batches: list[list[int]]) -> None:
    """Create the run directory with what a resume needs: the config and the batch layout."""
    path = prepare_run_dir(path)
    write_atomic(path / "config.toml", to_toml(spec.to_dict()))
    _write_models(path, rows)
    write_atomic(path / "batches.json", json.dumps(batches) + "\n")  # last: a run to resume


def saved_spec_and_batches(path: str | Path, spec: SweepSpec) -> tuple[SweepSpec, list[list[int]]]:
    """The spec to resume with and the saved batches of the run in ``path``.

    Refuses, naming the keys, a ``spec`` that differs from the saved one in a field that
    changes results; an unset ``batch_tile`` or ``stream_loop`` takes the saved one.
    """
    path = Path(path)
    if not (path / "config.toml").is_file() or not (path / "batches.json").is_file():
        raise RunDirError(path, "holds no run to resume; drop --resume to start one")
    saved = SweepSpec.from_toml(path / "config.toml")
    try:
        batches = json.loads((path / "batches.json").read_text())
    except (ValueError, OSError) as err:
        raise RunDirError(path, f"has a damaged batches.json ({err}); start a new run") from None
    unset = {k: getattr(saved, k) for k in RESOLVED_FIELDS if getattr(spec, k) is None}
    spec = spec.replace(**unset)
    differing = [k for k in RESULT_FIELDS if getattr(spec, k) != getattr(saved, k)]
    if differing:
        keys = ", ".join(f"{k} ({getattr(saved, k)!r} -> {getattr(spec, k)!r})" for k in differing)
        raise ConfigError("--resume", str(path), f"the config differs in {keys}; resume with the saved config.toml")
    return spec, batches


def save_run(run: Run, path: str | Path) -> None:
    """Write the tables of a finished ``run`` into its directory (parameters are in its checkpoints)."""
    path = Path(path)
    write_atomic(path / "config.toml", to_toml(run.spec.to_dict()))
    _write_models(path, run.models)
    save_atomic(path / "losses.npy", lambda f: np.save(f, run.losses))
    save_atomic(path / "probabilities.npz", lambda f: np.savez(f, **run.probabilities))
    write_atomic(path / "run.json", json.dumps(run.info, indent=2) + "\n")
    final = [str(p.relative_to(path)) for p in sorted((path / "checkpoints").glob(f"batch-*/{run.spec.steps}"))]
    rundir.seal(path, ["config.toml", "models.csv", "losses.npy", "probabilities.npz", *final])


def _write_models(path: Path, rows: list[dict]) -> None:
    def write(f):
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({"diverged_at": -1, **row} for row in rows)

    save_atomic(path / "models.csv", write, mode="w")


def read_toy_run(toy: str | Path | Run) -> tuple[Run, str | None]:
    """A toy run given as a directory or a :class:`Run`, and where it lives (None for one in memory):
    what the wings that read toy models (SAEs, LLC) start from."""
    if isinstance(toy, (str, Path)):
        return load_run(toy), str(Path(toy).resolve())
    return toy, (str(toy.path) if toy.path else None)


def load_run(path: str | Path) -> Run:
    """Read a finished run directory written by ``supjax sweep`` or :func:`supjax.run_sweep`."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(path, "does not exist; pass a run directory written by `supjax sweep`")
    for name in ("config.toml", "models.csv", "losses.npy", "probabilities.npz"):
        if not (path / name).is_file():
            raise RunDirError(
                path, _unfinished(path) or f"has no {name}; pass a finished run written by `supjax sweep`"
            )
    rundir.verify(path, "write them again with `supjax sweep DIR/config.toml --out DIR --resume`")
    spec = SweepSpec.from_toml(path / "config.toml")
    try:
        with open(path / "models.csv", newline="") as f:
            # A run written before importance was a grid axis has no column: its one importance.
            models = [{"importance": spec.importance_labels[0], **_typed_row(row)} for row in csv.DictReader(f)]
        with np.load(path / "probabilities.npz") as z:
            probabilities = {k: z[k] for k in z.files}
        info = json.loads((path / "run.json").read_text()) if (path / "run.json").is_file() else {}
        losses = np.load(path / "losses.npy")
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as err:
        raise RunDirError(path, f"has a damaged file ({err}); rerun with --resume to rewrite it") from None
    if len(models) != spec.num_models or losses.shape != (spec.num_models, spec.num_logs):
        raise RunDirError(path, "its tables do not match its config; rerun with --resume to rewrite them")
    return Run(spec, models, losses, _final_params(path, spec), probabilities, info, path)


def _final_params(path: Path, spec: SweepSpec) -> dict[int, dict[str, np.ndarray]]:
    """Final W, b of every model, from the last checkpoint of each batch."""
    from supjax import checkpoint

    batches = sorted((path / "checkpoints").glob("batch-*"))
    if not batches:
        raise RunDirError(path, "has no checkpoints/; pass a finished run written by `supjax sweep`")
    saved = []
    for directory in batches:
        restored = checkpoint.restore_latest(checkpoint.manager(directory), set_aside=False)
        if restored is None or restored[0] != spec.steps:
            raise RunDirError(path, "is not finished; continue it with `supjax sweep CONFIG --out DIR --resume`")
        saved.append(restored[1])
    return params_by_width(saved)


def _unfinished(path: Path) -> str | None:
    """What a run directory that a sweep started but did not finish says of itself, or None."""
    from supjax import lock

    try:
        progress = json.loads((path / "progress.json").read_text())
        batches = json.loads((path / "batches.json").read_text())
    except (OSError, ValueError):
        return None
    where = f"step {progress.get('step')} of {progress.get('steps')}"
    if len(batches) > 1:
        where += f" in batch {progress.get('batch', 0) + 1} of {len(batches)}"
    if lock.holder(path) is not None:
        return f"is still training ({where}); wait for it, or follow it with `supjax status {path}`"
    resume = f"supjax sweep {path}/config.toml --out {path} --resume"
    return f"is not finished (stopped at {where}); continue it with `{resume}`"


def params_by_width(saved: list[dict]) -> dict[int, dict[str, np.ndarray]]:
    """Per-width parameter stacks from saved batches (checkpoints or snapshots: each a dict
    with ``states``, one per width group with ``params`` of leading axes [D, G], and the
    groups' model ``index``): ``{m: {"W": [k, n, m], "b": [k, n], ..., "index": [k]}}``."""
    parts: dict[int, list] = {}
    for batch in saved:
        for group, index in zip(batch["states"], batch["index"], strict=True):
            real = np.asarray(index) >= 0  # multi-device batches pad with copies, index -1
            params = {k: np.asarray(v) for k, v in group["params"].items()}
            m = params["W"].shape[-1]
            parts.setdefault(m, []).append(
                {**{k: v.reshape(-1, *v.shape[2:])[real] for k, v in params.items()}, "index": np.asarray(index)[real]}
            )
    return {m: {k: np.concatenate([p[k] for p in ps]) for k in ps[0]} for m, ps in sorted(parts.items())}


def to_toml(values: dict) -> str:
    """Flat TOML for numbers, strings, booleans and lists of them (None is left out)."""
    lines = []
    for key, value in values.items():
        if value is None:
            continue
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def _typed_row(row: dict) -> dict:
    return table.typed(SweepSpec, row)


def _mean(values: np.ndarray) -> str:
    """The mean of the finite ``values``, in four digits ("diverged" if none is finite)."""
    finite = values[np.isfinite(values)]
    return f"{finite.mean():.4g}" if len(finite) else "diverged"


def _html_table(header: list[str], rows: list[list]) -> str:
    """A small HTML table (cells escaped) for :meth:`Run._repr_html_`."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table style="margin: 0.3em 0"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
