import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import sweep_cli

from supjax import RunDirError, SweepSpec, load_run, run_sweep
from supjax.cli import main

CONFIG = """
n = 48
batch_size = 64
widths = [4, 6]
weight_decays = [-1.0, 1.0]
alphas = [1.0, 1.5]
steps = {steps}
warmup_steps = 20
log_every = 10
checkpoint_every = {every}
chunk_steps = {every}
max_to_keep = 3
"""


def write_config(tmp_path, steps=400, every=50):
    path = tmp_path / f"c{steps}.toml"
    path.write_text(CONFIG.format(steps=steps, every=every))
    return path


def assert_same_run(a, b):
    run_a, run_b = load_run(a), load_run(b)
    np.testing.assert_array_equal(run_a.losses, run_b.losses)
    assert run_a.models == run_b.models
    for m in run_a.params:
        for key in ("W", "b", "index"):
            np.testing.assert_array_equal(run_a.params[m][key], run_b.params[m][key])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    process = sweep_cli(write_config(tmp, steps=3000), "--out", tmp / "whole")
    assert process.wait(timeout=300) == 0, process.stderr.read()
    return tmp / "whole"


@pytest.mark.slow
def test_a_killed_sweep_resumes_to_the_uninterrupted_result(reference, tmp_path):
    config = write_config(tmp_path, steps=3000)
    out = tmp_path / "killed"
    process = sweep_cli(config, "--out", out)
    batch = out / "checkpoints" / "batch-000"
    deadline = time.time() + 120
    while not (batch.is_dir() and any(p.name.isdigit() for p in batch.iterdir())):
        assert process.poll() is None, "the sweep ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    steps = sorted(int(p.name) for p in batch.iterdir() if p.name.isdigit())
    assert steps and steps[-1] < 3000, steps  # really interrupted
    assert not (out / "losses.npy").exists()
    resumed = sweep_cli(config, "--out", out, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert_same_run(out, reference)


def test_resume_falls_back_past_a_corrupt_checkpoint(reference, tmp_path):
    out = tmp_path / "corrupt"
    shutil.copytree(reference, out)
    batch = out / "checkpoints" / "batch-000"
    assert sorted(int(p.name) for p in batch.iterdir() if p.name.isdigit()) == [2900, 2950, 3000]
    shutil.rmtree(batch / "3000")  # as if killed after step 2950
    for file in (batch / "2950").rglob("*"):
        if file.is_file():
            file.write_bytes(b"\x00garbage")
    with pytest.warns(UserWarning, match="2950 is unreadable"):
        run_sweep(SweepSpec.from_toml(out / "config.toml").replace(progress=False), out=out, resume=True)
    assert_same_run(out, reference)


def test_resume_refuses_a_config_that_changes_results(reference, tmp_path, capsys):
    config = write_config(tmp_path, steps=3000)
    out = tmp_path / "other"
    shutil.copytree(reference, out)
    args = ["sweep", str(config), "--out", str(out), "--resume", "--quiet"]
    assert main([*args, "--set", "lr=0.02", "--set", "widths=[4]"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "widths" in err and "lr" in err and "0.02" in err
    # Driving fields may change.
    assert main([*args, "--set", "chunk_steps=100"]) == 0


def test_batches_that_fit_memory_give_the_same_models(tmp_path):
    spec = SweepSpec(
        n=48, batch_size=64, widths=(4, 6), weight_decays=(-1.0, 1.0), alphas=(1.0, 1.5), steps=100, progress=False
    )
    whole = run_sweep(spec, out=tmp_path / "one")
    split = run_sweep(spec.replace(max_models_per_batch=3), out=tmp_path / "many")
    assert len(list((tmp_path / "many" / "checkpoints").iterdir())) == 4  # blocks of 2 models: 4 batches
    np.testing.assert_allclose(split.losses, whole.losses, rtol=1e-5)
    np.testing.assert_allclose(load_run(tmp_path / "many").params[6]["W"], whole.params[6]["W"], rtol=1e-4, atol=1e-6)


def test_unfinished_and_unwritable_runs_are_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = write_config(tmp_path, steps=100)
    assert main(["sweep", str(config), "--out", str(blocker / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot write" in err
    with pytest.raises(RunDirError, match="no run to resume"):
        run_sweep(SweepSpec.from_toml(config), out=tmp_path / "empty", resume=True)
    out = tmp_path / "half"
    run_sweep(SweepSpec.from_toml(config).replace(progress=False), out=out)
    shutil.rmtree(out / "checkpoints" / "batch-000" / "100")
    with pytest.raises(RunDirError, match="--resume"):
        load_run(out)


def test_ordinary_sweeps_keep_few_checkpoints(tmp_path):
    out = tmp_path / "run"
    run = run_sweep(
        SweepSpec.from_toml(write_config(tmp_path, steps=400)).replace(progress=False, max_to_keep=2), out=out
    )
    kept = sorted(int(p.name) for p in (out / "checkpoints" / "batch-000").iterdir() if p.name.isdigit())
    assert kept == [350, 400]
    np.testing.assert_array_equal(np.load(out / "losses.npy"), run.losses)  # the tables survive the pruning
    np.testing.assert_array_equal(load_run(out).params[run.models[0]["m"]]["W"], run.params[run.models[0]["m"]]["W"])


@pytest.mark.slow
def test_resume_on_another_number_of_devices(reference, tmp_path):
    out = tmp_path / "moved"
    shutil.copytree(reference, out)
    batch = out / "checkpoints" / "batch-000"
    shutil.rmtree(batch / "3000")
    # Two data streams per width over four devices: the layout gains padding.
    config = out / "config.toml"
    resumed = subprocess.Popen(
        [sys.executable, "-m", "supjax.cli", "sweep", str(config), "--out", str(out), "--resume", "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
    )
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert not [p for p in batch.iterdir() if "unreadable" in p.name]
    run, ref = load_run(out), load_run(reference)
    np.testing.assert_allclose(run.losses, ref.losses, rtol=1e-5)
    np.testing.assert_allclose(run.params[6]["W"], ref.params[6]["W"], rtol=1e-4, atol=1e-6)


def test_damaged_tables_and_reused_directories_are_one_line(reference, tmp_path, capsys):
    out = tmp_path / "damaged"
    shutil.copytree(reference, out)
    (out / "losses.npy").write_bytes(b"not numpy")
    assert main(["analyze", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "damaged" in err
    assert main(["sweep", str(out / "config.toml"), "--out", str(out), "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["every file", "the array data"])
def test_a_fallback_from_a_corrupt_checkpoint_is_one_warning_line_naming_the_step(tmp_path, damage):
    """The CLI resumes past a damaged latest checkpoint with exactly one stderr line, ``supjax: warning:``,
    naming the step it resumes from, and nothing from orbax's logs or threads; the result is bitwise the
    uninterrupted run's."""
    config = write_config(tmp_path, steps=300, every=100)
    reference, out = tmp_path / "reference", tmp_path / "damaged"
    assert main(["sweep", str(config), "--out", str(reference), "--quiet"]) == 0
    shutil.copytree(reference, out)
    batch = out / "checkpoints" / "batch-000"
    shutil.rmtree(batch / "300")  # as if killed after the checkpoint of step 200
    (out / "losses.npy").unlink()
    for file in (batch / "200").rglob("*"):
        if file.is_file() and (damage == "every file" or "/d/" in str(file)):
            file.write_bytes(file.read_bytes()[:20] + b"\x00garbage")
    done = subprocess.run(
        [sys.executable, "-m", "supjax.cli", "sweep", str(config), "--out", str(out), "--resume", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("supjax: warning: ") and "checkpoint 200 is unreadable" in lines[0]
    assert lines[0].endswith("resuming from step 100")
    assert_same_run(out, reference)
