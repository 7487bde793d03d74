"""The paper's statistics of an LM head: norms, overlaps and ETF-likeness, exact or from sampled rows.

The head ``W: [n, m]`` has one row W_i per token; the statistics of :mod:`supjax.metrics` apply
unchanged. In the strong superposition regime the mean squared overlap of the normalised rows
is about 1/m (m <o^2> about 1), which is the paper's LLM check.

Exact (the default): one pass over the rows gives the norms and the frame operator
S = sum_i w_i w_i^T, hence the mean squared overlap and the tight-frame distance exactly in
O(n m^2); a blockwise pass over all pairs (n^2 m flops, with a progress bar) gives mean |o|,
Var(o^2) and the coherence (:mod:`supjax.llm.overlaps`). ``pairwise=False`` skips the second.

Sampled (``sample_rows = K``): every statistic is estimated from K rows drawn without
replacement, as a statistic of the whole head (the Welch bound and the tight-frame distance
use the full n), with a confidence interval ``<key>_ci``. Means over pairs are U-statistics of
the sampled rows; their intervals come from the delete-one-row jackknife, which the per-row
pair sums give in closed form (for U = T / (K (K - 1)) with T the sum over ordered pairs and
r_i the sum of row i, U_(-i) = (T - 2 r_i) / ((K - 1)(K - 2))), times the finite-population
factor 1 - K/n; smooth functions of several means (Var(o^2), the ETF ratio) are jackknifed
the same way. The sampled coherence is a lower bound on the head's and has no interval.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import numpy as np
from scipy import stats

from supjax import metrics
from supjax.errors import OptionError, WeightFileError
from supjax.llm import overlaps
from supjax.llm.weights import load_matrix


def _device(device) -> jax.Device:
    if device is None or isinstance(device, jax.Device):
        return device or jax.devices()[0]
    try:
        return jax.devices(device)[0]
    except RuntimeError:
        raise OptionError("--device", device, f"no such JAX backend here; available: {jax.default_backend()}") from None


def pair_measures(abs_mean, squared_mean, deviation_mean, nonzero_fraction, shift: float, n: int, m: int) -> dict:
    """The overlap statistics as functions of the pair means (floats, or arrays of jackknife replicates).

    ``abs_mean`` = mean |o|, ``squared_mean`` = mean o^2, ``deviation_mean`` = mean (o^2 - shift)^2
    over ordered pairs i != j of n rows in R^m; ``nonzero_fraction`` the share of rows with a
    direction. The tight-frame distance follows from the identity
    ||S - (n/m) I||_F^2 = n (n - 1) <o^2> + n' - 2 n n'/m + n^2/m (n' nonzero rows).
    """
    variance = np.maximum(deviation_mean - np.square(squared_mean - shift), 0.0)
    nonzero = n * nonzero_fraction
    frame_excess = n * (n - 1) * squared_mean + nonzero - 2 * n * nonzero / m + n**2 / m
    return {
        "mean_abs_overlap": abs_mean,
        "abs_overlap_std": np.sqrt(np.maximum(squared_mean - np.square(abs_mean), 0.0)),
        "mean_squared_overlap": squared_mean,
        "squared_overlap_variance": variance,
        "overlap_width_product": m * squared_mean,
        "welch_excess": squared_mean - float(metrics.welch_bound(n, m)),
        "tight_frame_distance": np.sqrt(np.maximum(frame_excess, 0.0)) / (n / math.sqrt(m)),
        "etf_variance_ratio": variance / float(metrics.random_squared_overlap_variance(m)) if m > 1 else math.nan,
    }


def jackknife_intervals(pair_row_sums: dict, row_values: dict, measures, population: int, confidence: float) -> dict:
    """Estimates and normal intervals from K sampled rows, by the delete-one-row jackknife.

    ``pair_row_sums``: ``{name: r: [K]}``, r_i = sum_{j != i} h(i, j) for a symmetric h, whose
    mean over ordered pairs is a U-statistic; ``row_values``: ``{name: x: [K]}``, averaged
    over rows. ``measures(pair_means, row_means) -> {key: value}`` maps means to statistics
    and must work on arrays. Returns ``{key: (estimate, low, high)}``: estimate ± z SE,
    SE^2 = (K - 1)/K sum_i (t_(-i) - mean t_(-))^2 x (1 - K/population).
    """
    size = len(next(iter(row_values.values())))
    if size < 3:
        raise ValueError(f"a jackknife over pairs needs at least 3 rows; got {size}")
    totals = {k: float(np.sum(r)) for k, r in pair_row_sums.items()}
    pair_means = {k: t / (size * (size - 1)) for k, t in totals.items()}
    left_out_pairs = {k: (totals[k] - 2 * r) / ((size - 1) * (size - 2)) for k, r in pair_row_sums.items()}
    row_means = {k: float(np.mean(x)) for k, x in row_values.items()}
    left_out_rows = {k: (np.sum(x) - x) / (size - 1) for k, x in row_values.items()}
    estimates = measures(pair_means, row_means)
    replicates = measures(left_out_pairs, left_out_rows)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    finite_population = max(0.0, 1.0 - size / population)
    result = {}
    for key, estimate in estimates.items():
        spread = np.asarray(replicates[key], np.float64)
        variance = (size - 1) / size * np.sum(np.square(spread - spread.mean())) * finite_population
        half = z * math.sqrt(variance) if np.isfinite(variance) else math.nan
        result[key] = (float(estimate), float(estimate) - half, float(estimate) + half)
    return result


def analyze_matrix(
    W,
    block_size: int | None = None,
    device=None,
    sample_rows: int | None = None,
    seed: int = 0,
    pairwise: bool = True,
    confidence: float = 0.95,
    progress: bool = False,
) -> dict:
    """Norm, overlap and ETF statistics of the rows of ``W: [n, m]``, as a flat dict.

    ``W`` may be a (memory-mapped) numpy array in any float dtype; it is read in row blocks of
    ``block_size`` (default :func:`supjax.llm.overlaps.default_block_rows`) and never upcast
    whole. Keys (the sweep summary table's column names where they exist):

    * ``n`` (rows analysed), ``total_rows``, ``m``, ``dtype``, ``device``, ``block_size``,
      ``sampled_rows`` (None: exact, every row), ``confidence`` (sampled only);
    * row norms ||W_i||: ``mean_norm``, ``std_norm``, ``min_norm``, ``median_norm``,
      ``max_norm``; ``represented_fraction`` phi_{1/2} (share with norm > 1/2) and
      ``strong_fraction`` phi_1 (norm > 1). An LLM's norms have their own scale, so these
      thresholds are the toy model's, kept for comparison;
    * overlaps o_ij = w_i . w_j of the normalised rows, over i != j: ``mean_abs_overlap``,
      ``abs_overlap_std``, ``mean_squared_overlap``, ``squared_overlap_variance``,
      ``coherence`` (max |o_ij|); ``inverse_width`` 1/m (the random-direction value of the mean
      squared overlap) and ``overlap_width_product`` = m x mean_squared_overlap;
    * ETF-likeness as in :func:`supjax.metrics.etf_likeness`: ``welch_bound``,
      ``welch_excess``, ``tight_frame_distance``, ``coherence_bound``, ``coherence_ratio``,
      ``etf_variance_ratio``;
    * sampled: ``<key>_ci`` = [low, high] at ``confidence`` for every mean and overlap
      statistic above (not for std/min/median/max norm or the coherence);
    * ``analysis_seconds``: wall time on ``device`` (transfers included).

    Exact mode costs O(n m^2) for the frame operator and n^2 m flops for the pairs
    (``pairwise=False``: skip them, leaving mean |o|, Var(o^2) and the coherence nan); memory
    is a few row blocks and [block, block] float32 slabs (a memory map's rows are read, not
    mapped: :func:`supjax.llm.overlaps.read_rows`). ``sample_rows``: K rows drawn
    without replacement (seeded by ``seed``), O(K^2 m). ``device``: a ``jax.Device`` or
    platform name (``"cpu"``, ``"gpu"``). ``progress``: a bar on stderr for the pair pass.
    """
    start = time.perf_counter()
    n_all, m = W.shape
    target = _device(device)
    dtype = str(np.dtype(W.dtype))
    if sample_rows is not None and sample_rows < n_all:
        if sample_rows < 3:
            raise OptionError("--sample-rows", sample_rows, "need at least 3 rows for an interval")
        rows = np.sort(np.random.default_rng(seed).choice(n_all, size=sample_rows, replace=False))
        W = overlaps.take_rows(W, rows)
    else:
        sample_rows = None
    n = W.shape[0]
    block = overlaps.default_block_rows(n, target) if block_size is None else int(min(block_size, n))
    if block < 1:
        raise OptionError("--block-size", block_size, "must be a positive number of rows")
    passed = overlaps.row_pass(W, block, target)
    norms = passed.norms
    shift = float(metrics.welch_bound(n_all, m))
    report = {
        "n": int(n),
        "total_rows": int(n_all),
        "m": int(m),
        "dtype": dtype,
        "device": str(target),
        "block_size": block,
        "sampled_rows": sample_rows,
        **_norm_summary(norms),
    }
    if sample_rows is None:
        report.update(_exact_overlaps(W, passed, shift, block, target, pairwise, progress))
    else:
        report["confidence"] = confidence
        sums = overlaps.pair_sums(W, norms, shift, block, target, per_row=True, progress=progress)
        report.update(_sampled_overlaps(norms, sums, n_all, m, confidence))
    report["inverse_width"] = 1.0 / m
    report["welch_bound"] = float(metrics.welch_bound(n_all, m))
    report["coherence_bound"] = lowest = float(metrics.coherence_bound(n_all, m))
    report["coherence_ratio"] = report["coherence"] / lowest if lowest > 0 else math.nan
    report["analysis_seconds"] = time.perf_counter() - start
    return report


def _norm_summary(norms: np.ndarray) -> dict:
    return {
        "mean_norm": float(norms.mean()),
        "std_norm": float(norms.std(ddof=1)),
        "min_norm": float(norms.min()),
        "median_norm": float(np.median(norms)),
        "max_norm": float(norms.max()),
        "represented_fraction": float(np.mean(norms > 0.5)),
        "strong_fraction": float(np.mean(norms > 1.0)),
    }


def _exact_overlaps(W, passed: overlaps.RowPass, shift: float, block: int, device, pairwise: bool, progress) -> dict:
    n, m = W.shape
    squared_mean = float(metrics.squared_overlap_from_frame(passed.frame))
    nan = math.nan
    abs_mean, deviation_mean, largest = nan, nan, nan
    if pairwise:
        sums = overlaps.pair_sums(W, passed.norms, shift, block, device, progress=progress)
        pairs = n * (n - 1)
        abs_mean, deviation_mean = sums.totals[0] / pairs, sums.totals[2] / pairs
        largest = sums.coherence
    nonzero = float(np.mean(passed.norms > metrics.ZERO_ROW_NORM))
    measures = pair_measures(abs_mean, squared_mean, deviation_mean, nonzero, shift, n, m)
    # The identity in pair_measures cancels near a tight frame; S gives the distance directly.
    measures["tight_frame_distance"] = float(metrics.tight_frame_distance_from_frame(passed.frame))
    return {**{k: float(v) for k, v in measures.items()}, "coherence": largest}


def _sampled_overlaps(norms: np.ndarray, sums: overlaps.PairSums, population: int, m: int, confidence: float) -> dict:
    pair_row_sums = dict(zip(("abs", "squared", "deviation"), sums.per_row, strict=True))
    row_values = {
        "norm": norms,
        "represented": (norms > 0.5).astype(np.float64),
        "strong": (norms > 1.0).astype(np.float64),
        "nonzero": (norms > metrics.ZERO_ROW_NORM).astype(np.float64),
    }

    def measures(pair_means, row_means):
        overlap = pair_measures(
            pair_means["abs"],
            pair_means["squared"],
            pair_means["deviation"],
            row_means["nonzero"],
            sums.shift,
            population,
            m,
        )
        rows = {k: row_means[v] for k, v in (("mean_norm", "norm"), ("represented_fraction", "represented"))}
        return {**rows, "strong_fraction": row_means["strong"], **overlap}

    report = {"coherence": sums.coherence}
    for key, (estimate, low, high) in jackknife_intervals(
        pair_row_sums, row_values, measures, population, confidence
    ).items():
        report[key] = estimate
        report[f"{key}_ci"] = [low, high]
    return report


def non_finite(values, rows: int = 4096) -> int:
    """How many entries of the matrix ``values`` (perhaps memory-mapped) are NaN or inf, read in row blocks."""
    return int(sum(np.count_nonzero(~np.isfinite(np.asarray(values[i : i + rows], np.float32)))
                   for i in range(0, values.shape[0], rows)))  # fmt: skip


def analyze_path(path: str | Path, tensor: str | None = None, **options) -> dict:
    """:func:`~supjax.llm.weights.load_matrix`, then :func:`analyze_matrix`; adds path, tensor, load_seconds."""
    start = time.perf_counter()
    head = load_matrix(path, tensor)
    bad = non_finite(head.values)
    if bad:
        raise WeightFileError(
            head.source,
            f"tensor {head.tensor} holds {bad} non-finite values (NaN or inf) of {head.values.size}; "
            "the weights are damaged: export them again",
        )
    loaded = time.perf_counter() - start
    report = analyze_matrix(head.values, **options)
    return {"path": str(head.source), "tensor": head.tensor, "load_seconds": loaded, **report}
