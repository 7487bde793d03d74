"""The toy model of superposition for ONE model; batch over models with ``jax.vmap``.

Parameters are ``{"W": [n, m], "b": [n]}``; the forward pass is
y = ReLU(x W W^T + b) for a row-vector batch ``x: [B, n]``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Params = dict[str, jax.Array]

# What the squared error compares the output with (the ``target`` config field): the paper's
# reconstruction of x, or |x| (ARENA's "computation in superposition": with signed features,
# feature_values = "uniform_-1_1", and the hidden-ReLU model, which must compute |x_i|).
TARGETS = {"identity": lambda x: x, "abs": jnp.abs}


def native_bfloat16() -> bool:
    """Whether this machine's CPU has bfloat16 arithmetic (AVX-512 BF16 or AMX); elsewhere XLA:CPU
    emulates it, and bfloat16 products ran at 0.5x float32 (2-core AMD EPYC, AVX2 only, 2026-12-06)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Loss(NamedTuple):
    """A training objective (the ``loss`` config field) and what it asks of the data and the step."""

    squared_error: bool  # the squared error: importance weights, targets, sparse products and every model apply
    one_active_feature: bool  # every sample has one active feature, drawn with probability p_i / sum p


LOSSES = {
    "mse": Loss(squared_error=True, one_active_feature=False),
    "cross_entropy": Loss(squared_error=False, one_active_feature=True),
    "soft_cross_entropy": Loss(squared_error=False, one_active_feature=False),
}


def init_params(key: jax.Array, n: int, m: int, weight_init: str = "normal", bias_init: str = "normal") -> Params:
    """W: [n, m] by :func:`init_weight`, b: [n] by :func:`init_bias`; the defaults are the
    paper's init (W ~ N(0, 1/m), b ~ N(0, 1)), ``"xavier_normal"`` and ``"zeros"`` TMS's."""
    key_w, key_b = jax.random.split(key)
    return {"W": init_weight(key_w, (n, m), weight_init), "b": init_bias(key_b, n, bias_init)}


def init_weight(key: jax.Array, shape: tuple[int, int], kind: str = "normal") -> jax.Array:
    """A weight matrix ``[n, m]``: ``"normal"``, N(0, 1/m) (the paper's code); ``"xavier_normal"``,
    N(0, 2/(n + m)) (Glorot & Bengio 2010, torch's ``xavier_normal_`` of one [n, m] matrix, as TMS)."""
    n, m = shape
    draw = jax.random.normal(key, shape, jnp.float32)
    if kind == "xavier_normal":
        return draw * jnp.sqrt(jnp.float32(2.0 / (n + m)))
    return draw / jnp.sqrt(jnp.float32(m))


def init_bias(key: jax.Array, n: int, kind: str = "normal") -> jax.Array:
    """A bias ``[n]``: ``"normal"``, N(0, 1) (the paper's code); ``"zeros"`` (TMS)."""
    if kind == "zeros":
        return jnp.zeros((n,), jnp.float32)
    return jax.random.normal(key, (n,), jnp.float32)


def forward(params: Params, x: jax.Array) -> jax.Array:
    """y = ReLU(x W W^T + b); ``x: [B, n] -> y: [B, n]``. Costs 4 B n m flops."""
    hidden = x @ params["W"]
    return jax.nn.relu(hidden @ params["W"].T + params["b"])


def mean_squared_error(params: Params, x: jax.Array, importance: jax.Array | None = None) -> jax.Array:
    """The training objective of the paper's code: squared error averaged over B and n.

    With ``importance: [n]`` each feature's error is weighted by I_i (Elhage et al. 2022).
    """
    return output_mean_squared_error(forward(params, x), x, importance)


def output_mean_squared_error(y: jax.Array, x: jax.Array, importance: jax.Array | None = None) -> jax.Array:
    """mean_{b, i} I_i (y_bi - x_bi)^2 for any model's output ``y: [B, n]`` (I = 1 if None)."""
    error = jnp.square(y - x)
    return jnp.mean(error if importance is None else error * importance)


def loss(params: Params, x: jax.Array, importance: jax.Array | None = None) -> jax.Array:
    """The reported loss: squared error summed over features, averaged over the batch.

    Equals n x :func:`mean_squared_error`. An untrained model with zero output costs
    sum_i E[x_i^2] = (4/3) sum_i p_i.
    """
    error = jnp.square(forward(params, x) - x)
    return jnp.mean(jnp.sum(error if importance is None else error * importance, axis=-1))


def cross_entropy_per_sample(params: Params, x: jax.Array) -> jax.Array:
    """-sum_i q_i log softmax(z)_i per sample, z = x W W^T + b (logits, no ReLU), q = x / sum(x).

    With one active feature t (``loss = "cross_entropy"``) q is one-hot and this is
    -log softmax(z)_t; with several (``"soft_cross_entropy"``) the target is the
    distribution the active features define. A sample with no active feature costs 0.
    """
    logits = (x @ params["W"]) @ params["W"].T + params["b"]
    total = jnp.sum(x, axis=-1, keepdims=True)
    target = x / jnp.where(total > 0, total, 1.0)
    return -jnp.sum(target * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def cross_entropy(params: Params, x: jax.Array) -> jax.Array:
    """Mean of :func:`cross_entropy_per_sample` over the samples with an active feature."""
    active = jnp.sum(x, axis=-1) > 0
    return jnp.sum(cross_entropy_per_sample(params, x)) / jnp.maximum(jnp.sum(active), 1)


def active_entries(x: jax.Array, capacity: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The nonzero entries of each row of ``x: [B, n]``, zero-padded to ``capacity``.

    Returns ``(index [B, K], value [B, K], fits)``: row b's active features in order, then
    index 0 with value 0; ``fits`` is False when some row has more than K, whose extra
    entries are dropped (use the dense product for that batch).
    """
    active = x != 0
    slot = jnp.where(active, jnp.cumsum(active, axis=-1) - 1, capacity)  # capacity: dropped
    rows = jnp.arange(x.shape[0])[:, None]
    cols = jnp.broadcast_to(jnp.arange(x.shape[1], dtype=jnp.int32), x.shape)
    index = jnp.zeros((x.shape[0], capacity), jnp.int32).at[rows, slot].set(cols, mode="drop")
    value = jnp.zeros((x.shape[0], capacity), x.dtype).at[rows, slot].set(x, mode="drop")
    return index, value, jnp.all(jnp.sum(active, axis=-1) <= capacity)


def active_batches(x: jax.Array, capacity: int) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    """:func:`active_entries` of every stream's batch ``x: [S, B, n]``: ``((index, value), all fit)``."""
    index, value, fits = jax.vmap(lambda a: active_entries(a, capacity))(x)
    return (index, value), jnp.all(fits)


def product(operand_dtype=None):
    """``a @ b`` (``operand_dtype`` None), or the product of ``a`` and ``b`` cast to
    ``operand_dtype`` with float32 accumulation and result: real mixed precision on every backend,
    where ``jax.default_matmul_precision`` is only a hint that XLA:CPU ignores."""
    if operand_dtype is None:
        return jnp.matmul

    def mixed(a, b):
        a, b = a.astype(operand_dtype), b.astype(operand_dtype)
        # XLA:CPU's plain dot (DotThunk) has no bf16 x bf16 = f32 kernel for a product that
        # contracts both operands' first axis (x^T dh): lay the left operand out transposed first.
        a = jax.lax.optimization_barrier(a)
        return jnp.matmul(a, b, preferred_element_type=jnp.float32)

    return mixed


def mse_and_grad(
    params: Params,
    x: jax.Array,
    batch_tile: int | None = None,
    importance: jax.Array | None = None,
    active: tuple[jax.Array, jax.Array] | None = None,
    target=TARGETS["identity"],
    operand_dtype=None,
) -> tuple[jax.Array, Params]:
    """``jax.value_and_grad(mean_squared_error)`` written out, one batch tile at a time.

    With h = x W, z = h W^T + b, r = ReLU(z) - x and dz = 2 I r 1[z > 0] / (B n)
    (I = ``importance``, default 1):
    dL/dW = x^T (dz W) + dz^T h and dL/db = sum_b dz. Equal to autodiff up to float32
    summation order. Scanning over tiles of ``batch_tile`` rows (a divisor of B; None
    for the whole batch) keeps each tile's [tile, n] intermediates in cache, which on
    a CPU halves the time of a vmapped step; on a GPU one tile (the whole batch) is best.

    ``active = (index, value)`` from :func:`active_entries` (all rows must fit) computes
    the two products with x from its K nonzeros per row: h by a gather of K rows of W,
    x^T (dz W) by a scatter-add, so a step costs 6 B n m + 4 B K m flops instead of 10 B n m.
    ``target``: the residual is ReLU(z) - target(x) (see :data:`TARGETS`).
    ``operand_dtype`` (e.g. ``jnp.bfloat16``): the five dense products take their operands in
    that type and accumulate in float32 (``preferred_element_type``), on every backend; W, b, the
    ReLU, the residual, the gradient sums and the loss stay float32.
    """
    matmul = product(operand_dtype)
    W, b = params["W"], params["b"]
    batch = x.shape[0]
    tile = batch if batch_tile is None else batch_tile
    if batch % tile:
        raise ValueError(f"batch_tile = {tile} must divide the batch size {batch}")
    scale = 2.0 / x.size

    def one_tile(carry, tiles):
        grad_w, grad_b, total = carry
        x_tile, index, value = tiles
        hidden = matmul(x_tile, W) if index is None else jnp.einsum("tk,tkm->tm", value, W[index])
        z = matmul(hidden, W.T) + b
        residual = jax.nn.relu(z) - target(x_tile)
        weighted = residual if importance is None else residual * importance
        dz = jnp.where(z > 0, weighted, 0.0) * scale
        dh = matmul(dz, W)
        if index is None:
            grad_w = grad_w + matmul(x_tile.T, dh)
        else:
            grad_w = grad_w.at[index].add(value[..., None] * dh[:, None, :])
        grad_w = grad_w + matmul(dz.T, hidden)
        return (grad_w, grad_b + dz.sum(0), total + jnp.sum(weighted * residual)), None

    def tiled(a):
        return None if a is None else a.reshape(batch // tile, tile, *a.shape[1:])

    index, value = (None, None) if active is None else active
    start = (jnp.zeros_like(W), jnp.zeros_like(b), jnp.zeros((), x.dtype))
    (grad_w, grad_b, total), _ = jax.lax.scan(one_tile, start, (tiled(x), tiled(index), tiled(value)))
    return total / x.size, {"W": grad_w, "b": grad_b}


def default_batch_tile(batch_size: int, platform: str) -> int:
    """Rows per tile for :func:`mse_and_grad`: about 256 on a CPU, the whole batch elsewhere."""
    if platform != "cpu" or batch_size <= 512:
        return batch_size
    divisors = [t for t in range(128, 513) if batch_size % t == 0]
    return min(divisors, key=lambda t: abs(t - 256)) if divisors else batch_size
