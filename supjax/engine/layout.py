"""Where a model sits: every group of a wing's layout is a :class:`Placement`.

A group is a block of same-shape models laid out on a grid (``shape``, e.g. the toy models' [D, G]
or the SAEs' [T, S]); its flat ``model_index`` names the model in each slot, or holds
:data:`PADDING` where a slot is padding (a copy of the group's last model, so that the leading axis
splits over several devices). The padding marker is decoded here and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import jax
import numpy as np

from supjax.errors import ConfigError

PADDING = -1


@dataclass(frozen=True)
class Placement:
    """The slots of one group: which model each holds, and where its logs go."""

    model_index: np.ndarray  # [prod(shape)] the model in each slot (its row of the run's table); PADDING for padding
    local_index: np.ndarray  # [prod(shape)] each slot's row of the job's logs; PADDING for padding
    shape: tuple[int, ...]  # the group's grid of models, e.g. (D, G)

    @property
    def _real(self) -> np.ndarray:
        return self.model_index != PADDING

    @property
    def indices(self) -> np.ndarray:
        """The model index of every real model of the group, in slot order."""
        return self.model_index[self._real]

    @property
    def rows(self) -> np.ndarray:
        """The job's log row of every real model, in the order of :attr:`indices`."""
        return self.local_index[self._real]

    @property
    def padding(self) -> int:
        return int(np.sum(~self._real))

    def real(self, values) -> np.ndarray:
        """``values: [*shape, ...]`` of every slot: ``[len(indices), ...]`` of the real models."""
        values = np.asarray(values)
        k = len(self.shape)
        assert values.shape[:k] == tuple(self.shape), f"values: {values.shape}, the group is {self.shape}"
        return values.reshape(-1, *values.shape[k:])[self._real]


def real_models(index, values) -> np.ndarray:
    """``values: [*index.shape, ...]`` of the slots whose saved model ``index`` is not padding."""
    index = np.asarray(index)
    return Placement(index.reshape(-1), index.reshape(-1), index.shape).real(values)


def relayout(groups: tuple[Placement, ...], saved: dict, like: tuple, where: str = "the checkpoint") -> tuple:
    """Saved group states in these groups' slot order and pytree types (those of ``like``), matched
    model by model: the padding for several devices may differ from the run that saved them.
    ``saved`` holds ``states`` (one dict of state fields per group) and ``index`` (the model index of
    every saved slot); one that holds other models (another batch's, another grid's) is refused in
    one line naming ``where`` it came from."""
    other = ConfigError("--resume", where, "its checkpoint holds other models than this batch's; start anew")
    if len(saved["states"]) != len(groups) or len(saved["index"]) != len(groups):
        raise other
    states = []
    for group, state, index, template in zip(groups, saved["states"], saved["index"], like, strict=True):
        index = np.asarray(index).reshape(-1)
        row_of = {int(i): k for k, i in enumerate(index) if i != PADDING}  # the saved run's padding
        if any(int(i) not in row_of for i in group.indices):
            raise other
        rows = [row_of[int(i)] for i in group.indices]
        rows += [rows[-1]] * group.padding  # padding copies the last model
        leaves = [_take_models(a, rows, group.shape) for a in jax.tree.leaves(state)]
        fields = template._asdict()  # saved by field name: the leaves of both dicts come in key order
        if [a.shape for a in leaves] != [a.shape for a in jax.tree.leaves(fields)]:
            raise ConfigError("--resume", f"group {group.shape}", "the checkpoint holds another layout; start anew")
        states.append(type(template)(**jax.tree.unflatten(jax.tree.structure(fields), leaves)))
    return tuple(states)


def _take_models(a, rows: list[int], shape: tuple[int, ...]) -> np.ndarray:
    a, k = np.asarray(a), len(shape)  # the saved group has as many grid axes, perhaps more padding
    return a.reshape(-1, *a.shape[k:])[rows].reshape(*shape, *a.shape[k:])


def unpadded(index, tree) -> tuple[np.ndarray, object]:
    """A saved group's model ``index`` ``[R, ...]`` and its state ``tree`` (leaves ``[R, ...]``) without
    the rows of the leading axis that hold only padding (a layout pads whole rows, at the end)."""
    index = np.asarray(index)
    keep = int(np.sum(np.any(index.reshape(len(index), -1) != PADDING, axis=1)))
    return index[:keep], jax.tree.map(lambda a: np.asarray(a)[:keep], tree)


def free_memory() -> float:
    """Bytes free on the first local device (the host's available memory on a CPU)."""
    device = jax.local_devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return float(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:  # Linux's estimate of what can be had without swapping (free memory and reclaimable caches)
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return 1024.0 * float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 16.0 * 2**30
