"""SweepSpec: the grid of toy models a sweep trains, and its validation.

Fields split in two kinds, as in evosax/rejax:

* shape fields (``n``, ``batch_size``, ``widths``, ``steps``, ``log_every``) fix array
  shapes and loop lengths; they are static and each distinct value compiles a program.
* per-model fields (``weight_decays``, ``importances``, ``alphas``/``distribution``,
  ``activation_densities``, ``seeds``, ``lr``) become traced arrays with one entry per
  model, so a grid over them costs no recompilation.

Every check runs in :meth:`SweepSpec.validate`, before anything is compiled, and raises
:class:`ConfigError` whose message is one line: the field, the value, and the fix.

The module is longer than the others (about 600 lines) on purpose: it is one dataclass, and each
field's default, its documentation and its check sit in this one file, so that adding a field
touches one place and a reader finds every rule a config must obey here.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from supjax.errors import ConfigError

PAPER_WIDTHS = (10, 15, 25, 39, 63, 100)
PAPER_WEIGHT_DECAYS = tuple(-1.0 + 2.0 * i / 9 for i in range(10))


# Fields that change results: two runs agreeing on these (and on the batches, kept in a
# run's batches.json) agree bitwise on one backend; batch_tile and the batches change only
# float32 summation order. The rest change how the work is driven, saved and shown.
RESULT_FIELDS = (
    "n",
    "batch_size",
    "steps",
    "widths",
    "weight_decays",
    "distribution",
    "alphas",
    "activation_densities",
    "seeds",
    "lr",
    "lr_width_scaling",
    "warmup_steps",
    "final_lr_fraction",
    "log_every",
    "shared_data",
    "loss",
    "unit_values",
    "feature_values",
    "importance",
    "importances",
    "correlation_block",
    "correlation",
    "exclusive_blocks",
    "batch_tile",
    "sparse_products",
    "model",
    "weight_init",
    "bias_init",
    "bias_weight_decay",
    "fused_gradient",
    "stream_loop",
    "precision",
)

# The fields that set the feature probabilities.
_PROBABILITY_FIELDS = ("n", "distribution", "alphas", "activation_densities")
# Result fields that a run resolves for its backend when unset, and keeps in its config.toml.
RESOLVED_FIELDS = ("batch_tile", "stream_loop")

GRID_FIELDS = ("widths", "weight_decays", "distribution", "alphas", "activation_densities", "seeds")
FLOAT_FIELDS = ("weight_decays", "alphas", "activation_densities")
LOSSES = ("mse", "cross_entropy", "soft_cross_entropy")
STREAM_LOOPS = ("map", "vmap")
# jax_default_matmul_precision names: true float32 (the paper's), TF32 or bfloat16 tensor-core passes.
PRECISIONS = ("float32", "tensorfloat32", "bfloat16")
BUILT_IN_MODELS = ("tied", "untied", "hidden_relu", "linear")
# Initialisations (see supjax.model.init_weight): the paper's first, then TMS's.
WEIGHT_INITS = ("normal", "xavier_normal")
BIAS_INITS = ("normal", "zeros")


def distribution_key(label: str, activation_density: float) -> str:
    """The name under which a run stores the probabilities of a distribution and density."""
    return f"{label}@{float(activation_density)!r}"


@dataclass(frozen=True)
class SweepSpec:
    """A grid of toy models: every combination of the tuple-valued fields is one model.

    The grid is ``widths x weight_decays x distributions x activation_densities x
    seeds``, where the distributions are the entries of ``distribution`` with each bare
    ``"power"`` expanded over ``alphas``. Defaults are the paper's exp-10 settings
    (n = 1000, batch 2048, 20000 steps, lr 1e-2, 2000 warmup steps, cosine to 5%).

    Distribution entries (see :mod:`supjax.data`): ``"power"`` (p_i ∝ i^-alpha for each
    alpha in ``alphas``), ``"power:1.2"``, ``"exponential:400"`` (p_i ∝ exp(-i/400)),
    ``"linear"`` (p_i ∝ (n - i)/n), ``"constant:0.05"`` (every p_i = 0.05, not
    normalised: TMS's sparsity S = 0.95), ``"file:probs.npy"`` (an explicit vector, used
    as given).

    ``importances`` is a grid axis of loss weights I (``"uniform"``, ``"power:0.5"``,
    ``"geometric:0.9"``, ``"relative:0.3"``; see :func:`supjax.data.feature_importance`):
    traced per model, and the models that differ only in importance share each step's
    batch, as the weight decays do. The older single ``importance`` is the one-entry axis.

    Anthropic's toy models (TMS, see :mod:`supjax.tms`) differ from the paper's code in
    conventions that each have a field, named for what it is (the paper's are the
    defaults): ``feature_values = "uniform_0_1"`` (values U[0, 1), not U(0, 2)),
    ``weight_init = "xavier_normal"`` (W ~ N(0, 2/(n + m)), not N(0, 1/m)),
    ``bias_init = "zeros"`` (not N(0, 1)), ``bias_weight_decay = true`` (torch's AdamW
    decays the bias too; weight decays must then be >= 0).

    ``model`` picks the toy model (``tied``, the paper's; ``untied``, ``hidden_relu``,
    ``linear``, or ``"package.module:ClassName"``, see :mod:`supjax.variants`);
    ``fused_gradient = false`` trains the tied model by autodiff instead of its hand-fused
    gradient. ``precision`` sets every product of the training step (``float32``, the
    default, even where a GPU would use TF32; ``tensorfloat32``; ``bfloat16``).
    ``stream_loop`` runs the data streams of a width in sequence (``map``) or batched
    (``vmap``); unset, it is ``map`` on a CPU and ``vmap`` on accelerators.

    Example:
        >>> spec = SweepSpec(n=200, widths=(8, 16), weight_decays=(-1.0, 1.0), steps=500)
        >>> spec.num_models
        4
    """

    # shape fields (static)
    n: int = 1000
    batch_size: int = 2048
    widths: tuple[int, ...] = PAPER_WIDTHS
    steps: int = 20000
    log_every: int = 10
    # per-model fields (traced)
    weight_decays: tuple[float, ...] = PAPER_WEIGHT_DECAYS
    distribution: tuple[str, ...] = ("power",)
    alphas: tuple[float, ...] = (1.0,)
    activation_densities: tuple[float, ...] = (0.0,)
    seeds: tuple[int, ...] = (0,)
    # schedule
    lr: float = 1e-2
    lr_width_scaling: bool = False
    warmup_steps: int = 2000
    final_lr_fraction: float = 0.05
    # data and loss
    shared_data: bool = True
    loss: str = "mse"
    unit_values: bool = False
    feature_values: str = "uniform_0_2"  # the law of an active value: U(0, 2) or TMS's U(0, 1)
    importance: str = "uniform"  # one importance for every model; or the grid axis below
    importances: tuple[str, ...] | None = None  # per-model (traced); None: (importance,)
    correlation_block: int = 1
    correlation: float = 0.0
    exclusive_blocks: bool = False
    # the model (see supjax.variants) and the precision of its products
    model: str = "tied"
    weight_init: str = "normal"  # W ~ N(0, 1/m); "xavier_normal": N(0, 2/(n + m))
    bias_init: str = "normal"  # b ~ N(0, 1); "zeros"
    bias_weight_decay: bool = False  # decay b with W's (non-negative) weight decay, as torch's AdamW
    fused_gradient: bool = True
    precision: str = "float32"
    # driving (does not change results beyond float32 summation order)
    chunk_steps: int | None = None
    batch_tile: int | None = None
    sparse_products: bool = False
    stream_loop: str | None = None
    max_models_per_batch: int | None = None
    # checkpoints (with an output directory)
    checkpoint_every: int | None = None
    max_to_keep: int = 2
    # snapshots of the full batched parameters along training (an integer K: K log-spaced steps)
    snapshot_steps: int | tuple[int, ...] | None = None
    progress: bool = True

    def __post_init__(self):
        # Accept scalars and lists for grid axes; store tuples so the spec is hashable.
        for name in GRID_FIELDS:
            value = getattr(self, name)
            if isinstance(value, (str, int, float)):
                value = (value,)
            try:  # lists, tuples, numpy arrays
                value = tuple(v.item() if hasattr(v, "item") else v for v in value)
            except TypeError:
                continue  # validate() names the field
            if name in FLOAT_FIELDS:  # 1 and 1.0 are one model: same keys, same results
                value = tuple(float(v) if _is_number(v) else v for v in value)
            object.__setattr__(self, name, value)
        if _is_number(self.lr):
            object.__setattr__(self, "lr", float(self.lr))
        if isinstance(self.importances, str):
            object.__setattr__(self, "importances", (self.importances,))
        elif isinstance(self.importances, list):  # a TOML list
            object.__setattr__(self, "importances", tuple(self.importances))
        if isinstance(self.snapshot_steps, list):  # a TOML list; a tuple keeps the spec hashable
            object.__setattr__(self, "snapshot_steps", tuple(self.snapshot_steps))
        # A run directory must not depend on the directory it was started from.
        object.__setattr__(
            self,
            "distribution",
            tuple(
                f"file:{Path(d[5:]).resolve()}" if isinstance(d, str) and d.startswith("file:") and d[5:] else d
                for d in self.distribution
            )
            if isinstance(self.distribution, tuple)
            else self.distribution,
        )

    # ---- construction -------------------------------------------------------------

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.init)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SweepSpec:
        """Build and validate a spec from plain values (a parsed TOML table)."""
        names = cls.field_names()
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(names)}"
                raise ConfigError(key, values[key], f"unknown key; {hint}")
        return cls(**values).validate()

    @classmethod
    def from_toml(cls, path: str | Path, overrides: list[str] = ()) -> SweepSpec:
        """Read a TOML file, apply ``key=value`` overrides (TOML values), validate."""
        path = Path(path)
        try:
            values = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError("CONFIG", str(path), "file not found; pass a TOML file path") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError("CONFIG", str(path), f"not valid TOML ({err}); fix the syntax") from None
        except OSError as err:
            raise ConfigError("CONFIG", str(path), f"cannot be read ({err.strerror}); pass a TOML file") from None
        values.update(parse_overrides(overrides))
        return cls.from_dict(values)

    def replace(self, **changes) -> SweepSpec:
        new = dataclasses.replace(self, **changes)
        if "feature_probabilities" in self.__dict__ and not set(changes) & set(_PROBABILITY_FIELDS):
            new.__dict__["feature_probabilities"] = self.feature_probabilities  # the same p: keep it
        return new.validate()

    def to_dict(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in self.field_names()}

    # ---- derived ------------------------------------------------------------------

    @property
    def distributions(self) -> tuple[str, ...]:
        """Distribution labels, with each bare ``power`` expanded over ``alphas``."""
        from supjax import data

        out = []
        for entry in self.distribution:
            if entry == "power":
                out.extend(f"power:{float(a)!r}" for a in self.alphas)
            else:
                out.append(data.canonical_label(entry))
        return tuple(dict.fromkeys(out))

    @property
    def importance_labels(self) -> tuple[str, ...]:
        """The importance of every model, canonical (``importances``, else ``(importance,)``)."""
        from supjax import data

        return tuple(data.canonical_importance(label) for label in self.importances or (self.importance,))

    def importance_weights(self, label: str):
        """I: [n] (float64) of one importance label (see :func:`supjax.data.feature_importance`)."""
        from supjax import data

        return data.feature_importance(label, self.n)

    @property
    def weighted(self) -> bool:
        """Some model's squared error is weighted (uniform everywhere skips the multiply)."""
        return any(label != "uniform" for label in self.importance_labels)

    @property
    def value_max(self) -> float:
        """a of the active values' law U(0, a) (see ``feature_values``)."""
        from supjax import data

        return data.VALUE_RANGES[self.feature_values]

    @property
    def models_per_stream(self) -> int:
        """G: the models of one width that read one data stream (weight decays x importances)."""
        return len(self.weight_decays) * len(self.importance_labels) if self.shared_data else 1

    @functools.cached_property
    def feature_probabilities(self) -> dict[str, Any]:
        """p: [n] (float64) of every distribution and density, keyed by :func:`distribution_key`.

        Computed once per spec; validation, the model table, the samplers and the run's
        saved probabilities all read it.
        """
        from supjax import data

        return {
            distribution_key(label, density): data.feature_probabilities(label, self.n, density)
            for label in self.distributions
            for density in self.activation_densities
        }

    def probabilities(self, label: str, activation_density: float):
        """p: [n] of one distribution label and density (see :attr:`feature_probabilities`)."""
        return self.feature_probabilities[distribution_key(label, activation_density)]

    @property
    def sampler(self) -> str:
        """``independent``, ``copula`` (correlated blocks) or ``exclusive`` (see supjax.data)."""
        if self.exclusive_blocks or self.loss == "cross_entropy":
            return "exclusive"  # cross-entropy: one block of all n features, one active each
        return "copula" if self.correlation_block > 1 else "independent"

    def _validate_data_and_loss(self) -> None:
        from supjax import data

        if self.loss not in LOSSES:
            raise ConfigError("loss", self.loss, f"use one of {', '.join(LOSSES)}")
        if self.loss != "mse" and self.weighted:
            field = "importances" if self.importances else "importance"
            raise ConfigError(field, getattr(self, field), "weights the squared error; use it with loss = 'mse'")
        if self.feature_values not in data.VALUE_RANGES:
            raise ConfigError("feature_values", self.feature_values, f"use one of {', '.join(data.VALUE_RANGES)}")
        if self.unit_values and self.feature_values != "uniform_0_2":
            raise ConfigError("unit_values", True, "sets every active value to 1; drop feature_values or unit_values")
        if self.loss == "cross_entropy" and (self.correlation_block > 1 or self.exclusive_blocks):
            raise ConfigError("loss", self.loss, "draws one active feature per sample; drop the correlation options")

        _positive_int("correlation_block", self.correlation_block)
        _finite_float("correlation", self.correlation)
        if self.n % self.correlation_block:
            raise ConfigError("correlation_block", self.correlation_block, f"must divide n = {self.n}")
        if not 0 <= self.correlation < 1:
            raise ConfigError("correlation", self.correlation, "the within-block correlation rho must lie in [0, 1)")
        if self.correlation and self.correlation_block == 1:
            raise ConfigError("correlation", self.correlation, "needs correlation_block > 1 (features per block)")
        if self.exclusive_blocks and (self.correlation or self.correlation_block == 1):
            raise ConfigError("exclusive_blocks", True, "needs correlation_block > 1 and correlation = 0")
        if self.sampler == "exclusive":
            for p in self.feature_probabilities.values():
                data.correlated_tables(p, "exclusive", self.correlation_block)

    @property
    def num_models(self) -> int:
        return (
            len(self.widths)
            * len(self.weight_decays)
            * len(self.importance_labels)
            * len(self.distributions)
            * len(self.activation_densities)
            * len(self.seeds)
        )

    @property
    def num_logs(self) -> int:
        return self.steps // self.log_every

    @property
    def snapshot_schedule(self) -> tuple[int, ...]:
        """The steps whose parameters are kept (see ``snapshot_steps``): sorted multiples of
        ``log_every`` in [log_every, steps]. An integer K gives K steps spaced evenly in log
        from the first logged step to the last (fewer where they would round onto one)."""
        if self.snapshot_steps is None:
            return ()
        if isinstance(self.snapshot_steps, int):
            windows = np.unique(np.round(np.geomspace(1, self.num_logs, self.snapshot_steps)).astype(int))
            return tuple(int(w) * self.log_every for w in windows)
        return tuple(sorted(self.snapshot_steps))

    # ---- validation ---------------------------------------------------------------

    def validate(self) -> SweepSpec:
        """Check every field; raise :class:`ConfigError` on the first bad one."""
        for name in ("n", "batch_size", "steps", "log_every"):
            _positive_int(name, getattr(self, name))
        _nonneg_int("warmup_steps", self.warmup_steps)
        if self.chunk_steps is not None:
            _positive_int("chunk_steps", self.chunk_steps)
        for name in ("max_models_per_batch", "checkpoint_every"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        _positive_int("max_to_keep", self.max_to_keep)
        self._validate_snapshots()
        if self.checkpoint_every is not None and self.checkpoint_every % self.log_every:
            raise ConfigError(
                "checkpoint_every", self.checkpoint_every, f"must be a multiple of log_every = {self.log_every}"
            )
        if self.batch_tile is not None:
            _positive_int("batch_tile", self.batch_tile)
            if self.batch_size % self.batch_tile:
                raise ConfigError(
                    "batch_tile", self.batch_tile, f"must divide batch_size = {self.batch_size}; or leave it unset"
                )
        for name in (
            "lr_width_scaling",
            "shared_data",
            "progress",
            "exclusive_blocks",
            "unit_values",
            "sparse_products",
            "fused_gradient",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, getattr(self, name), "must be true or false")
        for name in ("lr", "final_lr_fraction"):
            _finite_float(name, getattr(self, name))
        if self.lr <= 0:
            raise ConfigError("lr", self.lr, "the peak learning rate must be > 0")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ConfigError("final_lr_fraction", self.final_lr_fraction, "must lie in [0, 1]")
        if self.steps % self.log_every:
            raise ConfigError(
                "log_every", self.log_every, f"must divide steps = {self.steps}; pick a divisor such as 1 or 10"
            )

        for name in GRID_FIELDS:
            values = getattr(self, name)
            if not isinstance(values, tuple):
                raise ConfigError(name, values, "must be a list")
            for v in values:
                if not isinstance(v, (str, int, float)):
                    raise ConfigError(name, v, "list entries must be numbers or strings, not lists or tables")
            if not values:
                raise ConfigError(name, [], "the grid axis is empty; give at least one value")
            if len(set(values)) != len(values):
                raise ConfigError(name, list(values), "contains duplicates; list each value once")
        if self.n > 10_000_000:
            raise ConfigError("n", self.n, "more than 10^7 features; the toy model keeps [batch, n] arrays")
        self._validate_importance()
        if self.max_models_per_batch is not None and self.shared_data:
            if self.max_models_per_batch < self.models_per_stream:
                raise ConfigError(
                    "max_models_per_batch",
                    self.max_models_per_batch,
                    f"models sharing a data stream train together: allow at least {self.models_per_stream}"
                    " (one per weight decay and importance) or set shared_data = false",
                )
        for m in self.widths:
            _positive_int("widths", m)
            if m > self.n:
                raise ConfigError("widths", m, f"a width cannot exceed n = {self.n}; use widths <= n or raise n")
        for s in self.seeds:
            _nonneg_int("seeds", s)
            if s >= 2**31:
                raise ConfigError("seeds", s, "seeds must be below 2^31")
        for name in ("weight_decays", "alphas", "activation_densities"):
            for v in getattr(self, name):
                _finite_float(name, v)
        for g in self.weight_decays:
            if not -1e3 <= g <= 1e3:
                raise ConfigError("weight_decays", g, "out of range; the paper uses values in [-1, 1]")
        for s in self.activation_densities:
            if not 0 <= s <= 1:
                raise ConfigError("activation_densities", s, "the exp-15 density knob s must lie in [0, 1]")

        from supjax import data  # local: config is a primitive, data validates its own specs

        for entry in self.distribution:
            if not isinstance(entry, str):
                raise ConfigError("distribution", entry, "entries are strings such as 'power' or 'exponential:400'")
            if entry != "power":
                data.parse_distribution(entry)
        self.feature_probabilities  # noqa: B018 (computes and so validates every p, files against n)
        self._validate_data_and_loss()
        self._validate_model()
        return self

    def _validate_importance(self) -> None:
        from supjax import data

        if not isinstance(self.importance, str):
            raise ConfigError("importance", self.importance, "a string such as 'uniform' or 'geometric:0.9'")
        if self.importances is None:
            data.feature_importance(self.importance, self.n)
            return
        if self.importance != "uniform":
            raise ConfigError("importance", self.importance, "set importance (one) or importances (a grid), not both")
        if not isinstance(self.importances, tuple) or not self.importances:
            raise ConfigError("importances", self.importances, "a list of strings such as ['uniform', 'relative:0.5']")
        for label in self.importances:
            if not isinstance(label, str):
                raise ConfigError("importances", label, "entries are strings such as 'uniform' or 'geometric:0.9'")
            try:
                data.feature_importance(label, self.n)
            except ConfigError as err:
                raise ConfigError("importances", label, err.fix) from None
        if len(set(self.importance_labels)) != len(self.importances):
            raise ConfigError("importances", list(self.importances), "contains duplicates; list each value once")

    def _validate_snapshots(self) -> None:
        value = self.snapshot_steps
        if value is None or _is_int(value):
            if value is not None and value < 1:
                raise ConfigError("snapshot_steps", value, "give a number of snapshots >= 1 or a list of steps")
            return
        fix = f"a list of distinct steps, multiples of log_every = {self.log_every} up to steps = {self.steps}"
        if not isinstance(value, tuple) or not value or not all(_is_int(v) for v in value):
            raise ConfigError("snapshot_steps", value, f"an integer K (K log-spaced steps) or {fix}")
        for v in value:
            if not 0 < v <= self.steps or v % self.log_every:
                raise ConfigError("snapshot_steps", v, f"must be {fix}")
        if len(set(value)) != len(value):
            raise ConfigError("snapshot_steps", list(value), f"contains duplicates; {fix}")

    def _validate_model(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError("precision", self.precision, f"use one of {', '.join(PRECISIONS)}")
        if self.stream_loop is not None and self.stream_loop not in STREAM_LOOPS:
            raise ConfigError(
                "stream_loop", self.stream_loop, f"use one of {', '.join(STREAM_LOOPS)}, or leave it unset"
            )
        if not isinstance(self.model, str):
            raise ConfigError("model", self.model, f"a string: {', '.join(BUILT_IN_MODELS)} or 'package.module:Class'")
        for name, choices in (("weight_init", WEIGHT_INITS), ("bias_init", BIAS_INITS)):
            if getattr(self, name) not in choices:
                raise ConfigError(name, getattr(self, name), f"use one of {', '.join(choices)}")
            if getattr(self, name) != choices[0] and self.model not in BUILT_IN_MODELS:
                raise ConfigError(name, getattr(self, name), "your own module initialises itself; drop it")
        if not isinstance(self.bias_weight_decay, bool):
            raise ConfigError("bias_weight_decay", self.bias_weight_decay, "must be true or false")
        if self.bias_weight_decay and min(self.weight_decays) < 0:
            raise ConfigError(
                "bias_weight_decay", True, "decays the bias with W's weight decay, which must then be >= 0"
            )
        if self.sparse_products and (self.model != "tied" or not self.fused_gradient):
            raise ConfigError(
                "sparse_products", True, "the sparse x products are the tied model's fused gradient; drop them"
            )
        if self.model == "tied":
            return
        if self.loss != "mse":
            raise ConfigError("model", self.model, "the cross-entropy losses are defined for model = 'tied' only")
        if self.model in BUILT_IN_MODELS:
            return
        from supjax import variants  # flax loads only for a user's module

        for m in self.widths:
            problem = variants.check(self.model, self.n, m)
            if problem:
                raise ConfigError("model", self.model, problem)
            break  # one width shows whether the class builds; shapes scale with m


def parse_overrides(items) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are TOML (``widths=[8,16]``, ``lr=0.02``)."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("--set", item, "write overrides as key=value, e.g. --set steps=5000")
        try:
            out[key] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw.strip()  # a bare word, e.g. distribution=linear
    return out


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(name, value):
    if not _is_int(value) or value <= 0:
        raise ConfigError(name, value, "must be a positive integer")


def _nonneg_int(name, value):
    if not _is_int(value) or value < 0:
        raise ConfigError(name, value, "must be a non-negative integer")


def _finite_float(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, value, "must be a number")
    if not math.isfinite(value):
        raise ConfigError(name, value, "must be finite (not NaN or infinity)")
