"""SweepSpec: the toy wing's grid of models, each field declared once with its role.

The roles and the declaration machinery (:func:`setting`, :class:`supjax.engine.spec.Spec`) are the
engine's (:mod:`supjax.engine.spec`): ``static`` fields set shapes and code (the compile cache key
is built from them and the ``result`` ones), ``traced`` and ``axis`` ones are per-model traced
values, ``result`` ones move float32 rounding and are resolved for the backend when unset
(:func:`supjax.layout.resolve_for_backend`), ``driving`` ones change nothing a run computes.

Everything that sorts fields by role is derived from the declarations: the compile key,
:data:`RESULT_FIELDS` (what a resume must match), :data:`RESOLVED_FIELDS` and the docs' table of
keys (:func:`reference`). Parsing (TOML, ``--set``, coercion) is in :mod:`supjax.configfile`; the
checks are :data:`SweepSpec.RULES` below, and the checks of the data and the model live beside
their code (:func:`supjax.data.check_spec`, :func:`supjax.variants.check_spec`). Every check runs
before anything is compiled and raises :class:`ConfigError`, one line: the field, the value, and the fix.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from supjax.engine import spec as declared
from supjax.engine import table
from supjax.engine.spec import (
    AXIS,
    DRIVING,
    RESULT,
    STATIC,
    TRACED,
    choices_of,
    each,
    every_log,
    positive,
    setting,
    whole_axis,
)
from supjax.engine.table import GROUP, MODEL, STREAM, axis_column, derived
from supjax.errors import ConfigError

__all__ = ["AXIS", "DEMO", "DRIVING", "RESULT", "STATIC", "TRACED", "ConfigError", "SweepSpec", "choices_of", "setting"]

PAPER_WIDTHS = (10, 15, 25, 39, 63, 100)
PAPER_WEIGHT_DECAYS = tuple(-1.0 + 2.0 * i / 9 for i in range(10))
# jax_default_matmul_precision names: true float32 (the paper's), TF32 or bfloat16 tensor-core passes.
PRECISIONS = ("float32", "tensorfloat32", "bfloat16")


@dataclass(frozen=True)
class SweepSpec(declared.Spec):
    """A grid of toy models: every combination of the ``axis`` fields is one model.

    The grid is ``widths x weight_decays x importances x distributions x
    activation_densities x seeds``, where the distributions are the entries of
    ``distribution`` with each bare ``"power"`` expanded over ``alphas``. Defaults are the
    paper's exp-10 settings (n = 1000, batch 2048, 20000 steps, lr 1e-2, 2000 warmup steps,
    cosine to 5%); each field's line says what it does (``supjax.config.reference()``).

    Example:
        >>> spec = SweepSpec(n=200, widths=(8, 16), weight_decays=(-1.0, 1.0), steps=500)
        >>> spec.num_models
        4
    """

    n: int = setting(1000, STATIC, "number of features")
    batch_size: int = setting(2048, STATIC, "samples per step, shared by every model of a data stream")
    steps: int = setting(20000, STATIC, "training steps")
    log_every: int = setting(10, STATIC, "steps per logged loss (the mean over them)")
    # The grid axes, each with the column it gives the per-model table (models.csv); the table nests
    # them by level (a width group, its data streams, the models sharing a stream), then in this order.
    widths: tuple[int, ...] = setting(
        PAPER_WIDTHS,
        AXIS,
        "bottleneck widths m (one compiled group each)",
        column=axis_column("m", int, "the bottleneck width", GROUP),
    )
    importances: tuple[str, ...] = setting(
        ("uniform",),
        AXIS,
        "per-feature loss weights: uniform, power:beta, geometric:r, relative:r",
        column=axis_column("importance", str, "per-feature loss weights", MODEL, values="importance_labels"),
    )
    weight_decays: tuple[float, ...] = setting(
        PAPER_WEIGHT_DECAYS,
        AXIS,
        "the signed weight decay gamma: < 0 pulls rows to unit norm, > 0 decays them",
        column=axis_column("weight_decay", float, "the signed weight decay gamma", MODEL, traced=True),
    )
    distribution: tuple[str, ...] = setting(
        ("power",),
        AXIS,
        "feature frequencies: power (over alphas), power:a, exponential:s, linear, constant:P, file:F",
        column=axis_column("distribution", str, "the feature frequencies' label", STREAM, values="distributions"),
    )
    alphas: tuple[float, ...] = setting((1.0,), AXIS, "exponents of the bare 'power' distribution, p_i ∝ i^-alpha")
    activation_densities: tuple[float, ...] = setting(
        (0.0,),
        AXIS,
        "exp-15's density knob s in [0, 1]",
        column=axis_column("activation_density", float, "exp-15's density knob s", STREAM),
    )
    seeds: tuple[int, ...] = setting(
        (0,), AXIS, "random seeds (weights and data)", column=axis_column("seed", int, "random seed", STREAM)
    )
    lr: float = setting(1e-2, TRACED, "peak learning rate of W and b")
    lr_width_scaling: bool = setting(False, TRACED, "exp-17's W lr (8/m)^0.25 lr and b lr 2/m")
    warmup_steps: int = setting(2000, STATIC, "linear warmup steps")
    final_lr_fraction: float = setting(0.05, STATIC, "the cosine decays to this fraction of the peak")
    shared_data: bool = setting(True, STATIC, "models of one distribution, density and seed read the same batches")
    loss: str = setting("mse", STATIC, "the objective", "supjax.model:LOSSES")
    target: str = setting("identity", STATIC, "what the model reconstructs: x, or |x| (ARENA)", "supjax.model:TARGETS")
    feature_values: str = setting(
        "uniform_0_2", STATIC, "an active value's law: U(0, 2), TMS's U(0, 1), or U(-1, 1)", "supjax.data:VALUE_RANGES"
    )
    unit_values: bool = setting(False, STATIC, "every active feature has value 1")
    correlation_block: int = setting(1, STATIC, "features per correlated block")
    correlation: float = setting(
        0.0, TRACED, "within-block correlation rho of the Gaussian copula, in [0, 1) (one for the run, traced)"
    )
    exclusive_blocks: bool = setting(False, STATIC, "at most one active feature per block")
    model: str = setting("tied", STATIC, "a built-in model (supjax.variants), or 'package.module:Class'")
    weight_init: str = setting("normal", STATIC, "W ~ N(0, 1/m), or N(0, 2/(n + m))", ("normal", "xavier_normal"))
    bias_init: str = setting("normal", STATIC, "b ~ N(0, 1), or zeros", ("normal", "zeros"))
    bias_weight_decay: bool = setting(False, STATIC, "decay b with W's weight decay (torch's AdamW)")
    fused_gradient: bool = setting(True, STATIC, "the tied model's hand-fused gradient (else autodiff)")
    precision: str = setting("float32", STATIC, "of every product of the step", PRECISIONS)
    batch_tile: int | None = setting(None, RESULT, "rows per tile of the fused gradient (unset: by backend)")
    sparse_products: bool = setting(False, RESULT, "products with x from its nonzeros (dense fallback)")
    stream_loop: str | None = setting(None, RESULT, "a width's data streams in sequence or batched", ("map", "vmap"))
    chunk_steps: int | None = setting(None, DRIVING, "steps per compiled chunk (unset: sized to the work)")
    max_models_per_batch: int | None = setting(None, DRIVING, "models trained together at most")
    checkpoint_every: int | None = setting(None, DRIVING, "steps between checkpoints (unset: a tenth of the run)")
    max_to_keep: int = setting(2, DRIVING, "checkpoints kept per batch")
    snapshot_steps: int | tuple[int, ...] | None = setting(
        None, DRIVING, "keep parameters at K log-spaced steps, or at a list of steps"
    )
    progress: bool = setting(True, DRIVING, "show a progress bar")
    importance: str | None = setting(None, AXIS, "deprecated: the one-entry importances")

    def __post_init__(self):
        super().__post_init__()
        if self.importance is not None and self.importances == ("uniform",):
            warnings.warn("config key 'importance' is deprecated; use importances = [...]", DeprecationWarning, 3)

    def to_dict(self) -> dict[str, Any]:
        """Plain values of every set field (a deprecated key only where it was used)."""
        return {k: v for k, v in super().to_dict().items() if not (k == "importance" and v is None)}

    def validate(self) -> SweepSpec:
        """The declared types and choices, then :data:`RULES`, then the checks of the data and of
        the model beside their code; raises the first :class:`ConfigError`."""
        from supjax import data, variants  # the checks beside the code they guard

        super().validate()
        data.check_spec(self)
        variants.check_spec(self)
        return self

    # ---- the grid -----------------------------------------------------------------

    @property
    def distributions(self) -> tuple[str, ...]:
        """Distribution labels, canonical, with each bare ``power`` expanded over ``alphas``."""
        from supjax import data

        return data.distribution_labels(self.distribution, self.alphas)

    @property
    def importance_labels(self) -> tuple[str, ...]:
        """The importance of every model, canonical (the deprecated ``importance`` if set)."""
        from supjax import data

        labels = (self.importance,) if self.importance is not None else self.importances
        return tuple(data.canonical_importance(label) for label in labels)

    @property
    def feature_probabilities(self) -> dict[str, np.ndarray]:
        """p: [n] (float64) of every distribution and density, keyed by :func:`distribution_key`
        (computed once per (n, distributions, densities): :func:`supjax.data.probability_table`)."""
        from supjax import data

        return data.probability_table(self.n, self.distributions, self.activation_densities)

    def importance_weights(self, label: str) -> np.ndarray:
        """I: [n] (float64) of one importance label (:func:`supjax.data.feature_importance`)."""
        from supjax import data

        return data.feature_importance(label, self.n)

    @property
    def target_values(self) -> tuple[float, float]:
        """(low, high) of the law U(low, high) of an active feature's target (:func:`supjax.data.value_range`)."""
        from supjax import data

        return data.value_range(self.feature_values, self.target)

    def probabilities(self, label: str, activation_density: float) -> np.ndarray:
        """p: [n] of one distribution label and density."""
        return self.feature_probabilities[distribution_key(label, activation_density)]

    @property
    def num_models(self) -> int:
        return table.count(self)

    @property
    def num_logs(self) -> int:
        return self.steps // self.log_every

    @property
    def snapshot_schedule(self) -> tuple[int, ...]:
        """The steps whose parameters are kept (:func:`supjax.engine.spec.snapshot_schedule`)."""
        return declared.snapshot_schedule(self.snapshot_steps, self.steps, self.log_every)


def distribution_key(label: str, activation_density: float) -> str:
    """The name under which a run stores the probabilities of a distribution and density."""
    return f"{label}@{float(activation_density)!r}"


# The embedded demo (supjax demo, the bench's demo workload): both regimes, six widths, two data exponents.
DEMO = SweepSpec(
    n=300,
    batch_size=1024,
    widths=(8, 12, 16, 24, 32, 48),
    weight_decays=(-1.0, -0.3, 0.3, 1.0),
    alphas=(0.8, 1.4),
    steps=2000,
    warmup_steps=200,
    log_every=10,
)


# ---- the roles, derived ------------------------------------------------------------------


def _alpha(spec, row) -> float:
    from supjax import data

    family, arg = data.parse_distribution(row["distribution"])
    return arg if family == "power" else float("nan")


def _learning_rates(spec, m: int) -> tuple[float, float]:
    """(lr of W, lr of b): the spec's lr, or exp-17's width scaling."""
    from supjax import optim

    return optim.width_scaled_learning_rates(spec.lr, m) if spec.lr_width_scaling else (spec.lr, spec.lr)


# The per-model table's derived columns (after the axes' own: supjax.engine.table).
SweepSpec.DERIVED = (
    derived("alpha", float, "the power law's exponent (NaN for another family)", _alpha),
    derived(
        "expected_active",
        float,
        "E[active features] = sum p",
        lambda spec, row: float(spec.probabilities(row["distribution"], row["activation_density"]).sum()),
    ),
    derived("lr_w", float, "peak learning rate of W", lambda spec, row: _learning_rates(spec, row["m"])[0], True),
    derived("lr_b", float, "peak learning rate of b", lambda spec, row: _learning_rates(spec, row["m"])[1], True),
)


def fields_of(*roles: str) -> tuple[str, ...]:
    """The SweepSpec fields with one of ``roles``, in declaration order."""
    return declared.fields_of(SweepSpec, *roles)


# Two runs that agree on these (and on the batches, kept in batches.json) agree bitwise on one backend.
RESULT_FIELDS = declared.result_fields(SweepSpec)
# Result fields that a run resolves for its backend when unset, and keeps in its config.toml.
RESOLVED_FIELDS = declared.resolved_fields(SweepSpec)


def reference() -> list[dict[str, str]]:
    """Every config key with its type, default, role, choices and one line: the docs' table."""
    return declared.reference(SweepSpec)


# ---- the rules -------------------------------------------------------------------------------


def _max_models(spec, v):
    if v is None or not spec.shared_data:
        return None
    try:
        need = table.models_per_stream(spec)
    except ConfigError:
        return None  # a bad entry of an axis: its own check (supjax.data.check_spec) names it
    if v < need:
        return (
            f"models sharing a data stream train together: allow at least {need}"
            " (one per weight decay and importance) or set shared_data = false"
        )
    return None


def _tile(spec, v):
    return None if v is None or spec.batch_size % v == 0 else f"must divide batch_size = {spec.batch_size}; or unset it"


def _width(spec, m):
    return None if m <= spec.n else f"a width cannot exceed n = {spec.n}; use widths <= n or raise n"


def _bias_decay(spec, v):
    if v and min(spec.weight_decays) < 0:
        return "decays the bias with W's weight decay, which must then be >= 0"
    return None


def _old_importance(spec, v):
    return None if v is None or spec.importances == ("uniform",) else "set importance (one) or importances, not both"


# (fields, rule(spec, value) -> None, a problem, or (the bad entry, a problem)), checked in order.
AXES = ("widths", "weight_decays", "importances", "distribution", "alphas", "activation_densities", "seeds")
SweepSpec.RULES = [
    (("n", "batch_size", "steps", "log_every", "chunk_steps", "max_models_per_batch"), positive),
    (("checkpoint_every", "max_to_keep", "correlation_block", "batch_tile"), positive),
    (("warmup_steps",), lambda s, v: None if v >= 0 else "must be a non-negative integer"),
    (("log_every",), declared.divides_steps),
    (("checkpoint_every",), every_log),
    (("batch_tile",), _tile),
    (("snapshot_steps",), declared.snapshots),
    (("lr",), lambda s, v: None if v > 0 else "the peak learning rate must be > 0"),
    (("final_lr_fraction",), lambda s, v: None if 0 <= v <= 1 else "must lie in [0, 1]"),
    (AXES, whole_axis),
    (("n",), lambda s, v: "more than 10^7 features; the toy model keeps [batch, n] arrays" if v > 1e7 else None),
    (("max_models_per_batch",), _max_models),
    (("widths",), each(positive)),
    (("widths",), each(_width)),
    (("seeds",), each(lambda s, v: None if 0 <= v < 2**31 else "must be a non-negative integer below 2^31")),
    (("weight_decays",), each(lambda s, v: None if abs(v) <= 1e3 else "out of range; the paper's lie in [-1, 1]")),
    (("activation_densities",), each(lambda s, v: None if 0 <= v <= 1 else "the density knob s must lie in [0, 1]")),
    (("bias_weight_decay",), _bias_decay),
    (("importance",), _old_importance),
]
