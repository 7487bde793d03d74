"""Models over devices: the D axis of every width group split over a mesh of devices.

Models are independent, so each device runs the one-device program on its share of every
group's data streams and the results equal a one-device run's; the data streams' batches are
drawn on every device (replicated) and each device takes the rows its models read.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

MODEL_AXIS = "models"


def mesh(devices: int) -> jax.sharding.Mesh:
    return jax.sharding.Mesh(np.array(jax.devices()[:devices]), (MODEL_AXIS,))


MODELS, EVERYWHERE = jax.sharding.PartitionSpec(MODEL_AXIS), jax.sharding.PartitionSpec()


def over_models(fn, static, logs: bool = False, in_specs: tuple | None = None):
    """``fn(states_or_keys, hypers, *replicated)`` run by every device on its share of the groups'
    leading axis; with ``logs`` the output is ``(states, logs [windows, D, ...])``, else the states
    alone. ``in_specs``: every argument's :data:`MODELS` (split) or :data:`EVERYWHERE` (replicated),
    a pytree prefix each (default: the first two split, the rest replicated)."""
    if static.devices == 1:
        return fn
    out_specs = (MODELS, jax.sharding.PartitionSpec(None, MODEL_AXIS)) if logs else MODELS

    def run(*args):
        specs = in_specs or (MODELS, MODELS, *[EVERYWHERE] * (len(args) - 2))
        return jax.shard_map(fn, mesh=mesh(static.devices), in_specs=specs, out_specs=out_specs, check_vma=False)(*args)

    return run


def rows(static, group, x):
    """The rows of ``x: [S, ...]`` (every stream's batch, or its sparse form; None passes) that the
    D rows of ``group`` on this device read: ``[D_local, ...]``."""
    if x is None:
        return None
    if isinstance(x, tuple):
        return tuple(rows(static, group, a) for a in x)
    reads = group.reads
    if static.devices == 1 and reads == tuple(range(reads[0], reads[0] + len(reads))):
        return x[reads[0] : reads[0] + len(reads)]
    local = group.shape[0] // static.devices
    first = jax.lax.axis_index(MODEL_AXIS) * local if static.devices > 1 else 0
    return x[jax.lax.dynamic_slice(jnp.asarray(reads, jnp.int32), (first,), (local,))]


def put(tree, devices: int, sharded: bool):
    """Global arrays from host values: split on the leading (D) axis, or replicated."""
    if devices == 1:
        return jax.device_put(tree)
    spec = jax.sharding.PartitionSpec(MODEL_AXIS) if sharded else jax.sharding.PartitionSpec()
    placement = jax.sharding.NamedSharding(mesh(devices), spec)

    def one(value):
        value = np.asarray(value)
        return jax.make_array_from_callback(value.shape, placement, lambda index: value[index])

    return jax.tree.map(one, tree)


def to_host(tree):
    """Host numpy copies of (possibly multi-host) global arrays."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def sync_hosts(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
