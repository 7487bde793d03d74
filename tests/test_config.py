import math
import subprocess
import sys

import pytest

from supjax import ConfigError, SweepSpec
from supjax.cli import main


@pytest.mark.parametrize(
    "values, field, words",
    [
        ({"widths": [8], "stepz": 10}, "stepz", "did you mean 'steps'"),
        ({"n": "1000"}, "n", "an integer"),
        ({"n": 0}, "n", "positive integer"),
        ({"batch_size": -5}, "batch_size", "positive integer"),
        ({"widths": [8, 2000]}, "widths", "cannot exceed n = 1000"),
        ({"widths": []}, "widths", "empty"),
        ({"weight_decays": [math.nan]}, "weight_decays", "finite"),
        ({"alphas": [math.inf]}, "alphas", "finite"),
        ({"lr": math.nan}, "lr", "finite"),
        ({"lr": 0.0}, "lr", "> 0"),
        ({"seeds": [1, 1]}, "seeds", "duplicates"),
        ({"steps": 1001, "log_every": 10}, "log_every", "divide steps"),
        ({"shared_data": "yes"}, "shared_data", "true or false"),
        ({"activation_densities": [1.5]}, "activation_densities", "[0, 1]"),
        ({"distribution": ["gaussian"]}, "distribution", "unknown family"),
        ({"weight_decays": "strong"}, "weight_decays", "number"),
        ({"alphas": [-300.0]}, "distribution", "no valid probabilities"),
        ({"widths": [[8]]}, "widths", "not lists"),
        ({"n": 10**11}, "n", "10^7"),
        ({"max_models_per_batch": 3}, "max_models_per_batch", "at least 10"),
        ({"importance": "zipf"}, "importance", "unknown family"),
        ({"correlation": 0.5}, "correlation", "correlation_block > 1"),
        ({"loss": "hinge"}, "loss", "cross_entropy"),
        ({"loss": "cross_entropy", "importance": "power:1"}, "importance", "mse"),
        ({"correlation_block": 7}, "correlation_block", "divide n"),
        ({"correlation_block": 4, "correlation": 1.0}, "correlation", "[0, 1)"),
        (
            {"correlation_block": 2, "exclusive_blocks": True, "activation_densities": [1.0]},
            "exclusive_blocks",
            "above 1",
        ),
        ({"importance": "geometric:-2"}, "importance", "non-negative"),
    ],
)
def test_bad_values_name_field_value_and_fix(values, field, words):
    with pytest.raises(ConfigError) as err:
        SweepSpec.from_dict(values)
    assert err.value.field == field
    message = str(err.value)
    assert "\n" not in message and field in message and words in message


def test_grid_expansion_and_labels():
    spec = SweepSpec(widths=(10, 20), weight_decays=(-1, 1), distribution=("power", "linear"), alphas=(0.5, 1.5))
    assert spec.distributions == ("power:0.5", "power:1.5", "linear")
    assert spec.num_models == 2 * 2 * 3
    assert spec.weight_decays == (-1.0, 1.0)  # ints become floats: one model, one key


def test_toml_and_overrides(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('n = 100\nwidths = [4, 8]\nsteps = 100\nwarmup_steps = 10\ndistribution = "linear"\n')
    spec = SweepSpec.from_toml(config, ["widths=[5]", "lr=0.02", "distribution=exponential:30"])
    assert spec.widths == (5,) and spec.lr == 0.02 and spec.distributions == ("exponential:30.0",)


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "supjax.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_cli_bad_config_is_one_line_exit_2_before_compiling(tmp_path, capsys, compile_log):
    config = tmp_path / "c.toml"
    config.write_text("n = 100\nwidths = [4, 400]\n")
    with compile_log:
        assert main(["sweep", str(config), "--out", str(tmp_path / "out")]) == 2
    assert compile_log.count() == 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "widths" in err and "400" in err and "n = 100" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "setup, words",
    [
        (lambda d: None, "config file"),  # a path, not a field: "config file PATH: not found; ..."
        (lambda d: (d / "c.toml").write_text("n = = 3"), "is not valid TOML"),
        (
            lambda d: (
                (d / "c.toml").write_text("n = 50\nwidths=[4]\n"),
                (d / "out").mkdir(),
                (d / "out" / "x").touch(),
            ),
            "not empty",
        ),
    ],
)
def test_cli_file_problems_are_one_line(tmp_path, setup, words):
    setup(tmp_path)
    result = run_cli("sweep", str(tmp_path / "c.toml"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_sweep_writes_a_loadable_run(tmp_path):
    from supjax import load_run

    config = tmp_path / "c.toml"
    config.write_text("n = 50\nbatch_size = 64\nwidths = [4, 6]\nweight_decays = [-1.0, 1.0]\nsteps = 60\n")
    result = run_cli("sweep", str(config), "--out", str(tmp_path / "run"), "--set", "warmup_steps=6", "--quiet")
    assert result.returncode == 0, result.stderr
    run = load_run(tmp_path / "run")
    assert run.spec.warmup_steps == 6 and run.losses.shape == (4, 6)
    # The saved config reruns as is.
    again = run_cli("sweep", str(tmp_path / "run" / "config.toml"), "--out", str(tmp_path / "again"), "--quiet")
    assert again.returncode == 0, again.stderr
    assert (load_run(tmp_path / "again").losses == run.losses).all()


def test_one_spelling_per_distribution_and_absolute_files(tmp_path, monkeypatch):
    import numpy as np

    assert SweepSpec(distribution=("power:1", "exponential:4e2")).distributions == ("power:1.0", "exponential:400.0")
    np.save(tmp_path / "p.npy", np.full(10, 0.1))
    monkeypatch.chdir(tmp_path)
    spec = SweepSpec(n=10, widths=(2,), distribution="file:p.npy")
    assert spec.distribution == (f"file:{tmp_path / 'p.npy'}",)  # a run does not depend on its start directory
