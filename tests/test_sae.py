"""supjax.sae: SAEs on toy models' hidden activations, checked against the true features.

The SAEs here train on frames built directly (:func:`supjax.sae.weights_run`), so the truth is known
exactly: an orthonormal frame (no superposition) and random unit frames packed ever more densely.
Most tests share one sweep (``frame_sweep``) and its compiled programs; the resume and CLI tests
reuse its shapes, so they compile nothing new.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import json
import logging
import os
import runpy
import shutil
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import scipy.optimize

from supjax import ConfigError, RunDirError, cli, data, sae
from supjax.sae import layout, program

N = 16  # features of the frames
# Every sample holds exactly one active feature (exclusive blocks of all n), so the true L0 is 1.
ONE_ACTIVE = {"distribution": "constant:0.0625", "correlation_block": N, "exclusive_blocks": True}
GRID = {  # 48 SAEs: 16 each of topk and batchtopk, 8 each of relu and jumprelu
    "architectures": ("topk", "batchtopk", "relu", "jumprelu"),
    "ks": (1, 2),
    "l1_coefficients": (3.0,),
    "l0_coefficients": (1.0,),
    "lrs": (3e-3, 1e-2),
    "dictionary_ratios": (1.0, 2.0),
    "seeds": (0, 1),
    "steps": 400,
    "batch_size": 256,
    "log_every": 10,
    "chunk_steps": 200,  # the run directory's chunks (checkpoints every 200) too: one program for both
    "eval_batch_size": 2048,
    "progress": False,
}


def _orthonormal(scale: float = 1.5) -> np.ndarray:
    """``W: [N, N]``: orthonormal rows times ``scale`` (no superposition)."""
    return scale * np.linalg.qr(np.random.default_rng(0).normal(size=(N, N)))[0]


@contextlib.contextmanager
def _compiles():
    """The names of the jitted functions XLA compiles in the block (from JAX's compile log)."""
    names: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if message.startswith("Compiling jit("):
                names.append(message[len("Compiling jit(") :].split(")")[0])

    handler, logger = Collect(logging.WARNING), logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles():
            yield names
    finally:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def frame_run():
    return sae.weights_run(_orthonormal(), **ONE_ACTIVE)


@pytest.fixture(scope="module")
def frame_sweep(frame_run):
    """The GRID (48 SAEs, four architectures) on the orthonormal frame: (run, summary, features, compiled)."""
    with _compiles() as compiled:
        result = sae.run_sae(frame_run, sae.SaeSpec(**GRID))
    summary, features = result.evaluate()
    return result, summary, features, compiled


# ---- recovery against the ground truth -------------------------------------------------------------


def test_topk_at_the_true_l0_recovers_every_orthonormal_feature(frame_sweep):
    """No superposition (m = n, orthonormal rows), one active feature per sample: a TopK SAE with
    k = 1 and a dictionary of 2n finds every feature (MCC > 0.99) at both lrs and seeds. (With
    d = n a latent that dies leaves its feature unmatched: MCC 0.89 to 0.98 in this grid.)"""
    _, summary, features, _ = frame_sweep
    at_true_l0 = summary[(summary.architecture == "topk") & (summary.k == 1) & (summary.dictionary_ratio == 2.0)]
    assert len(at_true_l0) == 4 and at_true_l0.true_l0.between(0.99, 1.01).all()
    assert (at_true_l0.mcc > 0.99).all(), at_true_l0[["lr", "seed", "mcc"]]
    assert (at_true_l0.sae_l0 == 1.0).all() and (at_true_l0.recovered_fraction == 1.0).all()
    best = features["best_cosine"][at_true_l0.sae.to_numpy()]
    assert best.shape == (4, N) and (best > 0.98).all()


def _packed_frames() -> list[np.ndarray]:
    """32 features in m = 32 dimensions: orthonormal, or random unit rows packed into a subspace of 12
    or of 6 of the dimensions."""
    rng = np.random.default_rng(1)
    frames = [np.linalg.qr(rng.normal(size=(32, 32)))[0]]
    for dimensions in (12, 6):
        rows = rng.normal(size=(32, dimensions))
        frames.append(np.pad(rows / np.linalg.norm(rows, axis=1, keepdims=True), ((0, 0), (0, 32 - dimensions))))
    return frames


def test_recovery_falls_as_features_are_packed_more_densely():
    """The packed frames; two active features a sample on average and TopK k = 2, dictionary 2n.
    The same SAE recovers less the denser the packing. (One width: the three frames are one group.)"""
    run = sae.weights_run(_packed_frames(), "constant:0.0625")
    spec = sae.SaeSpec(**{**GRID, "architectures": ("topk",), "ks": (2,), "lrs": (1e-2,), "dictionary_ratios": (2.0,),
                          "seeds": (0,)})  # fmt: skip
    summary, _ = sae.run_sae(run, spec).evaluate()
    mcc = summary.sort_values("model").mcc.tolist()
    assert summary.true_l0.between(1.8, 2.2).all() and summary.sae_l0.between(1.9, 2.0).all()
    assert mcc[0] > 0.99 and mcc[0] > mcc[1] + 0.01 and mcc[1] > mcc[2] + 0.03, mcc


def test_a_dictionary_of_2n_recovers_at_least_what_one_of_n_recovers():
    """The packed frames, TopK k = 2 at d = n and d = 2n, two seeds: on every frame and seed the larger
    dictionary recovers (best cosine > 0.9) at least as many features as the smaller, and more in all."""
    run = sae.weights_run(_packed_frames(), "constant:0.0625")
    spec = sae.SaeSpec(**{**GRID, "architectures": ("topk",), "ks": (2,), "lrs": (1e-2,),
                          "dictionary_ratios": (1.0, 2.0), "seeds": (0, 1)})  # fmt: skip
    summary, _ = sae.run_sae(run, spec).evaluate()
    recovered = summary.pivot_table(index=["model", "seed"], columns="dictionary_ratio", values="recovered_fraction")
    assert (recovered[2.0] >= recovered[1.0]).all(), recovered
    assert recovered[2.0].sum() > recovered[1.0].sum(), recovered


# ---- one program, traced hyperparameters ----------------------------------------------------------


def test_a_grid_of_hyperparameters_compiles_one_program(frame_sweep, frame_run):
    """ks, lrs, dictionary ratios and seeds are traced: the 48-SAE grid compiles one training program,
    and a grid of other values with the same shapes compiles nothing."""
    swept, _, _, compiled = frame_sweep
    assert len(swept.saes) == 48 and len({(r["sparsity"], r["lr"], r["seed"]) for r in swept.saes}) > 8
    assert compiled.count("train_chunk") == 1 and compiled.count("init_states") == 1, compiled
    other = {**GRID, "ks": (2, 1), "lrs": (1e-3, 5e-3), "dictionary_ratios": (2.0, 1.5), "seeds": (7, 8),
             "l1_coefficients": (10.0,), "l0_coefficients": (0.3,)}  # fmt: skip
    with _compiles() as again:
        result = sae.run_sae(frame_run, sae.SaeSpec(**other))
    assert again.count("train_chunk") == again.count("init_states") == 0, again
    assert sorted({r["dictionary_size"] for r in result.saes}) == [24, 32]


def test_one_sae_alone_equals_the_same_sae_inside_the_sweep(frame_sweep, frame_run):
    """Random draws depend on values, not positions, and padding is masked: a TopK SAE (k = 2, lr
    3e-3) trained alone (dictionary 16, k_max 2) follows its twin in the 48-SAE grid (dictionary padded
    to 32, beside 47 others) to float32 rounding over 400 steps (measured: 3e-7 relative).

    Not every SAE does. With k = 1 on this frame, W_enc = W_dec^T and unit decoder rows, the kept
    latent's residual is orthogonal to its direction, so the encoder's gradient is exactly 0 at the
    start and only its rounding (about 3e-8, different at another padding) is left, which Adam's
    first steps scale up to steps of size lr; at lr 1e-2 the k = 2 twins part by up to 3% late in
    training, as the rounding grows through the same normalisation. Such SAEs follow their twins in
    law, not in digits."""
    swept, summary, _, _ = frame_sweep
    twin = summary[(summary.architecture == "topk") & (summary.k == 2) & (summary.lr == 3e-3)]
    twin = twin[(twin.dictionary_ratio == 1.0) & (twin.seed == 1)]
    assert len(twin) == 1
    alone = {**GRID, "architectures": ("topk",), "ks": (2,), "lrs": (3e-3,), "dictionary_ratios": (1.0,), "seeds": (1,)}
    single = sae.run_sae(frame_run, sae.SaeSpec(**alone))
    index = int(twin.sae.iloc[0])
    np.testing.assert_allclose(single.losses[0], swept.losses[index], rtol=1e-5, atol=1e-7)
    for name, value in single.params(0).items():
        np.testing.assert_allclose(value, swept.params(index)[name], rtol=1e-5, atol=1e-6, err_msg=name)


# ---- the evaluation -------------------------------------------------------------------------------


def _numpy_evaluation(result: sae.SaeRun, index: int) -> dict:
    """One SAE's measures in plain numpy and scipy, on the evaluation batch the program draws."""
    plan = layout.plan(result.spec, result.toys)
    static = dataclasses.replace(plan.static, batch_size=plan.static.eval_batch_size)
    x = np.asarray(data.sample_streams(static, plan.arrays.streams, program.EVAL_STEP))[0].astype(np.float64)
    assert (x != 0).sum(axis=1).max() == 1  # the one-active sampler
    row = result.saes[index]
    W = result.toys.W[row["model"]].astype(np.float64)
    h = row["input_scale"] * x @ W
    p = {k: np.asarray(v, np.float64) for k, v in result.params(index).items()}
    if row["architecture"] == "topk":
        z = (h - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
        kth = np.sort(z, axis=1)[:, -int(row["sparsity"])]
        f = np.where(z >= kth[:, None], np.maximum(z, 0), 0)
    elif row["architecture"] == "batchtopk":  # at evaluation: its running threshold
        a = np.maximum((h - p["b_dec"]) @ p["W_enc"] + p["b_enc"], 0)
        f = np.where(a > p["threshold"], a, 0)
    elif row["architecture"] == "relu":
        f = np.maximum(h @ p["W_enc"] + p["b_enc"], 0)
    else:  # jumprelu
        z = np.maximum(h @ p["W_enc"] + p["b_enc"], 0)
        f = np.where(z > np.exp(p["log_threshold"]), z, 0)
    h_hat = f @ p["W_dec"] + p["b_dec"]
    nonzero = np.linalg.norm(h, axis=1) > 0
    decoder = p["W_dec"] / np.linalg.norm(p["W_dec"], axis=1, keepdims=True)
    cosine = np.abs((W / np.linalg.norm(W, axis=1, keepdims=True)) @ decoder.T)
    rows, cols = scipy.optimize.linear_sum_assignment(-cosine)
    alive = (f > 0).any(axis=0)
    return {
        "true_l0": (x != 0).sum(axis=1).mean(),
        "sae_l0": (f > 0).sum(axis=1).mean(),
        "dead_latents": int((~alive).sum()),
        "fvu": ((h - h_hat) ** 2).sum() / ((h - h.mean(axis=0)) ** 2).sum(),
        "l2_ratio": (np.linalg.norm(h_hat, axis=1)[nonzero] / np.linalg.norm(h, axis=1)[nonzero]).mean(),
        "norm_ratio": np.sqrt((h_hat**2).sum() / (h**2).sum()),
        "mcc": cosine[rows, cols].mean(),
        "mean_max_cos_features": cosine.max(axis=1).mean(),
        "mean_max_cos_latents": cosine[:, alive].max(axis=0).mean(),
        "best_cosine": cosine.max(axis=1),
    }


def test_the_batched_evaluation_equals_a_plain_numpy_evaluation(frame_sweep):
    result, summary, features, _ = frame_sweep
    chosen = summary[(summary.dictionary_ratio == 2.0) & (summary.seed == 1) & (summary.lr == 1e-2)]
    for architecture in ("topk", "batchtopk", "relu", "jumprelu"):
        row = chosen[chosen.architecture == architecture].iloc[-1]
        index = int(row.sae)
        expected = _numpy_evaluation(result, index)
        for name, value in expected.items():
            got = features["best_cosine"][index] if name == "best_cosine" else row[name]
            np.testing.assert_allclose(got, value, rtol=1e-4, atol=1e-5, err_msg=f"{architecture}: {name}")


# ---- configs, run directories, the CLI -------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"k": [2]}, "config field 'k' = [2]: unknown key; did you mean 'ks'?"),
        ({"architectures": ["gated"]}, "config field 'architectures' = 'gated': use one of relu, topk"),
        ({"ks": [0]}, "config field 'ks' = 0: k counts active latents"),
        ({"lrs": [2.0]}, "config field 'lrs' = 2.0: a learning rate lies in (0, 1)"),
        ({"dictionary_ratios": []}, "config field 'dictionary_ratios' = []: the grid axis is empty"),
        ({"steps": 100, "log_every": 30}, "config field 'log_every' = 30: must divide steps = 100"),
        ({"select": {"gamma": [1.0]}}, "config field 'select.gamma' = (1.0,): not a grid column; use m,"),
        ({"seeds": [1, 1]}, "config field 'seeds' = [1, 1]: contains duplicates"),
        ({"model_loop": "scan"}, "config field 'model_loop' = 'scan': use one of map, vmap"),
    ],
)
def test_a_bad_config_is_one_config_error_line(values, message):
    with pytest.raises(ConfigError) as raised:
        sae.SaeSpec.from_dict(values)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"select": {"m": [8]}}, "config field 'select.m' = 8: no model has it; the run has [16]"),
        ({"models": [3]}, "config field 'models' = 3: the run has models 0 to 0"),
        ({"ks": [40]}, "config field 'ks' = 40: exceeds the smallest dictionary d = 32 (n = 16)"),
    ],
)
def test_a_config_that_does_not_fit_the_run_is_refused_before_compiling(frame_run, values, message, compile_log):
    spec = sae.SaeSpec.from_dict({"architectures": ["topk"], "dictionary_ratios": [2.0], **values})
    with compile_log, pytest.raises(ConfigError) as raised:
        sae.run_sae(frame_run, spec)
    assert compile_log.count() == 0
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def _three_widths_run():
    """Five toy models on n = 32: two of width 32 (orthonormal, and packed into 12 dimensions), two of
    width 12 and one of width 6 (random unit rows), in that index order."""
    rng = np.random.default_rng(2)
    narrow = [rows / np.linalg.norm(rows, axis=1, keepdims=True) for rows in rng.normal(size=(2, 32, 12))]
    six = rng.normal(size=(32, 6))
    return sae.weights_run([*_packed_frames()[:2], *narrow, six / np.linalg.norm(six, axis=1, keepdims=True)],
                           "constant:0.0625")  # fmt: skip


# ReLU SAEs: no top-k choice for rounding to flip, so SAEs in other programs stay twins in digits
BATCHED = {**GRID, "architectures": ("relu",), "lrs": (1e-2,), "dictionary_ratios": (1.0,), "seeds": (0, 1),
           "steps": 100, "chunk_steps": 50, "checkpoint_every": 50}  # fmt: skip


def test_a_toy_model_whose_saes_do_not_fit_the_device_is_refused_before_compiling(frame_run, compile_log, monkeypatch):
    spec = sae.SaeSpec(**{**GRID, "dictionary_ratios": (4.0,)})
    need = layout.device_bytes(layout.resolve_for_backend(spec), sae.ToyModels.from_run(frame_run, [0]))
    # states of 24 SAEs (two [D, m] matrices, Adam's moments, gradients) and a block's [B, D] temporaries
    assert 24 * 16 * (2 * 64 * 16) < need < 4 * (24 * 16 * (2 * 64 * 16 + 80) + 8 * 8 * 256 * 64 + 4 * 256 * 16)
    monkeypatch.setattr(layout, "free_memory", lambda: 1.5 * need)
    with compile_log, pytest.raises(ConfigError) as raised:
        sae.run_sae(frame_run, spec)
    assert compile_log.count() == 0
    message = str(raised.value)
    assert "the 24 SAEs of one toy model need about 5 MiB of the 4 MiB free" in message and "\n" not in message


def test_batches_hold_as_many_toy_models_as_fit_half_the_free_memory():
    """Toy models go into batches two (or three) of a width at a time, as many as fit; a pair is split
    only when it does not fit (a lone toy model's SAEs agree with one batch to rounding only)."""
    spec = layout.resolve_for_backend(sae.SaeSpec(**BATCHED))
    toys = sae.ToyModels.from_run(_three_widths_run(), [0, 1, 2, 3, 4])
    wide, bytes_of = toys.subset([0, 1]), lambda i: layout.device_bytes(spec, toys.subset(i))
    assert bytes_of([2, 3, 4]) < bytes_of([0, 1]) < bytes_of([0, 1, 2])
    assert layout.split_batches(spec, toys, budget=bytes_of([0, 1])) == [[0, 1], [2, 3, 4]]
    assert layout.split_batches(spec, toys, budget=bytes_of([0])) == [[0], [1], [2, 3, 4]]
    assert layout.split_batches(spec, toys, budget=layout.device_bytes(spec, toys)) == [[0, 1, 2, 3, 4]]
    per_model = spec.saes_per_model
    at_most = {k: spec.replace(max_saes_per_batch=k * per_model) for k in (1, 2, 3)}
    assert layout.split_batches(at_most[3], toys, budget=1e12) == [[0, 1], [2, 3, 4]]
    assert layout.split_batches(at_most[2], toys, budget=1e12) == [[0, 1], [2, 3], [4]]
    assert layout.split_batches(at_most[1], toys, budget=1e12) == [[0], [1], [2], [3], [4]]
    assert layout.device_bytes(spec, wide, devices=2) < layout.device_bytes(spec, wide)
    six = sae.ToyModels.from_run(sae.weights_run([np.eye(16)[:, :8]] * 6, "constant:0.0625"), list(range(6)))
    assert layout.split_batches(at_most[3], six, budget=1e12) == [[0, 1], [2, 3], [4, 5]]  # two a device
    assert layout.split_batches(at_most[3], six, devices=2, budget=1e12) == [[0, 1, 2], [3, 4, 5]]  # padded to 4
    with pytest.raises(ConfigError, match="max_saes_per_batch"):
        spec.replace(max_saes_per_batch=per_model - 1).validate()


def test_a_grid_trained_in_batches_equals_it_trained_at_once(tmp_path):
    """Width 32's two toy models in a first batch, width 12's two and width 6's one in a second: every
    SAE's curves, final parameters and evaluation are bitwise those of one batch; the run directory
    reads back, ``supjax status`` counts each batch's SAEs, and a run stopped inside the second batch
    resumes to the same numbers bitwise."""
    from supjax import status

    run = _three_widths_run()
    spec = sae.SaeSpec(**BATCHED)
    whole = sae.run_sae(run, spec)
    out = tmp_path / "batched"
    split = sae.run_sae(run, spec.replace(max_saes_per_batch=3 * spec.saes_per_model), out=out)
    assert split.toy_batches == [[0, 1], [2, 3, 4]] and whole.toy_batches == [[0, 1, 2, 3, 4]]
    assert split.saes == whole.saes and len(split.index) == 3  # width 32 in batch 1; widths 12 and 6 in batch 2
    np.testing.assert_array_equal(split.losses, whole.losses)
    np.testing.assert_array_equal(split.l0, whole.l0)
    for row in whole.saes:
        for name, value in whole.params(row["sae"]).items():
            np.testing.assert_array_equal(split.params(row["sae"])[name], value, err_msg=f"SAE {row['sae']}: {name}")
    summary, _ = sae.load_tables(out)
    numbers = whole.evaluate(write=False)[0].select_dtypes("number")  # the CSV reads the empty regime as NaN
    pd.testing.assert_frame_equal(summary[numbers.columns], numbers, check_dtype=False)
    state = status.run_status(out)
    assert [b["models"] for b in state["batches"]] == [2 * spec.saes_per_model, 3 * spec.saes_per_model]
    assert state["finished"] and [b["checkpointed"] for b in state["batches"]] == [100, 100]

    shutil.rmtree(out / "checkpoints" / "batch-001" / "100")  # as if killed in the second batch
    for name in ("losses.npy", "l0.npy", "sae_summary.csv", "sae_features.npz", "checksums.json"):
        (out / name).unlink()
    assert status.run_status(out)["batches"][1]["checkpointed"] == 50
    right = (out / "batches.json").read_text()
    (out / "batches.json").write_text("[[2, 3, 4], [0, 1]]")  # each toy model once, but not where they trained
    with pytest.raises(ConfigError, match="holds other models than this batch's; start anew"):
        sae.run_sae(run, spec, out=out, resume=True)
    (out / "batches.json").write_text(right)
    resumed = sae.run_sae(run, spec, out=out, resume=True)  # the saved batches, not this spec's one
    assert resumed.toy_batches == [[0, 1], [2, 3, 4]]
    np.testing.assert_array_equal(resumed.losses, split.losses)
    loaded = sae.load_sae_run(out)
    for index in (0, 5, 9):  # batch 1; batch 2 at widths 12 and 6
        for name, value in split.params(index).items():
            np.testing.assert_array_equal(loaded.params(index)[name], value, err_msg=name)
    pd.testing.assert_frame_equal(sae.load_tables(out)[0], summary)
    (out / "checksums.json").unlink()
    (out / "batches.json").write_text("[[0, 1, 2], [3, 4]]")
    with pytest.raises(RunDirError, match=r"batch-000/100 does not hold the SAEs batches\.json names"):
        sae.load_sae_run(out)


def test_a_batch_keeps_the_sae_numbers_of_the_sweep_whatever_its_order_of_widths():
    """Widths 32, 12, 32 by index: the batch of the last two meets width 12 first, the table width 32;
    each group's rows of the job's logs hold its own SAEs."""
    spec = layout.resolve_for_backend(sae.SaeSpec(**BATCHED))
    frames = _three_widths_run()
    toys = sae.ToyModels.from_run(
        sae.weights_run([frames.weights(i)[0] for i in (0, 2, 1)], "constant:0.0625"), [0, 1, 2]
    )
    table = layout.sae_table(spec, toys)
    batch = layout.plan(spec, toys.subset([1, 2]), table=table)
    assert [g.program_shape.m for g in batch.groups] == [12, 32]
    for group in batch.groups:
        assert [batch.rows[j]["sae"] for j in group.rows] == group.indices.tolist()
        assert {table[i]["model"] for i in group.indices} == {
            r["index"] for r in batch.toys.rows if r["m"] == group.program_shape.m
        }


@pytest.fixture(scope="module")
def sae_dir(frame_run, tmp_path_factory):
    """The GRID trained into a run directory with a checkpoint halfway (the frame sweep's programs)."""
    out = tmp_path_factory.mktemp("sae") / "run"
    result = sae.run_sae(frame_run, sae.SaeSpec(**GRID, checkpoint_every=200, snapshot_steps=(200,)), out=out)
    return out, result


def test_a_snapshot_is_the_run_as_it_stood_at_its_step(sae_dir):
    """The snapshot hook (before the checkpoint) keeps what the checkpoint of the same step holds, and
    ``at_step`` evaluates every SAE there."""
    from supjax import checkpoint

    out, finished = sae_dir
    loaded = sae.load_sae_run(out)
    assert loaded.snapshot_steps == [200]
    halfway = loaded.at_step(200)
    saved = checkpoint.restore((out / "checkpoints").resolve(), 200)
    for state, group in zip(halfway.states, saved["states"], strict=True):
        for name, value in group["params"].items():
            np.testing.assert_array_equal(state["params"][name], value, err_msg=name)
    assert not np.array_equal(halfway.states[0]["params"]["W_dec"], finished.states[0]["params"]["W_dec"])
    assert halfway.losses.shape == (48, 20)
    np.testing.assert_array_equal(halfway.losses, finished.losses[:, :20])
    summary, _ = halfway.evaluate(write=False)
    assert len(summary) == 48 and summary.mcc.between(0, 1).all()
    with pytest.raises(RunDirError, match="has no snapshot at step 300; it keeps 200"):
        loaded.at_step(300)


_DEVICES_SCRIPT = """
import sys
import numpy as np
from supjax import sae


def main(out):
    rng = np.random.default_rng(1)
    frames = [w / np.linalg.norm(w, axis=1, keepdims=True) for w in rng.normal(size=(2, 16, 6))]
    toys = sae.weights_run(frames, distribution="constant:0.1")
    spec = sae.SaeSpec(architectures=("relu",), l1_coefficients=(1.0, 3.0), dictionary_ratios=(1.0,), lrs=(1e-2,),
                       steps=60, batch_size=128, eval_batch_size=512, snapshot_steps=(30,), progress=False)
    run = sae.run_sae(toys, spec, out=out)
    summary, _ = sae.load_sae_run(out).evaluate(write=False)
    halfway, _ = run.at_step(30).evaluate(write=False)
    np.savez(f"{out}.npz", losses=run.losses, mcc=summary.mcc.to_numpy(), halfway=halfway.mcc.to_numpy(),
             W_dec=np.stack([run.params(i)["W_dec"] for i in range(4)]), shapes=[np.shape(i) for i in run.index])


if __name__ == "__main__":
    main(sys.argv[1])
"""


@pytest.mark.slow
def test_saes_over_three_devices_match_one_device(tmp_path):
    """Two toy models of one width over three devices: T padded to three, the padding dropped;
    every SAE as on one device, to float32 rounding (ReLU SAEs: no top-k choice that rounding flips)."""
    import subprocess
    import sys

    script = tmp_path / "devices.py"
    script.write_text(_DEVICES_SCRIPT)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=3"}
    three = subprocess.Popen([sys.executable, script, tmp_path / "three"], env=env, stderr=subprocess.PIPE, text=True)
    assert jax.device_count() == 1
    runpy.run_path(str(script))["main"](tmp_path / "one")  # this process: one device
    assert three.wait(timeout=300) == 0, three.stderr.read()[-2000:]
    one, three = np.load(tmp_path / "one.npz"), np.load(tmp_path / "three.npz")
    assert one["shapes"].tolist() == three["shapes"].tolist() == [[2, 2]]
    for name in ("losses", "W_dec", "mcc", "halfway"):
        np.testing.assert_allclose(three[name], one[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_an_interrupted_sae_run_resumed_gives_the_same_numbers(sae_dir, frame_run):
    out, finished = sae_dir
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir()) == [200, 400]
    loaded = sae.load_sae_run(out)
    np.testing.assert_array_equal(loaded.losses, finished.losses)
    np.testing.assert_array_equal(loaded.params(9)["W_dec"], finished.params(9)["W_dec"])
    saved = out.parent / "saved"
    shutil.copytree(out, saved)
    try:  # as if killed between the two checkpoints
        shutil.rmtree(saved / "checkpoints" / "400")
        for name in ("losses.npy", "l0.npy", "sae_summary.csv", "sae_features.npz", "lock"):
            (saved / name).unlink(missing_ok=True)
        with pytest.raises(Exception, match="holds an SAE run; add --resume"):
            sae.run_sae(frame_run, sae.SaeSpec(**GRID, checkpoint_every=200), out=saved)
        resumed = sae.run_sae(frame_run, sae.SaeSpec(**GRID, checkpoint_every=200), out=saved, resume=True)
        np.testing.assert_array_equal(resumed.losses, finished.losses)
        np.testing.assert_array_equal(resumed.l0, finished.l0)
        for index in (0, 17, 31, 47):
            for name, value in finished.params(index).items():
                np.testing.assert_array_equal(resumed.params(index)[name], value, err_msg=name)
        with pytest.raises(ConfigError, match="the config differs in lrs"):
            sae.run_sae(frame_run, sae.SaeSpec(**{**GRID, "lrs": (1e-3,)}), out=saved, resume=True)
    finally:
        shutil.rmtree(saved, ignore_errors=True)


def test_sigterm_stops_after_the_chunk_in_flight_and_resume_gives_the_same_numbers(
    sae_dir, frame_run, tmp_path, sigterm_after_a_chunk
):
    """SIGTERM during the first chunk: the chunk finishes, is checkpointed, and the run stops with one
    line naming the command that continues it; the resumed run equals the uninterrupted one."""
    _, finished = sae_dir
    spec = sae.SaeSpec(**GRID, checkpoint_every=200)
    with pytest.raises(sae.sweep.SaeInterrupted) as stopped:
        sae.run_sae(frame_run, spec, out=tmp_path / "run")
    assert stopped.value.exit_code == 143 and "\n" not in str(stopped.value)
    assert str(stopped.value).startswith("interrupted at step 200 of 400; continue with: supjax sae RUN --config ")
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["200"]
    # the engine's report: supjax status sees an SAE run as it sees a toy run
    from supjax import status

    state = status.run_status(tmp_path / "run")
    assert state["kind"] == "sae" and state["models"] == len(finished.saes) and not state["finished"]
    assert state["batches"] == [{"batch": 0, "models": len(finished.saes), "step": 200, "checkpointed": 200}]
    assert state["model_steps_done"] == 200 * len(finished.saes) and not state["running"]
    assert "supjax sae TOY_RUN --config" in status.format_status(state)
    # the backend's choice is kept, so a resume on another backend trains the same program
    assert sae.SaeSpec.from_toml(tmp_path / "run" / "sae.toml").sae_block == layout.CPU_SAE_BLOCK
    sigterm_after_a_chunk.undo()
    resumed = sae.run_sae(frame_run, spec, out=tmp_path / "run", resume=True)
    np.testing.assert_array_equal(resumed.losses, finished.losses)
    np.testing.assert_array_equal(resumed.params(40)["W_dec"], finished.params(40)["W_dec"])


def test_analyze_and_plot_recognise_an_sae_run_directory(sae_dir, capsys, monkeypatch):
    out, _ = sae_dir
    written_at_training, _ = sae.load_tables(out)
    (out / "sae_summary.csv").unlink()
    monkeypatch.chdir(out.parent)
    assert cli.main(["analyze", out.name]) == 0  # a relative path
    printed = capsys.readouterr().out
    again, _ = sae.load_tables(out)  # the evaluation, redone from the saved run, is the one written at training
    np.testing.assert_allclose(again.mcc, written_at_training.mcc, rtol=1e-6)
    np.testing.assert_array_equal(again.dead_latents, written_at_training.dead_latents)
    assert f"{again[again.architecture == 'topk'].mcc.mean():.3f}" in printed
    assert cli.main(["plot", str(out), "--out", str(out / "figures")]) == 0
    pngs = {p.name: p.read_bytes() for p in (out / "figures").glob("*.png")}
    assert set(pngs) == {"sae_phase.png", "sae_frontier.png"} and all(b[:4] == b"\x89PNG" for b in pngs.values())


def test_cli_errors_are_one_line_and_exit_2(sae_dir, tmp_path, capsys):
    out, _ = sae_dir
    config = tmp_path / "sae.toml"
    config.write_text('architectures = ["topk"]\nks = [1]\n')
    assert cli.main(["sae", str(tmp_path / "missing"), "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("supjax: error: run directory ") and "does not exist" in err and err.count("\n") == 1
    config.write_text("ks = [0]\n")
    assert cli.main(["sae", str(out), "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == "supjax: error: config field 'ks' = 0: k counts active latents: a positive integer\n"
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    for file in (damaged / "checkpoints" / "400").rglob("*"):
        if file.is_file() and file.stat().st_size > 0:
            file.write_bytes(b"\0" * 16)
    assert cli.main(["analyze", str(damaged)]) == 2
    err = capsys.readouterr().err  # the checksums the run wrote find the damage first
    assert err.startswith(f"supjax: error: run directory {damaged}: its checkpoints/400/") and err.count("\n") == 1
    assert "is missing or damaged (not the file the run wrote); write them again with `supjax sae" in err
    (damaged / "checksums.json").unlink()  # a run written before supjax kept checksums: the checkpoint says it
    assert cli.main(["analyze", str(damaged)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("supjax: error: checkpoint ") and "is unreadable" in err and err.count("\n") == 1


# ---- figures --------------------------------------------------------------------------------------


def _tables():
    """A small hand-made SAE table: two architectures, a strong and a weak model at two widths."""
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    models = [(0, 8, -1.0), (1, 8, 1.0), (2, 16, -1.0), (3, 16, 1.0)]
    for architecture in ("topk", "relu"):
        for model, m, gamma in models:
            for sparsity in (1.0, 2.0, 4.0):
                rows.append({"sae": len(rows), "architecture": architecture, "model": model, "sparsity": sparsity,
                             "m": m, "weight_decay": gamma, "alpha": 1.0, "regime": "strong" if gamma < 0 else "weak",
                             "true_l0": 1.0, "sae_l0": sparsity * rng.uniform(0.9, 1.1), "mcc": rng.uniform(),
                             "fvu": rng.uniform(0.01, 0.5)})  # fmt: skip
    summary = pd.DataFrame(rows)
    n = 10
    features = {
        "sae": summary.sae.to_numpy(),
        "model": summary.model.to_numpy(),
        "best_cosine": rng.uniform(size=(len(rows), n)),
        "models": np.arange(4),
        "p": np.tile(1.0 / np.arange(1, n + 1), (4, 1)),
        "row_norm": rng.uniform(0, 1.2, size=(4, n)),
    }
    return summary, features


def test_the_sae_figures_draw_their_tables():
    from supjax import plots

    summary, features = _tables()
    chosen = plots.at_fixed_l0(summary, 2.0)
    assert (chosen.sparsity == 2.0).all() and len(chosen) == 8
    phase = plots.plot_sae_phase_diagram(summary, l0=2.0)
    for ax, architecture in zip(phase.axes[:2], ("topk", "relu"), strict=True):
        assert ax.get_title().startswith(f"{architecture}, alpha = 1")
        cells = chosen[chosen.architecture == architecture].pivot_table(index="m", columns="weight_decay", values="mcc")
        np.testing.assert_allclose(ax.images[0].get_array(), cells.to_numpy())
    recovery = plots.plot_feature_recovery(summary, features, models=(2, 3), l0=2.0)
    assert [ax.get_title().split(":")[0] for ax in recovery.axes[:2]] == ["strong", "weak"]
    for ax, model in zip(recovery.axes[:2], (2, 3), strict=True):
        for line, architecture in zip(ax.get_lines(), ("topk", "relu"), strict=True):
            sae_index = chosen[(chosen.model == model) & (chosen.architecture == architecture)].iloc[0]
            expected = summary[(summary.model == model) & (summary.architecture == architecture)
                               & (summary.sparsity == sae_index.sparsity)].sae  # fmt: skip
            np.testing.assert_allclose(line.get_ydata(), features["best_cosine"][expected.to_numpy()].mean(axis=0))
    from matplotlib.figure import Figure

    from supjax.plots import sae as sae_plots

    ax, rank = Figure().subplots(), np.arange(1, 1001)  # past 100 features: faint, and log-binned means on top
    sae_plots._ranked(ax, rank, np.log(rank), {"color": "C0", "label": "topk"})
    raw, binned = ax.get_lines()
    assert raw.get_alpha() == 0.25 and binned.get_label() == "topk" and 20 < len(binned.get_xdata()) <= 40
    x, y = binned.get_xdata(), binned.get_ydata()
    assert np.all(np.diff(x) > 0) and x[0] >= 1 and x[-1] <= 1000
    np.testing.assert_allclose(y, np.log(x), atol=0.05)  # the mean of log i over a bin, at its centre
    frontier = plots.plot_l0_fvu_frontier(summary)
    for ax, regime in zip(frontier.axes, ("strong", "weak"), strict=True):
        part = summary[(summary.regime == regime) & (summary.architecture == "topk")]
        line = next(line for line in ax.get_lines() if line.get_label() == "topk")
        means = part.groupby("sparsity")[["sae_l0", "fvu"]].mean().sort_values("sae_l0")
        np.testing.assert_allclose(np.column_stack([line.get_xdata(), line.get_ydata()]), means.to_numpy())


def test_the_sae_figure_module_imports_only_the_style_of_its_package():
    source = Path(__file__).resolve().parents[1] / "supjax" / "plots" / "sae.py"
    imported = set()
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert {m for m in imported if m.startswith("supjax")} == {"supjax.plots.style"}


# ---- the experiment ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_experiment_runs_at_smoke_scale_and_the_cli_trains_its_saes(tmp_path, capsys):
    """experiments/sae.py --scale smoke: a toy grid, SAEs on every model, the numbers and figures; then
    ``supjax sae`` on the same toy run with the same [sae] table (the programs are already compiled)."""
    import sys
    import tomllib

    experiments = Path(__file__).resolve().parents[1] / "experiments"
    sys.path.insert(0, str(experiments))
    try:
        import sae as script  # experiments/sae.py
    finally:
        sys.path.remove(str(experiments))
    argv = ["--scale", "smoke", "--out", str(tmp_path / "run"), "--figures", str(tmp_path / "figures"), "--quiet"]
    numbers = first = script.main(argv)
    assert numbers["setup"]["toy_models"] == 2 and numbers["setup"]["saes"] == 4
    assert set(numbers) >= {"regime", "packing", "architecture", "frequency", "etf_likeness", "timing"}
    assert {"topk|strong", "topk|weak"} <= set(numbers["regime"])
    for stem in ("sae_phase", "sae_frontier", "sae_feature_recovery"):
        assert (tmp_path / "figures" / f"{stem}_smoke.png").read_bytes()[:4] == b"\x89PNG"
    summary, _, timing = script.train_or_reuse(
        tmp_path / "run" / "toy", script.load_specs("smoke")[1], tmp_path / "run" / "saes"
    )
    assert timing["reused"] is True and len(summary) == 4
    toy_spec, sae_spec = script.load_specs("quick")
    assert toy_spec.num_models == 24 and sae_spec.saes_per_model == 8
    config = tmp_path / "sae.toml"
    table = tomllib.loads((experiments / "sae_smoke.toml").read_text())["sae"]
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    capsys.readouterr()
    toy_run = tmp_path / "run" / "toy"
    assert cli.main(["sae", str(toy_run), "--config", str(config), "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("supjax: trained 4 SAEs on 2 toy models x 100 steps") and "topk" in out
    summary, _ = sae.load_tables(tmp_path / "cli")
    reference, _ = sae.load_tables(tmp_path / "run" / "saes")
    np.testing.assert_array_equal(summary.mcc, reference.mcc)

    (tmp_path / "piece-2").mkdir()  # --combine: two finished pieces answered at once, numbered apart
    (tmp_path / "cli").rename(tmp_path / "piece-2" / "saes")
    both, features = script.combine([tmp_path / "run" / "saes", tmp_path / "piece-2" / "saes"])
    assert both.sae.tolist() == list(range(8)) and both.model.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert features["best_cosine"].shape[0] == 8 and features["models"].tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(both.mcc, np.concatenate([reference.mcc, summary.mcc]))
    argv = ["--scale", "smoke", "--combine", str(tmp_path / "run"), str(tmp_path / "piece-2"), "--out",
            str(tmp_path / "both"), "--figures", str(tmp_path / "figures-both"), "--quiet"]  # fmt: skip
    numbers = script.main(argv)  # each piece has one strong and one weak model: the pieces' mean
    second = script.answers(*sae.load_tables(tmp_path / "piece-2" / "saes"))
    for key in ("topk|strong", "topk|weak"):
        expected = (first["regime"][key]["mcc"] + second["regime"][key]["mcc"]) / 2
        assert numbers["regime"][key]["mcc"] == pytest.approx(expected, abs=1e-4)
    assert (tmp_path / "figures-both" / "sae_phase_smoke.png").is_file()
    sizes = script.dictionaries([tmp_path / "run", tmp_path / "piece-2"], ["saes"])["by_dictionary_and_sparsity"]
    keys = ["regime", "architecture", "dictionary_ratio", "sparsity"]
    for key, group in both.groupby(keys):
        assert sizes["|".join(map(str, key))]["mcc"] == pytest.approx(group.mcc.mean())


def test_the_chance_level_is_keyed_apart_from_any_seed_a_frame_is_built_from():
    """A frame drawn by numpy's default_rng(0), the seed a user reaches for first, is not what the chance
    level draws for model 0: its chance MCC stays near that of random directions, not 1."""
    from supjax.sae import evaluate

    W = np.random.default_rng(0).standard_normal((64, 8))
    chance = evaluate._chance(W, 64, seed=0)
    other = evaluate._chance(np.random.default_rng(1).standard_normal((64, 8)), 64, seed=0)
    assert chance["mcc_chance"] < 0.95 and abs(chance["mcc_chance"] - other["mcc_chance"]) < 0.1, (chance, other)
