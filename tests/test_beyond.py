"""The beyond-the-paper experiment (issue 8) at smoke scale, so that it does not rot."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.colors
import numpy as np
import pytest
from matplotlib.figure import Figure

REPO = Path(__file__).resolve().parent.parent


def _script(name: str):
    """An experiment script (experiments/NAME.py) as a module, to redraw its figure here."""
    if str(REPO / "experiments") not in sys.path:
        sys.path.insert(0, str(REPO / "experiments"))
    return importlib.import_module(name)


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
    png, pdf = tmp_path / "figures" / "beyond_smoke.png", tmp_path / "figures" / "beyond_smoke.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    # The figure, redrawn from the numbers: per study, one error-bar line per (gamma, alpha) across the
    # variants, each point that variant's alpha_m, coloured by gamma.
    colours = _script("common").gamma_colours([-1.0, 1.0])
    fig = _script("beyond").figure(numbers)
    for ax, variants in zip(fig.axes, numbers.values(), strict=True):
        keys = list(next(iter(variants.values())))
        assert len(ax.containers) == len(keys)
        for bars, key in zip(ax.containers, keys, strict=True):
            gamma, alpha = (float(part.split("=")[1]) for part in key.split(","))
            line = bars.lines[0]
            offset = 0.08 if alpha > 1 else -0.08
            np.testing.assert_allclose(line.get_xdata().astype(float), np.arange(len(variants)) + offset)
            expected = [variant[key]["model_exponent"] for variant in variants.values()]
            np.testing.assert_allclose(line.get_ydata().astype(float), expected)
            np.testing.assert_allclose(matplotlib.colors.to_rgba(line.get_color()), colours.to_rgba(gamma))
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
    assert (tmp_path / "ce_decay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The figure, redrawn from the numbers: per loss, each case's row norms against feature rank,
    # blue for growth (gamma < 0) and red for decay, solid for AdamW and dashed for SGD.
    drawn, savefig = {}, Figure.savefig

    def recording(fig, fname, *args, **kwargs):
        if isinstance(fname, str | os.PathLike):
            drawn[Path(fname).name] = fig
        return savefig(fig, fname, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", recording)
        _script("ce_decay").draw(numbers, tmp_path / "again")
    for ax, loss in zip(drawn["ce_decay.png"].axes, ("mse", "cross_entropy"), strict=True):
        cases = numbers[loss]["cases"]
        for line, (name, case) in zip(ax.get_lines(), cases.items(), strict=False):
            np.testing.assert_array_equal(line.get_xdata(), np.arange(1, len(case["norms"]) + 1))
            np.testing.assert_allclose(line.get_ydata(), case["norms"])
            assert line.get_color() == ("C0" if name.endswith("-") else "C3")
            assert line.get_linestyle() == ("-" if name.startswith("adamw") else "--")
        assert len(ax.get_lines()) == len(cases) + 1  # and the line at ||W_i|| = 1/2
