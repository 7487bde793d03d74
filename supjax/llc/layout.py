"""Where the chains of an LLC run go: the w* (anchors), the chain table, the [R, K] groups, the streams.

An anchor is one toy model at one step (its final weights, or a snapshot). The anchors of one width
form a group laid out [R, K]: R = anchors x chains rows (chain c of anchor a is row a C + c) by the
K settings (n beta, gamma_loc, eps). Chains are numbered group by group in that order; that is the
chain table (``chains.csv``). Random draws depend on values, never on positions: a chain's noise on
(seed, anchor's model index and step, chain, setting), its data on (data_seed, chain, step).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import jax
import numpy as np

from supjax import data, model, variants
from supjax.engine.driver import Job
from supjax.engine.layout import Placement
from supjax.errors import ConfigError
from supjax.llc import program
from supjax.llc.program import LOGS, Inputs
from supjax.llc.sgld import SgldHyper
from supjax.llc.spec import LlcSpec
from supjax.results import Run

_NOISE_TAG, _DATA_TAG = 0x5617, 0x11C  # the chains' bit streams are not the toy models' training streams


@dataclass(frozen=True)
class Anchor:
    """One w*: a toy model (its row of the run's models.csv) at a training step (the last: its final weights)."""

    model: int
    step: int
    final: bool  # the model's final weights (a snapshot of the last step is the same w*, with the same chains)
    params: dict  # the model's parameters, numpy: W [n, m], b [n], ...
    p: np.ndarray  # [n] the feature frequencies it was trained on
    row: dict  # its models.csv row


@dataclass(frozen=True)
class Group(Placement):
    """One width's [R, K] chains: their rows of the chain table (also their log rows), w*, hyperparameters, keys."""

    program_shape: program.GroupShape | None = None
    anchors: dict | None = None  # w* of every row: a params dict with leading [R]
    hyper: SgldHyper | None = None  # [R, K] each
    keys: np.ndarray | None = None  # [R, K, 2] noise key data


@dataclass(frozen=True)
class Layout:
    """A whole LLC run in one compiled program."""

    spec: LlcSpec
    anchors: list[Anchor]
    rows: list[dict]  # the chain table
    static: program.Static
    groups: tuple[Group, ...]
    streams: data.Streams  # host arrays

    @property
    def flops_per_step(self) -> float:
        """Work of one draw of every chain: about 3 of the toy model's steps (the step and w*'s loss)."""
        return sum(3 * 10.0 * self.spec.batch_size * self.static.n * g.program_shape.m * len(g.indices)
                   for g in self.groups)  # fmt: skip

    def job(self) -> Job:
        """What the engine's driver trains: every chain in one program, on one device."""
        inputs = Inputs(
            hypers=tuple(g.hyper for g in self.groups),
            anchors=tuple(g.anchors for g in self.groups),
            keys=tuple(g.keys for g in self.groups),
            streams=self.streams,
        )
        return Job(
            static=self.static,
            groups=self.groups,
            rows=len(self.rows),
            logs=LOGS,
            init_args=(jax.device_put(inputs.anchors),),
            inputs=jax.device_put(inputs),
            key_data=self.streams.keys,
            flops_per_step=self.flops_per_step,
            chunk_steps=self.spec.chunk_steps,
            checkpoint_every=self.spec.checkpoint_every,
        )


def anchors_of(run: Run, spec: LlcSpec) -> list[Anchor]:
    """The selected toy models of ``run`` at the spec's steps (one line for what does not fit)."""
    from supjax import snapshots

    if any(label != "uniform" for label in run.spec.importance_labels):
        raise ConfigError("select", spec.select, "the LLC reads the unweighted loss: pick a run without importances")
    chosen = spec.selected(run.models)
    last = run.spec.steps
    out = []
    for step in spec.at_steps or (last,):
        if step == last:
            params = {index: _take(run.params[run.models[index]["m"]], index) for index in chosen}
        else:
            if run.path is None:
                raise ConfigError("at_steps", step, "snapshots are read from a run directory; pass one")
            kept = snapshots.snapshot_steps(run.path)
            if step not in kept:
                raise ConfigError("at_steps", step, f"the run kept no snapshot of it; its snapshots are {kept}")
            by_width = snapshots.load_snapshot(run.path, step)
            params = {index: _take(by_width[run.models[index]["m"]], index) for index in chosen}
        for index in chosen:
            row = run.models[index]
            out.append(Anchor(index, step, step == last, params[index], run.feature_probabilities(index), row))
    return out


def _take(by_width: dict, index: int) -> dict:
    k = int(np.flatnonzero(np.asarray(by_width["index"]) == index)[0])
    return {name: np.asarray(v[k], np.float32) for name, v in by_width.items() if name not in ("index", "diverged_at")}


def plan(spec: LlcSpec, run: Run, anchors: list[Anchor]) -> Layout:
    """Lay the chains of ``spec`` at ``anchors`` out as width groups over shared data streams."""
    toy = run.spec
    settings = spec.settings
    laws = list(dict.fromkeys(_law(a) for a in anchors))
    streams_of = [(law, c) for law in laws for c in range(spec.chains)]  # stream (law, chain) reads bit stream c
    data_keys = jax.random.split(jax.random.fold_in(jax.random.key(spec.data_seed), _DATA_TAG), spec.chains)
    probabilities = {_law(a): a.p for a in anchors}
    streams = data.make_streams(
        toy, [probabilities[law] for law, _ in streams_of], jax.random.key_data(data_keys),
        [c for _, c in streams_of], toy.correlation,
    )  # fmt: skip
    noise = jax.random.fold_in(jax.random.key(spec.seed), _NOISE_TAG)
    rows, groups = [], []
    for m in dict.fromkeys(a.row["m"] for a in anchors):
        members = [a for a in anchors if a.row["m"] == m]
        shape = (len(members) * spec.chains, len(settings))
        index = np.arange(len(rows), len(rows) + shape[0] * shape[1])
        keys, reads, hyper = [], [], []
        for anchor in members:
            for chain in range(spec.chains):
                reads.append(streams_of.index((_law(anchor), chain)))
                for k, (nbeta, gamma, eps) in enumerate(settings):
                    rows.append(_chain_row(len(rows), anchor, chain, k, (nbeta, gamma, eps), toy.loss))
                    identity = zlib.crc32(f"{anchor.model}|{anchor.step}|{chain}|{nbeta!r}|{gamma!r}|{eps!r}".encode())
                    keys.append(jax.random.key_data(jax.random.fold_in(noise, identity)))
                    hyper.append((nbeta, gamma, eps))
        hyper = np.asarray(hyper, np.float32).reshape(*shape, 3)
        stacked = {name: np.stack([a.params[name] for a in members]) for name in members[0].params}
        anchors_rows = {name: np.repeat(v, spec.chains, axis=0) for name, v in stacked.items()}
        group_shape = program.GroupShape(m, shape, tuple(reads))
        groups.append(
            Group(
                index,
                index,
                shape,
                program_shape=group_shape,
                anchors=anchors_rows,
                hyper=SgldHyper(hyper[..., 0], hyper[..., 1], hyper[..., 2]),
                keys=np.asarray(keys).reshape(*shape, -1),
            )
        )
    static = program.Static(
        **data.SamplerStatic.fields_of(toy),
        model=toy.model,
        **{name: getattr(toy, name) for name in variants.MODEL_FIELDS if name not in ("loss", "batch_tile")},
        batch_tile=spec.batch_size,  # untiled: the chains' batches are small
        batch_size=spec.batch_size,
        steps=spec.draws,
        log_every=spec.log_every,
        bounding_box=spec.bounding_box,
        mala=spec.mala,
        groups=tuple(g.program_shape for g in groups),
    )
    return Layout(spec, anchors, rows, static, tuple(groups), streams)


def _law(anchor: Anchor) -> tuple:
    return (anchor.row["distribution"], anchor.row["activation_density"])


def _chain_row(chain_index: int, anchor: Anchor, chain: int, setting: int, values: tuple, loss: str) -> dict:
    row, (nbeta, gamma, eps) = anchor.row, values
    return {
        "chain_index": chain_index,
        "model": anchor.model,
        "step": anchor.step,
        "final": anchor.final,
        "chain": chain,
        "setting": setting,
        "nbeta": float(nbeta),
        "localization": float(gamma),
        "step_size": float(eps),
        **{k: row[k] for k in ("m", "weight_decay", "distribution", "alpha", "activation_density", "seed")},
        "parameters": int(sum(np.size(v) for v in anchor.params.values())),  # d: lambda <= d / 2 for a regular model
        "loss_convention": "summed over features" if model.LOSSES[loss].squared_error else "mean over samples",
    }
