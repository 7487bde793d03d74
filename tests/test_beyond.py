"""The beyond-the-paper experiment (issue 8) at smoke scale, so that it does not rot."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_beyond_experiment_smoke(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "experiments" / "beyond.py"),
            "--scale",
            "smoke",
            "--out",
            str(tmp_path / "runs" / "x"),
            "--figures",
            str(tmp_path / "figures"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    numbers = json.loads((tmp_path / "runs" / "beyond-smoke.json").read_text())
    assert set(numbers) == {"loss", "correlation", "importance"}
    assert set(numbers["loss"]) == {"mse", "cross_entropy", "soft_ce"}
    assert len(numbers["correlation"]) == 5 and len(numbers["importance"]) == 3
    for study in numbers.values():
        for variant in study.values():
            assert set(variant) == {f"gamma={g},alpha={a}" for g in ("-1", "+1") for a in ("1", "1.5")}
    for suffix in (".png", ".pdf"):
        assert (tmp_path / "figures" / f"beyond_smoke{suffix}").stat().st_size > 10_000
    # Every variant is its own run directory, analysed.
    assert (tmp_path / "runs" / "beyond-rho0.6-smoke" / "summary.csv").is_file()


@pytest.mark.slow
def test_cross_entropy_weight_decay_experiment_smoke(tmp_path):
    out = tmp_path / "ce_decay.json"
    script = str(REPO / "experiments" / "ce_decay.py")
    result = subprocess.run(
        [sys.executable, script, "--steps", "300", "--sgd-lrs", "100", "--out", str(out), "--figures", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    numbers = json.loads(out.read_text())
    mse, ce = numbers["mse"]["cases"], numbers["cross_entropy"]["cases"]
    assert set(mse) == set(ce) == {f"{kind} gamma={s}" for kind in ("adamw", "sgd") for s in "-+"}
    # Squared error: decay drops rows under either optimizer, growth keeps them.
    for kind in ("adamw", "sgd"):
        assert mse[f"{kind} gamma=+"]["phi_half"] < 0.5 < mse[f"{kind} gamma=-"]["phi_half"]
    # Cross-entropy keeps every row and still gains from growing them, under either optimizer.
    for case in ce.values():
        assert case["phi_half"] > 0.9 and case["scale_gain_all"] < 0 and case["scale_gain_rare"] < 0
    assert (tmp_path / "ce_decay.png").stat().st_size > 10_000
