"""The ``supjax`` command line. Every command is one Python call as well."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from supjax.config import ConfigError, SweepSpec

# The embedded demo: both regimes over six widths, about two minutes on 2 CPU cores.
DEMO = SweepSpec(
    n=400,
    batch_size=1024,
    widths=(8, 12, 16, 24, 32, 48),
    weight_decays=(-1.0, 1.0),
    alphas=(1.0,),
    steps=2500,
    warmup_steps=250,
    log_every=10,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="supjax", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser("sweep", help="train a grid of toy models from a TOML config")
    sweep.add_argument("config", help="TOML file with SweepSpec keys")
    sweep.add_argument("--out", required=True, help="run directory to create")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")

    demo = commands.add_parser("demo", help="train a small sweep that shows both regimes")
    demo.add_argument("--out", help="run directory (default: supjax-demo-<time>)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")

    args = parser.parse_args(argv)
    try:
        if args.command == "sweep":
            spec = SweepSpec.from_toml(args.config, args.set)
            return _sweep(spec, args.out, args.quiet)
        if args.command == "demo":
            return _demo(args.out or time.strftime("supjax-demo-%Y%m%d-%H%M%S"), args.quiet)
    except ConfigError as err:
        print(f"supjax: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("supjax: interrupted", file=sys.stderr)
        return 130
    return 0


def _sweep(spec: SweepSpec, out: str, quiet: bool) -> int:
    from supjax.sweep import run_sweep

    if quiet:
        spec = spec.replace(progress=False)
    run = run_sweep(spec, out=out)
    print(f"supjax: trained {spec.num_models} models x {spec.steps} steps in {run.info['seconds']:.1f} s; wrote {out}")
    return 0


def _demo(out: str, quiet: bool) -> int:
    from supjax.sweep import run_sweep

    spec = DEMO.replace(progress=not quiet)
    print(f"supjax demo: {spec.num_models} models (n = {spec.n}, widths {list(spec.widths)}, gamma = -1 and +1)")
    run = run_sweep(spec, out=out)
    final = run.final_loss()
    print(f"\n{'m':>4} {'gamma':>6} {'loss':>8} {'rows > 1/2':>10}")
    for row, loss in zip(run.models, final, strict=True):
        W, _ = run.weights(row["index"])
        represented = float(np.mean(np.linalg.norm(W, axis=1) > 0.5))
        print(f"{row['m']:>4} {row['weight_decay']:>6.1f} {loss:>8.4f} {represented:>10.2f}")
    for gamma in spec.weight_decays:
        pick = [i for i, r in enumerate(run.models) if r["weight_decay"] == gamma]
        slope = np.polyfit(np.log([run.models[i]["m"] for i in pick]), np.log(final[pick]), 1)[0]
        regime = "strong superposition" if gamma < 0 else "weak superposition"
        print(f"gamma = {gamma:+.0f} ({regime}): loss ~ m^{slope:.2f}")
    print(f"\nwrote {Path(out).resolve()} in {run.info['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
