"""The kill loop: SIGKILL a run at random moments, resume it, again and again; it ends bitwise the uninterrupted run.

    python benchmarks/kill_loop.py --wing toy --kills 300 [--seed 0] [--out results.json]
    python benchmarks/kill_loop.py --wing all --kills 100

Every round starts the wing's command on one run directory (``supjax sweep``, ``supjax sae`` or ``supjax
llc``, with ``--resume`` after the first), waits a random time and kills it with SIGKILL: no handler
runs, so whatever was being written is left half written. Half of the waits are drawn over the whole
run; the other half are timed from ``progress.json`` to land just after a chunk end, which is where the
checkpoint is written (the configs checkpoint at every chunk end, so most of a round is spent writing
checkpoints). After every kill:

* the directory is not refused by the next resume (a refusal fails the loop);
* no committed checkpoint is lost: the newest readable checkpoint is at least the newest one that was
  committed before the kill (a kill that leaves a half-written step behind counts as ``inside a write``).

At the end the run is resumed to its finish and compared with a run never killed: losses (and the other
logs) and final parameters bitwise. ``tests/test_kill_loop.py`` runs a dozen kills in CI; the benchmark
runs hundreds and RESULTS.md keeps the count.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TOY = """n = 48
batch_size = 64
widths = [4, 6]
weight_decays = [-1.0, 1.0]
steps = 2000
warmup_steps = 20
log_every = 10
checkpoint_every = 100
chunk_steps = 100
max_to_keep = 3
"""
SAE = """architectures = ["topk", "relu"]
ks = [1]
l1_coefficients = [1.0]
lrs = [0.01]
steps = 1000
batch_size = 64
log_every = 10
eval_batch_size = 512
checkpoint_every = 50
chunk_steps = 50
max_to_keep = 3
max_saes_per_batch = 4  # two batches: a kill may land in either, or between them
"""
LLC = """step_sizes = [1e-4, 1e-3]
localizations = [100.0]
chains = 2
draws = 1000
batch_size = 32
log_every = 10
checkpoint_every = 50
chunk_steps = 50
max_to_keep = 3
"""
WINGS = ("toy", "sae", "llc")
MARKER = {"toy": "batches.json", "sae": "sae.toml", "llc": "llc.toml"}  # written last when a run starts


def _command(wing: str, work: Path, out: Path, resume: bool) -> list[str]:
    base = [sys.executable, "-m", "supjax.cli"]
    if wing == "toy":
        args = ["sweep", str(work / "toy.toml"), "--out", str(out)]
    else:
        args = [wing, str(work / "toy-run"), "--config", str(work / f"{wing}.toml"), "--out", str(out)]
    return [*base, *args, "--quiet", *(["--resume"] if resume else [])]


def prepare(work: Path, chunks: int) -> None:
    """The configs (``chunks`` checkpointed chunks a run), and the toy run the SAE and LLC wings read."""
    work.mkdir(parents=True, exist_ok=True)
    lengths = {"toy": ("steps = 2000", f"steps = {100 * chunks}"), "sae": ("steps = 1000", f"steps = {50 * chunks}"),
               "llc": ("draws = 1000", f"draws = {50 * chunks}")}  # fmt: skip
    for name, text in (("toy", TOY), ("sae", SAE), ("llc", LLC)):
        (work / f"{name}.toml").write_text(text.replace(*lengths[name]))
    if not (work / "toy-run" / "losses.npy").is_file():
        short = work / "toy-short.toml"
        short.write_text(TOY.replace("steps = 2000", "steps = 400"))
        done = subprocess.run([sys.executable, "-m", "supjax.cli", "sweep", str(short), "--out", str(work / "toy-run"),
                               "--quiet"], capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(done.stderr)


def _checkpoint_dirs(wing: str, out: Path) -> list[Path]:
    root = out / "checkpoints"  # one folder a batch in a run of several (every toy run, an SAE run too big at once)
    return sorted(root.glob("batch-*")) or [root]


def _committed(wing: str, out: Path) -> dict[str, int]:
    """The newest committed step of every checkpoint directory (orbax renames a step into place when done)."""
    steps = {}
    for directory in _checkpoint_dirs(wing, out):
        done = [int(p.name) for p in directory.iterdir() if p.name.isdigit()] if directory.is_dir() else []
        steps[directory.name] = max(done, default=0)
    return steps


def _readable(wing: str, out: Path) -> dict[str, int]:
    from supjax import checkpoint

    steps = {}
    for directory in _checkpoint_dirs(wing, out):
        if not directory.is_dir():  # (a manager would create it, and the next start would refuse the directory)
            continue
        restored = checkpoint.restore_latest(checkpoint.manager(directory), set_aside=False)
        steps[directory.name] = 0 if restored is None else int(restored[0])
    return steps


def _half_written(wing: str, out: Path) -> bool:
    return any(any("tmp" in p.name for p in d.iterdir()) for d in _checkpoint_dirs(wing, out) if d.is_dir())


def _progress_step(out: Path) -> int | None:
    try:
        return int(json.loads((out / "progress.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return None


def finish(wing: str, work: Path, out: Path, resume: bool) -> None:
    done = subprocess.run(_command(wing, work, out, resume), capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise AssertionError(f"{wing}: the run in {out} did not finish: {done.stderr.strip()[-2000:]}")


def results_of(wing: str, out: Path) -> dict[str, np.ndarray]:
    """Every logged value and final parameter of a finished run, by name."""
    if wing == "toy":
        from supjax import load_run

        run = load_run(out)
        arrays = {"losses": run.losses}
        for m, group in run.params.items():
            arrays |= {f"{m}/{k}": np.asarray(v) for k, v in group.items()}
        return arrays
    if wing == "sae":
        from supjax import sae

        run = sae.load_sae_run(out)
        arrays = {"losses": run.losses, "l0": run.l0}
        for k, state in enumerate(run.states):
            arrays |= {f"{k}/{name}": np.asarray(v) for name, v in state["params"].items()}
        return arrays
    from supjax import llc

    return dict(llc.load_llc_run(out).traces)


def kill_loop(wing: str, work: Path, kills: int, seed: int = 0) -> dict:
    """``kills`` SIGKILLs of the wing's run in ``work``, then its finish against a run never killed."""
    chunks = max(20, 6 * kills)  # long enough that the kills come before the end
    prepare(work, chunks)
    rng = random.Random(seed)
    reference, out = work / f"{wing}-reference-{chunks}", work / f"{wing}-killed"
    if not reference.exists():
        finish(wing, work, reference, resume=False)
    started = time.perf_counter()
    finish_time = time.perf_counter()
    record = {"wing": wing, "kills": 0, "inside_a_write": 0, "timed_at_a_chunk_end": 0, "lost_checkpoints": 0}
    for round_ in range(kills):
        resume = (out / MARKER[wing]).is_file()
        process = subprocess.Popen(_command(wing, work, out, resume), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        if round_ % 2:  # timed from progress.json: just after the next chunk end, while it checkpoints
            seen, deadline = _progress_step(out), time.perf_counter() + 60
            while process.poll() is None and _progress_step(out) == seen and time.perf_counter() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.03))
            record["timed_at_a_chunk_end"] += 1
        else:  # anywhere: from the start (imports, compiling) into the training
            time.sleep(rng.uniform(0.2, 3.0))
        before = _committed(wing, out) if out.exists() else {}
        if process.poll() is not None:  # it finished (or refused) before the kill
            if process.returncode != 0:
                raise AssertionError(f"{wing}: round {round_} was refused: {process.stderr.read().strip()}")
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
        record["kills"] += 1
        record["inside_a_write"] += _half_written(wing, out)
        after = _readable(wing, out)
        lost = [name for name, step in before.items() if after.get(name, 0) < step]
        record["lost_checkpoints"] += len(lost)
        if lost:
            raise AssertionError(f"{wing}: round {round_}: committed checkpoints lost: {before} -> {after}")
    finish_time = time.perf_counter()
    finish(wing, work, out, resume=(out / MARKER[wing]).is_file())
    a, b = results_of(wing, reference), results_of(wing, out)
    differing = sorted(k for k in a.keys() | b.keys() if k not in a or k not in b or not np.array_equal(a[k], b[k]))
    record.update(
        bitwise_equal=not differing,
        differing=differing[:10],
        arrays=len(a),
        seconds=time.perf_counter() - started,
        finish_seconds=time.perf_counter() - finish_time,
    )
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wing", choices=(*WINGS, "all"), default="all")
    parser.add_argument("--kills", type=int, default=100, help="SIGKILLs per wing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="runs/kill-loop", help="where the runs go (reused: the reference stays)")
    parser.add_argument("--out", help="write the records as JSON here")
    args = parser.parse_args(argv)
    records = []
    for wing in WINGS if args.wing == "all" else (args.wing,):
        killed = Path(args.work) / f"{wing}-killed"
        if killed.exists():
            import shutil

            shutil.rmtree(killed)
        record = kill_loop(wing, Path(args.work), args.kills, args.seed)
        print(json.dumps(record), flush=True)
        records.append(record)
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": os.uname().nodename, "records": records}, indent=1) + "\n")
    return 0 if all(r["bitwise_equal"] for r in records) else 1


if __name__ == "__main__":
    raise SystemExit(main())
