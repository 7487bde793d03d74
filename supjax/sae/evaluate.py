"""Every SAE of a sweep against the ground truth: the true features are the toy model's rows W_i.

:func:`evaluate` runs one jitted pass over a fresh evaluation batch for all SAEs
(:func:`supjax.sae.program.make_evaluate`), then matches each SAE's decoder directions to the true
feature directions on the host. One row per SAE, with these columns beside its hyperparameters and
its toy model's grid values and geometry (:mod:`supjax.metrics`):

* ``true_l0``: active features per sample (sum p_i over the batch); ``true_l0_represented``: the
  same over the represented features (||W_i|| > 1/2, the paper's phi_1/2 criterion);
* ``sae_l0``: active latents per sample; ``dead_latents``: latents of the SAE's d never active over
  the batch (``dead_fraction`` = that / d);
* ``fvu``: fraction of variance unexplained, sum ||h - h_hat||^2 / sum ||h - mean h||^2;
  ``mse``: mean ||h - h_hat||^2 in the SAE's units (h scaled so that E||h|| = sqrt(m));
* ``l2_ratio``: shrinkage as SAELens defines its ``l2_ratio``, the mean of ||h_hat|| / ||h|| over
  the samples (we leave out those with h = 0: no active feature, no ratio); < 1 means shrunk codes.
  Samples with a tiny ||h|| (in the weak regime, an active feature whose row decayed to near 0)
  dominate that mean, so ``norm_ratio`` = sqrt(sum ||h_hat||^2 / sum ||h||^2) over the batch is
  the shrinkage to read there;
* ``mcc``: O'Neill et al. 2024's mean correlation coefficient, as SAELens computes it: the
  Hungarian matching (``scipy.optimize.linear_sum_assignment``, maximised) of the |cosine| matrix
  between the true directions W_i / ||W_i|| and the decoder rows, averaged over the min(n, d)
  matched pairs; ``mcc_represented``: the same for the represented features only;
* ``mean_max_cos_features``: mean over features of the best |cosine| with any latent
  (``..._represented``: over the represented ones); ``mean_max_cos_latents``: mean over the alive
  latents of the best |cosine| with any true feature;
* ``recovered_fraction``: share of features whose best |cosine| exceeds 0.9 (and ``..._represented``);
* ``mcc_chance``, ``recovered_fraction_chance``: the same two for d random directions in place of
  the decoder rows (one draw per toy model and dictionary size): what matching alone finds. In few
  dimensions it is high (for n = 200 features: about 0.8 in m = 8, 0.6 in m = 16), so read MCC
  against it.

Per feature (``sae_features.npz``): ``best_cosine`` and ``matched_cosine`` (Hungarian; NaN where
unmatched) ``[saes, n]``, ``best_latent``, and per toy model ``p`` (the feature frequencies),
``observed_frequency`` (over the evaluation batch) and ``row_norm`` ||W_i||, ``[models, n]``.
A zero row W_i has no direction: its cosines are 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import jax
import numpy as np
import pandas as pd
import scipy.optimize

from supjax import metrics
from supjax.sae import layout, program
from supjax.sae.architectures import ARCHITECTURES, SPARSITY_NAMES

if TYPE_CHECKING:  # the run directory's reader calls the evaluation; the evaluation only reads the run
    from supjax.sae.results import SaeRun

REPRESENTED = 0.5  # ||W_i|| above this: the paper's represented feature
RECOVERED = 0.9  # best |cosine| above this: a recovered feature
TOY_GEOMETRY = (
    "represented_fraction",
    "mean_squared_overlap",
    "welch_bound",
    "welch_excess",
    "etf_variance_ratio",
    "tight_frame_distance",
    "coherence_ratio",
)


def evaluate(run: SaeRun) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """``(summary, features)`` of every SAE of ``run`` (see the module docstring), batch by batch as
    the run trained."""
    saved = {int(np.asarray(i).flat[0]): s for i, s in zip(run.index, run.states, strict=True)}
    parts = []
    for models in run.toy_batches:
        plan = layout.plan(run.spec, run.toys.subset(models), table=run.saes)
        ours = [saved[int(g.index.flat[0])] for g in plan.groups]  # a group is known by its first SAE
        states = tuple(program.State(s["params"], None, s["buffers"]) for s in ours)
        hypers = tuple(g.hyper for g in plan.groups)
        x = program.sample_batch(program.eval_static(plan.static), plan.arrays.streams, program.EVAL_STEP)
        measured, frequency = program.sae_evaluate(plan.static, states, hypers, plan.arrays, x)
        parts.append((plan, *jax.tree.map(np.asarray, (measured, frequency))))
    return tables(run, parts)


def tables(run: SaeRun, parts: list[tuple]):
    """The summary table and per-feature arrays from the jitted pass's measures: ``parts`` holds
    ``(plan, measured, frequency)`` of every batch."""
    toys = run.toys
    geometry = toy_geometry(toys)
    observed = {}
    for plan, _, frequency in parts:
        for w, m in enumerate(plan.static.widths):
            for row, f in zip([r for r in plan.toys.rows if r["m"] == m], frequency[w], strict=True):
                observed[row["index"]] = f
    norms = {i: np.linalg.norm(W, axis=1) for i, W in toys.W.items()}
    chance = {}  # (model, d) -> the measures of random decoder directions
    n, count = toys.n, len(run.saes)
    best, matched, best_latent = np.zeros((count, n)), np.full((count, n), np.nan), np.zeros((count, n), np.int32)
    records = []
    for plan, measured, _ in parts:
        for group, values in zip(plan.groups, measured, strict=True):
            for (t, s), sae in np.ndenumerate(group.index):
                row = run.saes[sae]
                model, d = row["model"], row["dictionary_size"]
                one = {k: v[t, s] for k, v in values.items()}
                represented = norms[model] > REPRESENTED
                found = _match(one["cosine"][:, :d], one["alive"][:d], represented)
                if (model, d) not in chance:
                    chance[model, d] = _chance(toys.W[model], d, seed=model)
                best[sae], matched[sae], best_latent[sae] = found.pop("best"), found.pop("matched"), found.pop("latent")
                records.append(
                    {
                        **row,
                        **{name: row["sparsity"] if name == ARCHITECTURES[row["architecture"]].sparsity_name else np.nan
                           for name in SPARSITY_NAMES},
                        "true_l0": float(observed[model].sum()),
                        "true_l0_represented": float(observed[model][represented].sum()),
                        "sae_l0": float(one["l0"]),
                        "dead_latents": int(d - one["alive"][:d].sum()),
                        "dead_fraction": float(1 - one["alive"][:d].mean()),
                        "fvu": float(one["squared_error"] / one["variance"]),
                        "mse": float(one["squared_error"] / plan.static.eval_batch_size),
                        "l2_ratio": float(one["l2_ratio"]),
                        "norm_ratio": float(one["norm_ratio"]),
                        **found,
                        **chance[model, d],
                        "final_mse": float(run.losses[sae, -1]),
                        "final_l0": float(run.l0[sae, -1]),
                    }
                )  # fmt: skip
    summary = pd.DataFrame(records).sort_values("sae", ignore_index=True)
    toy_table = pd.DataFrame(toys.rows).rename(columns={"index": "model", "seed": "model_seed"})
    toy_table = toy_table.rename(columns={"final_loss": "model_final_loss"}).merge(geometry, on="model")
    toy_table["m_over_n"] = toy_table["m"] / n
    gamma = toy_table.weight_decay
    toy_table["regime"] = np.where(gamma < 0, "strong", np.where(gamma > 0, "weak", ""))
    summary = summary.merge(toy_table, on="model", how="left").sort_values("sae", ignore_index=True)
    indices = [r["index"] for r in toys.rows]
    features = {
        "sae": summary["sae"].to_numpy(),
        "model": summary["model"].to_numpy(),
        "best_cosine": best,
        "matched_cosine": matched,
        "best_latent": best_latent,
        "models": np.array(indices),
        "p": np.stack([toys.p[i] for i in indices]),
        "observed_frequency": np.stack([observed[i] for i in indices]),
        "row_norm": np.stack([norms[i] for i in indices]),
    }
    return summary, features


def _match(cosine: np.ndarray, alive: np.ndarray, represented: np.ndarray) -> dict:
    """The recovery measures of one SAE from its |cosine| matrix ``[n, d]``."""
    n = cosine.shape[0]
    rows, cols = scipy.optimize.linear_sum_assignment(cosine, maximize=True)
    matched = np.full(n, np.nan)
    matched[rows] = cosine[rows, cols]
    best = cosine.max(axis=1)
    some = represented.any()
    out = {
        "best": best,
        "matched": matched,
        "latent": cosine.argmax(axis=1).astype(np.int32),
        "mcc": float(cosine[rows, cols].mean()),
        "mcc_represented": np.nan,
        "represented_features": int(represented.sum()),
        "mean_max_cos_features": float(best.mean()),
        "mean_max_cos_features_represented": float(best[represented].mean()) if some else np.nan,
        "mean_max_cos_latents": float(cosine[:, alive].max(axis=0).mean()) if alive.any() else np.nan,
        "recovered_fraction": float(np.mean(best > RECOVERED)),
        "recovered_fraction_represented": float(np.mean(best[represented] > RECOVERED)) if some else np.nan,
    }  # fmt: skip
    if some:
        sub = cosine[represented]
        r, c = scipy.optimize.linear_sum_assignment(sub, maximize=True)
        out["mcc_represented"] = float(sub[r, c].mean())
    return out


_CHANCE_TAG = 0x5AE_C4A7CE


def _chance(W: np.ndarray, d: int, seed: int) -> dict:
    """MCC and recovered fraction of ``d`` random unit directions against the rows of ``W: [n, m]``."""
    norms = np.linalg.norm(W, axis=1, keepdims=True)
    unit = np.where(norms > 1e-12, W / np.where(norms > 1e-12, norms, 1.0), 0.0)
    # keyed apart from any seed a user builds a frame from (default_rng(0) would draw W's own rows)
    directions = np.random.default_rng([_CHANCE_TAG, seed]).standard_normal((d, W.shape[1]))
    cosine = np.abs(unit @ (directions / np.linalg.norm(directions, axis=1, keepdims=True)).T)
    rows, cols = scipy.optimize.linear_sum_assignment(cosine, maximize=True)
    return {
        "mcc_chance": float(cosine[rows, cols].mean()),
        "recovered_fraction_chance": float(np.mean(cosine.max(axis=1) > RECOVERED)),
    }


def toy_geometry(toys) -> pd.DataFrame:
    """Per toy model (column ``model``): phi_1/2 and the ETF-likeness of its rows (supjax.metrics)."""
    frames = []
    for m in dict.fromkeys(r["m"] for r in toys.rows):
        indices = [r["index"] for r in toys.rows if r["m"] == m]
        W = np.stack([toys.W[i] for i in indices])
        etf = metrics.etf_likeness(W)
        frame = {"model": indices, "represented_fraction": np.asarray(metrics.represented_fraction(W, REPRESENTED))}
        frame |= {k: np.asarray(etf[k]) for k in TOY_GEOMETRY if k in etf}
        frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)


def save(path: str | Path, summary: pd.DataFrame, features: dict[str, np.ndarray]) -> None:
    """Write ``sae_summary.csv`` and ``sae_features.npz`` into an SAE run directory."""
    from supjax.results import write_atomic

    path = Path(path)
    write_atomic(path / "sae_summary.csv", summary.to_csv(index=False))
    tmp = path / "sae_features.tmp.npz"
    np.savez(tmp, **features)
    tmp.replace(path / "sae_features.npz")


def load(path: str | Path) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """``(summary, features)`` of an evaluated SAE run directory."""
    from supjax.errors import RunDirError

    path = Path(path)
    if not (path / "sae_summary.csv").is_file() or not (path / "sae_features.npz").is_file():
        raise RunDirError(path, "has no sae_summary.csv; run `supjax analyze DIR` first")
    with np.load(path / "sae_features.npz") as z:
        features = {k: z[k] for k in z.files}
    return pd.read_csv(path / "sae_summary.csv"), features
