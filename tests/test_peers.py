"""benchmarks/peers: the PyTorch instances trainer computes supjax's update, and the table reads the JSONs.

The update check needs torch, which supjax does not depend on: run it with the peers' venv
(``benchmarks/peers/.venv/bin/python -m pytest tests/test_peers.py``; run.sh makes the venv).
"""

import json
import sys
from pathlib import Path

import pytest

PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers"
sys.path.append(str(PEERS))


def test_the_peers_update_is_supjaxs():
    pytest.importorskip("torch", reason="torch is not installed (the peers' venv has it: see benchmarks/peers/run.sh)")
    import check_update

    report = check_update.check(rtol=1e-4)  # raises unless every entry agrees to float32 rounding
    assert set(report) == {-1.0, -0.3, 0.5}
    assert max(v for r in report.values() for v in r.values()) < 1e-5


def test_the_peers_workloads_are_supjax_benchs():
    pytest.importorskip("torch", reason="torch is not installed (the peers' venv has it: see benchmarks/peers/run.sh)")
    import numpy as np
    import torch_instances

    from supjax import bench

    assert set(torch_instances.WORKLOADS) == set(bench.WORKLOADS)
    for name, spec in bench.WORKLOADS.items():
        peer = torch_instances.WORKLOADS[name]
        ours = (spec.n, spec.batch_size, spec.widths, spec.steps, spec.warmup_steps, spec.lr, spec.lr_width_scaling)
        assert ours == tuple(peer[k] for k in ("n", "batch", "widths", "steps", "warmup", "lr", "scaled"))
        np.testing.assert_allclose(spec.weight_decays, peer["gammas"])
        np.testing.assert_allclose(spec.alphas, peer["alphas"])
        assert spec.distribution == ("power",) and spec.final_lr_fraction == 0.05


def test_table_ratios_and_stamp(tmp_path):
    import table

    common = {"date": "2026-12-04", "device": "cpu:cpu", "workload": "paper-slice", "n": 1000, "batch_size": 2048}
    supjax = {**common, "precision": "float32", "model_steps_per_s": 120.0}
    supjax["baseline"], supjax["baseline_sampler"] = {"model_steps_per_s": 20.0}, {"model_steps_per_s": 40.0}
    files = {
        "a.json": supjax,
        "b.json": {**common, "precision": "bfloat16", "model_steps_per_s": 150.0},
        "c.json": {**common, "precision": "bfloat16", "model_steps_per_s": 300.0, "trainer": "torch-x-bf16"},
    }
    for name, result in files.items():
        (tmp_path / name).write_text(json.dumps(result))
    table.stamp(tmp_path)
    stamped = json.loads((tmp_path / "a.json").read_text())
    assert stamped["trainer"] == "supjax-float32" and stamped["machine"]["cores"] >= 1
    text = table.table([json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))])
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0] for row in rows] == [
        "| supjax-float32",
        "| supjax-bfloat16",
        "| paper loop (paper's data recipe)",
        "| paper loop (supjax's sampler)",
        "| torch-x-bf16",
    ]
    assert "| torch-x-bf16 | bfloat16 | 300.0 | 0.40x | 0.50x |" in rows
    assert "| paper loop (paper's data recipe) | float32 | 20.0 | 6.00x | 7.50x |" in rows
