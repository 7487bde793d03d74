"""The toy models an SAE sweep reads (:class:`ToyModels`), and toy "models" built from weight
matrices: SAEs on any W whose feature distribution you name.

:func:`weights_run` wraps matrices ``W: [n, m]`` as an in-memory :class:`supjax.results.Run`, so
:func:`supjax.sae.run_sae` can train SAEs on a frame you built (an orthonormal basis, an ETF, a
random packing) as it does on trained toy models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from supjax import data
from supjax.config import SweepSpec
from supjax.engine import table
from supjax.results import COLUMNS, Run, to_toml, write_atomic

# The toy models' rows an SAE run keeps: the run's model table without what only training reads (the
# derived hyperparameters, diverged_at), with the final loss.
_TRAINING = {*(c.name for c in SweepSpec.DERIVED if c.traced), "diverged_at"}
TOY_COLUMNS = (*(c for c in COLUMNS if c not in _TRAINING), "final_loss")


@dataclass
class ToyModels:
    """The toy models an SAE sweep reads: the toy run's spec, the selected rows of its model table
    (in index order), and each one's ``W: [n, m]`` and ``p: [n]`` by model index."""

    spec: SweepSpec
    rows: list[dict]
    W: dict[int, np.ndarray]
    p: dict[int, np.ndarray]

    @classmethod
    def from_run(cls, run: Run, indices: list[int]) -> ToyModels:
        table = run.table()
        rows = []
        for index in sorted(indices):
            row = {k: run.models[index][k] for k in TOY_COLUMNS if k != "final_loss"}
            rows.append({**row, "final_loss": float(table.final_loss.iloc[index])})
        W = {r["index"]: np.asarray(run.weights(r["index"])[0], np.float32) for r in rows}
        p = {r["index"]: np.asarray(run.feature_probabilities(r["index"]), np.float64) for r in rows}
        return cls(run.spec, rows, W, p)

    @property
    def n(self) -> int:
        return self.spec.n

    def subset(self, indices) -> ToyModels:
        """The toy models of ``indices`` (model indices), in this table's order."""
        chosen = set(indices)
        rows = [r for r in self.rows if r["index"] in chosen]
        return ToyModels(self.spec, rows, {r["index"]: self.W[r["index"]] for r in rows},
                         {r["index"]: self.p[r["index"]] for r in rows})  # fmt: skip

    def save(self, path: Path) -> None:
        write_atomic(path / "toy_config.toml", to_toml(self.spec.to_dict()))
        write_atomic(path / "toy_models.csv", pd.DataFrame(self.rows, columns=TOY_COLUMNS).to_csv(index=False))
        arrays = {f"W_{i}": w for i, w in self.W.items()} | {f"p_{i}": p for i, p in self.p.items()}
        tmp = path / "toy_weights.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(path / "toy_weights.npz")

    @classmethod
    def load(cls, path: Path) -> ToyModels:
        spec = SweepSpec.from_toml(path / "toy_config.toml")
        frame = pd.read_csv(path / "toy_models.csv", keep_default_na=False, na_values=["", "nan", "NaN"])
        rows = []
        for record in frame.to_dict("records"):
            row = {k: record[k] for k in TOY_COLUMNS}
            row["index"], row["m"], row["seed"] = int(row["index"]), int(row["m"]), int(row["seed"])
            rows.append(row)
        with np.load(path / "toy_weights.npz") as z:
            W = {r["index"]: z[f"W_{r['index']}"] for r in rows}
            p = {r["index"]: z[f"p_{r['index']}"] for r in rows}
        return cls(spec, rows, W, p)

    def same_as(self, other: ToyModels) -> bool:
        """The same models with the same weights and frequencies (a resume must read what it started on)."""
        return (
            [r["index"] for r in self.rows] == [r["index"] for r in other.rows]
            and self.spec.n == other.spec.n
            and all(np.array_equal(self.W[i], other.W[i]) for i in self.W)
            and all(np.array_equal(self.p[i], other.p[i]) for i in self.p)
        )


def weights_run(
    W,
    distribution: str = "power:1.0",
    weight_decays=None,
    feature_values: str = "uniform_0_2",
    activation_density: float = 0.0,
    **sampler,
) -> Run:
    """A Run whose models are the matrices ``W`` (one ``[n, m]``, or a sequence of them: widths may
    differ, n may not), their features
    drawn from ``distribution`` (a SweepSpec distribution label) with ``feature_values``.

    Model i has seed i and weight decay ``weight_decays[i]`` (default 0: a label only, used by the
    SAE tables' ``regime``). ``sampler``: SweepSpec's sampler fields (``correlation_block``,
    ``correlation``, ``exclusive_blocks``, ``unit_values``). Example:

        >>> import numpy as np
        >>> run = weights_run(np.eye(16), distribution="constant:0.0625")  # 16 orthonormal features
        >>> one = weights_run(np.eye(16), "constant:0.0625", correlation_block=16, exclusive_blocks=True)  # L0 = 1
    """
    W = [np.asarray(W, np.float32)] if np.ndim(W[0]) == 1 else [np.asarray(w, np.float32) for w in W]
    count, n = len(W), W[0].shape[0]
    gammas = [0.0] * count if weight_decays is None else [float(g) for g in weight_decays]
    label = data.canonical_label(distribution)
    spec = SweepSpec(
        n=n,
        widths=tuple(sorted({int(w.shape[1]) for w in W})),
        weight_decays=tuple(dict.fromkeys(gammas)),
        distribution=(label,),
        activation_densities=(activation_density,),
        seeds=tuple(range(count)),
        feature_values=feature_values,
        steps=1,
        warmup_steps=0,
        log_every=1,
        progress=False,
        **sampler,
    )
    models, params = [], {}
    for i, (w, gamma) in enumerate(zip(W, gammas, strict=True)):
        m = int(w.shape[1])
        axes = {"m": m, "weight_decay": gamma, "distribution": label, "activation_density": activation_density}
        row = table.complete(spec, {"index": i, **axes, "seed": i, "importance": "uniform"})
        models.append({**row, "diverged_at": -1})
        group = params.setdefault(m, {"W": [], "b": [], "index": []})
        group["W"].append(w)
        group["b"].append(np.zeros(n, np.float32))
        group["index"].append(i)
    params = {m: {k: np.stack(v) if k != "index" else np.array(v) for k, v in g.items()} for m, g in params.items()}
    losses = np.zeros((count, 1), np.float32)
    return Run(spec, models, losses, params, dict(spec.feature_probabilities), {"source": "weights_run"})
