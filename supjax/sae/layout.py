"""Where the SAEs of a sweep go: the SAE table, the batches, the [T, S] groups, the data streams.

SAEs are numbered architecture by architecture, then width, toy model, sparsity, dictionary ratio,
learning rate, seed (:func:`sae_table`, which also measures each toy model's input scale). A sweep
trains in batches of whole toy models, as many as fit half the device's free memory
(:func:`split_batches`; one batch when everything fits). Within a batch a group (one architecture at
one width) is laid out [T, S]: T toy models of the width by the S SAEs each gets. Random draws
depend on values, never on positions: an SAE's initial weights on (seed, toy model index) and each
step's data on (data_seed, step) only, so an SAE draws the same numbers alone, inside any grid and
in any batch.
"""

from __future__ import annotations

from collections import Counter
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
    """One architecture at one width: its [T, S] SAEs (``model_index``: their numbers in the sweep's
    SAE table; ``local_index``: their rows of the batch's logs; over several devices T is padded with
    copies of the last toy model's row, :data:`~supjax.engine.layout.PADDING`), initial parameters and
    traced hyperparameters."""

    program_shape: program.GroupShape | None = None
    params: dict | None = None  # the initial parameters, [T, S, ...] each (host arrays)
    hyper: SaeHyper | None = None  # sparsity, lr: [T, S]; mask: [T, S, D]

    @property
    def index(self) -> np.ndarray:
        """[T, S] the SAEs' numbers in the SAE table."""
        return self.model_index.reshape(self.shape)


@dataclass(frozen=True)
class Layout:
    """One batch of an SAE sweep (every SAE on ``toys``) in one compiled program."""

    spec: SaeSpec
    toys: ToyModels
    rows: list[dict]  # the batch's rows of the SAE table (SAE_COLUMNS), in the order of its logs' rows
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
        """Bytes one device needs to train this layout, about (:func:`device_bytes`)."""
        return device_bytes(self.spec, self.toys, self.devices)

    def job(self) -> Job:
        """What the engine's driver trains: every SAE of the batch in one program, T split over the devices."""
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


def sae_table(spec: SaeSpec, toys: ToyModels) -> list[dict]:
    """The SAE table (:data:`~supjax.sae.results.SAE_COLUMNS`): one row per SAE, numbered architecture
    by architecture, then width, toy model and the grid; with ``normalise_inputs`` each toy model's
    input scale comes from one jitted pass over every toy model (so any batch reads the same scales)."""
    by_width = _by_width(toys)
    if spec.normalise_inputs:
        static = _static(spec, toys, *_dictionary_and_k(spec, toys.n), tuple(by_width))
        streams, W, reads = _toy_arrays(spec, toys, by_width)
        x = program.sample_batch(program.eval_static(static), streams, program.SCALE_STEP)
        scales = program.input_scales(x, W, reads)
        pairs = (zip(rows, cs, strict=True) for rows, cs in zip(by_width.values(), scales, strict=True))
        scale = {r["index"]: float(c) for pair in pairs for r, c in pair}
    else:
        scale = {r["index"]: 1.0 for r in toys.rows}
    rows = []
    for architecture in spec.architectures:
        for models in by_width.values():
            for model in models:
                for value, ratio, lr, seed in _grid(spec, architecture):
                    rows.append(
                        {
                            "sae": len(rows),
                            "architecture": architecture,
                            "model": model["index"],
                            "sparsity": value,
                            "dictionary_ratio": ratio,
                            "dictionary_size": spec.dictionary_size(ratio, toys.n),
                            "lr": lr,
                            "seed": seed,
                            "input_scale": scale[model["index"]],
                        }
                    )
    return rows


def plan(spec: SaeSpec, toys: ToyModels, devices: int = 1, table: list[dict] | None = None) -> Layout:
    """Lay the SAEs of ``spec`` on ``toys`` out as groups over shared data streams. ``table``: the
    sweep's SAE table (:func:`sae_table`), of which the rows on ``toys`` are laid out (a batch keeps
    the sweep's SAE numbers; by default the table of ``toys``). With several ``devices`` each
    width's T toy models are padded to a multiple of them with copies of the last."""
    dictionary, k_max = _dictionary_and_k(spec, toys.n)
    by_width = _by_width(toys)
    widths = tuple(by_width)
    ours = {r["index"] for r in toys.rows}
    rows = [r for r in (sae_table(spec, toys) if table is None else table) if r["model"] in ours]
    streams, W, reads = _toy_arrays(spec, toys, by_width)
    scale = {r["model"]: r["input_scale"] for r in rows}
    scales = tuple(np.array([scale[r["index"]] for r in models], np.float32) for models in by_width.values())
    arrays = program.Toys(streams, *(tuple(_pad(a, devices) for a in arrays) for arrays in (W, reads, scales)))

    static = _static(spec, toys, dictionary, k_max, widths, devices=devices)  # what the SAE definitions read
    groups, ordered = [], []  # ordered: the job's rows, group after group
    for architecture in spec.architectures:
        sae_def = program.definition(static, architecture)
        for w, models in enumerate(by_width.values()):
            of_width = {t["index"] for t in models}
            block = [r for r in rows if r["architecture"] == architecture and r["model"] in of_width]
            shape = (len(arrays.W[w]), len(block) // len(models))  # T padded for the devices, as the toys' arrays are
            index, position = np.full(shape[0] * shape[1], PADDING), np.full(shape[0] * shape[1], PADDING)
            index[: len(block)] = [r["sae"] for r in block]
            position[: len(block)] = np.arange(len(ordered), len(ordered) + len(block))
            ordered += block
            block = block + block[-shape[1] :] * (shape[0] - len(models))  # padding: the last toy model's SAEs
            d = np.array([r["dictionary_size"] for r in block]).reshape(shape)
            hyper = SaeHyper(
                sparsity=np.array([r["sparsity"] for r in block], np.float32).reshape(shape),
                lr=np.array([r["lr"] for r in block], np.float32).reshape(shape),
                mask=(np.arange(dictionary) < d[..., None]).astype(np.float32),
            )
            drawn = [sae_def.init((r["seed"], r["model"]), models[0]["m"], dictionary) for r in block]
            params = {k: np.stack([f[k] for f in drawn]).reshape(*shape, *drawn[0][k].shape) for k in drawn[0]}
            group_shape = program.GroupShape(architecture, models[0]["m"], shape, w)
            groups.append(Group(index, position, shape, program_shape=group_shape, params=params, hyper=hyper))
    static = _static(spec, toys, dictionary, k_max, widths, tuple(g.program_shape for g in groups), devices)
    return Layout(spec, toys, ordered, static, tuple(groups), arrays, devices)


def device_bytes(spec: SaeSpec, toys: ToyModels, devices: int = 1) -> float:
    """Bytes one device needs to train the SAEs of ``spec`` on ``toys``, about: every SAE's
    parameters, Adam moments and gradients, the toy models, and the [B, D] temporaries of the SAEs
    stepped at once (a block of ``sae_block``, or every SAE of a toy model's width with
    ``model_loop = "vmap"``)."""
    D, B = _dictionary_and_k(spec, toys.n)[0], spec.batch_size
    padded = {m: -(-t // devices) * devices for m, t in Counter(r["m"] for r in toys.rows).items()}
    states = sum(4.0 * 4 * (2 * D * m + D + m) * t * spec.saes_per_model for m, t in padded.items())
    weights = sum(4.0 * toys.n * m * t for m, t in padded.items())
    sae_block = resolve_for_backend(spec).sae_block
    block = max(program.block_size(sae_block, len(_grid(spec, a))) for a in spec.architectures)
    at_once = block * (max(padded.values()) // devices if spec.model_loop == "vmap" else 1)
    return (states + weights) / devices + 4.0 * 8 * at_once * B * D + 4.0 * B * toys.n * 4


def split_batches(spec: SaeSpec, toys: ToyModels, devices: int = 1, budget: float | None = None) -> list[list[int]]:
    """The toy models (indices) trained together, batch by batch: as many as fit half the device's
    free memory (``budget`` bytes if given) and ``max_saes_per_batch``.

    A batch takes the toy models of a width ``devices + 1`` at a time (the remainder joins the last
    such unit), so that each device holds at least two of them wherever the whole width gives it two:
    a loop over two or more toy models is the same loop whatever their number, and its SAEs train
    bitwise as in one batch, where a device's lone toy model has its loop compiled away and its SAEs
    agree to float32 rounding only. A unit that does not fit is split into single toy models.
    Refuses in one line, before anything compiles, a toy model whose SAEs alone do not fit."""
    budget = 0.5 * free_memory() if budget is None else budget
    limit = spec.max_saes_per_batch or float("inf")

    def fits(indices: list[int]) -> bool:
        small = len(indices) * spec.saes_per_model <= limit
        return small and device_bytes(spec, toys.subset(indices), devices) <= budget

    units, size = [], devices + 1
    for models in _by_width(toys).values():
        of_width = [r["index"] for r in models]
        pieces = [of_width[k : k + size] for k in range(0, len(of_width), size)]
        if len(pieces) > 1 and len(pieces[-1]) < size:
            pieces[-2:] = [pieces[-2] + pieces[-1]]
        for unit in pieces:
            units += [unit] if fits(unit) else [[i] for i in unit]
    for (index,) in (u for u in units if len(u) == 1 and not fits(u)):
        need = device_bytes(spec, toys.subset([index]), devices)
        raise ConfigError(
            "batch_size",
            spec.batch_size,
            f"the {spec.saes_per_model} SAEs of one toy model need about {_size(need)} of the {_size(budget)} "
            "free; lower batch_size or sae_block, or train fewer SAEs per toy model",
        )
    batches, current = [], []
    position = {r["index"]: k for k, r in enumerate(toys.rows)}
    for unit in sorted(units, key=lambda u: position[u[0]]):
        if current and not fits(current + unit):
            batches.append(sorted(current))
            current = []
        current += unit
    return [*batches, sorted(current)]


def check_batches_fit(spec: SaeSpec, toys: ToyModels, batches: list[list[int]], devices: int = 1) -> None:
    """Refuse in one line, before anything compiles, a resumed run whose saved batches no longer fit half
    this device's free memory (a run's batches are fixed when it starts: its checkpoints are per batch)."""
    budget = 0.5 * free_memory()
    for k, models in enumerate(batches):
        need = device_bytes(spec, toys.subset(models), devices)
        if need > budget:
            raise ConfigError(
                "--resume",
                f"batch {k + 1} of {len(batches)}",
                f"its {len(models) * spec.saes_per_model} SAEs need about {_size(need)} of the {_size(budget)} free; "
                "resume where more memory is free (a run keeps the batches it started with)",
            )


def _grid(spec: SaeSpec, architecture: str) -> list[tuple]:
    """The (sparsity, dictionary ratio, lr, seed) of each SAE an architecture trains on a toy model."""
    return [
        (value, ratio, lr, seed)
        for value in spec.sparsities(architecture)
        for ratio in spec.dictionary_ratios
        for lr in spec.lrs
        for seed in spec.seeds
    ]


def _dictionary_and_k(spec: SaeSpec, n: int) -> tuple[int, int]:
    """The largest dictionary (the program's latent axis) and the largest k (1 if nothing counts latents)."""
    dictionary = max(spec.dictionary_size(r, n) for r in spec.dictionary_ratios)
    counts = any(architectures.ARCHITECTURES[a].counts_latents for a in spec.architectures)
    return dictionary, architectures.k_bound(spec.ks, dictionary) if counts else 1


def _by_width(toys: ToyModels) -> dict[int, list[dict]]:
    """The toy models' rows by width, the widths in the order the table meets them."""
    by_width: dict[int, list[dict]] = {}
    for row in toys.rows:
        by_width.setdefault(row["m"], []).append(row)
    return by_width


def _toy_arrays(spec: SaeSpec, toys: ToyModels, by_width: dict[int, list[dict]]) -> tuple:
    """The data streams (one per distinct (distribution, activation density)) and, per width, the
    toy models' ``W: [T, n, m]`` and the stream each reads: ``(streams, W, reads)``."""
    keys = [(r["distribution"], r["activation_density"]) for r in toys.rows]
    streams_of = list(dict.fromkeys(keys))
    first = {s: r["index"] for s, r in reversed(list(zip(keys, toys.rows, strict=True)))}
    key_data = jax.random.key_data(jax.random.fold_in(jax.random.key(spec.data_seed), _DATA_TAG))[None]
    probabilities = [toys.p[first[s]] for s in streams_of]
    streams = data.make_streams(toys.spec, probabilities, key_data, [0] * len(streams_of), toys.spec.correlation)
    read = {r["index"]: streams_of.index(k) for r, k in zip(toys.rows, keys, strict=True)}
    W = tuple(np.stack([toys.W[r["index"]] for r in rows]).astype(np.float32) for rows in by_width.values())
    reads = tuple(np.array([read[r["index"]] for r in rows], np.int32) for rows in by_width.values())
    return streams, W, reads


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
