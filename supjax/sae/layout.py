"""Where the SAEs of a sweep go: the SAE table, the [T, S] groups, the data streams, the input scales.

SAEs are numbered architecture by architecture, then width, toy model, sparsity, dictionary ratio,
learning rate, seed; a group (one architecture at one width) is a contiguous block of that table,
laid out [T, S]: T toy models of the width by the S SAEs each gets. Random draws depend on values,
never on positions: an SAE's initial weights on (seed, toy model index) and each step's data on
(data_seed, step) only, so an SAE draws the same numbers alone and inside any grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from supjax import data, sharding
from supjax.engine.driver import Job
from supjax.engine.layout import PADDING, Placement, free_memory
from supjax.errors import ConfigError
from supjax.sae import architectures, program
from supjax.sae.architectures import SaeHyper
from supjax.sae.spec import SaeSpec
from supjax.sae.toys import ToyModels

_DATA_TAG = 0x5AE  # the SAEs' bit stream is not the toy models' training stream
CPU_SAE_BLOCK = 8  # SAEs vmapped together on a CPU: their [B, D] arrays stay in cache


@dataclass(frozen=True)
class Group(Placement):
    """One architecture at one width: its [T, S] SAEs (``model_index``: rows of the SAE table, which
    are also their log rows; over several devices T is padded with copies of the last toy model's
    row, :data:`~supjax.engine.layout.PADDING`), initial parameters and traced hyperparameters."""

    program_shape: program.GroupShape | None = None
    params: dict | None = None  # the initial parameters, [T, S, ...] each (host arrays)
    hyper: SaeHyper | None = None  # sparsity, lr: [T, S]; mask: [T, S, D]

    @property
    def index(self) -> np.ndarray:
        """[T, S] the rows of the SAE table."""
        return self.model_index.reshape(self.shape)


@dataclass(frozen=True)
class Layout:
    """A whole SAE sweep in one compiled program."""

    spec: SaeSpec
    toys: ToyModels
    rows: list[dict]  # the SAE table (supjax.sae.results.SAE_COLUMNS)
    static: program.Static
    groups: tuple[Group, ...]
    arrays: program.Toys  # host arrays (per width [T, ...], padded as the groups are)
    devices: int = 1  # the groups' T axis is split over this many devices

    @property
    def flops_per_step(self) -> float:
        """Product work of one step of every SAE: 6 B D m (two forward products, four backward)."""
        per_latent_width = 6.0 * self.spec.batch_size * self.static.dictionary
        return sum(per_latent_width * g.program_shape.m * len(g.indices) for g in self.groups)

    @property
    def device_bytes(self) -> float:
        """Bytes one device needs, about: every SAE's parameters, Adam moments and gradients, each
        group's toy models, and the [B, D] temporaries of the SAEs stepped at once (a block of
        ``sae_block``, or every SAE of a toy model's width with ``model_loop = "vmap"``)."""
        D, B, static = self.static.dictionary, self.spec.batch_size, self.static
        states = sum(4.0 * 4 * (2 * D * g.program_shape.m + D + g.program_shape.m) * g.index.size for g in self.groups)
        toys = sum(4.0 * w.size for w in self.arrays.W)
        at_once = max(
            program.block_size(static.sae_block, g.shape[1])
            * (g.shape[0] // self.devices if static.model_loop == "vmap" else 1)
            for g in self.groups
        )
        return (states + toys) / self.devices + 4.0 * 8 * at_once * B * D + 4.0 * B * self.toys.n * 4

    def check_fits(self, budget: float | None = None) -> None:
        """Refuse, in one line and before anything compiles, a grid whose SAEs do not fit in half
        the device's free memory (``budget`` bytes if given)."""
        budget = 0.5 * free_memory() if budget is None else budget
        need = self.device_bytes
        if need > budget:
            raise ConfigError(
                "batch_size",
                self.spec.batch_size,
                f"{len(self.rows)} SAEs of up to {self.static.dictionary} latents need about {_size(need)} of the "
                f"{_size(budget)} free; lower batch_size or sae_block, or train fewer SAEs at once "
                "(select fewer toy models, or split the grid into runs)",
            )

    def job(self) -> Job:
        """What the engine's driver trains: every SAE in one program, T split over the devices."""
        devices = self.devices
        hypers = sharding.put(tuple(g.hyper for g in self.groups), devices, sharded=True)
        split = (spec is sharding.MODELS for spec in program.TOY_SPECS)  # as the program reads them
        toys = program.Toys(*(sharding.put(a, devices, sharded) for a, sharded in zip(self.arrays, split, strict=True)))
        return Job(
            static=self.static,
            groups=self.groups,
            rows=len(self.rows),
            logs=("losses", "l0"),
            init_args=(sharding.put(tuple(g.params for g in self.groups), devices, sharded=True), hypers),
            inputs=(hypers, toys),
            key_data=self.arrays.streams.keys,
            flops_per_step=self.flops_per_step,
            devices=devices,
            chunk_steps=self.spec.chunk_steps,
            checkpoint_every=self.spec.checkpoint_every,
            snapshot_steps=self.spec.snapshot_schedule,
        )


def resolve_for_backend(spec: SaeSpec, backend: str | None = None) -> SaeSpec:
    """The spec with the backend's ``sae_block`` written in when unset (a run directory keeps it, so a
    resume on another device trains the same program): 8 on a CPU, every SAE of a toy model elsewhere."""
    backend = backend or jax.default_backend()
    return spec.replace(sae_block=spec.sae_block or (CPU_SAE_BLOCK if backend == "cpu" else spec.saes_per_model))


def plan(spec: SaeSpec, toys: ToyModels, devices: int = 1) -> Layout:
    """Lay the SAEs of ``spec`` on ``toys`` out as groups over shared data streams; computes each
    toy model's input scale (one jitted pass) when ``normalise_inputs``. With several ``devices``
    each width's T toy models are padded to a multiple of them with copies of the last."""
    n = toys.n
    sizes = {r: spec.dictionary_size(r, n) for r in spec.dictionary_ratios}
    dictionary = max(sizes.values())
    counts = any(architectures.ARCHITECTURES[a].counts_latents for a in spec.architectures)
    k_max = architectures.k_bound(spec.ks, dictionary) if counts else 1
    widths = tuple(dict.fromkeys(r["m"] for r in toys.rows))
    static = _static(spec, toys, dictionary, k_max, widths, devices=devices)

    keys = [(r["distribution"], r["activation_density"]) for r in toys.rows]
    streams_of = list(dict.fromkeys(keys))
    first = {s: r["index"] for s, r in reversed(list(zip(keys, toys.rows, strict=True)))}
    key_data = jax.random.key_data(jax.random.fold_in(jax.random.key(spec.data_seed), _DATA_TAG))[None]
    probabilities = [toys.p[first[s]] for s in streams_of]
    streams = data.make_streams(toys.spec, probabilities, key_data, [0] * len(streams_of), toys.spec.correlation)
    read = {r["index"]: streams_of.index(k) for r, k in zip(toys.rows, keys, strict=True)}
    by_width = [[r for r in toys.rows if r["m"] == m] for m in widths]
    W = tuple(np.stack([toys.W[r["index"]] for r in rows]).astype(np.float32) for rows in by_width)
    reads = tuple(np.array([read[r["index"]] for r in rows], np.int32) for rows in by_width)
    if spec.normalise_inputs:
        x = program.sample_batch(program.eval_static(static), streams, program.SCALE_STEP)
        scales = tuple(np.asarray(c) for c in program.input_scales(x, W, reads))
    else:
        scales = tuple(np.ones(len(rows), np.float32) for rows in by_width)
    rows_and_scales = zip(by_width, scales, strict=True)
    scale = {r["index"]: float(c) for rows, cs in rows_and_scales for r, c in zip(rows, cs, strict=True)}
    arrays = program.Toys(streams, *(tuple(_pad(a, devices) for a in arrays) for arrays in (W, reads, scales)))

    rows, groups = [], []
    for architecture in spec.architectures:
        grid = [
            (value, ratio, lr, seed)
            for value in spec.sparsities(architecture)
            for ratio in spec.dictionary_ratios
            for lr in spec.lrs
            for seed in spec.seeds
        ]
        for w, models in enumerate(by_width):
            shape = (len(arrays.W[w]), len(grid))  # T padded for the devices, as the toy models' arrays are
            real = len(models) * len(grid)
            index = np.full(shape[0] * shape[1], PADDING)
            index[:real] = np.arange(len(rows), len(rows) + real)
            first = len(rows)
            for model in models:
                for value, ratio, lr, seed in grid:
                    rows.append(
                        {
                            "sae": len(rows),
                            "architecture": architecture,
                            "model": model["index"],
                            "sparsity": value,
                            "dictionary_ratio": ratio,
                            "dictionary_size": sizes[ratio],
                            "lr": lr,
                            "seed": seed,
                            "input_scale": scale[model["index"]],
                        }
                    )
            block = rows[first:]
            block += block[-len(grid) :] * (shape[0] - len(models))  # padding: the last toy model's SAEs
            d = np.array([r["dictionary_size"] for r in block]).reshape(shape)
            hyper = SaeHyper(
                sparsity=np.array([r["sparsity"] for r in block], np.float32).reshape(shape),
                lr=np.array([r["lr"] for r in block], np.float32).reshape(shape),
                mask=(np.arange(dictionary) < d[..., None]).astype(np.float32),
            )
            sae_def = program.definition(static, architecture)
            drawn = [sae_def.init((r["seed"], r["model"]), models[0]["m"], dictionary) for r in block]
            params = {k: np.stack([f[k] for f in drawn]).reshape(*shape, *drawn[0][k].shape) for k in drawn[0]}
            group_shape = program.GroupShape(architecture, models[0]["m"], shape, w)
            groups.append(Group(index, index, shape, program_shape=group_shape, params=params, hyper=hyper))
    static = _static(spec, toys, dictionary, k_max, widths, tuple(g.program_shape for g in groups), devices)
    return Layout(spec, toys, rows, static, tuple(groups), arrays, devices)


def _size(count: float) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


def _pad(a: np.ndarray, devices: int) -> np.ndarray:
    """``a: [T, ...]`` with copies of its last row to a multiple of ``devices``."""
    return np.concatenate([a, np.repeat(a[-1:], -len(a) % devices, axis=0)])


def _static(spec, toys: ToyModels, dictionary: int, k_max: int, widths: tuple, groups: tuple = (), devices: int = 1):
    toy = toys.spec
    return program.Static(
        **data.SamplerStatic.fields_of(toy),
        batch_size=spec.batch_size,
        steps=spec.steps,
        log_every=spec.log_every,
        warmup_steps=round(spec.sparsity_warmup_fraction * spec.steps),
        decay_steps=round(spec.lr_decay_fraction * spec.steps),
        dictionary=dictionary,
        k_max=k_max,
        bandwidth=spec.jumprelu_bandwidth,
        initial_threshold=spec.jumprelu_threshold,
        threshold_rate=spec.threshold_rate,
        eval_batch_size=spec.eval_batch_size,
        sae_block=resolve_for_backend(spec).sae_block,
        model_loop=spec.model_loop,
        widths=widths,
        groups=groups,
        devices=devices,
    )
