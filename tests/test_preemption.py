"""A long sweep loses nothing: SIGTERM/SIGINT, one writer per run directory, full disks, ``supjax status``."""

import json
import os
import signal
import subprocess
import time
import warnings

import numpy as np
import pytest
from conftest import sweep_cli

from supjax import CheckpointError, SupjaxError, SweepSpec, load_run, lock, run_sweep
from supjax.cli import main

# About 20 s of training on 2 cores in 2-s chunks, and a checkpoint only at the end.
CONFIG = """
n = 400
batch_size = 256
widths = [16, 32]
weight_decays = [-1.0, 1.0]
steps = 6000
warmup_steps = 100
checkpoint_every = 6000
chunk_steps = 500
"""


def wait_for_step(out, process, at_least: int = 1, timeout: float = 120):
    deadline = time.time() + timeout
    while True:
        assert process.poll() is None, process.stderr.read()
        try:
            if json.loads((out / "progress.json").read_text())["step"] >= at_least:
                return
        except (OSError, ValueError, KeyError):
            pass
        assert time.time() < deadline, "the sweep made no progress"
        time.sleep(0.05)


def status_of(out, capsys) -> dict:
    """``supjax status OUT --json``, called in-process: the sweep in flight keeps running meanwhile."""
    capsys.readouterr()
    assert main(["status", str(out), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def assert_same_run(a, b):
    np.testing.assert_array_equal(a.losses, b.losses)
    for m in a.params:
        for key in ("W", "b"):
            np.testing.assert_array_equal(a.params[m][key], b.params[m][key])


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("preemption") / "c.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def reference(config):
    return run_sweep(SweepSpec.from_toml(config).replace(progress=False))


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_the_step_reached_and_resume_finishes_bitwise(
    config, reference, tmp_path, capsys, signum, code
):
    out = tmp_path / "run"
    first = sweep_cli(config, "--out", out)
    wait_for_step(out, first)
    running = status_of(out, capsys)
    assert running["running"] and running["holder"]["pid"] == first.pid and not running["finished"]
    assert 0 < running["batches"][0]["step"] < 6000 and running["batches"][0]["checkpointed"] == 0
    # One writer: a second sweep on the directory, new or resumed, is refused naming the first
    # (in-process, so that the first is surely still training when the signal comes).
    for extra in ([], ["--resume"]):
        assert main(["sweep", str(config), "--out", str(out), *extra, "--quiet"]) == 2
        refused = capsys.readouterr().err
        assert refused.count("\n") == 1 and f"process {first.pid}" in refused and "in use" in refused, refused
    # analysing a run that is training says so, with its step
    assert main(["analyze", str(out)]) == 2
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and "is still training (step " in said and "supjax status" in said, said
    assert first.poll() is None, "the sweep finished before the signal: make CONFIG longer"
    sent = time.time()
    first.send_signal(signum)
    assert first.wait(timeout=60) == code
    assert time.time() - sent < 60
    message = first.stderr.read().strip()
    assert message.count("\n") == 0 and "interrupted at step" in message and "--resume" in message, message
    steps = sorted(int(p.name) for p in (out / "checkpoints" / "batch-000").iterdir() if p.name.isdigit())
    assert len(steps) == 1 and 0 < steps[0] < 6000, steps  # the step it reached, not the periodic one
    stopped = status_of(out, capsys)
    assert not stopped["running"] and stopped["batches"][0]["checkpointed"] == steps[0]
    assert main(["analyze", str(out)]) == 2
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and "is not finished (stopped at step " in said and "--resume" in said, said
    resumed = sweep_cli(config, "--out", out, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert_same_run(load_run(out), reference)
    assert status_of(out, capsys)["finished"]


@pytest.mark.slow
def test_a_second_signal_exits_at_once(config, tmp_path):
    out = tmp_path / "run"
    process = sweep_cli(config, "--out", out, "--set", "chunk_steps=6000")  # one chunk of the whole run
    deadline = time.time() + 120
    while not (out / "progress.json").is_file():  # written once the batch starts (step 0)
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    sent = time.time()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 143
    assert time.time() - sent < 5
    assert not any(p.name.isdigit() for p in (out / "checkpoints" / "batch-000").iterdir())


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    (tmp_path / "lock").write_text(json.dumps({"pid": 999999, "host": "gone", "since": 0}))
    assert lock.holder(tmp_path) is None  # nobody holds it
    with pytest.warns(UserWarning, match="taking over the lock .* process 999999 on gone"):
        with lock.hold(tmp_path) as record:
            assert record["pid"] == os.getpid()
            assert lock.holder(tmp_path)["pid"] == os.getpid()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean release leaves nothing to take over
        with lock.hold(tmp_path):
            pass


@pytest.mark.slow
def test_a_warning_is_one_line_a_person_can_read(tmp_path):
    """The CLI prints a supjax warning as one ``supjax: warning: ...`` line, not Python's source line."""
    config = tmp_path / "c.toml"
    config.write_text("n = 20\nbatch_size = 32\nwidths = [2]\nweight_decays = [1.0]\nsteps = 20\nwarmup_steps = 2\n")
    out = tmp_path / "run"
    assert main(["sweep", str(config), "--out", str(out / "r"), "--quiet"]) == 0
    (out / "r" / "lock").write_text(json.dumps({"pid": 999999, "host": "gone", "since": 0}))
    (out / "r" / "losses.npy").unlink()
    again = sweep_cli(config, "--out", out / "r", "--resume")
    assert again.wait(timeout=120) == 0
    lines = again.stderr.read().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("supjax: warning: taking over the lock of "), lines


def test_status_of_a_missing_run_is_one_line(tmp_path, capsys):
    assert main(["status", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nothing" in err and "config field" not in err


@pytest.fixture
def small_disk(tmp_path):
    """A 2.5 MB tmpfs, or a skip where this machine may not mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2500k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.decode().strip() or 'not permitted'})")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_keeps_the_previous_checkpoint_and_resume_finishes_bitwise(small_disk):
    # n = 400, widths 40 and 60: a checkpoint is about 1 MB; two fit the disk, a third does not.
    spec = SweepSpec(
        n=400,
        batch_size=64,
        widths=(40, 60),
        weight_decays=(-1.0, 1.0),
        steps=300,
        warmup_steps=30,
        checkpoint_every=100,
        max_to_keep=3,
        progress=False,
    )
    out = small_disk / "run"
    with pytest.raises(CheckpointError) as err:
        run_sweep(spec, out=out)
    text = str(err.value)
    assert "no space left on device" in text and "needs about" in text and "are free there" in text, text
    assert "\n" not in text and str(out / "checkpoints" / "batch-000") in text
    from supjax import checkpoint

    restored = checkpoint.restore_latest(checkpoint.manager(out / "checkpoints" / "batch-000"), set_aside=False)
    assert restored is not None and 0 < restored[0] < 300  # the previous checkpoint, readable
    assert not list((out / "checkpoints" / "batch-000").glob("*tmp*"))  # no partial one left taking space
    assert lock.holder(out) is None
    with pytest.raises(SupjaxError):  # the run is not finished
        load_run(out)
    # Make room (keep only the newest checkpoint), then resume.
    import shutil

    for step in (p for p in (out / "checkpoints" / "batch-000").iterdir() if p.name.isdigit()):
        if int(step.name) != restored[0]:
            shutil.rmtree(step)
    resumed = run_sweep(spec, out=out, resume=True)
    assert_same_run(resumed, run_sweep(spec))
    assert_same_run(load_run(out), resumed)
