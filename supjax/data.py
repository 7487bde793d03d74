"""Sparse feature data: frequency families, activation density, and the batch sampler.

A sample is x in R^n with x_i = u_i v_i, u_i ~ Bernoulli(p_i), v_i ~ U(0, a): a = 2 in the
paper's code, a = 1 in Anthropic's toy models (TMS; ``feature_values``, :data:`VALUE_RANGES`).

The sampler draws ONE random 32-bit integer k per entry and sets
``x_i = a (k + 1/2) / T_i if k < T_i else 0`` with ``T_i = floor(p_i 2^32)``: given
``k < T_i``, k is uniform on {0, ..., T_i - 1}, so the value is U(0, a) to a resolution
of a/T_i. This halves the random numbers of the usual two-uniform recipe and, unlike a
float32 uniform (23 random bits), keeps probabilities as small as 1e-9 exact.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from supjax.errors import ConfigError
from supjax.model import LOSSES

FAMILIES = ("power", "exponential", "linear", "constant", "file")
# feature_values: the law of an active feature's value, U(low, high): the paper's, TMS's, and
# signed values (ARENA's computation in superposition, whose target is |x|).
VALUE_RANGES = {"uniform_0_2": (0.0, 2.0), "uniform_0_1": (0.0, 1.0), "uniform_-1_1": (-1.0, 1.0)}
SAMPLERS = ("independent", "copula", "exclusive")


def value_range(feature_values: str, target: str = "identity") -> tuple[float, float]:
    """(low, high) of the law U(low, high) of an active feature's target value: of x itself,
    or of |x| for ``target = "abs"`` (|U(-a, a)| is U(0, a))."""
    low, high = VALUE_RANGES[feature_values]
    return (0.0, max(-low, high)) if target == "abs" and low < 0 else (low, high)


def sampler_kind(spec) -> str:
    """``independent``, ``copula`` (correlated blocks) or ``exclusive`` (one active per block) for
    a spec or a ``program.Static``; cross-entropy draws one active feature among all n."""
    if spec.exclusive_blocks or LOSSES[spec.loss].one_active_feature:
        return "exclusive"
    return "copula" if spec.correlation_block > 1 else "independent"


def block_size(spec) -> int:
    """Features per block of the correlated samplers (all n for cross-entropy's one active feature)."""
    return spec.n if LOSSES[spec.loss].one_active_feature else spec.correlation_block


def stream_tables(spec, p: np.ndarray) -> dict[str, np.ndarray]:
    """The sampler tables of one data stream of ``spec`` (a spec or a ``program.Static``) with
    feature probabilities ``p``; :func:`sample_streams` reads them stacked over the streams."""
    low, high = VALUE_RANGES[spec.feature_values]
    kind = sampler_kind(spec)
    if kind == "independent":
        thresholds, scales = sampler_tables(p, high - low)
        return {"thresholds": thresholds, "scales": scales}
    if LOSSES[spec.loss].one_active_feature:  # drawn with probability p_i / sum p
        return correlated_tables(p / p.sum(), "exclusive", spec.n, high - low)
    return correlated_tables(p, kind, spec.correlation_block, high - low)


@dataclasses.dataclass(frozen=True)
class SamplerStatic:
    """The toy run's sampler fields that a wing reading its models carries in its ``Static`` (the base of
    the SAE and LLC wings' compile keys): what :func:`sample_streams` needs besides the batch size."""

    n: int
    feature_values: str
    unit_values: bool
    correlation_block: int
    exclusive_blocks: bool
    loss: str

    @classmethod
    def fields_of(cls, spec) -> dict:
        """These fields' values in the toy run's ``spec``."""
        return {f.name: getattr(spec, f.name) for f in dataclasses.fields(cls)}


class Streams(NamedTuple):
    """The data streams a program draws from, host or device arrays (traced)."""

    keys: Any  # [seeds, 2] key data: one bit stream per seed (or per model without shared data)
    seed_of: Any  # [S] the bit stream each data stream reads
    tables: Any  # sampler tables of every stream, [S, ...] (see stream_tables)
    correlation: Any  # the within-block correlation rho


def make_streams(spec, probabilities: list[np.ndarray], key_data, seed_of, correlation: float) -> Streams:
    """The :class:`Streams` of ``spec``'s sampler (a spec or a ``Static``) over one stream per entry
    of ``probabilities`` (p: [n] each), reading the bit streams of ``key_data`` ([seeds, 2]) by ``seed_of``."""
    tables = [stream_tables(spec, p) for p in probabilities]
    return Streams(
        keys=np.asarray(key_data),
        seed_of=np.array(seed_of, np.int32),
        tables={k: np.stack([t[k] for t in tables]) for k in tables[0]},
        correlation=np.float32(correlation),
    )


def distribution_labels(entries: tuple[str, ...], alphas: tuple[float, ...]) -> tuple[str, ...]:
    """Canonical distribution labels, with each bare ``power`` expanded over ``alphas``."""
    out = []
    for entry in entries:
        if entry == "power":
            out.extend(f"power:{float(a)!r}" for a in alphas)
        else:
            out.append(canonical_label(entry))
    return tuple(dict.fromkeys(out))


@functools.lru_cache(maxsize=64)
def probability_table(n: int, labels: tuple[str, ...], densities: tuple[float, ...]) -> dict[str, np.ndarray]:
    """p: [n] (float64) of every distribution label and density, keyed ``label@density`` (see
    :func:`supjax.config.distribution_key`). Cached: validation, the model table, the samplers and
    a run's saved probabilities all read it; the arrays are read-only."""
    table = {}
    for label in labels:
        for density in densities:
            p = feature_probabilities(label, n, density)
            p.flags.writeable = False
            table[f"{label}@{float(density)!r}"] = p
    return table


def check_spec(spec) -> None:
    """The data's rules for a :class:`supjax.config.SweepSpec`: distributions, importances,
    values and samplers. Raises :class:`ConfigError` (one line) on the first bad one."""
    for entry in spec.distribution:
        if entry != "power":
            parse_distribution(entry)
    probability_table(spec.n, spec.distributions, spec.activation_densities)  # every p, files against n
    field = "importance" if spec.importance is not None else "importances"
    labels = (spec.importance,) if spec.importance is not None else spec.importances
    for label in labels:
        try:
            feature_importance(label, spec.n)
        except ConfigError as err:
            raise ConfigError(field, label, err.fix) from None
    if len(set(spec.importance_labels)) != len(labels):
        raise ConfigError(field, list(labels), "contains duplicates; list each value once")
    if spec.unit_values and spec.feature_values != "uniform_0_2":
        raise ConfigError("unit_values", True, "sets every active value to 1; drop feature_values or unit_values")
    if LOSSES[spec.loss].one_active_feature and (spec.correlation_block > 1 or spec.exclusive_blocks):
        raise ConfigError("loss", spec.loss, "draws one active feature per sample; drop the correlation options")
    if spec.n % spec.correlation_block:
        raise ConfigError("correlation_block", spec.correlation_block, f"must divide n = {spec.n}")
    if not 0 <= spec.correlation < 1:
        raise ConfigError("correlation", spec.correlation, "the within-block correlation rho must lie in [0, 1)")
    if spec.correlation and spec.correlation_block == 1:
        raise ConfigError("correlation", spec.correlation, "needs correlation_block > 1 (features per block)")
    if spec.exclusive_blocks and (spec.correlation or spec.correlation_block == 1):
        raise ConfigError("exclusive_blocks", True, "needs correlation_block > 1 and correlation = 0")
    kind = sampler_kind(spec)
    if VALUE_RANGES[spec.feature_values][0] < 0 and kind != "independent":
        raise ConfigError("feature_values", spec.feature_values, "signed values need independent features")
    if kind == "exclusive":
        for p in probability_table(spec.n, spec.distributions, spec.activation_densities).values():
            correlated_tables(p, "exclusive", block_size(spec))


def parse_distribution(label: str) -> tuple[str, str | float | None]:
    """Split ``'power:1.2'`` into ``('power', 1.2)``; ``'linear'`` into ``('linear', None)``."""
    family, sep, arg = _split_label(label, "distribution", FAMILIES, bare="linear")
    if family == "linear":
        return family, None
    if family == "file":
        if not arg:
            raise ConfigError("distribution", label, "give a path, e.g. 'file:probs.npy'")
        return family, arg
    if family == "power" and not sep:
        return family, 1.0
    value = _number(arg, "distribution", label, "constant:0.05" if family == "constant" else f"{family}:1.2")
    if family == "constant" and not 0 < value <= 1:
        raise ConfigError("distribution", label, "'constant:P' takes a probability P in (0, 1], e.g. 'constant:0.05'")
    if not np.isfinite(value) or (family == "exponential" and value <= 0):
        raise ConfigError("distribution", label, "the parameter must be finite (and > 0 for exponential)")
    return family, value


def canonical_label(label: str) -> str:
    """One spelling per distribution: ``'power:1'`` -> ``'power:1.0'``, so it is one model."""
    family, arg = parse_distribution(label)
    if family == "linear":
        return family
    if family == "file":
        return f"file:{arg}"
    return f"{family}:{float(arg)!r}"


def feature_probabilities(label: str, n: int, activation_density: float = 0.0) -> np.ndarray:
    """Feature frequencies p (float64, shape [n]) for a distribution label.

    ``power:a``: p_i ∝ i^-a, i = 1..n; ``exponential:s``: p_i ∝ exp(-i/s), i = 0..n-1;
    ``linear``: p_i ∝ (n - i)/n, i = 0..n-1; all three normalised to sum p = 1, i.e. one
    active feature per sample on average. ``constant:P``: p_i = P for every feature, NOT
    normalised (sum p = n P): TMS's sparsity S = 1 - P, the same for every feature.
    ``file:PATH``: a ``.npy`` or text vector used as given. ``activation_density`` is the
    exp-15 knob s (see :func:`apply_activation_density`).
    """
    family, arg = parse_distribution(label)
    i = np.arange(n, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked below
        if family == "power":
            p = (i + 1) ** -arg
        elif family == "exponential":
            p = np.exp(-i / arg)
        elif family == "linear":
            p = (n - i) / n
        elif family == "constant":
            p = np.full(n, arg)
        else:
            p = _load_vector(arg, n)
        if family not in ("file", "constant"):
            p = p / p.sum()
        p = apply_activation_density(p, activation_density)
    if not (np.all(np.isfinite(p)) and p.sum() > 0 and p.max() <= 1):
        raise ConfigError("distribution", label, "gives no valid probabilities (overflow or all zero); change it")
    return p


def apply_activation_density(p: np.ndarray, s: float) -> np.ndarray:
    """exp-15 rescaling p <- p (1 + s (1/p_max - 1)), s in [0, 1].

    s = 0 leaves p alone; s = 1 makes the most frequent feature always active. For the
    paper's power law with alpha = 1 and n = 1000 the expected number of active features
    ``E = sum p`` runs from 1 to about 7.5.
    """
    if s == 0:
        return p
    return p * (1.0 + s * (1.0 / p.max() - 1.0))


IMPORTANCE_FAMILIES = ("uniform", "power", "geometric", "relative")


def feature_importance(label: str, n: int) -> np.ndarray:
    """Per-feature weights I (float64, [n]) of the squared error (Elhage et al. 2022).

    ``uniform``: I_i = 1 (the paper's loss); ``power:beta``: I_i = i^-beta, i = 1..n;
    ``geometric:r``: I_i = r^i, i = 0..n-1 (Anthropic's toy models use r < 1: 0.9 in
    TMS's introduction); ``relative:r``: I_1 = 1 and I_i = r for every other feature (at
    n = 2, TMS's relative importance r of the second feature, its phase diagram's axis).
    """
    family, _, arg = _split_label(label, "importance", IMPORTANCE_FAMILIES, bare="uniform")
    if family == "uniform":
        return np.ones(n)
    value = _number(arg, "importance", label, f"{family}:0.9")
    i = np.arange(n, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if family == "relative":
            weights = np.where(i == 0, 1.0, value)
        else:
            weights = (i + 1) ** -value if family == "power" else value**i
    if not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.max() == 0:
        raise ConfigError("importance", label, "gives weights that are not finite and non-negative; change it")
    return weights


def canonical_importance(label: str) -> str:
    """One spelling per importance: ``'relative:.5'`` -> ``'relative:0.5'`` (checks the family)."""
    family, _, arg = _split_label(label, "importance", IMPORTANCE_FAMILIES, bare="uniform")
    if family == "uniform":
        return family
    return f"{family}:{_number(arg, 'importance', label, f'{family}:0.9')!r}"


def sampler_tables(p, value_max: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds T_i = floor(p_i 2^32) (uint32) and value scales a/T_i (float32), a = ``value_max``."""
    p = np.asarray(p, dtype=np.float64)
    thresholds = np.minimum(np.floor(p * 2.0**32), 2.0**32 - 1).astype(np.uint32)
    scales = (value_max / np.maximum(thresholds.astype(np.float64), 1.0)).astype(np.float32)
    return thresholds, scales


def features_from_bits(
    bits: jax.Array, thresholds: jax.Array, scales: jax.Array, unit: bool = False, low: float = 0.0
) -> jax.Array:
    """x from uniform uint32 ``bits: [..., n]``; ``thresholds, scales: [n]`` from :func:`sampler_tables`.

    An active value is U(low, low + a) with a set by the scales; ``unit``: every active value is 1.
    """
    value = 1.0 if unit else (bits.astype(jnp.float32) + 0.5) * scales
    if low and not unit:
        value = value + low
    return jnp.where(bits < thresholds, value, 0.0)


def sample_streams(static, streams, t) -> jax.Array:
    """The step-t batch of every data stream, ``[S, B, n]``, for a ``program.Static`` and its
    ``program.Streams`` (keys, the bit stream each stream reads, sampler tables, correlation)."""
    n, batch, block, kind = static.n, static.batch_size, block_size(static), sampler_kind(static)
    low, high = VALUE_RANGES[static.feature_values]
    keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(jax.random.wrap_key_data(streams.keys))
    if kind == "independent":
        bits = jax.vmap(lambda k: jax.random.bits(k, (batch, n), jnp.uint32))(keys)
        make = functools.partial(features_from_bits, unit=static.unit_values, low=low)
        return jax.vmap(make)(bits[streams.seed_of], streams.tables["thresholds"], streams.tables["scales"])
    draws = jax.vmap(lambda k: correlated_draws(k, kind, batch, n, block, high - low))(keys)
    draws = jax.tree.map(lambda a: a[streams.seed_of], draws)

    def one_stream(draw, table):
        return correlated_features(draw, table, kind, block, streams.correlation, static.unit_values)

    return jax.vmap(one_stream)(draws, streams.tables)


def sample_features(key: jax.Array, p, batch_size: int, value_max: float = 2.0) -> jax.Array:
    """One batch ``x: [batch_size, n]`` (float32) with x_i = u_i v_i, v_i ~ U(0, ``value_max``)."""
    thresholds, scales = sampler_tables(p, value_max)
    bits = jax.random.bits(key, (batch_size, len(thresholds)), jnp.uint32)
    return features_from_bits(bits, jnp.asarray(thresholds), jnp.asarray(scales))


def active_capacity(expected: float) -> int:
    """Slots per row for the sparse products (:func:`supjax.model.active_entries`).

    The count of active features in a row has mean E = ``expected`` = sum p and variance
    at most E; the capacity, E + 6 sqrt(E) + 6 rounded up to a multiple of 8, is exceeded
    by an independent row with probability below 1e-9 (E = 1: P(count > 16) ~ 1e-15). A
    batch that does not fit falls back to the dense products, so the capacity only sets speed.
    """
    return int(8 * np.ceil((expected + 6 * np.sqrt(expected) + 6) / 8))


# ---- correlated features ----------------------------------------------------------------
#
# Features come in consecutive blocks of k. Two laws keep every marginal P(u_i = 1) = p_i:
#
# * "copula" (correlation rho in [0, 1)): u_i = 1[sqrt(rho) g + sqrt(1 - rho) e_i < z_i]
#   with one g ~ N(0, 1) per sample and block, e_i ~ N(0, 1), z_i = Phi^-1(p_i): the
#   latent normals of a block have correlation rho (a Gaussian copula);
# * "exclusive": at most one feature of a block is active (anti-correlated): one 32-bit
#   integer k per sample and block picks feature i when L_i <= k < U_i, with [L_i, U_i)
#   the block's cumulative probabilities times 2^32, and its value a (k - L_i + 1/2) /
#   (U_i - L_i) is again U(0, a). Needs sum p <= 1 within every block.
#
# Values v_i ~ U(0, a) (a = 2, or 1 for TMS's values) are independent of the activations in both.


def correlated_tables(p, kind: str, block: int, value_max: float = 2.0) -> dict[str, np.ndarray]:
    """Per-feature tables ([n] each) of a ``copula`` or ``exclusive`` sampler (values U(0, ``value_max``))."""
    p = np.asarray(p, np.float64)
    if kind == "copula":
        return {"z": np.asarray(jax.scipy.special.ndtri(jnp.asarray(p, jnp.float32)))}
    upper = np.cumsum(p.reshape(-1, block), axis=1).reshape(-1)
    if upper.max() > 1 + 1e-9:
        raise ConfigError("exclusive_blocks", True, "a block's probabilities sum above 1; use smaller blocks")
    high = np.minimum(np.floor(upper * 2.0**32), 2.0**32 - 1)
    low = np.minimum(np.floor((upper - p) * 2.0**32), high)
    return {
        "low": low.astype(np.uint32),
        "high": high.astype(np.uint32),
        "scales": (value_max / np.maximum(high - low, 1.0)).astype(np.float32),
    }


def correlated_draws(
    key: jax.Array, kind: str, batch_size: int, n: int, block: int, value_max: float = 2.0
) -> dict[str, jax.Array]:
    """The random numbers of one batch, shared by every distribution of a seed."""
    if kind == "copula":
        k_block, k_feature, k_value = jax.random.split(key, 3)
        return {
            "block": jax.random.normal(k_block, (batch_size, n // block)),
            "feature": jax.random.normal(k_feature, (batch_size, n)),
            "value": jax.random.uniform(k_value, (batch_size, n), maxval=value_max),
        }
    return {"bits": jax.random.bits(key, (batch_size, n // block), jnp.uint32)}


def correlated_features(draws: dict, tables: dict, kind: str, block: int, rho, unit: bool = False) -> jax.Array:
    """x: [B, n] from :func:`correlated_draws` and :func:`correlated_tables` (``unit``: values 1)."""
    if kind == "copula":
        shared = jnp.repeat(draws["block"], block, axis=1)
        latent = jnp.sqrt(rho) * shared + jnp.sqrt(1.0 - rho) * draws["feature"]
        return jnp.where(latent < tables["z"], 1.0 if unit else draws["value"], 0.0)
    bits = jnp.repeat(draws["bits"], block, axis=1)
    active = (bits >= tables["low"]) & (bits < tables["high"])
    value = 1.0 if unit else (bits - tables["low"]).astype(jnp.float32) * tables["scales"] + tables["scales"] / 2
    return jnp.where(active, value, 0.0)


def sample_correlated(key: jax.Array, p, batch_size: int, block: int, rho: float = 0.0, exclusive: bool = False):
    """One batch ``x: [batch_size, n]`` with correlated (or mutually exclusive) blocks."""
    kind = "exclusive" if exclusive else "copula"
    n = len(p)
    tables = {k: jnp.asarray(v) for k, v in correlated_tables(p, kind, block).items()}
    return correlated_features(correlated_draws(key, kind, batch_size, n, block), tables, kind, block, rho)


def _split_label(label: str, field: str, families: tuple[str, ...], bare: str) -> tuple[str, str, str]:
    """``'family:arg'`` as ``label.partition(":")``, with a known family; ``bare`` takes no argument."""
    family, sep, arg = label.partition(":")
    if family not in families:
        raise ConfigError(field, label, f"unknown family; use one of {', '.join(families)}")
    if family == bare and sep:
        raise ConfigError(field, label, f"'{bare}' takes no parameter")
    return family, sep, arg


def _number(text: str, field: str, label: str, example: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(field, label, f"'{example.split(':')[0]}:' takes a number, e.g. '{example}'") from None


def _load_vector(path: str, n: int) -> np.ndarray:
    file = Path(path)
    try:
        p = np.load(file) if file.suffix == ".npy" else np.loadtxt(file)
    except FileNotFoundError:
        raise ConfigError(
            "distribution", f"file:{path}", "file not found; give an existing .npy or text file"
        ) from None
    except (ValueError, OSError) as err:
        raise ConfigError("distribution", f"file:{path}", f"cannot read a vector ({err})") from None
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (n,):
        raise ConfigError("distribution", f"file:{path}", f"has shape {p.shape}; it must hold n = {n} probabilities")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ConfigError("distribution", f"file:{path}", "probabilities must be finite and lie in [0, 1]")
    return p
