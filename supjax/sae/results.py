"""SAE run directories: what ``supjax sae`` writes and how to read it back.

An SAE run directory holds

* ``sae.toml``: the resolved :class:`~supjax.sae.spec.SaeSpec` (what marks it as an SAE run);
* ``toy_config.toml``, ``toy_models.csv``, ``toy_weights.npz``: the toy models the SAEs read (the
  toy run's config, the selected rows of its models.csv with their final loss, and each model's
  W: [n, m] and feature frequencies p: [n]), so the directory stands alone;
* ``saes.csv``: one row per SAE (architecture, toy model, sparsity, dictionary ratio and size, lr,
  seed, the toy model's input scale);
* ``batches.json``: the toy models (indices) of every batch, trained one after the other (kept so
  a resume trains the same batches; a run written before batches has none: one batch);
* ``checkpoints/STEP``: orbax checkpoints of every SAE's state; the last one (STEP = steps)
  holds the final parameters (``checkpoints/batch-KKK/STEP``, one folder per batch, when the run
  trains in several); ``snapshots/STEP`` (or ``snapshots/batch-KKK/STEP``) with ``snapshot_steps``;
* ``losses.npy``, ``l0.npy``: ``[saes, steps // log_every]`` window means of ||h - h_hat||^2
  (in the scaled units the SAE trains on) and of the active latents per sample;
* ``run.json``: the toy run it came from, device, wall time;
* ``sae_summary.csv``, ``sae_features.npz``: the evaluation (:mod:`supjax.sae.evaluate`).
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from supjax.engine import rundir
from supjax.engine.layout import unpadded
from supjax.errors import RunDirError
from supjax.results import to_toml, write_atomic
from supjax.sae.spec import SaeSpec
from supjax.sae.toys import ToyModels

SAE_COLUMNS = (
    "sae",
    "architecture",
    "model",
    "sparsity",
    "dictionary_ratio",
    "dictionary_size",
    "lr",
    "seed",
    "input_scale",
)


@dataclass
class SaeRun:
    """A finished SAE sweep: the spec, the toy models, one row per SAE, curves and final states."""

    spec: SaeSpec
    toys: ToyModels
    saes: list[dict]  # the SAE table (SAE_COLUMNS), in SAE order
    losses: np.ndarray  # [saes, logs] ||h - h_hat||^2, window means
    l0: np.ndarray  # [saes, logs] active latents per sample, window means
    states: tuple  # per group: {"params": {...: [T, S, ...]}, "buffers": {...}} (host arrays)
    index: tuple  # per group: [T, S] SAE indices
    info: dict = field(default_factory=dict)
    path: Path | None = None
    batches: list[list[int]] | None = None  # the toy models of every batch trained (None: one batch of all)

    @property
    def toy_batches(self) -> list[list[int]]:
        """The toy models (indices) of every batch, in the order they trained."""
        return self.batches or [[r["index"] for r in self.toys.rows]]

    def params(self, sae: int) -> dict[str, np.ndarray]:
        """The parameters of SAE ``sae``, trimmed to its own d latents: ``W_enc: [m, d]``,
        ``b_enc: [d]``, ``W_dec: [d, m]`` (row j: latent j's direction), ``b_dec: [m]``, and
        ``log_threshold: [d]`` (jumprelu), ``threshold`` (batchtopk's evaluation threshold)."""
        for state, index in zip(self.states, self.index, strict=True):
            where = np.argwhere(np.asarray(index) == sae)
            if len(where):
                t, s = where[0]
                d = self.saes[sae]["dictionary_size"]
                out = {}
                for name, value in state["params"].items():
                    value = np.asarray(value)[t, s]
                    out[name] = value[..., :d] if name in ("W_enc", "b_enc", "log_threshold") else value
                out["W_dec"] = out["W_dec"][:d]
                for name, value in state["buffers"].items():
                    out[name] = np.asarray(value)[t, s]
                return out
        raise IndexError(f"no SAE {sae}; the run has {len(self.saes)}")

    @property
    def snapshot_steps(self) -> list[int]:
        """The steps whose parameters the run kept (``snapshot_steps``), oldest first."""
        if self.path is None:
            return []
        count, steps = len(self.toy_batches), []
        for k in range(count):  # those every batch kept (a resume may change snapshot_steps)
            kept = rundir.batch_directory(self.path, "snapshots", k, count)
            steps.append({int(p.name) for p in kept.iterdir() if p.name.isdigit()} if kept.is_dir() else set())
        return sorted(set.intersection(*steps))

    def at_step(self, step: int) -> SaeRun:
        """The run as it stood at snapshot ``step``: the snapshot's parameters and the curves up to
        it, so that ``run.at_step(s).evaluate(write=False)`` is every SAE's recovery at step s."""
        if step not in self.snapshot_steps:
            kept = ", ".join(map(str, self.snapshot_steps)) or "none; train with snapshot_steps"
            raise RunDirError(self.path or "the run", f"has no snapshot at step {step}; it keeps {kept}")
        index, states = _restore_batches(self.path, "snapshots", step, self.toy_batches, self.saes)
        windows = step // self.spec.log_every
        return dataclasses.replace(self, losses=self.losses[:, :windows], l0=self.l0[:, :windows], states=states,
                                   index=index, info={**self.info, "step": step}, path=None)  # fmt: skip

    def table(self) -> pd.DataFrame:
        """The SAE table with the last logged window's ``final_mse`` and ``final_l0``."""
        frame = pd.DataFrame(self.saes, columns=SAE_COLUMNS)
        frame["final_mse"] = self.losses[:, -1]
        frame["final_l0"] = self.l0[:, -1]
        return frame

    def evaluate(self, write: bool = True) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """Every SAE against the ground truth (:func:`supjax.sae.evaluate.evaluate`); written into
        the run directory as ``sae_summary.csv`` and ``sae_features.npz`` when it has one."""
        from supjax.sae import evaluate

        summary, features = evaluate.evaluate(self)
        if write and self.path is not None:
            evaluate.save(self.path, summary, features)
        return summary, features


def spec_toml(spec: SaeSpec) -> str:
    """``sae.toml``: the spec's flat keys, then the selection as a ``[select]`` table."""
    values = spec.to_dict()
    selection = values.pop("select")
    text = to_toml(values)
    if selection:
        text += "\n[select]\n" + to_toml(selection)
    return text


def is_sae_run(path: str | Path) -> bool:
    """Whether ``path`` is an SAE run directory (it holds ``sae.toml``)."""
    return (Path(path) / "sae.toml").is_file()


def write_saes(path: Path, rows: list[dict]) -> None:
    write_atomic(path / "saes.csv", pd.DataFrame(rows, columns=SAE_COLUMNS).to_csv(index=False))


def read_batches(path: Path | None, toys: ToyModels) -> list[list[int]]:
    """The toy models of every batch of the SAE run in ``path`` (one batch of every toy model for a
    run written before batches, or without a run directory); each toy model in exactly one batch."""
    everything = [r["index"] for r in toys.rows]
    return (rundir.read_batches(path, everything) if path is not None else None) or [everything]


def read_saes(path: Path) -> list[dict]:
    frame = pd.read_csv(path / "saes.csv")
    return [
        {**row, "sae": int(row["sae"]), "model": int(row["model"]), "dictionary_size": int(row["dictionary_size"]),
         "seed": int(row["seed"])}
        for row in frame.to_dict("records")
    ]  # fmt: skip


def load_sae_run(path: str | Path) -> SaeRun:
    """Read a finished SAE run directory written by ``supjax sae`` or :func:`supjax.sae.run_sae`."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(path, "does not exist; pass an SAE run directory written by `supjax sae`")
    for name in ("sae.toml", "toy_config.toml", "toy_models.csv", "toy_weights.npz", "saes.csv", "losses.npy"):
        if not (path / name).is_file():
            raise RunDirError(path, f"has no {name}; pass a finished SAE run written by `supjax sae`")
    rundir.verify(path, "write them again with `supjax sae TOY_RUN --config DIR/sae.toml --out DIR --resume`")
    spec = SaeSpec.from_toml(path / "sae.toml")
    try:
        toys = ToyModels.load(path)
        saes = read_saes(path)
        losses, l0 = np.load(path / "losses.npy"), np.load(path / "l0.npy")
        info = json.loads((path / "run.json").read_text()) if (path / "run.json").is_file() else {}
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as err:
        raise RunDirError(path, f"has a damaged file ({err}); train it again with --resume") from None
    if losses.shape != (len(saes), spec.steps // spec.log_every):
        raise RunDirError(path, "its tables do not match its sae.toml; train it again with --resume")
    batches = read_batches(path, toys)
    for k in range(len(batches)):
        if not (rundir.batch_directory(path, "checkpoints", k, len(batches)) / str(spec.steps)).is_dir():
            raise RunDirError(
                path,
                f"is not finished; continue it: supjax sae TOY_RUN --config {path}/sae.toml --out {path} --resume",
            )
    index, states = _restore_batches(path, "checkpoints", spec.steps, batches, saes)
    return SaeRun(spec, toys, saes, losses, l0, states, index, info, path, batches)


def _restore_batches(path: Path, kind: str, step: int, batches: list[list[int]], saes: list[dict]) -> tuple:
    """The groups ``(index, states)`` of every batch's ``kind`` (checkpoints, snapshots) at ``step``,
    batch by batch; each batch's must hold the SAEs of its toy models (``saes``: the SAE table)."""
    from supjax import checkpoint

    index, states = (), ()
    for k, models in enumerate(batches):
        directory = rundir.batch_directory(path, kind, k, len(batches))
        i, s = _saved_groups(checkpoint.restore(directory, step))
        expected = sorted(r["sae"] for r in saes if r["model"] in set(models))
        if sorted(int(x) for group in i for x in np.asarray(group).reshape(-1)) != expected:
            where = directory.relative_to(Path(path).resolve())
            raise RunDirError(path, f"its {where}/{step} does not hold the SAEs batches.json names; start a new run")
        index, states = index + i, states + s
    return index, states


def _saved_groups(saved: dict) -> tuple[tuple, tuple]:
    """The [T, S] index and states of every group of a checkpoint or snapshot (saved flat by the engine)."""
    states = tuple({"params": g["params"], "buffers": g["buffers"]} for g in saved["states"])
    index = tuple(
        np.asarray(i).reshape(np.shape(g["params"]["W_dec"])[:2]) for i, g in zip(saved["index"], states, strict=True)
    )
    return unpadded_groups(index, states)


def unpadded_groups(index: tuple, states: tuple) -> tuple[tuple, tuple]:
    """Every group's [T, S] index and states without the toy-model rows that pad T for several devices."""
    pairs = [unpadded(i, s) for i, s in zip(index, states, strict=True)]
    return tuple(i for i, _ in pairs), tuple(s for _, s in pairs)
