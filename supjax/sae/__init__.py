"""Sparse autoencoders on superposed features: can an SAE recover what superposition packs?

A toy model's hidden activation h = x W = sum_i x_i W_i (``W: [n, m]``) is a sparse sum of known
directions, the rows W_i, in both regimes and at every width, so an SAE trained on h can be scored
against the ground truth. This package trains grids of SAEs the way :mod:`supjax.sweep` trains toy
models: one compiled program (``jit`` of a ``scan`` over steps of a ``vmap`` over SAEs), the
hyperparameters traced per SAE, each step's x (and h) drawn once with supjax's sampler and shared
by every SAE of a toy model; no activation data set is stored.

* :mod:`~supjax.sae.spec`: :class:`SaeSpec`, the grid (architectures, l1 coefficients / ks,
  dictionary ratios, lrs, seeds, which toy models), checked before anything compiles;
* :mod:`~supjax.sae.architectures`: ``relu`` (Anthropic's April 2024 SAE), ``topk`` (Gao et al.
  2024), ``batchtopk`` (Bussmann et al. 2024), ``jumprelu`` (Rajamanoharan et al. 2024), each a
  :class:`SaeDef` ``(init, loss_and_grad, ...)`` on the toy model's seam;
* :mod:`~supjax.sae.layout` and :mod:`~supjax.sae.program`: where the SAEs go, and the program;
* :mod:`~supjax.sae.sweep`: :func:`run_sae`, on the engine's driver (checkpoints, resume, signals,
  ``progress.json``, snapshots; over every device, the toy models of a width split among them);
* :mod:`~supjax.sae.results`: :class:`SaeRun`, :func:`load_sae_run`, the run directory;
* :mod:`~supjax.sae.evaluate`: every SAE against the true features (MCC, dead latents, FVU, ...).

Example::

    from supjax import sae

    spec = sae.SaeSpec(architectures=("topk", "relu"), ks=(1, 2), l1_coefficients=(0.3, 1.0),
                       dictionary_ratios=(1.0, 2.0), seeds=(0, 1), steps=3000,
                       select={"weight_decay": [-1.0, 1.0]})
    saes = sae.run_sae("runs/phase", spec, out="runs/phase-sae")   # also: supjax sae runs/phase ...
    summary, features = saes.evaluate()       # one row per SAE, joined to its toy model
    print(summary.groupby(["architecture", "regime"]).mcc.mean())

With ``snapshot_steps`` (a count, log-spaced, or a list of steps) the run keeps every SAE's
parameters along training, and ``saes.at_step(step).evaluate(write=False)`` is the recovery there.
"""

from supjax.sae.architectures import ARCHITECTURES, Architecture, SaeDef, SaeHyper
from supjax.sae.evaluate import load as load_tables
from supjax.sae.results import SaeRun, is_sae_run, load_sae_run
from supjax.sae.spec import SaeSpec
from supjax.sae.sweep import run_sae
from supjax.sae.toys import ToyModels, weights_run

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "SaeDef",
    "SaeHyper",
    "SaeRun",
    "SaeSpec",
    "ToyModels",
    "is_sae_run",
    "load_sae_run",
    "load_tables",
    "run_sae",
    "weights_run",
]
