"""LlcSpec: the grid of LLC estimates a ``supjax llc`` run makes on a toy-model run.

Declared with the engine's roles (:mod:`supjax.engine.spec`): the SGLD hyperparameters are grid
axes, traced per chain (a calibration grid of step sizes x localizations compiles one program);
``chains``, ``draws`` and ``batch_size`` set shapes. Every selected toy model (``models`` and
``select``, as for the SAEs: :mod:`supjax.selection`), at its final weights or at the ``at_steps`` of
its snapshots, is one w*; every w* gets ``chains`` chains of every setting. TOML::

    step_sizes = [1e-4, 3e-4]
    localizations = [100.0]
    chains = 4
    draws = 400

    [select]
    weight_decay = [-1.0, 1.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from supjax import configfile, selection
from supjax.engine import spec as declared
from supjax.engine.spec import AXIS, DRIVING, STATIC, TRACED, each, every_log, positive, setting


@dataclass(frozen=True)
class LlcSpec(selection.ReadsToyRun):
    """SGLD chains at every selected toy model: ``chains`` of each (n beta, gamma_loc, eps) setting.

    Example:
        >>> spec = LlcSpec(step_sizes=(1e-4, 3e-4), localizations=(100.0,), chains=4, draws=400)
        >>> spec.settings_per_model
        2
    """

    nbetas: tuple[float, ...] = setting((), AXIS, "inverse temperatures n beta (empty: devinterp's B / ln B)")
    localizations: tuple[float, ...] = setting((100.0,), AXIS, "gamma_loc, the pull of every chain toward w*")
    step_sizes: tuple[float, ...] = setting((1e-4,), AXIS, "SGLD step sizes eps")
    models: tuple[int, ...] = setting((), AXIS, "toy models by index in the run (empty: every model)")
    select: dict | None = setting(  # noqa: RUF009
        None, AXIS, "toy models by grid values: {m = [16], weight_decay = [-1.0]}", check=selection.check
    )
    at_steps: tuple[int, ...] = setting((), AXIS, "w* at these snapshot steps of the run (empty: the final weights)")
    chains: int = setting(4, STATIC, "chains of every setting at every w* (devinterp 2.0.1: 4)")
    draws: int = setting(200, STATIC, "SGLD steps of every chain (devinterp 2.0.1: 200)")
    batch_size: int = setting(32, STATIC, "samples per step, drawn fresh from the toy model's feature law")
    burn_in: int = setting(0, STATIC, "first draws left out of lambda_hat (devinterp 2.0.1 averages every draw)")
    log_every: int = setting(1, STATIC, "draws per logged value (the mean over them); 1 keeps every draw")
    bounding_box: float | None = setting(None, STATIC, "clip every coordinate to w* +- this (devinterp's box)")
    mala: str = setting(
        "paired", STATIC, "MALA diagnostic: both sides on one batch, or devinterp 1.x's lagged", ("paired", "lagged")
    )
    seed: int = setting(0, TRACED, "seed of the chains' noise")
    data_seed: int = setting(0, TRACED, "seed of the data: chain c of every w* and setting reads bit stream c")
    chunk_steps: int | None = setting(None, DRIVING, "draws per compiled chunk (unset: sized to the work)")
    checkpoint_every: int | None = setting(None, DRIVING, "draws between checkpoints (unset: a tenth of the run)")
    max_to_keep: int = setting(2, DRIVING, "checkpoints kept")
    progress: bool = setting(True, DRIVING, "show a progress bar")

    @classmethod
    def saved(cls, path) -> LlcSpec:
        """The spec a run directory saved (``llc.toml``). A run written before the paired MALA diagnostic
        has no ``mala`` key: it was lagged."""
        values = configfile.read_toml(path)
        values.setdefault("mala", "lagged")
        return cls.from_dict(values)

    # ---- the grid -----------------------------------------------------------------

    @property
    def nbeta_values(self) -> tuple[float, ...]:
        """The n beta axis, devinterp's default B / ln B where none is given."""
        return self.nbetas or (self.batch_size / math.log(self.batch_size),)

    @property
    def settings(self) -> list[tuple[float, float, float]]:
        """Every (n beta, gamma_loc, eps) of the grid, in table order."""
        return [(b, g, e) for b in self.nbeta_values for g in self.localizations for e in self.step_sizes]

    @property
    def settings_per_model(self) -> int:
        return len(self.settings)


AXES = ("localizations", "step_sizes")
LlcSpec.RULES = [
    (("chains", "draws", "batch_size", "log_every", "chunk_steps", "checkpoint_every", "max_to_keep"), positive),
    (("batch_size",), lambda s, v: None if v >= 2 else "n beta's default B / ln B needs a batch of 2 or more"),
    (("draws",), lambda s, v: None if v < 2**30 else "must be below 2^30"),
    (("log_every",), lambda s, v: None if s.draws % v == 0 else f"must divide draws = {s.draws}; try 1"),
    (("burn_in",), lambda s, v: None if 0 <= v < s.draws else f"must lie in [0, draws = {s.draws})"),
    (("burn_in",), lambda s, v: None if v % s.log_every == 0 else f"must be a multiple of log_every = {s.log_every}"),
    (("checkpoint_every", "chunk_steps"), every_log),
    (AXES, declared.whole_axis),
    (("nbetas",), lambda s, v: declared.whole_axis(s, v) if v else None),
    (("nbetas", "step_sizes"), each(lambda s, v: None if v > 0 and math.isfinite(v) else "must be a positive number")),
    (("localizations",), each(lambda s, v: None if v >= 0 and math.isfinite(v) else "must be >= 0 (0: no pull)")),
    (("bounding_box",), lambda s, v: None if v is None or v > 0 else "must be > 0; or unset it"),
    (("models",), selection.models_rule),
    (("at_steps",), each(lambda s, v: None if v > 0 else "a snapshot step is a positive integer")),
    (("seed", "data_seed"), lambda s, v: None if 0 <= v < 2**31 else "must be a non-negative integer below 2^31"),
]  # fmt: skip
