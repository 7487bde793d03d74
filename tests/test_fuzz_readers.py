"""Fuzzed readers: every mutated input gives the right result or one error line, never a traceback, a hang
or a silently wrong number.

Valid inputs (a finished toy run directory, an SAE run directory, an LLC run directory, a safetensors
file) are mutated by hypothesis: a byte flipped, the file cut short, bytes appended, a table cell or a
header field changed. Each reader then either returns exactly what it returns for the valid input or
raises a :class:`supjax.SupjaxError` whose message is one line. ``benchmarks/fuzz_readers.py`` runs the
same properties with a larger budget; the count goes in RESULTS.md.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supjax import SupjaxError

EXAMPLES = int(os.environ.get("SUPJAX_FUZZ_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


class Mutation:
    """A mutation of a file's bytes, drawn by hypothesis: flip, truncate, append or replace a run of bytes."""

    @staticmethod
    def strategy():
        return st.tuples(
            st.sampled_from(["flip", "truncate", "append", "zero", "text"]),
            st.floats(0.0, 1.0),
            st.integers(1, 64),
            st.sampled_from([b"\x00", b"nan", b"-1", b"\xff\xfe", b"1e400", b",", b'"', b"]", b"inf"]),
        )

    @staticmethod
    def apply(data: bytes, mutation) -> bytes:
        kind, where, length, text = mutation
        at = min(int(where * len(data)), max(len(data) - 1, 0))
        if kind == "flip" and data:
            return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
        if kind == "truncate":
            return data[:at]
        if kind == "append":
            return data + text * length
        if kind == "zero":
            return data[:at] + b"\x00" * length + data[at + length :]
        return data[:at] + text + data[at + len(text) :]


def _one_line_or_same(read, reference, check_same):
    """``read()`` gives what ``reference`` holds, or one SupjaxError line; anything else fails the test."""
    try:
        value = read()
    except SupjaxError as err:
        text = str(err)
        assert text and "\n" not in text, text
        return "error"
    check_same(value, reference)
    return "same"


def _mutated_copy(source: Path, target: Path, name: str, mutation) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    file = target / name
    file.write_bytes(Mutation.apply(file.read_bytes(), mutation))


# ---- toy run directories ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    from supjax import SweepSpec, run_sweep

    out = tmp_path_factory.mktemp("fuzz") / "toy"
    run_sweep(SweepSpec(n=24, batch_size=32, widths=(3, 5), weight_decays=(-1.0, 1.0), steps=40, warmup_steps=4,
                        progress=False), out=out)  # fmt: skip
    (out / "progress.json").write_text((out / "progress.json").read_text())
    return out


def _toy_files(root: Path) -> list[str]:
    names = ["config.toml", "models.csv", "losses.npy", "probabilities.npz", "batches.json", "progress.json",
             "run.json", "checksums.json"]  # fmt: skip
    names += sorted(str(p.relative_to(root)) for p in (root / "checkpoints").rglob("*") if p.is_file())
    return names


def _same_run(run, reference):
    np.testing.assert_array_equal(run.losses, reference.losses)
    assert run.models == reference.models
    for m, group in reference.params.items():
        for key, value in group.items():
            np.testing.assert_array_equal(run.params[m][key], value)


@given(data=st.data())
@SETTINGS
def test_a_mutated_toy_run_directory_loads_right_or_is_one_error_line(toy_dir, tmp_path_factory, data):
    from supjax import load_run, status

    reference = load_run(toy_dir)
    name = data.draw(st.sampled_from(_toy_files(toy_dir)), label="file")
    mutation = data.draw(Mutation.strategy(), label="mutation")
    target = tmp_path_factory.getbasetemp() / "fuzz-toy"
    _mutated_copy(toy_dir, target, name, mutation)
    _one_line_or_same(lambda: load_run(target), reference, _same_run)
    _one_line_or_same(lambda: status.run_status(target), None, lambda value, _: json.dumps(value, default=str))


# ---- SAE and LLC run directories ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def wing_dirs(toy_dir, tmp_path_factory):
    from supjax import llc, sae

    root = tmp_path_factory.mktemp("fuzz-wings")
    sae.run_sae(toy_dir, sae.SaeSpec(architectures=("topk",), ks=(1,), steps=20, batch_size=32, eval_batch_size=128,
                                     lrs=(0.01,), progress=False), out=root / "sae")  # fmt: skip
    llc.run_llc(toy_dir, llc.LlcSpec(step_sizes=(1e-3,), chains=2, draws=20, batch_size=16, progress=False),
                out=root / "llc")  # fmt: skip
    return root / "sae", root / "llc"


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "lock")


@given(data=st.data())
@SETTINGS
def test_a_mutated_sae_or_llc_run_directory_loads_right_or_is_one_error_line(wing_dirs, tmp_path_factory, data):
    from supjax import llc, sae

    which = data.draw(st.sampled_from(["sae", "llc"]), label="wing")
    source = wing_dirs[0] if which == "sae" else wing_dirs[1]
    name = data.draw(st.sampled_from(_files(source)), label="file")
    mutation = data.draw(Mutation.strategy(), label="mutation")
    target = tmp_path_factory.getbasetemp() / f"fuzz-{which}"
    _mutated_copy(source, target, name, mutation)
    if which == "sae":
        reference = sae.load_sae_run(source)

        def same(run, ref):
            np.testing.assert_array_equal(run.losses, ref.losses)
            for a, b in zip(run.states, ref.states, strict=True):
                for key in b["params"]:
                    np.testing.assert_array_equal(a["params"][key], b["params"][key])

        _one_line_or_same(lambda: sae.load_sae_run(target), reference, same)
    else:
        reference = llc.load_llc_run(source)

        def same(run, ref):
            for key, value in ref.traces.items():
                np.testing.assert_array_equal(run.traces[key], value)
            assert run.chains == ref.chains

        _one_line_or_same(lambda: llc.load_llc_run(target), reference, same)


# ---- safetensors files --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weight_file(tmp_path_factory):
    from supjax import llm

    path = tmp_path_factory.mktemp("fuzz-weights") / "model.safetensors"
    W = np.random.default_rng(4).normal(size=(40, 6)).astype(np.float32)
    llm.save_safetensors(path, {"lm_head.weight": W, "other.bias": np.ones(3, np.float32)})
    return path, W


def _what_the_bytes_say(path: Path):
    """The matrix a safetensors file holds, read by hand (8-byte length, JSON header, raw little-endian
    float32 at its offsets), or None where the file does not hold one. A flipped byte in the data is a
    valid file with another number in it: the right result is that number, and safetensors keeps no
    checksum that could tell."""
    try:
        data = path.read_bytes()
        size = int.from_bytes(data[:8], "little")
        info = json.loads(data[8 : 8 + size])["lm_head.weight"]
        start, end = info["data_offsets"]
        assert info["dtype"] == "F32" and 0 <= start <= end <= len(data) - 8 - size
        values = np.frombuffer(data[8 + size + start : 8 + size + end], "<f4").reshape(info["shape"])
        assert values.ndim == 2 and np.all(np.isfinite(values))
        return values
    except Exception:
        return None


@given(mutation=Mutation.strategy(), header=st.booleans())
@SETTINGS
def test_a_mutated_safetensors_file_reads_right_or_is_one_error_line(weight_file, tmp_path_factory, mutation, header):
    """Mutations aimed at the header (its length, its JSON: dtypes, shapes, offsets) half of the time. The
    reader gives the matrix the bytes hold (read by hand) or one error line."""
    from supjax import llm

    path, _ = weight_file
    data = path.read_bytes()
    if header:  # the 8-byte length and the JSON header
        size = 8 + int.from_bytes(data[:8], "little")
        kind, where, length, text = mutation
        mutation = (kind, where * size / max(len(data), 1), length, text)
    target = tmp_path_factory.getbasetemp() / "fuzz.safetensors"
    target.write_bytes(Mutation.apply(data, mutation))

    def same(head, reference):
        assert reference is not None, "read a matrix from a file that holds none"
        np.testing.assert_array_equal(np.asarray(head.values, np.float32), reference)

    _one_line_or_same(lambda: _finite_head(llm, target), _what_the_bytes_say(target), same)


def _finite_head(llm, path):
    """What supjax llm reads before it measures: the matrix, refused if it holds non-finite values."""
    from supjax.errors import WeightFileError
    from supjax.llm.head import non_finite

    head = llm.load_matrix(path, "lm_head.weight")
    if non_finite(head.values):
        raise WeightFileError(path, "holds non-finite values")
    return head
