"""Sparse autoencoder architectures, each one :class:`SaeDef` on the toy model's seam.

An SAE reads a toy model's hidden activation h = x W (``h: [B, m]``) and writes it as a
sparse code ``f: [B, D]`` over D latents, each with a decoder direction (row j of
``W_dec: [D, m]``): h_hat = f W_dec + b_dec. Parameters are a pure dict::

    W_enc: [m, D]   b_enc: [D]   W_dec: [D, m] (row j: latent j's direction)   b_dec: [m]
    log_threshold: [D]   (jumprelu only)

Every SAE of a sweep is padded to the largest dictionary D of the sweep; ``hyper.mask: [D]``
(1 for the SAE's own d latents, 0 for padding) zeroes the padded latents' activations, so they
get no gradient, take no Adam step and are never chosen by TopK: a padded SAE trains as the
unpadded one would (to float32 rounding). Row j's initial direction is the j-th row of a
sequential draw, so it does not depend on the padding either (:func:`init_params`).

=============  ===============================================  ===================================
architecture   code f (``hyper.sparsity`` is)                    loss per sample, decoder rows
=============  ===============================================  ===================================
``relu``       ReLU(W_enc h + b_enc) (lambda)                     ||h - h_hat||^2 + lambda sum_j f_j ||W_dec,j||; free
``topk``       ReLU(TopK_k(W_enc (h - b_dec) + b_enc)) (k)        ||h - h_hat||^2; unit norm
``batchtopk``  top k B values of the batch's ReLU(...) (k)        ||h - h_hat||^2; unit norm
``jumprelu``   z H(z - theta), z = ReLU(W_enc h + b_enc) (lambda)  ||h - h_hat||^2 + lambda ||f||_0; unit norm
=============  ===============================================  ===================================

Shared by all four (Anthropic's April 2024 update, Gao et al. 2024 and Rajamanoharan et al.
2024 agree on these): W_enc starts as W_dec^T, both biases at 0, Adam (0.9, 0.999, 1e-8). A
unit-norm decoder has the gradient component along each row removed before the Adam step and its
rows renormalised after it (Gao et al. 2024, sec. 2.2 and appendix A.4; Bricken et al. 2023).
The reconstruction error is the squared error summed over the m dimensions, averaged over the
batch (a mean over dimensions is the same up to the constant m, which Adam does not see).

TopK's k is a traced per-SAE value: the threshold is each sample's k-th largest pre-activation,
found by ``k_max`` passes that each take out the row maximum (:func:`kth_largest`; ``k_max`` static,
the sweep's largest k rounded up to a power of two). A full sort, the textbook way to a traced k,
measured 300 ms for a [1024, 600] batch on the 2-core CPU, ``lax.top_k`` with k = 8 about 9 ms, the
passes well under 1 ms. BatchTopK's k B largest of a whole batch come from a bisection over the
float bits (:func:`largest_of_all`), exact and 9 times faster than ``lax.top_k`` on the CPU.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class SaeHyper(NamedTuple):
    """One SAE's traced hyperparameters (scalars in the one-SAE step; [T, S] in a group)."""

    sparsity: Any  # lambda (relu, jumprelu) or k (topk, batchtopk), float32
    lr: Any  # Adam's peak learning rate
    mask: Any  # [D]: 1.0 for the SAE's d latents, 0.0 for padding


class SaeDef(NamedTuple):
    """An SAE architecture as pure functions, the shape of :class:`supjax.variants.ModelDef`.

    * ``init(key, m, D) -> params`` (the pure dict of the module docstring, numpy arrays; ``key``:
      a seed of ``numpy.random.default_rng``, see :func:`init_params`);
    * ``loss_and_grad(params, h, hyper) -> ((loss, stats), grads)``: the training loss of a batch
      ``h: [B, m]`` and its gradient; ``stats`` holds ``mse`` (||h - h_hat||^2, batch mean), ``l0``
      (active latents per sample) and ``min_active`` (the smallest nonzero code value);
    * ``encode(params, h, hyper, buffers) -> f: [B, D]``: the code at evaluation;
    * ``init_buffers() / update_buffers(buffers, stats)``: running estimates that are not
      parameters (batchtopk's evaluation threshold; empty for the others);
    * ``penalty``: ``hyper.sparsity`` is a penalty coefficient (warmed up), not a count;
    * ``unit_norm_decoder``: decoder rows are kept at unit norm; ``clip_norm``: the gradient's
      global norm is clipped to it (None: no clipping).
    """

    init: Callable[[Any, int, int], dict]
    loss_and_grad: Callable[..., tuple]
    encode: Callable[..., jax.Array]
    init_buffers: Callable[[], dict]
    update_buffers: Callable[[dict, dict], dict]
    penalty: bool
    unit_norm_decoder: bool
    clip_norm: float | None


def decode(params: dict, f: jax.Array) -> jax.Array:
    """h_hat = f W_dec + b_dec: ``f: [B, D] -> [B, m]``."""
    return f @ params["W_dec"] + params["b_dec"]


def squared_error(h: jax.Array, h_hat: jax.Array) -> jax.Array:
    """||h - h_hat||^2 summed over the m dimensions, averaged over the batch."""
    return jnp.mean(jnp.sum((h - h_hat) ** 2, axis=-1))


def init_params(key, m: int, D: int, decoder_norm: float = 1.0) -> dict:
    """Decoder rows in random directions with norm ``decoder_norm``, W_enc = W_dec^T, biases 0.

    Drawn on the host: ``key`` is a seed of ``numpy.random.default_rng`` (the sweep passes
    (seed, toy model index)), whose normals fill the [D, m] rows in order, so row j is the same at
    any padded size D >= j. (With jax's threefry the initial program took 36 of the 110 s the
    smoke experiment spent compiling on the CPU; numpy's draws compile nothing.)
    """
    rows = np.random.default_rng(key).standard_normal((D, m), dtype=np.float32)
    W_dec = decoder_norm * rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return {"W_enc": np.ascontiguousarray(W_dec.T), "b_enc": np.zeros(D, np.float32), "W_dec": W_dec,
            "b_dec": np.zeros(m, np.float32)}  # fmt: skip


def _stats(params, h, f, hyper) -> tuple[jax.Array, dict]:
    h_hat = decode(params, f)
    mse = squared_error(h, h_hat)
    active = f > 0
    smallest = jnp.min(jnp.where(active, f, jnp.inf))
    return mse, {"mse": mse, "l0": jnp.mean(jnp.sum(active, axis=-1)), "min_active": smallest}


def _no_buffers() -> dict:
    return {}


def _keep(buffers: dict, stats: dict) -> dict:
    return buffers


# ---- relu: L1 times decoder norms (Anthropic, April 2024) ----------------------------------------


def relu(clip_norm: float = 1.0, decoder_norm: float = 0.1) -> SaeDef:
    """The standard SAE as Anthropic's "Circuits Updates, April 2024: How we train SAEs" writes it.

    f = ReLU(W_enc h + b_enc), h_hat = W_dec f + b_dec (no decoder bias subtracted before the
    encoder), loss = ||h - h_hat||^2 + lambda sum_j f_j ||W_dec,j||_2: the L1 penalty weighted by
    each latent's decoder norm, and the decoder left unconstrained (no renormalisation), so a
    latent cannot shrink its code by growing its decoder row. Initialisation: decoder rows in
    random directions with norm 0.1, W_enc = W_dec^T, b_enc = b_dec = 0. Training: Adam
    (0.9, 0.999), no weight decay, gradient clipped to global norm 1, lambda warmed up linearly
    from 0 over the first 5% of the steps and the learning rate decayed linearly to 0 over the
    last 20% (``sparsity_warmup_fraction``, ``lr_decay_fraction``), inputs scaled by one constant
    so that E||h|| = sqrt(m) (``normalise_inputs``). We chose this convention over Bricken et
    al. 2023's plain L1 with unit-norm decoder rows renormalised after every step.
    """

    def encode(params, h, hyper, buffers=None):
        return jax.nn.relu(h @ params["W_enc"] + params["b_enc"]) * hyper.mask

    def loss(params, h, hyper):
        f = encode(params, h, hyper)
        mse, stats = _stats(params, h, f, hyper)
        decoder_norms = jnp.linalg.norm(params["W_dec"], axis=1)
        return mse + hyper.sparsity * jnp.mean(f @ decoder_norms), stats

    def init(key, m, D):
        return init_params(key, m, D, decoder_norm)

    return SaeDef(init, jax.value_and_grad(loss, has_aux=True), encode, _no_buffers, _keep, True, False, clip_norm)


# ---- topk (Gao et al. 2024) ----------------------------------------------------------------------


def _pre_activations(params, h, hyper):
    """W_enc (h - b_dec) + b_enc with the padded latents at -inf (never among the top k)."""
    z = (h - params["b_dec"]) @ params["W_enc"] + params["b_enc"]
    return jnp.where(hyper.mask > 0, z, -jnp.inf)


def _as_count(sparsity) -> jax.Array:
    return jnp.round(sparsity).astype(jnp.int32)


def kth_largest(z: jax.Array, k, k_max: int) -> jax.Array:
    """The k-th largest entry of every row of ``z: [B, D]`` (``[B]``) for a traced ``k <= k_max``:
    ``k_max`` passes that each take out the row maximum. On the CPU this is 20 to 100 times faster
    than ``lax.top_k(z, k_max)`` at k_max = 1 to 8 (XLA:CPU's TopK is a sort-based runtime call).
    Entries equal to a maximum leave together, so exact ties (probability zero for real-valued
    pre-activations; the padded latents' -inf are never among the k largest) count once."""

    def take_largest(i, carry):
        rest, kth = carry
        largest = jnp.max(rest, axis=-1)
        return jnp.where(rest >= largest[..., None], -jnp.inf, rest), jnp.where(i == k - 1, largest, kth)

    start = (z, jnp.full(z.shape[:-1], -jnp.inf, z.dtype))
    return jax.lax.fori_loop(0, k_max, take_largest, start, unroll=k_max <= 16 or 8)[1]


def topk(k_max: int) -> SaeDef:
    """TopK SAE of Gao et al. 2024, "Scaling and evaluating sparse autoencoders".

    z = TopK(W_enc (h - b_pre) + b_enc) followed by a ReLU, as their code's ``TopK(k,
    postact_fn=ReLU())``: every latent outside the k largest pre-activations of the sample is 0;
    h_hat = W_dec z + b_pre (our b_pre is b_dec, subtracted before the encoder as theirs is).
    Loss: the squared error alone (no L1; their normalised MSE divides by a constant). Decoder
    rows unit norm: the gradient along each row is projected out before the Adam step and the
    rows renormalised after it. W_enc = W_dec^T at the start. Left out: the auxiliary AuxK loss
    for dead latents (coefficient 1/32 in the paper) and b_pre's geometric-median initialisation
    (h = 0 is the toy model's "no feature" point, so b_pre starts at 0).

    k is ``hyper.sparsity`` (traced); ``k_max`` (static) bounds it.
    """

    def encode(params, h, hyper, buffers=None):
        z = _pre_activations(params, h, hyper)
        threshold = jax.lax.stop_gradient(kth_largest(z, _as_count(hyper.sparsity), k_max))
        return jnp.where(z >= threshold[..., None], jax.nn.relu(z), 0.0)

    def loss(params, h, hyper):
        return _stats(params, h, encode(params, h, hyper), hyper)

    return SaeDef(init_params, jax.value_and_grad(loss, has_aux=True), encode, _no_buffers, _keep, False, True, None)


# ---- batchtopk (Bussmann et al. 2024) ------------------------------------------------------------


def largest_of_all(a: jax.Array, count) -> jax.Array:
    """The ``count``-th largest entry of ``a >= 0`` (any shape; ties counted; 0 if fewer entries are
    positive), exactly, for a traced ``count``: a bisection over the float bits, which order
    non-negative float32 values as integers, 31 passes of compare-and-count. On the CPU, vmapped over
    12 SAEs of [512, 200] activations, it took 5 ms an SAE against 44 ms for ``lax.top_k`` of the
    flattened batch."""
    bits = jax.lax.bitcast_convert_type(a, jnp.int32)

    def halve(i, bounds):  # count(bits >= low) >= count > count(bits >= high)
        low, high = bounds
        middle = low + (high - low) // 2
        enough = jnp.sum(bits >= middle) >= count
        return jnp.where(enough, middle, low), jnp.where(enough, high, middle)

    low, _ = jax.lax.fori_loop(0, 31, halve, (jnp.int32(0), jnp.int32(0x7F800000)))  # 0 to +inf
    return jax.lax.bitcast_convert_type(low, a.dtype)


def batchtopk(threshold_rate: float = 0.01) -> SaeDef:
    """BatchTopK SAE of Bussmann, Leask and Nanda 2024, "BatchTopK Sparse Autoencoders".

    As :func:`topk`, but the k B largest activations of the whole batch ReLU(W_enc (h - b_dec) +
    b_enc): [B, D] are kept, so a sample may use more or fewer than k latents and k is the mean.
    At evaluation the batch dependence is removed with one global threshold theta: f_j = a_j if
    a_j > theta, "estimated as the average of the minimum positive activation values across
    batches" during training; we average with an exponential moving average of rate
    ``threshold_rate`` (SAELens's ``topk_threshold_lr``, 0.01), starting at the first batch's value.
    """

    def activations(params, h, hyper):
        return jax.nn.relu((h - params["b_dec"]) @ params["W_enc"] + params["b_enc"]) * hyper.mask

    def train_code(params, h, hyper):
        a = activations(params, h, hyper)
        threshold = jax.lax.stop_gradient(largest_of_all(a, _as_count(hyper.sparsity) * a.shape[0]))
        return jnp.where((a >= threshold) & (a > 0), a, 0.0)

    def encode(params, h, hyper, buffers):
        a = activations(params, h, hyper)
        return jnp.where(a > buffers["threshold"], a, 0.0)

    def loss(params, h, hyper):
        return _stats(params, h, train_code(params, h, hyper), hyper)

    def init_buffers():
        return {"threshold": jnp.float32(-1.0)}  # negative: not yet estimated

    def update_buffers(buffers, stats):
        seen = jnp.isfinite(stats["min_active"])
        new = stats["min_active"]
        old = buffers["threshold"]
        averaged = jnp.where(old < 0, new, (1.0 - threshold_rate) * old + threshold_rate * new)
        return {"threshold": jnp.where(seen, averaged, old)}

    value_and_grad = jax.value_and_grad(loss, has_aux=True)
    return SaeDef(init_params, value_and_grad, encode, init_buffers, update_buffers, False, True, None)


# ---- jumprelu (Rajamanoharan et al. 2024) --------------------------------------------------------


def _rectangle(u):
    return ((u > -0.5) & (u < 0.5)).astype(u.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def jump_relu(z, threshold, bandwidth: float):
    """``(JumpReLU_theta(z), H(z - theta))``: the code z H(z - theta) and the gate H(z - theta), with
    the paper's pseudo-derivatives in theta (K the rectangle on (-1/2, 1/2), epsilon = ``bandwidth``):

    * d JumpReLU / d theta = -(theta / epsilon) K((z - theta) / epsilon), d JumpReLU / d z = H(z - theta);
    * d H / d theta = -(1 / epsilon) K((z - theta) / epsilon), and none in z (the L0 penalty trains
      the thresholds only).

    One function for both, so the kernel is evaluated once (two ``custom_vjp`` functions of the same z
    ran 2.4 times slower on the CPU). ``z: [B, D]``, ``threshold: [D]``.
    """
    gate = (z > threshold).astype(z.dtype)
    return z * gate, gate


def _jump_relu_forward(z, threshold, bandwidth):
    return jump_relu(z, threshold, bandwidth), (z, threshold)


def _jump_relu_backward(bandwidth, residuals, cotangents):
    z, threshold = residuals
    g_code, g_gate = cotangents
    kernel = _rectangle((z - threshold) / bandwidth) / bandwidth
    dthreshold = -kernel * (threshold * g_code + g_gate)
    return (z > threshold) * g_code, jnp.sum(dthreshold, axis=tuple(range(z.ndim - threshold.ndim)))


jump_relu.defvjp(_jump_relu_forward, _jump_relu_backward)


def jumprelu(bandwidth: float = 0.1, initial_threshold: float = 0.1) -> SaeDef:
    """JumpReLU SAE of Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction
    Fidelity with JumpReLU Sparse Autoencoders", as their pseudo-code (appendix J) writes it.

    z = ReLU(W_enc h + b_enc), f = JumpReLU_theta(z) = z H(z - theta) with theta =
    exp(log_threshold) per latent, h_hat = W_dec f + b_dec, loss = ||h - h_hat||^2 + lambda
    ||f||_0. H has no derivative, so the thresholds learn through straight-through estimators
    with a rectangle kernel of width epsilon (``jumprelu_bandwidth``, 0.001 in the paper):
    d JumpReLU / d theta = -(theta/epsilon) K((z - theta)/epsilon) and d H / d theta =
    -(1/epsilon) K((z - theta)/epsilon); the L0 term sends no gradient to z. Decoder rows unit
    norm (as topk's); lambda warmed up linearly over the first steps as the relu SAE's (Gemma
    Scope warms it up too). It fits the seam cleanly: one ``jax.custom_vjp`` function
    (:func:`jump_relu`) and a ``log_threshold`` parameter.

    One departure, in the defaults only: the paper's epsilon = theta_0 = 0.001 are for its LM
    activations; in our units (E||h|| = sqrt(m)) only samples within epsilon/2 of a threshold move
    it, and at toy scale there are too few of them: on 16 orthonormal features with
    epsilon = 0.001, lambda = 0.01 and 0.1 left every threshold where it started (L0 = 16 of 16
    latents, MCC 0.6). ``jumprelu_bandwidth`` = ``jumprelu_threshold`` = 0.1 and lambda = 1 give
    L0 = 0.9 and MCC 1.00 there; both remain settings.
    """
    log_initial = math.log(initial_threshold)

    def code(params, h, hyper):
        z = jax.nn.relu(h @ params["W_enc"] + params["b_enc"])
        return z, jnp.exp(params["log_threshold"])

    def encode(params, h, hyper, buffers=None):
        z, threshold = code(params, h, hyper)
        return jump_relu(z, threshold, bandwidth)[0] * hyper.mask

    def loss(params, h, hyper):
        z, threshold = code(params, h, hyper)
        f, gate = jump_relu(z, threshold, bandwidth)
        mse, stats = _stats(params, h, f * hyper.mask, hyper)
        return mse + hyper.sparsity * jnp.mean(gate @ hyper.mask), stats

    def init(key, m, D):
        return {**init_params(key, m, D), "log_threshold": np.full(D, log_initial, np.float32)}

    return SaeDef(init, jax.value_and_grad(loss, has_aux=True), encode, _no_buffers, _keep, True, True, None)


class Architecture(NamedTuple):
    """One SAE architecture, registered once in :data:`ARCHITECTURES` (as SAELens registers its classes).

    * ``build(options) -> SaeDef``: its pure functions, from the sweep's static options (a
      ``Static`` with ``k_max``, ``bandwidth``, ``initial_threshold``, ``threshold_rate``);
    * ``sparsity_axis``: the SaeSpec axis whose values are its traced ``sparsity``;
    * ``sparsity_name``: what that value is called in the tables (a column of ``sae_summary.csv``);
    * ``counts_latents``: the sparsity is a count k of latents (at most the smallest dictionary),
      and the program needs the static bound ``k_max``.
    """

    build: Callable[[Any], SaeDef]
    sparsity_axis: str
    sparsity_name: str
    counts_latents: bool


ARCHITECTURES: dict[str, Architecture] = {
    "relu": Architecture(lambda o: relu(), "l1_coefficients", "l1_coefficient", False),
    "topk": Architecture(lambda o: topk(o.k_max), "ks", "k", True),
    "batchtopk": Architecture(lambda o: batchtopk(o.threshold_rate), "ks", "k", True),
    "jumprelu": Architecture(
        lambda o: jumprelu(o.bandwidth, o.initial_threshold), "l0_coefficients", "l0_coefficient", False
    ),
}
SPARSITY_NAMES = tuple(dict.fromkeys(a.sparsity_name for a in ARCHITECTURES.values()))


def get(architecture: str, options) -> SaeDef:
    """The :class:`SaeDef` of an ``architectures`` entry, built from the sweep's static ``options``."""
    return ARCHITECTURES[architecture].build(options)


def k_bound(ks, dictionary: int) -> int:
    """The static k_max of a grid of ks: the largest k rounded up to a power of two (so most grids
    share a program), at most the padded dictionary size."""
    largest = max(int(k) for k in ks)
    return int(min(dictionary, 1 << (largest - 1).bit_length()))
