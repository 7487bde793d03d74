"""Plumbing shared by the experiment scripts: scales, train-or-reuse a run, figure captions and files.

Every script reads ``experiments/<name>_<scale>.toml`` (a plain SweepSpec config, so
``supjax sweep experiments/grid_quick.toml --out DIR`` trains the same models), trains it into a
run directory with :func:`supjax.run_sweep`, analyses it with :func:`supjax.analysis.analyze` and
draws its figures from the summary tables. A run directory that already holds the same
experiment is reused (figures are redrawn in seconds); an interrupted one is resumed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from supjax import SweepSpec, analysis, fit, plots
from supjax.config import RESOLVED_FIELDS, RESULT_FIELDS

EXPERIMENTS = Path(__file__).resolve().parent
REPO = EXPERIMENTS.parent

SCALES = ("smoke", "quick", "paper")


@dataclass
class Experiment:
    """An analysed run: its spec, tables, directory and how long each stage took."""

    name: str
    scale: str
    spec: SweepSpec
    out: Path
    summary: pd.DataFrame
    exponents: pd.DataFrame
    timing: dict  # train_s, analyze_s (this call or the call that made them), reused

    def run(self):
        """The trained weights (loaded on demand: only some panels need them)."""
        from supjax import load_run

        return load_run(self.out)

    def row_norms(self, indices: list[int]) -> np.ndarray:
        """||W_i|| of every feature of the models ``indices``: [len(indices), n] (one load of the run)."""
        run = self.run()
        return np.stack([np.linalg.norm(run.weights(index)[0], axis=1) for index in indices])


def parse_args(name: str, description: str, argv=None, extra=None, scales=SCALES) -> argparse.Namespace:
    """``--scale``, ``--out``, ``--figures``, ``--set``, ``--quiet``; ``extra(parser)`` adds more."""
    parser = argparse.ArgumentParser(prog=f"experiments/{name}.py", description=description)
    default = "quick" if "quick" in scales else scales[-1]
    parser.add_argument("--scale", choices=scales, default=default, help="smoke (tests), quick (2 CPU cores), paper")
    parser.add_argument("--out", help=f"run directory (default: runs/{name}-SCALE); reused if it holds this run")
    parser.add_argument("--figures", default=str(REPO / "figures"), help="where the PNG and PDF go")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    args.out = Path(args.out or f"runs/{name}-{args.scale}")
    args.figures = Path(args.figures)
    return args


def config_path(name: str, scale: str) -> Path:
    return EXPERIMENTS / f"{name}_{scale}.toml"


def load_spec(name: str, args: argparse.Namespace) -> SweepSpec:
    spec = SweepSpec.from_toml(config_path(name, args.scale), args.set)
    return spec.replace(progress=spec.progress and not args.quiet)


def load_toy_and_wing(name: str, scale: str, wing: str, wing_spec, overrides=(), quiet: bool = False):
    """(SweepSpec, the wing's spec) from the ``[toy]`` and ``[WING]`` tables of ``<name>_<scale>.toml``,
    with ``--set toy.KEY=V`` and ``--set WING.KEY=V`` overrides (an experiment on a toy grid's models)."""
    import tomllib

    from supjax.configfile import parse_overrides

    tables = tomllib.loads(config_path(name, scale).read_text())
    assert set(tables) == {"toy", wing}, f"{name}_{scale}.toml needs tables [toy] and [{wing}], has {list(tables)}"
    changes = parse_overrides(overrides)

    def table(key: str) -> dict:
        return {**tables[key], **{k[len(key) + 1 :]: v for k, v in changes.items() if k.startswith(f"{key}.")}}

    toy_spec, spec = SweepSpec.from_dict(table("toy")), wing_spec.from_dict(table(wing))
    if quiet:
        toy_spec, spec = toy_spec.replace(progress=False), spec.replace(progress=False)
    return toy_spec, spec


def run_or_reuse(name: str, scale: str, spec: SweepSpec, out: Path) -> Experiment:
    """Train ``spec`` into ``out`` and analyse it, or reuse what ``out`` already holds."""
    import supjax

    timing_file = out / "experiment.json"
    timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
    if (out / "config.toml").is_file():
        saved = SweepSpec.from_toml(out / "config.toml")
        differing = [k for k in RESULT_FIELDS if k not in RESOLVED_FIELDS and getattr(saved, k) != getattr(spec, k)]
        if differing:
            raise SystemExit(
                f"{out} holds another run (it differs in {', '.join(differing)}); pass a new --out or delete it"
            )
    if not (out / "summary.csv").is_file():
        if not (out / "losses.npy").is_file():
            started = time.perf_counter()
            supjax.run_sweep(spec, out=out, resume=(out / "batches.json").is_file())
            timing = {"train_s": time.perf_counter() - started, "machine": machine()}
        started = time.perf_counter()
        analysis.analyze(out)
        timing["analyze_s"] = time.perf_counter() - started
        timing_file.write_text(json.dumps(timing, indent=2) + "\n")
        timing["reused"] = False
    else:
        timing["reused"] = True
    summary, exponents = analysis.load_results(out)
    exponents = exponents[exponents.seed.astype(str) == "all"].reset_index(drop=True)
    return Experiment(name, scale, spec, out, summary, exponents, timing)


def machine() -> str:
    """The machine in words, for captions: '2-core CPU' or the accelerator's name."""
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":  # XLA:CPU's sums depend on how many cores it may use: say so
        usable, total = len(os.sched_getaffinity(0)), os.cpu_count()
        return f"{total}-core CPU" if usable == total else f"{total}-core CPU, {usable} of its cores usable"
    return str(device.device_kind)


def caption(exp: Experiment) -> str:
    s = exp.spec
    return (
        f"{exp.scale} scale: n = {s.n}, batch {s.batch_size}, {s.steps} steps, "
        f"{len(exp.summary)} models; {exp.timing.get('machine', machine())}"
    )


def save_figure(fig, exp: Experiment, figure: str, figures: Path, title: str) -> list[Path]:
    """Write ``figures/<figure>_<scale>.png`` and ``.pdf`` with the paper figure and scale in the title."""
    fig.suptitle(f"{title}\n({caption(exp)})", fontsize=10)
    return plots.save(fig, figures / f"{figure}_{exp.scale}")


def write_numbers(exp: Experiment, numbers: dict) -> Path:
    """The headline numbers of the run, beside it as ``numbers.json`` (REPRODUCTION.md quotes them)."""
    path = exp.out / "numbers.json"
    path.write_text(json.dumps(_plain(numbers), indent=2) + "\n")
    return path


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        if not np.isfinite(value):
            return None
        small = 0 < abs(value) < 1e-3  # a step size or a learning rate: four significant digits, not 0.0
        return float(f"{float(value):.4g}") if small else round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    return value


# ---- small helpers for panels -------------------------------------------------------------------


def exponent_of(frame: pd.DataFrame, value: str = "final_loss") -> fit.PowerLawFit:
    """Power-law fit of ``value`` against m over the rows of ``frame``."""
    return fit.power_law_fit(frame["m"].to_numpy(), frame[value].to_numpy())


def tail_widths(widths) -> list[int]:
    """The widths of a large-m fit: all but the two smallest while three remain (m >= 32 of exp-17)."""
    widths = sorted({int(m) for m in widths})
    return widths[2:] if len(widths) >= 5 else widths


gamma_colours = plots.gamma_colours
width_axis = plots.width_axis


def label_panels(axes) -> None:
    for letter, ax in zip("abcdefgh", axes, strict=False):
        ax.set_title(f"({letter})", loc="left", fontsize=10, fontweight="bold")


def run_figure(name: str, description: str, argv, headline_numbers, figure, title: str) -> dict:
    """The whole of a one-figure experiment: train or reuse, draw ``figures/<name>_<scale>``, save its numbers."""
    started = time.perf_counter()
    args = parse_args(name, description, argv)
    exp = run_or_reuse(name, args.scale, load_spec(name, args), args.out)
    numbers = headline_numbers(exp)
    with matplotlib.rc_context(plots.STYLE):
        written = save_figure(figure(exp), exp, name, args.figures, title)
    write_numbers(exp, numbers)
    finish(name, exp, written, numbers, started)
    return numbers


def write_and_report(name: str, scale: str, what: str, out: Path, numbers: dict, written: list, started: float):
    """``out/numbers.json``, then one line of what was made (``what``) and where everything went; the numbers, plain."""
    numbers = _plain(numbers)
    (out / "numbers.json").write_text(json.dumps(numbers, indent=2) + "\n")
    print(f"{name} ({scale}): {what}; this call: {time.perf_counter() - started:.0f} s")
    print(f"  runs: {out}   numbers: {out / 'numbers.json'}")
    for path in written:
        print(f"  figure: {path}")
    return numbers


def finish(name: str, exp: Experiment, written: list[Path], numbers: dict, started: float) -> None:
    """Print where things went and how long it took."""
    total = time.perf_counter() - started
    t = exp.timing
    how = "reused" if t.get("reused") else f"trained in {t.get('train_s', float('nan')):.0f} s"
    print(f"{name} ({exp.scale}): {len(exp.summary)} models {how}, analysed in {t.get('analyze_s', 0):.0f} s")
    print(f"  run: {exp.out}   numbers: {exp.out / 'numbers.json'}   this call: {total:.0f} s")
    for path in written:
        print(f"  figure: {path}")
    print(json.dumps(_plain(numbers), indent=1))
