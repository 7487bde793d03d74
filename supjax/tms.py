"""Anthropic's toy models of superposition (Elhage et al. 2022, "TMS") in supjax: the
conventions of their notebook as sweep settings, and the geometry their figures read.

The model is the paper's tied one, y = ReLU(x W W^T + b) with ``W: [n, m]`` (TMS writes
W as m x n, so its W^T W is our W W^T). What differs is convention. Anthropic's notebook
``toy_models.ipynb``, as a stored jupytext copy of it gives it (ARENA's superposition
exercises hand out the same ``Model`` and ``optimize``, with W stored [instances, m, n])::

    self.W = nn.Parameter(torch.empty((config.n_instances, config.n_features, config.n_hidden)))
    nn.init.xavier_normal_(self.W)
    self.b_final = nn.Parameter(torch.zeros((config.n_instances, config.n_features)))
    ...
    feat = torch.rand((n_batch, n_instances, n_features))
    batch = torch.where(torch.rand((n_batch, n_instances, n_features)) <= self.feature_probability,
                        feat, torch.zeros(()))
    ...
    def optimize(model, n_batch=1024, steps=10_000, print_freq=100, lr=1e-3, lr_scale=constant_lr, ...):
        opt = torch.optim.AdamW(list(model.parameters()), lr=lr)
        ...
        error = model.importance * (batch.abs() - out) ** 2
        loss = einops.reduce(error, 'b i f -> i', 'mean').sum()

and its introduction figure uses ``importance = 0.9 ** arange(n)`` and
``feature_probability = 20 ** -linspace(0, 1, n_instances)`` at n = 5, m = 2. So, model by
model (:data:`CONVENTIONS`):

* values U[0, 1) (``torch.rand``), active with probability 1 - S, the same for every
  feature: ``feature_values = "uniform_0_1"``, ``distribution = "constant:P"`` with P = 1 - S
  (the paper's code: U(0, 2), frequencies normalised to sum 1);
* Xavier-normal W and b = 0: ``weight_init = "xavier_normal"`` (N(0, 2/(n + m)), the 2-D
  [n, m] matrix's Glorot variance), ``bias_init = "zeros"``. One difference we do not copy:
  ``xavier_normal_`` of the notebook's 3-D [instances, n, m] tensor takes fan_in = n m and
  fan_out = instances x m, so its std, sqrt(2 / (m (n + instances))), depends on how many
  models are trained together (0.26 instead of 0.53 at n = 5, m = 2, 10 instances);
* ``torch.optim.AdamW`` with torch's defaults: betas (0.9, 0.999), eps 1e-8 and weight
  decay 0.01 on every parameter, the bias included: ``weight_decays = [0.01]``,
  ``bias_weight_decay = true``; lr 1e-3, constant (``lr_scale=constant_lr``): ``lr = 1e-3``,
  ``warmup_steps = 0``, ``final_lr_fraction = 1``; batch 1024, 10000 steps;
* the loss: the importance-weighted squared error averaged over batch and features, per
  model: supjax's training objective exactly (supjax reports n times it, the error summed
  over features).

adonath's JAX port (toy-models-of-superposition-jax, ``make.py``) makes the same choices but
one: ``glorot_normal(in_axis=-2, out_axis=-1)`` W, zero ``b_final``, ``jax.random.uniform``
values kept where a second uniform is ``<= feature_probability``, batch 1024, 10000 steps,
and ``optax.adamw(learning_rate=1e-3)``, whose default weight decay is 1e-4, not torch's 0.01.

:func:`spec` builds a SweepSpec with these settings. The rest of this module is the
geometry TMS's figures read: adjacent angles of 2-D feature vectors (the pentagon),
:func:`pair_state` (the n = 2, m = 1 phase diagram) and the best of several seeds (TMS
keeps the lowest-loss run of each setting).
"""

from __future__ import annotations

import numpy as np

from supjax.config import SweepSpec

# SweepSpec fields that make a sweep train as TMS's notebook does (see the module docstring).
CONVENTIONS = {
    "feature_values": "uniform_0_1",
    "weight_init": "xavier_normal",
    "bias_init": "zeros",
    "bias_weight_decay": True,
    "weight_decays": [0.01],
    "lr": 1e-3,
    "warmup_steps": 0,
    "final_lr_fraction": 1.0,
    "batch_size": 1024,
    "steps": 10_000,
}
# The introduction figure's sparsities: feature_probability = 20 ** -linspace(0, 1, 10).
INTRO_DENSITIES = tuple(float(p) for p in 20.0 ** -np.linspace(0, 1, 10))
# The fractions m / ||W||_F^2 that TMS's "sticky" plot marks, k features in d dimensions as
# d/k: a dedicated dimension, tetrahedron, triangle, antipodal pair, pentagon, square
# antiprism, ... (the notebook marks these and 2/7, 4/9, 6/13, 3/7, 3/12, 3/20, 5/11, 5/13, 4/11).
STICKY_FRACTIONS = ((1, 1), (3, 4), (2, 3), (1, 2), (2, 5), (3, 8), (1, 3), (2, 7))
# The states of the n = 2, m = 1 model (see pair_state), in the phase diagram's colour order.
PAIR_STATES = ("feature 1 only", "feature 2 only", "antipodal pair", "other")


def spec(**fields) -> SweepSpec:
    """A validated SweepSpec with TMS's :data:`CONVENTIONS`, then ``fields`` on top.

    Example:
        >>> s = spec(n=5, widths=[2], distribution=sparsity_distributions([1.0, 0.05]), importance="geometric:0.9")
        >>> s.num_models, s.batch_size, s.feature_values
        (2, 1024, 'uniform_0_1')
    """
    return SweepSpec.from_dict({**CONVENTIONS, **fields})


def sparsity_distributions(densities) -> list[str]:
    """``distribution`` entries for feature densities 1 - S: ``[1.0, 0.05] -> ['constant:1.0', 'constant:0.05']``."""
    return [f"constant:{float(p)!r}" for p in densities]


def density(label: str) -> float:
    """The feature density 1 - S of a ``constant:P`` distribution label (NaN for another family)."""
    family, _, arg = label.partition(":")
    return float(arg) if family == "constant" else float("nan")


def relative_importance(label: str) -> float:
    """r of a ``relative:r`` importance label, 1 for ``uniform`` (NaN for another family)."""
    family, _, arg = label.partition(":")
    return {"relative": lambda: float(arg), "uniform": lambda: 1.0}.get(family, lambda: float("nan"))()


def adjacent_angles(W, threshold: float = 0.5) -> np.ndarray:
    """Angles in degrees between angularly neighbouring feature vectors, going round the circle.

    ``W: [n, 2]``; rows with norm <= ``threshold`` are left out. For k kept rows the k angles
    sum to 360; a regular k-gon has every angle 360/k (72 for the pentagon).
    """
    W = np.asarray(W, np.float64)
    assert W.ndim == 2 and W.shape[1] == 2, f"W must be [n, 2], got {W.shape}"
    kept = W[np.linalg.norm(W, axis=1) > threshold]
    if len(kept) < 2:
        return np.array([360.0] * len(kept))
    angles = np.sort(np.degrees(np.arctan2(kept[:, 1], kept[:, 0])) % 360.0)
    return np.diff(np.append(angles, angles[0] + 360.0))


def is_regular_polygon(W, threshold: float = 0.5, tolerance: float = 10.0) -> bool:
    """Every row of ``W: [n, 2]`` has norm > ``threshold`` and every adjacent angle is within
    ``tolerance`` degrees of 360/n (n = 5: the regular pentagon of TMS's sparse regime)."""
    W = np.asarray(W)
    if not np.all(np.linalg.norm(W, axis=1) > threshold):
        return False
    return bool(np.all(np.abs(adjacent_angles(W, threshold) - 360.0 / len(W)) <= tolerance))


def pair_state(W, threshold: float = 0.5) -> str:
    """What the n = 2, m = 1 model ``W: [2, 1]`` does with its one dimension (TMS's phase diagram):

    * ``"feature 1 only"``: |W_1| > t >= |W_2|, the second feature is dropped;
    * ``"feature 2 only"``: |W_2| > t >= |W_1|, the second feature takes the dimension;
    * ``"antipodal pair"``: both |W_i| > t with opposite signs, the two in superposition;
    * ``"other"``: neither represented, or both with one sign.

    t = ``threshold`` (1/2, as the represented fraction phi_{1/2}).
    """
    w = np.asarray(W, np.float64).reshape(-1)
    assert w.shape == (2,), f"W must be [2, 1], got {np.shape(W)}"
    first, second = np.abs(w) > threshold
    if first and second:
        return "antipodal pair" if w[0] * w[1] < 0 else "other"
    return "feature 1 only" if first else "feature 2 only" if second else "other"


def best_of_seeds(table, keys=("m", "distribution", "activation_density", "importance", "weight_decay")):
    """The lowest-final-loss model of every setting: ``table`` (``Run.table()``) reduced to one
    row per distinct ``keys``, as TMS keeps the best of several runs. Diverged models never win."""
    usable = table[~table["diverged"]]
    keys = [k for k in keys if k in usable]
    best = usable.loc[usable.groupby(keys, sort=False)["final_loss"].idxmin()]
    return best.sort_values("index").reset_index(drop=True)


def phase_cells(run):
    """The n = 2, m = 1 phase diagram of ``run``: one row per (density, relative importance)
    cell, its lowest-loss seed (:func:`best_of_seeds`), that model's ``W_1``, ``W_2``, ``b_1``,
    ``b_2`` and its :func:`pair_state`; sorted by density, then importance. Needs width-1
    models at n = 2 on ``constant:P`` data with ``relative:r`` (or uniform) importances."""
    import pandas as pd

    assert run.spec.n == 2 and 1 in run.params, f"needs n = 2 and width 1, got n = {run.spec.n}, {list(run.params)}"
    table = run.table()
    rows = []
    for _, best in best_of_seeds(table[table.m == 1]).iterrows():
        W, b = run.weights(int(best["index"]))
        rows.append(
            {
                "density": density(best["distribution"]),
                "relative_importance": relative_importance(best["importance"]),
                "index": int(best["index"]),
                "seed": int(best["seed"]),
                "final_loss": float(best["final_loss"]),
                "W_1": float(W[0, 0]),
                "W_2": float(W[1, 0]),
                "b_1": float(b[0]),
                "b_2": float(b[1]),
                "state": pair_state(W),
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values(["density", "relative_importance"], ignore_index=True)
