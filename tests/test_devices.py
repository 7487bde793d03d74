"""Sweeps over several devices and several processes match a one-device run."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from supjax import SweepSpec, load_run, run_sweep

CONFIG = """
n = 48
batch_size = 64
widths = [4, 6]
weight_decays = [-1.0, 0.5, 1.0]
alphas = [1.0, 1.5, 2.0]
steps = 100
warmup_steps = 10
progress = false
"""


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    path = tmp_path_factory.mktemp("devices") / "c.toml"
    path.write_text(CONFIG)
    return path, run_sweep(SweepSpec.from_toml(path))


def cli(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "supjax.cli", "sweep", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_four_devices_match_one(one_device, tmp_path):
    config, reference = one_device
    # Three data streams per width over four devices: padded to four, padding dropped.
    process = cli(config, "--out", tmp_path / "run", env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert process.wait(timeout=300) == 0, process.stderr.read()
    run = load_run(tmp_path / "run")
    assert run.models == reference.models
    # XLA's CPU matmuls block differently per device count: equal to float32 rounding.
    np.testing.assert_allclose(run.losses, reference.losses, rtol=1e-5)
    for m in (4, 6):
        np.testing.assert_array_equal(run.params[m]["index"], reference.params[m]["index"])
        np.testing.assert_allclose(run.params[m]["W"], reference.params[m]["W"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_two_processes_run_one_sweep_like_one_device(one_device, tmp_path):
    config, reference = one_device
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    processes = [cli(config, "--out", tmp_path / "run", *flags, "--process-id", k) for k in (0, 1)]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()
    run = load_run(tmp_path / "run")
    assert run.models == reference.models
    np.testing.assert_array_equal(run.losses, reference.losses)
    for m in (4, 6):
        np.testing.assert_array_equal(run.params[m]["W"], reference.params[m]["W"])


def test_distributed_flags_come_together(tmp_path, capsys):
    from supjax.cli import main

    (tmp_path / "c.toml").write_text(CONFIG)
    assert main(["sweep", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r"), "--coordinator", "h:1"]) == 2
    assert "--num-processes" in capsys.readouterr().err
