"""The kill loop at small scale: every wing's run SIGKILLed at random moments (some timed to land while it
checkpoints), resumed each time, and finished bitwise equal to a run never killed (benchmarks/kill_loop.py
runs hundreds of kills; RESULTS.md keeps the count)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "kill_loop.py"
_SPEC = importlib.util.spec_from_file_location("kill_loop", _PATH)
kill_loop = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(kill_loop)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("kill-loop")


@pytest.mark.slow
@pytest.mark.parametrize(("wing", "kills"), [("toy", 6), ("sae", 3), ("llc", 3)])
def test_a_run_killed_again_and_again_ends_bitwise_the_run_never_killed(work, wing, kills):
    record = kill_loop.kill_loop(wing, work, kills, seed=11)
    assert record["kills"] == kills, record  # every round was killed before the run could finish
    assert record["lost_checkpoints"] == 0 and record["timed_at_a_chunk_end"] >= kills // 2
    assert record["bitwise_equal"], record["differing"]


def test_a_directory_left_by_a_start_cut_off_before_its_marker_is_started_again(tmp_path):
    """A start writes its marker (batches.json, sae.toml, llc.toml) last: a kill before it leaves only
    files a new start overwrites, and the directory is not refused; any other file still is."""
    from supjax import SupjaxError
    from supjax.engine import rundir

    out = tmp_path / "run"
    out.mkdir()
    for name in ("config.toml", "models.csv", "lock", "batches.json.tmp"):
        (out / name).write_text("")
    assert rundir.prepare(out, "batches.json", starting=("config.toml", "models.csv")) == out
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SupjaxError, match="exists and is not empty"):
        rundir.prepare(out, "batches.json", starting=("config.toml", "models.csv"))
    (out / "batches.json").write_text("[]")
    with pytest.raises(SupjaxError, match="holds a run; add --resume"):
        rundir.prepare(out, "batches.json", starting=("config.toml", "models.csv"))
