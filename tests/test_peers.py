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


@pytest.mark.slow
def test_devinterp_takes_supjaxs_sgld_step_and_estimates_the_same_llc():
    """devinterp 2.0.1 (its SGMCMC.sgld, sample_single_chain and compute_llc; benchmarks/peers/devinterp_llc.py)
    against the LLC wing: one SGLD step agrees to float32 rounding once each side's noise is taken out, and
    on two small trained toy models, one per regime, the two estimates' chain means (8 chains of 200 draws
    each, the same n beta, gamma_loc, eps and batch size) agree within 4 combined standard errors (devinterp's
    taken from each chain against its own init_loss: see devinterp_llc.compare).
    Needs devinterp: ``benchmarks/peers/.venv-devinterp/bin/python -m pytest tests/test_peers.py`` (llc.sh
    makes that venv)."""
    pytest.importorskip("devinterp", reason="devinterp is not installed (see benchmarks/peers/llc.sh)")
    import devinterp_llc as peer

    from supjax import SweepSpec, run_sweep

    step = peer.check_step()
    assert max(step.values()) < 1e-4, step

    run = run_sweep(SweepSpec(n=20, batch_size=128, widths=(4,), weight_decays=(-1.0, 1.0), steps=1500,
                              warmup_steps=150, progress=False))  # fmt: skip
    setting = {**peer.SETTING, "chains": 8, "draws": 200}
    ours = peer.supjax_all(run, setting)
    theirs = peer.devinterp_all(peer.toy_models(run, [0, 1]), setting, gc=False)
    rows = peer.compare(ours, theirs, run)
    assert [r["model"] for r in rows] == [0, 1]
    for row in rows:
        assert row["devinterp_mean"] > 0 and row["supjax_mean"] > 0, row
        assert abs(row["z"]) < 4, row


def test_saelens_peer_measures_alike_and_supjax_recovers_at_least_as_much(tmp_path):
    """SAELens 6.x (``sae_lens.synthetic.train_toy_sae``, its TopK SAE; benchmarks/peers/saelens_synthetic.py)
    against the SAE wing on one small case (100 random unit features in 16 dimensions, power-law p with
    L0 = 2, k = 2, d = 200, 1500 steps of 256 samples each, the same constant lr): the benchmark's MCC is
    SAELens's ``mean_correlation_coefficient`` and supjax's evaluation MCC on both decoders, and supjax's
    MCC on the shared evaluation set is at least SAELens's less 0.02 (measured: 0.879 against 0.778).
    Needs sae_lens: ``benchmarks/peers/.venv-saelens/bin/python -m pytest tests/test_peers.py`` (sae.sh
    makes that venv)."""
    pytest.importorskip("sae_lens", reason="sae_lens is not installed (see benchmarks/peers/sae.sh)")
    import numpy as np
    import saelens_synthetic as peer
    import torch
    from sae_lens.synthetic import mean_correlation_coefficient

    from supjax.sae import evaluate

    args = peer.arguments(["--steps", "1500", "--batch", "256", "--lr", "1e-3"])
    d = peer.Dictionary("random-100x16", peer.random_unit(100, 16, 1), peer.power_law(100, 2.0), "unit", "test")
    peer.set_scale(d)
    eval_h = {d.name: peer.eval_set(d, 20_000)}
    _, _, sae = peer.train_saelens(d, 2, 200, args, seed=0)
    theirs = peer.saelens_measure(sae, d, eval_h[d.name])
    _, _, _, run = peer.train_supjax([d], [2], [2.0], args, [0], tmp_path)
    ours = peer.supjax_measures(run, [d], eval_h)[d.name, 2, 200, 0]

    decoders = {"saelens": sae.W_dec.detach().numpy(), "supjax": np.array(run.states[0]["params"]["W_dec"][0, 0])}
    for name, decoder in decoders.items():
        shared = peer.mcc(d.W, decoder)
        cosine = np.abs(peer.unit_rows(d.W) @ peer.unit_rows(decoder).T)
        supjaxs = evaluate._match(cosine, np.ones(len(decoder), bool), np.ones(d.n, bool))["mcc"]
        saelenss = mean_correlation_coefficient(torch.from_numpy(decoder), torch.from_numpy(d.W))
        assert abs(shared - supjaxs) < 1e-6 and abs(shared - saelenss) < 1e-5, (name, shared, supjaxs, saelenss)
    assert theirs["mcc"] == peer.mcc(d.W, decoders["saelens"])
    assert theirs["l0"] == 2.0 and 1.5 < ours["l0"] <= 2.0, (theirs, ours)
    assert ours["mcc"] >= theirs["mcc"] - 0.02, (ours, theirs)
