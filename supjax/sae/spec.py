"""SaeSpec: the grid of sparse autoencoders a ``supjax sae`` run trains on a toy-model run.

Every field is declared once with :func:`supjax.engine.spec.setting` (its default, its role, one line,
its choices), in the engine's roles (:mod:`supjax.engine.spec`): ``axis`` fields make the grid (every
combination is one SAE, on every selected toy model; the hyperparameters among them are traced
per SAE, so a new value compiles nothing), ``static`` fields set shapes and code, ``result`` ones
move rounding only, ``driving`` ones change nothing a run computes. The checks are the table of
:data:`RULES`, then :meth:`SaeSpec.check_against` for what needs the toy run (the selection, k
against the smallest dictionary); each raises one :class:`ConfigError` line before anything compiles.

TOML (``supjax.configfile.read_toml``), with the selection as a table or dotted keys::

    architectures = ["topk", "relu"]
    ks = [1, 2, 4]
    l1_coefficients = [0.3, 1.0]
    dictionary_ratios = [1.0, 2.0]
    steps = 3000

    [select]            # toy models by their grid values (models.csv columns)
    weight_decay = [-1.0, 1.0]
    m = [16, 32]
"""

from __future__ import annotations

from dataclasses import dataclass

from supjax import selection
from supjax.engine import spec as declared
from supjax.engine.spec import AXIS, DRIVING, RESULT, STATIC, TRACED, each, every_log, positive, setting, whole_axis
from supjax.errors import ConfigError
from supjax.sae.architectures import ARCHITECTURES


@dataclass(frozen=True)
class SaeSpec(selection.ReadsToyRun):
    """A grid of SAEs: every architecture x its sparsities x dictionary ratios x lrs x seeds, on
    every selected toy model of a run (all of them by default).

    Example:
        >>> spec = SaeSpec(architectures=("topk", "relu"), ks=(1, 2), l1_coefficients=(0.5,), steps=500)
        >>> spec.saes_per_model
        3
    """

    architectures: tuple[str, ...] = setting(
        ("topk",), AXIS, "SAE architectures", "supjax.sae.architectures:ARCHITECTURES"
    )
    l1_coefficients: tuple[float, ...] = setting((1.0,), AXIS, "relu: lambda of the L1 penalty times decoder norms")
    ks: tuple[int, ...] = setting((2,), AXIS, "topk, batchtopk: latents kept per sample (batchtopk: on average)")
    l0_coefficients: tuple[float, ...] = setting((1.0,), AXIS, "jumprelu: lambda of the L0 penalty")
    dictionary_ratios: tuple[float, ...] = setting((2.0,), AXIS, "dictionary size d as a multiple of n (features)")
    lrs: tuple[float, ...] = setting((1e-3,), AXIS, "Adam's peak learning rate")
    seeds: tuple[int, ...] = setting((0,), AXIS, "SAE seeds (initial weights)")
    models: tuple[int, ...] = setting((), AXIS, "toy models by index in the run (empty: every model)")
    # A table, so not a config.setting of a plain type; None (every model) as its default keeps it immutable.
    select: dict | None = setting(  # noqa: RUF009
        None, AXIS, "toy models by grid values: {m = [16], weight_decay = [-1.0]}", check=selection.check
    )
    steps: int = setting(5000, STATIC, "training steps")
    batch_size: int = setting(1024, STATIC, "samples per step, shared by every SAE of a toy model")
    log_every: int = setting(10, STATIC, "steps per logged reconstruction error and L0 (the mean over them)")
    lr_decay_fraction: float = setting(0.2, STATIC, "the lr decays linearly to 0 over this last share of the steps")
    sparsity_warmup_fraction: float = setting(0.05, STATIC, "relu, jumprelu: lambda grows from 0 over this share")
    jumprelu_bandwidth: float = setting(0.1, STATIC, "jumprelu: width epsilon of the straight-through kernel")
    jumprelu_threshold: float = setting(0.1, STATIC, "jumprelu: initial threshold theta")
    threshold_rate: float = setting(0.01, STATIC, "batchtopk: rate of the evaluation threshold's moving average")
    normalise_inputs: bool = setting(True, STATIC, "scale each toy model's h by one constant so E||h|| = sqrt(m)")
    data_seed: int = setting(0, TRACED, "seed of the data: every SAE of a toy model reads the same x each step")
    eval_batch_size: int = setting(8192, STATIC, "samples of the evaluation batch")
    sae_block: int | None = setting(
        None, RESULT, "a toy model's SAEs vmapped this many at a time, the blocks in sequence (unset: 8 on a CPU, all)"
    )
    model_loop: str = setting("map", RESULT, "toy models of a width in sequence or batched", ("map", "vmap"))
    max_saes_per_batch: int | None = setting(
        None, DRIVING, "SAEs trained in one program at most, whole toy models each (unset: as many as fit)"
    )
    chunk_steps: int | None = setting(None, DRIVING, "steps per compiled chunk (unset: sized to the work)")
    checkpoint_every: int | None = setting(None, DRIVING, "steps between checkpoints (unset: a tenth of the run)")
    max_to_keep: int = setting(2, DRIVING, "checkpoints kept")
    snapshot_steps: int | tuple[int, ...] | None = setting(
        None, DRIVING, "keep every SAE's parameters at K log-spaced steps, or at a list of steps"
    )
    progress: bool = setting(True, DRIVING, "show a progress bar")

    # ---- the grid -----------------------------------------------------------------

    @property
    def snapshot_schedule(self) -> tuple[int, ...]:
        """The steps whose parameters are kept (:func:`supjax.engine.spec.snapshot_schedule`)."""
        return declared.snapshot_schedule(self.snapshot_steps, self.steps, self.log_every)

    def sparsities(self, architecture: str) -> tuple[float, ...]:
        """The traced sparsity values of one architecture: its lambdas or ks."""
        return tuple(float(v) for v in getattr(self, ARCHITECTURES[architecture].sparsity_axis))

    @property
    def saes_per_model(self) -> int:
        per_setting = len(self.dictionary_ratios) * len(self.lrs) * len(self.seeds)
        return per_setting * sum(len(self.sparsities(a)) for a in self.architectures)

    def dictionary_size(self, ratio: float, n: int) -> int:
        """d = round(ratio n), at least 1."""
        return max(1, round(ratio * n))

    def check_against(self, n: int, models: list[dict]) -> list[int]:
        """The checks that need the toy run (n features, its models.csv rows); returns the selection."""
        chosen = self.selected(models)
        smallest = min(self.dictionary_size(r, n) for r in self.dictionary_ratios)
        if any(ARCHITECTURES[a].counts_latents for a in self.architectures):
            for k in self.ks:
                if k > smallest:
                    raise ConfigError("ks", k, f"exceeds the smallest dictionary d = {smallest} (n = {n}); lower it")
        return chosen


# ---- the rules ---------------------------------------------------------------------------------


def _fraction(spec, v):
    return None if 0 <= v <= 1 else "must lie in [0, 1]"


# (fields, rule(spec, value) -> None, a problem, or (the bad entry, a problem)), checked in order.
AXES = ("architectures", "l1_coefficients", "ks", "l0_coefficients", "dictionary_ratios", "lrs", "seeds")
SaeSpec.RULES = [
    (("steps", "batch_size", "log_every", "eval_batch_size", "chunk_steps", "checkpoint_every", "max_to_keep"),
     positive),
    (("sae_block",), positive),
    (("steps",), lambda s, v: None if v < 2**30 else "must be below 2^30"),
    (("log_every",), declared.divides_steps),
    (("checkpoint_every", "chunk_steps"), every_log),
    (AXES, whole_axis),
    (("models",), selection.models_rule),
    (("ks",), each(lambda s, v: None if v >= 1 else "k counts active latents: a positive integer")),
    (("l1_coefficients", "l0_coefficients"), each(lambda s, v: None if v >= 0 else "a penalty coefficient is >= 0")),
    (("dictionary_ratios",), each(lambda s, v: None if 0 < v <= 64 else "d / n must lie in (0, 64]")),
    (("lrs",), each(lambda s, v: None if 0 < v < 1 else "a learning rate lies in (0, 1)")),
    (("seeds", "data_seed"), lambda s, v: each(lambda s, x: None if 0 <= x < 2**31 else
                                                "must be a non-negative integer below 2^31")(s, v if
                                                isinstance(v, tuple) else (v,))),
    (("snapshot_steps",), declared.snapshots),
    (("lr_decay_fraction", "sparsity_warmup_fraction"), _fraction),
    (("threshold_rate",), lambda s, v: None if 0 < v <= 1 else "a moving-average rate lies in (0, 1]"),
    (("jumprelu_bandwidth", "jumprelu_threshold"), lambda s, v: None if v > 0 else "must be > 0"),
    (("max_saes_per_batch",), lambda s, v: None if v is None or v >= s.saes_per_model else
     f"a batch holds every SAE of a toy model ({s.saes_per_model}); raise it to at least that"),
]  # fmt: skip
