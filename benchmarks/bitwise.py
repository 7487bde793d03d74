"""The bitwise suite: losses and weights of many small configs, to prove a refactor changes no result.

    python benchmarks/bitwise.py record DIR         # train every config, save DIR/<name>.npz
    python benchmarks/bitwise.py compare DIR_A DIR_B   # bitwise equal? one line per config

Run ``record`` with the code before a change (e.g. from a ``git worktree`` of the old commit, with
``PYTHONPATH`` pointing at it) and again after, on the same number of usable cores (XLA:CPU's sums
depend on it), then ``compare``. Each config is small (seconds); together they cover every code path
of the step: the fused gradient with and without tiles and sparse products, importance (one and as
an axis), both cross-entropy losses, the copula and exclusive samplers, independent data, every
built-in model and autodiff, TMS's conventions, width-scaled learning rates, activation density,
every distribution family, unit values, bfloat16 products, the vmapped stream loop, snapshots, and a
run resumed from a checkpoint in its middle (against itself uninterrupted, too). The ``sae_*`` configs
train SAEs of every architecture on a small toy run (with a resume in the middle, too).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

BASE = dict(n=64, batch_size=128, widths=(4, 8), weight_decays=(-0.5, 0.3), steps=60, warmup_steps=6, progress=False)
CONFIGS = {
    "paper": {},
    "tiles": dict(batch_tile=32),
    "sparse_products": dict(sparse_products=True),
    "importance": dict(importance="geometric:0.9"),
    "importances_axis": dict(importances=("uniform", "relative:0.5")),
    "cross_entropy": dict(loss="cross_entropy"),
    "soft_cross_entropy": dict(loss="soft_cross_entropy"),
    "copula": dict(correlation_block=4, correlation=0.5),
    "exclusive": dict(correlation_block=4, exclusive_blocks=True),
    "independent_data": dict(shared_data=False, seeds=(0, 1)),
    "untied": dict(model="untied"),
    "hidden_relu": dict(model="hidden_relu"),
    "linear": dict(model="linear"),
    "autodiff": dict(fused_gradient=False),
    "tms_conventions": dict(
        feature_values="uniform_0_1",
        weight_init="xavier_normal",
        bias_init="zeros",
        bias_weight_decay=True,
        weight_decays=(0.0, 0.01),
        distribution=("constant:0.05",),
    ),
    "lr_width_scaling": dict(lr_width_scaling=True),
    "activation_density": dict(activation_densities=(0.0, 0.5)),
    "distributions": dict(distribution=("exponential:40", "linear", "power:1.5"), seeds=(0, 3)),
    "unit_values": dict(unit_values=True),
    "bfloat16": dict(precision="bfloat16"),
    "stream_vmap": dict(stream_loop="vmap", alphas=(1.0, 2.0)),
    "snapshots": dict(snapshot_steps=4),
    "resume": dict(checkpoint_every=10, chunk_steps=10, max_to_keep=10),
    "sae_all": dict(architectures=("topk", "batchtopk", "relu", "jumprelu"), ks=(1, 2), dictionary_ratios=(0.5, 1.0)),
    "sae_resume": dict(architectures=("topk", "relu"), checkpoint_every=20, chunk_steps=20, max_to_keep=10),
}
SAE_BASE = dict(steps=60, batch_size=64, log_every=10, lrs=(0.01,), eval_batch_size=256, progress=False)


def record_sae(name: str, changes: dict, out: Path) -> None:
    import supjax
    from supjax import sae

    toy = supjax.run_sweep(supjax.SweepSpec(**BASE))
    spec = sae.SaeSpec(**{**SAE_BASE, **changes})
    arrays = {}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "saes"
        run = sae.run_sae(toy, spec, out=run_dir)
        if name == "sae_resume":
            arrays["uninterrupted_losses"] = run.losses
            for step_dir in [*(run_dir / "checkpoints").glob("*"), *(run_dir / "checkpoints").glob("batch-*/*")]:
                if step_dir.name.isdigit() and int(step_dir.name) > 20:
                    shutil.rmtree(step_dir)
            for table in ("losses.npy", "l0.npy", "run.json"):
                (run_dir / table).unlink()
            run = sae.run_sae(toy, spec, out=run_dir, resume=True)
        summary, features = sae.load_tables(run_dir)
    arrays["losses"], arrays["l0"] = run.losses, run.l0
    for k, state in enumerate(run.states):
        for key, value in state["params"].items():
            arrays[f"params/{k}/{key}"] = np.asarray(value)
    for column in summary.select_dtypes("number").columns:
        arrays[f"summary/{column}"] = summary[column].to_numpy()
    arrays["best_cosine"] = features["best_cosine"]
    np.savez(out / f"{name}.npz", **arrays)


def record_one(name: str, changes: dict, out: Path) -> None:
    if name.startswith("sae_"):
        return record_sae(name, changes, out)
    import supjax

    spec = supjax.SweepSpec(**{**BASE, **changes})
    arrays = {}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        if name == "resume":  # the whole run, then its checkpoints after step 30 removed and resumed
            full = supjax.run_sweep(spec, out=run_dir)
            for step_dir in (run_dir / "checkpoints").glob("batch-*/*"):
                if step_dir.name.isdigit() and int(step_dir.name) > 30:
                    shutil.rmtree(step_dir)
            run = supjax.run_sweep(spec, out=run_dir, resume=True)
            arrays["uninterrupted_losses"] = full.losses
            for m, group in full.params.items():
                for key, value in group.items():
                    arrays[f"uninterrupted/{m}/{key}"] = np.asarray(value)
        else:
            run = supjax.run_sweep(spec, out=run_dir if spec.snapshot_steps else None)
        if spec.snapshot_steps:
            from supjax import snapshots

            for step in snapshots.snapshot_steps(run_dir):
                for m, group in snapshots.load_snapshot(run_dir, step).items():
                    for key, value in group.items():
                        arrays[f"snapshot/{step}/{m}/{key}"] = np.asarray(value)
    arrays["losses"] = run.losses
    for m, group in run.params.items():
        for key, value in group.items():
            arrays[f"params/{m}/{key}"] = np.asarray(value)
    np.savez(out / f"{name}.npz", **arrays)


def compare(a: Path, b: Path) -> int:
    bad = 0
    for name in CONFIGS:
        fa, fb = a / f"{name}.npz", b / f"{name}.npz"
        if not (fa.is_file() and fb.is_file()):
            print(f"{name}: missing in {a if not fa.is_file() else b}")
            bad += 1
            continue
        x, y = np.load(fa), np.load(fb)
        keys = sorted(set(x.files) | set(y.files))
        differing = [
            k
            for k in keys
            if k not in x.files or k not in y.files or not np.array_equal(x[k], y[k], equal_nan=x[k].dtype.kind == "f")
        ]
        if "uninterrupted_losses" in x.files:  # the resumed run against its own uninterrupted run
            for z, where in ((x, a), (y, b)):
                if not np.array_equal(z["losses"], z["uninterrupted_losses"]):
                    differing.append(f"resumed != uninterrupted in {where}")
        print(
            f"{name}: {'bitwise equal' if not differing else 'DIFFERS in ' + ', '.join(differing[:4])}"
            f" ({len(keys)} arrays)"
        )
        bad += bool(differing)
    print(f"{len(CONFIGS) - bad} of {len(CONFIGS)} configs bitwise equal")
    return int(bad > 0)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["record"] and len(argv) >= 2:
        out = Path(argv[1])
        out.mkdir(parents=True, exist_ok=True)
        for name in argv[2:] or CONFIGS:
            record_one(name, CONFIGS[name], out)
            print(f"{name}: recorded", flush=True)
        return 0
    if argv[:1] == ["compare"] and len(argv) == 3:
        return compare(Path(argv[1]), Path(argv[2]))
    print(__doc__.splitlines()[2:4], file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
