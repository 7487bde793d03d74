"""What the paper measures on a trained weight matrix: norms, overlaps, ETF-likeness, losses.

Every function takes a stack ``W: [models, n, m]`` (one row W_i per feature) or a single
matrix ``W: [n, m]``; for a single matrix the leading ``models`` axis is dropped from every
result. Inputs in bfloat16/float16 are upcast to float32 block by block (matrix products
accumulate in float32 from the narrow inputs, whose products are exact in float32); XLA may
still convert the whole W once where it is a product's operand, so an LLM head too large
for that is streamed from disk by :mod:`supjax.llm.overlaps`, which reuses the frame
operator here.

Pairwise quantities (overlaps, feature dimensionality, per-feature losses) are computed over
blocks of rows against all n rows: memory is O(block x n), never O(n^2). The default block
keeps a block's float32 Gram slab ``[models, block, n]`` under 256 MiB (see
:func:`default_block_size`), so n = 50 000, m = 64 fits in well under 2 GB.

Normalised rows are w_i = W_i / ||W_i||. A row with ||W_i|| <= 1e-12 (an unlearned feature
that decayed to zero) has no direction; it is given w_i = 0, so its overlaps are 0 and it
still counts among the n (n - 1) pairs.

This module is on the analysis side: it never imports the training code, so it runs on any
saved weight matrix, ours or a real model's. It is longer than most (about 570 lines) because
it is one idea, the measures of a weight matrix, whose every function shares the same private
block machinery (row blocks, Gram slabs, zero-row handling); split, that machinery would
become a public module of its own for no reader's benefit.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

ZERO_ROW_NORM = 1e-12
GRAM_SLAB_BYTES = 256 * 2**20


# ---- shapes, dtypes, blocks ---------------------------------------------------------------


def _as_stack(W) -> tuple[jax.Array, bool]:
    """``W`` as ``[models, n, m]`` and whether it came as a single ``[n, m]`` matrix."""
    W = jnp.asarray(W)
    if W.ndim == 2:
        return W[None], True
    if W.ndim == 3:
        return W, False
    raise ValueError(f"W must have shape [n, m] or [models, n, m]; got shape {W.shape}")


def _unstack(tree, single: bool):
    return jax.tree.map(lambda a: a[0], tree) if single else tree


def _compute_dtype(dtype) -> jnp.dtype:
    """float32 for half-precision and integer inputs; float64 stays float64 (under x64)."""
    return jnp.promote_types(dtype, jnp.float32)


def default_block_size(n: int, models: int = 1, slab_bytes: int = GRAM_SLAB_BYTES) -> int:
    """Rows per block so that the float32 slab ``[models, block, n]`` stays under ``slab_bytes``."""
    return int(max(1, min(n, slab_bytes // (4 * n * models))))


def _block_size(block_size: int | None, n: int, models: int) -> int:
    if block_size is None:
        return default_block_size(n, models)
    if not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer; got {block_size!r}")
    return int(min(block_size, n))


def _num_blocks(n: int, block_size: int) -> int:
    return -(-n // block_size)


def _row_block(W: jax.Array, index, block_size: int):
    """Rows ``[index * block, (index + 1) * block)`` of ``W: [n, m]``.

    The last block is shifted back to end at row n instead of being padded, which avoids a
    padded copy of W; rows it shares with the previous block are flagged as not ``fresh`` so
    that sums count each row once. Returns ``rows: [block, m]``, ``row_ids: [block]``, ``fresh:
    [block]``.
    """
    n = W.shape[0]
    start = index * block_size
    first = jnp.minimum(start, n - block_size)
    rows = lax.dynamic_slice_in_dim(W, first, block_size, axis=0)
    row_ids = first + jnp.arange(block_size)
    return rows, row_ids, row_ids >= start


def _gram(rows: jax.Array, W: jax.Array, dtype) -> jax.Array:
    """``rows W^T: [block, n]`` accumulated in ``dtype``; HIGHEST so GPUs do not drop to TF32."""
    return lax.dot_general(
        rows, W, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST, preferred_element_type=dtype
    )


def _norms(W: jax.Array) -> jax.Array:
    """||W_i|| of ``W: [..., n, m]`` in the compute dtype, upcast inside the fused reduction."""
    return jnp.sqrt(jnp.sum(jnp.square(W.astype(_compute_dtype(W.dtype))), axis=-1))


def _inverse_norms(norms: jax.Array) -> jax.Array:
    """1/||W_i||, and 0 for zero rows, so that w_i = W_i * inverse_i is 0 there."""
    return jnp.where(norms > ZERO_ROW_NORM, 1.0 / jnp.maximum(norms, ZERO_ROW_NORM), 0.0)


# ---- norms -------------------------------------------------------------------------------------


@jax.jit
def _row_norms(W: jax.Array) -> jax.Array:
    return _norms(W)


def row_norms(W) -> jax.Array:
    """||W_i|| for every feature: ``W: [models, n, m] -> [models, n]``."""
    W, single = _as_stack(W)
    return _unstack(_row_norms(W), single)


def represented_fraction(W, threshold: float = 0.5) -> jax.Array:
    """phi_t = share of features with ||W_i|| > t: ``[models, n, m] -> [models]``.

    t = 1/2 (default) is the paper's phi_{1/2}, "represented"; t = 1 gives phi_1, "strongly
    represented". The comparison is strict, so rows of norm exactly t do not count.
    """
    return jnp.mean(row_norms(W) > threshold, axis=-1)


@jax.jit
def _row_alignment(A: jax.Array, B: jax.Array, threshold) -> jax.Array:
    dtype = _compute_dtype(A.dtype)
    norms_a, norms_b = _norms(A), _norms(B)
    cos = jnp.sum(A.astype(dtype) * B.astype(dtype), axis=-1) * _inverse_norms(norms_a) * _inverse_norms(norms_b)
    kept = (norms_a > threshold) & (norms_b > threshold)
    return jnp.sum(jnp.where(kept, cos, 0.0), axis=-1) / jnp.sum(kept, axis=-1)


def row_alignment(A, B, threshold: float = 0.0) -> jax.Array:
    """Mean of cos(A_i, B_i) over the features with ||A_i|| and ||B_i|| > ``threshold``:
    ``[models, n, m] x [models, n, m] -> [models]`` (NaN where no feature qualifies).

    For an untied model, A = encoder rows and B = decoder rows, with threshold 1/2: 1 when
    every represented feature is read and written along one direction (as the tied model
    does), near 0 for unrelated directions, negative where features are read against their
    written direction (switched off by the output ReLU).
    """
    A, single = _as_stack(A)
    B, _ = _as_stack(B)
    if A.shape != B.shape:
        raise ValueError(f"row_alignment needs equal shapes [models, n, m], got {A.shape} and {B.shape}")
    return _unstack(_row_alignment(A, B, threshold), single)


# ---- overlaps ------------------------------------------------------------------------------------


class OverlapStatistics(NamedTuple):
    """Statistics of the overlaps o_ij = w_i . w_j over the n (n - 1) ordered pairs i != j.

    Each field is ``[models]`` (a scalar for a single matrix).
    """

    mean_abs_overlap: jax.Array
    """mean_{i != j} |o_ij|."""
    mean_squared_overlap: jax.Array
    """mean_{i != j} o_ij^2; 1/m for random directions, the Welch bound for an ETF."""
    squared_overlap_variance: jax.Array
    """Var_{i != j}(o_ij^2); 2(m - 1)/(m^2 (m + 2)) for random directions, 0 for an ETF."""
    coherence: jax.Array
    """max_{i != j} |o_ij|."""

    @property
    def abs_overlap_std(self) -> jax.Array:
        """Std of |o_ij|: sqrt(mean o^2 - (mean |o|)^2), the spread the paper reports for LLM heads."""
        return jnp.sqrt(jnp.maximum(self.mean_squared_overlap - jnp.square(self.mean_abs_overlap), 0.0))


def _overlap_sums(W: jax.Array, block_size: int):
    """Sums over i != j of |o|, o^2, (o^2 - c)^2 and max |o| for one ``W: [n, m]``."""
    n, m = W.shape
    dtype = _compute_dtype(W.dtype)
    inverse = _inverse_norms(_norms(W))
    # Var(o^2) = mean (o^2 - c)^2 - (mean o^2 - c)^2 for any c; c near mean o^2 avoids the
    # cancellation that would swamp the variance of a nearly equiangular frame.
    shift = float(welch_bound(n, m))
    columns = jnp.arange(n)

    def body(index, sums):
        abs_sum, squared_sum, deviation_sum, largest = sums
        rows, row_ids, fresh = _row_block(W, index, block_size)
        overlaps = _gram(rows, W, dtype) * inverse[row_ids][:, None] * inverse[None, :]
        counted = fresh[:, None] & (row_ids[:, None] != columns[None, :])
        magnitude = jnp.where(counted, jnp.abs(overlaps), 0.0)
        squared = jnp.square(magnitude)
        deviation = jnp.where(counted, jnp.square(squared - shift), 0.0)
        # Two-stage sums (over columns, then rows) keep float32 rounding at O(sqrt(n) eps).
        return (
            abs_sum + jnp.sum(jnp.sum(magnitude, axis=1)),
            squared_sum + jnp.sum(jnp.sum(squared, axis=1)),
            deviation_sum + jnp.sum(jnp.sum(deviation, axis=1)),
            jnp.maximum(largest, jnp.max(magnitude)),
        )

    zero = jnp.zeros((), dtype)
    return lax.fori_loop(0, _num_blocks(n, block_size), body, (zero, zero, zero, zero)), shift


@functools.partial(jax.jit, static_argnames="block_size")
def _overlap_statistics(W: jax.Array, block_size: int) -> OverlapStatistics:
    n = W.shape[1]
    pairs = float(n * (n - 1))  # a Python int overflows int32 past n = 46 341

    def one_model(w):
        (abs_sum, squared_sum, deviation_sum, largest), shift = _overlap_sums(w, block_size)
        mean_squared = squared_sum / pairs
        variance = deviation_sum / pairs - jnp.square(mean_squared - shift)
        return OverlapStatistics(abs_sum / pairs, mean_squared, jnp.maximum(variance, 0.0), largest)

    return jax.vmap(one_model)(W)


def overlap_statistics(W, block_size: int | None = None) -> OverlapStatistics:
    """Overlap statistics of the normalised rows, computed blockwise over rows.

    ``W: [models, n, m]`` -> :class:`OverlapStatistics` of ``[models]`` arrays. ``block_size``
    rows are compared against all n rows at a time (default: :func:`default_block_size`);
    the result does not depend on it beyond float32 rounding. Needs n >= 2.
    """
    W, single = _as_stack(W)
    models, n, _ = W.shape
    if n < 2:
        raise ValueError(f"overlaps need at least two rows; got n = {n}")
    return _unstack(_overlap_statistics(W, _block_size(block_size, n, models)), single)


def mean_squared_overlap(W, block_size: int | None = None) -> jax.Array:
    """mean_{i != j} (w_i . w_j)^2: ``[models, n, m] -> [models]``."""
    return overlap_statistics(W, block_size).mean_squared_overlap


def coherence(W, block_size: int | None = None) -> jax.Array:
    """mu = max_{i != j} |w_i . w_j|: ``[models, n, m] -> [models]``."""
    return overlap_statistics(W, block_size).coherence


# ---- the frame operator -------------------------------------------------------------------------


class FrameOperator(NamedTuple):
    """The weighted frame operator S = sum_i a_i w_i w_i^T and the sums that go with it.

    Every field is a sum over rows, so the FrameOperator of a matrix is the field-wise sum of
    those of its row blocks (a caller streaming a matrix too large for the device adds them up,
    in float64). Fields are ``[models, ...]`` (no ``models`` axis for a single matrix).
    """

    frame: jax.Array
    """S = sum_i a_i w_i w_i^T: ``[models, m, m]``."""
    diagonal: jax.Array
    """sum_i a_i^2 ||w_i||^4: the i = j terms of ||S||_F^2 = sum_{i, j} a_i a_j (w_i . w_j)^2."""
    weight_sum: jax.Array
    """sum_i a_i (n for unit weights)."""
    weight_square_sum: jax.Array
    """sum_i a_i^2."""


@functools.partial(jax.jit, static_argnames=("block_size", "normalise"))
def _frame_operator(W: jax.Array, weights: jax.Array, block_size: int, normalise: bool) -> FrameOperator:
    _, n, m = W.shape
    dtype = _compute_dtype(W.dtype)

    def one_model(w, a):
        scale = _inverse_norms(_norms(w)) if normalise else jnp.ones((n,), dtype)

        def body(index, carry):
            frame, diagonal = carry
            rows, row_ids, fresh = _row_block(w, index, block_size)
            v = rows.astype(dtype) * jnp.where(fresh, scale[row_ids], 0.0)[:, None]
            av = jnp.where(fresh, a[row_ids], 0.0)
            frame = frame + lax.dot_general(
                v * av[:, None], v, (((0,), (0,)), ((), ())), precision=lax.Precision.HIGHEST
            )
            return frame, diagonal + jnp.sum(jnp.square(av * jnp.sum(jnp.square(v), axis=-1)))

        start = (jnp.zeros((m, m), dtype), jnp.zeros((), dtype))
        frame, diagonal = lax.fori_loop(0, _num_blocks(n, block_size), body, start)
        return FrameOperator(frame, diagonal, jnp.sum(a), jnp.sum(jnp.square(a)))

    return jax.vmap(one_model)(W, weights.astype(dtype))


def frame_operator(W, weights=None, normalise: bool = True, block_size: int | None = None) -> FrameOperator:
    """S = sum_i a_i w_i w_i^T over the rows of ``W: [models, n, m]``, accumulated over row blocks.

    w_i = W_i / ||W_i|| (``normalise = False``: the raw rows W_i); ``weights`` a: ``[models, n]``
    or ``[n]``, default 1. Costs O(n m^2) and memory O(m^2 + block m): no n x n block is formed.
    :func:`squared_overlap_from_frame` and :func:`tight_frame_distance_from_frame` read the
    paper's ETF measures off it.
    """
    W, single = _as_stack(W)
    models, n, _ = W.shape
    weights = jnp.ones((models, n)) if weights is None else jnp.broadcast_to(jnp.asarray(weights), (models, n))
    return _unstack(_frame_operator(W, weights, _block_size(block_size, n, models), normalise), single)


def _array_module(frame: FrameOperator):
    """numpy for numpy fields (a streamed float64 sum stays float64), else jax.numpy."""
    return np if isinstance(frame.frame, np.ndarray) else jnp


def squared_overlap_from_frame(frame: FrameOperator):
    """sum_{i != j} a_i a_j o_ij^2 / sum_{i != j} a_i a_j = (||S||_F^2 - diagonal) / ((sum a)^2 - sum a^2).

    ``-> [models]``; numpy in, numpy out (float64 stays float64); jax in, jax out.
    """
    xp = _array_module(frame)
    squared = xp.sum(xp.square(frame.frame), axis=(-2, -1))
    return (squared - frame.diagonal) / (xp.square(frame.weight_sum) - frame.weight_square_sum)


def tight_frame_distance_from_frame(frame: FrameOperator):
    """||S - (N/m) I_m||_F / (N / sqrt(m)) with N = sum_i a_i (n for unit weights): ``-> [models]``.

    The difference is formed before squaring: expanding ||S||_F^2 - 2 (N/m) tr S + N^2/m
    would cancel catastrophically near a tight frame, where d is what is measured.
    """
    xp = _array_module(frame)
    m = frame.frame.shape[-1]
    size = xp.asarray(frame.weight_sum)
    excess = frame.frame - (size / m)[..., None, None] * xp.eye(m, dtype=frame.frame.dtype)
    return xp.sqrt(xp.sum(xp.square(excess), axis=(-2, -1))) / (size / np.sqrt(m))


def weighted_squared_overlap(W, weights=None, normalise: bool = True, block_size: int | None = None) -> jax.Array:
    """sum_{i != j} a_i a_j o_ij^2 / sum_{i != j} a_i a_j: ``[models, n, m] -> [models]``.

    o_ij = w_i . w_j of the normalised rows (``normalise = False``: W_i . W_j of the raw
    rows) and ``weights`` a: ``[models, n]`` or ``[n]`` (default 1, which gives
    :func:`mean_squared_overlap`). a = 1[||W_i|| > t] restricts the mean to the represented
    features; a = p weights each pair by how often both features occur. Exact from the m x m
    frame operator S = sum_i a_i w_i w_i^T (:func:`frame_operator`): sum_{i, j} a_i a_j o_ij^2
    = ||S||_F^2, less the i = j terms, so it costs O(n m^2) and no n x n block.
    """
    return squared_overlap_from_frame(frame_operator(W, weights, normalise, block_size))


def represented_squared_overlap(W, threshold: float = 1.0, block_size: int | None = None) -> jax.Array:
    """Mean (w_i . w_j)^2 over pairs of features with ||W_i||, ||W_j|| > ``threshold``: ``[models]``.

    With t = 1, the pairs of strongly represented features (the phi_1 rows): the measure
    that reproduces the paper's Fig. 6d, about 1/m at every width in strong superposition
    (see REPRODUCTION.md), where the mean over all pairs also counts the weakly represented
    rows, which share directions. NaN with fewer than two such rows.
    """
    kept = (row_norms(W) > threshold).astype(jnp.float32)
    return weighted_squared_overlap(W, kept, block_size=block_size)


# ---- reference values for n unit vectors in R^m -----------------------------------------------


def welch_bound(n, m):
    """(n - m) / (m (n - 1)), clipped at 0: the least possible mean_{i != j} (w_i . w_j)^2.

    Attained exactly by tight frames (for n <= m, by orthonormal sets: 0). Accepts numbers or
    arrays; for n = 1 there are no pairs and the bound is taken as 0.
    """
    n = np.asarray(n, np.float64)
    m = np.asarray(m, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.where(n > 1, (n - m) / (m * np.maximum(n - 1, 1)), 0.0)
    return np.maximum(bound, 0.0)[()]


def coherence_bound(n, m):
    """A lower bound on the coherence max_{i != j} |w_i . w_j| of n unit vectors in R^m.

    For n <= m(m + 1)/2 it is the Welch bound sqrt((n - m)/(m (n - 1))), attained iff the
    vectors form an equiangular tight frame (real ETFs can exist only in this range). For
    n > m(m + 1)/2 no real ETF exists and the orthoplex (Rankin) bound 1/sqrt(m), which is
    larger there, applies. 0 for n <= m (orthonormal sets).
    """
    n = np.asarray(n, np.float64)
    m = np.asarray(m, np.float64)
    return np.where(n <= m * (m + 1) / 2, np.sqrt(welch_bound(n, m)), 1.0 / np.sqrt(m))[()]


def random_squared_overlap_variance(m):
    """2 (m - 1) / (m^2 (m + 2)): Var of (w_i . w_j)^2 for independent uniform directions in R^m.

    (w_i . w_j)^2 ~ Beta(1/2, (m - 1)/2), with mean 1/m and this variance.
    """
    m = np.asarray(m, np.float64)
    return (2.0 * (m - 1) / (m**2 * (m + 2)))[()]


# ---- tight frames and ETF-likeness -------------------------------------------------------------


def tight_frame_distance(W, block_size: int | None = None) -> jax.Array:
    """Relative distance of the normalised rows from a tight frame: ``[models, n, m] -> [models]``.

    d = ||w^T w - (n/m) I_m||_F / ||(n/m) I_m||_F, with w: [n, m] the normalised rows and
    ||(n/m) I_m||_F = n / sqrt(m). d = 0 iff the rows form a tight frame (an ETF, or an
    orthonormal set when n = m). For unit rows it measures exactly the excess of the mean
    squared overlap over the Welch bound:

        mean_{i != j} (w_i . w_j)^2 = (n - m)/(m (n - 1)) + ||w^T w - (n/m) I||_F^2 / (n (n - 1))
                                    = welch_bound(n, m) + d^2 n / (m (n - 1)).

    Read off the m x m frame operator (:func:`frame_operator`, memory O(m^2 + block m)).
    """
    return tight_frame_distance_from_frame(frame_operator(W, block_size=block_size))


def etf_likeness(W, block_size: int | None = None) -> dict[str, jax.Array]:
    """How close the normalised rows are to an equiangular tight frame (ETF).

    Returns a dict of ``[models]`` arrays (scalars for a single matrix):

    * ``welch_bound``: (n - m)/(m (n - 1)), the same for every model;
    * ``mean_squared_overlap``: mean_{i != j} (w_i . w_j)^2;
    * ``welch_excess``: mean_squared_overlap - welch_bound (>= 0; 0 iff tight frame);
    * ``tight_frame_distance``: see :func:`tight_frame_distance`;
    * ``coherence_ratio``: coherence / :func:`coherence_bound` (>= 1; 1 for an ETF; nan for
      n <= m, where the bound is 0);
    * ``etf_variance_ratio``: Var(o^2) / :func:`random_squared_overlap_variance` (m): 0 for an
      ETF, about 1 for random directions; the quantity of the paper's last figure, which
      separates the two where 1/m and the Welch bound are too close to tell apart.
    """
    W, single = _as_stack(W)
    models, n, m = W.shape
    block_size = _block_size(block_size, n, models)
    statistics = _overlap_statistics(W, block_size)
    dtype = statistics.mean_squared_overlap.dtype
    bound = jnp.full((models,), welch_bound(n, m), dtype)
    lowest_coherence = float(coherence_bound(n, m))
    result = {
        "welch_bound": bound,
        "mean_squared_overlap": statistics.mean_squared_overlap,
        "welch_excess": statistics.mean_squared_overlap - bound,
        "tight_frame_distance": tight_frame_distance_from_frame(
            _frame_operator(W, jnp.ones((models, n)), block_size, True)
        ),
        "coherence_ratio": statistics.coherence / lowest_coherence
        if lowest_coherence > 0
        else jnp.full_like(bound, jnp.nan),
        "etf_variance_ratio": statistics.squared_overlap_variance / random_squared_overlap_variance(m),
    }
    return _unstack(result, single)


# ---- per-feature quantities ------------------------------------------------------------------


def _per_row_blocks(W: jax.Array, block_size: int, block_values) -> jax.Array:
    """Assemble ``[n]`` from ``block_values(rows, row_ids) -> [block]`` over row blocks of ``W: [n, m]``.

    Rows shared by the shifted last block are recomputed to the same values, so plain
    overwriting is exact.
    """
    n = W.shape[0]
    dtype = _compute_dtype(W.dtype)

    def body(index, out):
        rows, row_ids, _ = _row_block(W, index, block_size)
        return lax.dynamic_update_slice_in_dim(out, block_values(rows, row_ids).astype(dtype), row_ids[0], axis=0)

    return lax.fori_loop(0, _num_blocks(n, block_size), body, jnp.zeros((n,), dtype))


@functools.partial(jax.jit, static_argnames="block_size")
def _feature_dimensionality(W: jax.Array, block_size: int) -> jax.Array:
    def one_model(w):
        dtype = _compute_dtype(w.dtype)
        norms = _norms(w)
        inverse = _inverse_norms(norms)

        def block_values(rows, row_ids):
            projections = _gram(rows, w, dtype) * inverse[row_ids][:, None]
            denominator = jnp.sum(jnp.square(projections), axis=1)
            safe = jnp.where(denominator > 0, denominator, 1.0)
            return jnp.where(denominator > 0, jnp.square(norms[row_ids]) / safe, 0.0)

        return _per_row_blocks(w, block_size, block_values)

    return jax.vmap(one_model)(W)


def feature_dimensionality(W, block_size: int | None = None) -> jax.Array:
    """D_i = ||W_i||^2 / sum_j (w_i . W_j)^2 (Elhage et al. 2022): ``[models, n, m] -> [models, n]``.

    w_i is the normalised row i, W_j the raw rows, and the sum includes j = i, so
    0 <= D_i <= 1: 1 for a feature with a dimension of its own, 1/k for one of k features
    sharing a direction, m/(m + 1) for each vector of a simplex. Zero rows get D_i = 0.
    """
    W, single = _as_stack(W)
    models, n, _ = W.shape
    return _unstack(_feature_dimensionality(W, _block_size(block_size, n, models)), single)


def superposition(W, block_size: int | None = None) -> jax.Array:
    """How much each feature shares its dimensions: sum_{j != i} (w_i . W_j)^2 / ||W_i||^2.

    ``[models, n, m] -> [models, n]`` (or ``[n, m] -> [n]``), w_i = W_i / ||W_i||. It equals
    1/D_i - 1 with D_i the :func:`feature_dimensionality`: 0 for a feature with dimensions
    of its own, 1 for each of an antipodal pair of equal norms, 2 cos^2(72°) + 2 cos^2(144°)
    = 3/2 for each vertex of a regular pentagon; 0 for a zero row. TMS colours its norm bars
    by the unnormalised sum_{j != i} (w_i . W_j)^2 (the notebook's ``render_features`` by
    its square root); dividing by ||W_i||^2 makes it a property of the directions alone.
    """
    dimensionality = feature_dimensionality(W, block_size)
    shared = dimensionality > 0
    return jnp.where(shared, 1.0 / jnp.where(shared, dimensionality, 1.0) - 1.0, 0.0)


def unlearned_loss(
    W, p, threshold: float = 0.5, value_max: float = 2.0, importance=None, value_min: float = 0.0
) -> jax.Array:
    """The weak-regime loss prediction: sum_{i : ||W_i|| <= t} I_i Var(x_i). ``-> [models]``.

    An unlearned feature is best served by its bias alone (y_i = E[x_i]), which costs
    Var(x_i) = p_i E[v^2] - p_i^2 E[v]^2 for x_i = u_i v_i, u_i ~ Bernoulli(p_i), v_i ~ U(l, a)
    (l = ``value_min``, a = ``value_max``): E[v^2] = (l^2 + l a + a^2)/3, E[v] = (l + a)/2;
    (4/3) p_i - p_i^2 for the paper's U(0, 2), p_i/3 - p_i^2/4 for TMS's U(0, 1).
    ``p`` and ``importance`` (I, default 1) are ``[n]`` (shared) or ``[models, n]``;
    t = ``threshold`` (default 1/2, as phi_{1/2}).
    """
    norms = row_norms(W)
    p = jnp.asarray(p, norms.dtype)
    low, high = value_min, value_max
    variance = ((low * low + low * high + high * high) / 3.0) * p - ((low + high) / 2.0) ** 2 * jnp.square(p)
    if importance is not None:
        variance = variance * jnp.asarray(importance, norms.dtype)
    return jnp.sum(jnp.where(norms <= threshold, variance, 0.0), axis=-1)


@functools.partial(jax.jit, static_argnames="block_size")
def _per_feature_loss(W: jax.Array, b: jax.Array, value: jax.Array, block_size: int) -> jax.Array:
    def one_model(w, bias):
        dtype = _compute_dtype(w.dtype)
        columns = jnp.arange(w.shape[0])
        bias = bias.astype(dtype)

        def block_values(rows, row_ids):
            prediction = jax.nn.relu(value * _gram(rows, w, dtype) + bias[None, :])
            target = jnp.where(row_ids[:, None] == columns[None, :], value, 0.0)
            return jnp.sum(jnp.square(prediction - target), axis=1)

        return _per_row_blocks(w, block_size, block_values)

    return jax.vmap(one_model)(W, b)


def per_feature_loss(W, b, p=None, value: float = 1.0, block_size: int | None = None) -> jax.Array:
    """Loss when feature i alone is active with value v: ``W: [models, n, m], b: [models, n] -> [models, n]``.

    L_i = sum_k (ReLU(v e_i W W^T + b)_k - v delta_ik)^2 = sum_k (ReLU(v W_i . W_k + b_k) - v delta_ik)^2,
    the squared error summed over outputs (the reported loss's convention; the paper's code,
    ``per_sample_loss(model(eye(n)), eye(n))``, averages over k instead, i.e. L_i / n, with v = 1).
    ``b`` may be ``[n]`` to share one bias. With ``p`` (``[n]`` or ``[models, n]``) each L_i is
    weighted by its activation probability, returning p_i L_i. Computed over blocks of features.
    """
    W, single = _as_stack(W)
    models, n, _ = W.shape
    b = jnp.broadcast_to(jnp.asarray(b), (models, n))
    dtype = _compute_dtype(W.dtype)
    losses = _per_feature_loss(W, b, jnp.asarray(value, dtype), _block_size(block_size, n, models))
    if p is not None:
        losses = losses * jnp.asarray(p, dtype)
    return _unstack(losses, single)
