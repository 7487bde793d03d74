"""Norms, frame operator and pairwise overlaps of a matrix too large to hold upcast, block by block.

An LM head ``W: [n, m]`` (152 000 x 8192 in bfloat16 is 2.5 GB) is read in row blocks of its
stored dtype (:func:`read_rows`: file reads from a memory map's file, so the pass does not keep
the whole file resident); no float32 copy of the whole matrix is ever made (one would be 5 GB
for that head, and XLA makes one when a product has W as an operand).

* :func:`row_pass`: the norms ||W_i|| and the frame operator S = sum_i w_i w_i^T
  (:func:`supjax.metrics.frame_operator` of each block, summed in float64). S gives the mean
  squared overlap and the tight-frame distance exactly, in O(n m^2).
* :func:`pair_sums`: the sums over ordered pairs i != j of |o_ij|, o_ij^2 and (o_ij^2 - c)^2,
  and the largest |o_ij|, for o_ij = w_i . w_j; optionally per row i. Each unordered pair of
  row blocks is multiplied once (n^2 m flops in all), in the stored dtype with float32
  accumulation (products of bfloat16 or float16 numbers are exact in float32); sums are
  float64 on the host. Per-row sums are what a jackknife over sampled rows needs
  (:mod:`supjax.llm.head`).

:mod:`supjax.metrics` computes the same statistics for stacks of toy models held on the
device; this module exists for one matrix streamed from disk.
"""

from __future__ import annotations

import functools
import mmap
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from supjax import metrics


def default_block_rows(n: int, device: jax.Device) -> int:
    """Rows per block: 2048 on a CPU (a 16 MiB float32 slab of overlaps), 8192 on an accelerator."""
    return int(min(n, 2048 if device.platform == "cpu" else 8192))


def _mapped_file(W) -> bool:
    """Whether ``W`` is a whole memory-mapped file array (its ``offset`` is where row 0 starts)."""
    return isinstance(W, np.memmap) and isinstance(W.base, mmap.mmap) and W.flags.c_contiguous


def read_rows(W, start: int, stop: int) -> np.ndarray:
    """Rows ``[start, stop)`` of ``W: [n, m]`` as a new array.

    A memory map is read with a plain file read: pages touched through the map stay mapped
    (and count as the process's resident memory) until it closes, which for a whole pass is
    the whole file; a read only warms the page cache.
    """
    if not _mapped_file(W):
        return np.array(W[start:stop])
    rows = np.empty((stop - start, *W.shape[1:]), W.dtype)
    with open(W.filename, "rb") as file:
        file.seek(W.offset + start * W.strides[0])
        file.readinto(rows.reshape(-1).view(np.uint8))
    return rows


def take_rows(W, indices) -> np.ndarray:
    """Rows ``indices`` of ``W: [n, m]`` as a new array, read as :func:`read_rows` does."""
    indices = np.asarray(indices)
    if not _mapped_file(W):
        return np.asarray(W[indices])
    rows = np.empty((indices.size, *W.shape[1:]), W.dtype)
    flat = rows.reshape(indices.size, -1).view(np.uint8)
    with open(W.filename, "rb") as file:
        for k, index in enumerate(indices):
            file.seek(W.offset + int(index) * W.strides[0])
            file.readinto(flat[k])
    return rows


def _block(W, start: int, stop: int, device: jax.Device) -> jax.Array:
    """Rows ``[start, stop)`` of ``W`` on ``device``, in their stored dtype (float64 as float32 without x64)."""
    rows = read_rows(W, start, stop)
    if rows.dtype == np.float64 and not jax.config.jax_enable_x64:
        rows = rows.astype(np.float32)
    return jax.device_put(rows, device)


def _starts(n: int, block_rows: int) -> list[int]:
    return list(range(0, n, block_rows))


class RowPass(NamedTuple):
    """What one pass over the rows gives: ``norms: [n]`` and the frame operator, both float64 numpy."""

    norms: np.ndarray
    frame: metrics.FrameOperator


def row_pass(W, block_rows: int, device: jax.Device) -> RowPass:
    """Norms ||W_i|| and S = sum_i w_i w_i^T of ``W: [n, m]`` (w_i = W_i / ||W_i||), block by block."""
    n, m = W.shape
    norms = np.empty(n)
    total = metrics.FrameOperator(np.zeros((m, m)), 0.0, 0.0, 0.0)
    for start in _starts(n, block_rows):
        stop = min(start + block_rows, n)
        rows = _block(W, start, stop, device)
        norms[start:stop] = np.asarray(metrics.row_norms(rows), np.float64)
        part = metrics.frame_operator(rows, block_size=stop - start)
        total = metrics.FrameOperator(*(t + np.asarray(p, np.float64) for t, p in zip(total, part, strict=True)))
    return RowPass(norms, total)


class PairSums(NamedTuple):
    """Sums over ordered pairs i != j of |o_ij|, o_ij^2 and (o_ij^2 - shift)^2, o_ij = w_i . w_j."""

    totals: np.ndarray
    """``[3]`` float64: the three sums over all n (n - 1) ordered pairs."""
    coherence: float
    """max_{i != j} |o_ij|."""
    shift: float
    """c in (o^2 - c)^2; a value near the mean of o^2 keeps Var(o^2) free of cancellation."""
    per_row: np.ndarray | None
    """``[3, n]`` float64: for each row i the sums over j != i (with ``per_row=True``), else None."""


def _sums_and_max(values, axis: int):
    """sum |o|, sum o^2, sum (o^2 - c)^2 and max |o| along ``axis`` in one pass (a variadic reduce).

    ``values`` = (|o|, o^2, (o^2 - c)^2); separate reductions would each re-read the block.
    """
    zero = jnp.zeros((), values[0].dtype)

    def combine(x, y):
        return x[0] + y[0], x[1] + y[1], x[2] + y[2], jnp.maximum(x[3], y[3])

    return lax.reduce((*values, values[0]), (zero,) * 4, combine, (axis,))


@functools.partial(jax.jit, static_argnames=("same_block", "columns"))
def _block_pair(A, B, inverse_a, inverse_b, shift, same_block: bool, columns: bool):
    """``[4, len(A)]`` sums and max over B's rows for each row of A; with ``columns``, also ``[4, len(B)]``."""
    dtype = jnp.promote_types(A.dtype, jnp.float32)
    gram = lax.dot_general(
        A, B, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST, preferred_element_type=dtype
    )
    overlaps = gram * inverse_a.astype(dtype)[:, None] * inverse_b.astype(dtype)[None, :]
    if same_block:
        overlaps = jnp.where(jnp.eye(A.shape[0], dtype=bool), 0.0, overlaps)
    magnitude = jnp.abs(overlaps)
    squared = jnp.square(overlaps)
    deviation = jnp.square(squared - shift)
    if same_block:
        deviation = jnp.where(jnp.eye(A.shape[0], dtype=bool), 0.0, deviation)
    values = (magnitude, squared, deviation)
    rows = jnp.stack(_sums_and_max(values, 1))
    return (rows, jnp.stack(_sums_and_max(values, 0))) if columns else (rows, None)


def pair_sums(
    W,
    norms: np.ndarray,
    shift: float,
    block_rows: int,
    device: jax.Device,
    per_row: bool = False,
    progress: bool = False,
) -> PairSums:
    """:class:`PairSums` of ``W: [n, m]`` over every ordered pair i != j, by blocks of ``block_rows``.

    ``norms``: ``[n]`` row norms (from :func:`row_pass`); rows of norm <= 1e-12 have no
    direction and are given w_i = 0, as in :mod:`supjax.metrics`. Each unordered pair of
    blocks is multiplied once: without ``per_row`` its sums count twice (the transposed block
    has the same ones); with ``per_row`` its column sums go to the second block's rows.
    ``progress``: a tqdm bar on stderr counting block pairs.
    """
    from tqdm.auto import tqdm

    n = W.shape[0]
    inverse = np.where(norms > metrics.ZERO_ROW_NORM, 1.0 / np.maximum(norms, metrics.ZERO_ROW_NORM), 0.0)
    inverse = inverse.astype(np.float32)
    rows_total = np.zeros((3, n))
    largest = 0.0
    starts = _starts(n, block_rows)
    pairs = [(i, j) for i in range(len(starts)) for j in range(i, len(starts))]
    bar = tqdm(total=len(pairs), desc="overlaps", unit="block pair", disable=not progress, file=sys.stderr)

    def span(index):
        return starts[index], min(starts[index] + block_rows, n)

    def drain(job):
        nonlocal largest
        (a0, a1), (b0, b1), (rows, columns) = job
        rows = np.asarray(rows, np.float64)
        same = (a0, a1) == (b0, b1)
        if same or per_row:
            rows_total[:, a0:a1] += rows[:3]
        else:  # the transposed block has the same sums: count this one twice, on A's rows
            rows_total[:, a0:a1] += 2 * rows[:3]
        if columns is not None:
            rows_total[:, b0:b1] += np.asarray(columns, np.float64)[:3]
        largest = max(largest, float(rows[3].max()))
        bar.update()

    pending, row_block, row_index = [], None, None
    for i, j in pairs:
        (a0, a1), (b0, b1) = span(i), span(j)
        if row_index != i:
            row_block, row_index = _block(W, a0, a1, device), i
        column_block = row_block if i == j else _block(W, b0, b1, device)
        outputs = _block_pair(
            row_block,
            column_block,
            inverse[a0:a1],
            inverse[b0:b1],
            np.float32(shift),
            same_block=i == j,
            columns=per_row and i != j,
        )
        pending.append(((a0, a1), (b0, b1), outputs))
        if len(pending) > 1:  # one product in flight while the next block is read: bounded memory
            drain(pending.pop(0))
    for job in pending:
        drain(job)
    bar.close()
    return PairSums(rows_total.sum(axis=1), largest, float(shift), rows_total if per_row else None)
