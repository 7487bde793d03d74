"""The paper's decisive cells at the paper's own settings, one data exponent a piece (Figs. 3, 5, 6 at n = 1000).

    python experiments/papercells.py [--alpha 1.0] [--seed 0] [--scale paper] [--out runs/papercells-paper]

exp-10's settings exactly (n = 1000, batch 2048, 20000 steps, the six paper widths) for only the cells
that decide the paper-scale claims: alpha in {1, 1.5, 2}, gamma in {-1, 1/9}, 3 seeds (108 models,
``experiments/papercells_<scale>.toml``). Each piece is one (alpha, seed) cell, 12 models trained into
``<out>/alpha-A/seed-S`` (20 to 40 minutes on 2 CPU cores) and resumed from its checkpoints if
interrupted, so the whole runs as background pieces that each fit in one sitting:

    nohup python experiments/papercells.py --alpha 1.0 --seed 0 --quiet > runs/papercells-1.0-0.log 2>&1 &

``--alpha`` and ``--seed`` select pieces (default: all); the selected pieces that are not yet finished
are trained in turn. Once every piece of the scale is done, a call without them analyses all pieces
together into ``figures/fig3_papercells``, ``fig5_`` and ``fig6_`` (PNG and PDF) and
``<out>/numbers.json``, which adds the seed-to-seed spread to grid.py's headline numbers.
``--available`` trains nothing and reports the pieces that are finished, e.g. from the tables each
piece keeps in the repository: ``--out experiments/results/papercells --available``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import common
import grid
import matplotlib
import numpy as np
import pandas as pd

from supjax import load_run, metrics, plots

NAME = "papercells"
SCALES = ("smoke", "paper")
OVERLAPS = "overlaps.csv"
NORMS = "row_norms.npy"  # [models, n]: every model's row norms, for Fig. 6a without the weights
KEPT = common.EXPERIMENTS / "results" / NAME  # finished pieces' tables, committed
KEPT_FILES = (
    "config.toml",
    "experiment.json",
    "models.csv",
    "run.json",
    "losses.npy",
    "summary.csv",
    "exponents.csv",
    OVERLAPS,
    NORMS,
)


def main(argv=None) -> dict | None:
    started = time.perf_counter()
    args = common.parse_args(NAME, __doc__.splitlines()[0], argv, extra=_piece_options, scales=SCALES)
    spec = common.load_spec(NAME, args)
    alphas = spec.alphas if args.alpha is None else (args.alpha,)
    seeds = spec.seeds if args.seed is None else (args.seed,)
    if not (set(alphas) <= set(spec.alphas) and set(seeds) <= set(spec.seeds)):
        raise SystemExit(
            f"--alpha/--seed: this scale's pieces are alpha in {list(spec.alphas)}, seed in {list(spec.seeds)}"
        )
    pieces = [(a, seed) for a in alphas for seed in seeds]
    if args.available:  # only the finished pieces: an interim report while the others train
        pieces = [(a, seed) for a, seed in pieces if (piece_dir(args.out, a, seed) / "summary.csv").is_file()]
        if not pieces:
            raise SystemExit(f"{args.out}: no finished piece (alpha-A/seed-S/summary.csv) to report")
        spec = spec.replace(alphas=tuple(sorted({a for a, _ in pieces})), seeds=tuple(sorted({s for _, s in pieces})))
    parts = [
        train_piece(spec.replace(alphas=(a,), seeds=(seed,)), piece_dir(args.out, a, seed), args) for a, seed in pieces
    ]
    if (args.alpha is not None or args.seed is not None) and not args.available:
        print(f"{NAME}: pieces alpha in {list(alphas)}, seed in {list(seeds)} done in {args.out}")
        return None
    exp = combine(parts, spec, args)
    numbers = headline_numbers(exp)
    written = []
    with matplotlib.rc_context(plots.STYLE):
        figures = {
            "fig3": (grid.fig3(exp), "Fig. 3 at the paper's settings: weight decay controls superposition"),
            "fig5": (grid.fig5(exp), r"Fig. 5 at the paper's settings: weak superposition ($\gamma = 1/9$)"),
            "fig6": (grid.fig6(exp), r"Fig. 6 at the paper's settings: strong superposition ($\gamma = -1$)"),
        }
        for figure, (fig, title) in figures.items():
            written += common.save_figure(fig, exp, figure, args.figures, title)
    common.write_numbers(exp, numbers)
    common.finish(NAME, exp, written, numbers, started)
    return numbers


def _piece_options(parser) -> None:
    parser.add_argument("--alpha", type=float, help="train only the pieces of this data exponent (e.g. 1.0)")
    parser.add_argument("--seed", type=int, help="train only the pieces of this seed")
    parser.add_argument(
        "--available",
        action="store_true",
        help="train nothing: report the finished pieces (e.g. --out the kept tables)",
    )


def piece_dir(out, alpha: float, seed: int):
    return out / f"alpha-{float(alpha)!r}" / f"seed-{seed}"


def train_piece(spec, out: Path, args) -> common.Experiment:
    """Train (or resume, or reuse) one piece; add its overlap table; keep its tables in the repository.

    At the paper scale the tables (not the weights: 1 MB a piece) are copied to
    ``experiments/results/papercells/alpha-A/seed-S``, so that a finished piece outlives its run
    directory and the session that trained it.
    """
    part = common.run_or_reuse(NAME, args.scale, spec, out)
    keep_tables(out, KEPT / out.parent.name / out.name if args.scale == "paper" else None)
    return part


def keep_tables(out: Path, kept: Path | None) -> None:
    """Add a finished piece's weight tables (overlaps, row norms) and copy its tables to ``kept``."""
    if not (out / OVERLAPS).is_file() or not (out / NORMS).is_file():
        overlaps, norms = weight_tables(load_run(out))
        overlaps.to_csv(out / OVERLAPS, index=False)
        np.save(out / NORMS, norms)
    if kept is not None:
        kept.mkdir(parents=True, exist_ok=True)
        for name in KEPT_FILES:
            if (out / name).is_file() and out.resolve() != kept.resolve():
                shutil.copy(out / name, kept / name)


def weight_tables(run) -> tuple[pd.DataFrame, np.ndarray]:
    """What a piece keeps of its weights: every model's :func:`measures` (which overlap is Fig. 6d's?)
    as a table, and its row norms ``[models, n]`` (float32).

    ``overlap_all``: normalised rows over all pairs (summary.csv's mean_squared_overlap);
    ``overlap_raw``: raw rows; ``overlap_represented`` / ``overlap_strong``: normalised rows of norm
    above 1/2 / above 1 only; ``overlap_frequency_weighted``: pairs weighted by p_i p_j. Each also
    times m.
    """
    rows, norms = [], []
    for model in run.models:
        W = run.weights(model["index"])[0]
        values = measures(W[None], run.feature_probabilities(model["index"]))
        rows.append({"index": model["index"], **{k: float(v[0]) for k, v in values.items()}})
        norms.append(np.linalg.norm(W, axis=1))
    return pd.DataFrame(rows), np.stack(norms).astype(np.float32)


def measures(W: np.ndarray, p: np.ndarray) -> dict:
    """Row-norm and overlap measures of ``W: [models, n, m]`` (feature frequencies ``p: [n]``): ``{name: [models]}``."""
    norms = np.linalg.norm(W, axis=-1)
    m = W.shape[-1]
    out = {
        "phi_half": (norms > 0.5).mean(1),
        "phi_one": (norms > 1.0).mean(1),
        "median_norm": np.median(norms, 1),
        "overlap_all": metrics.weighted_squared_overlap(W),
        "overlap_raw": metrics.weighted_squared_overlap(W, normalise=False),
        "overlap_represented": metrics.represented_squared_overlap(W, 0.5),
        "overlap_strong": metrics.represented_squared_overlap(W, 1.0),
        "overlap_frequency_weighted": metrics.weighted_squared_overlap(W, p.astype(np.float32)),
        "coherence": metrics.coherence(W),
    }
    out = {k: np.asarray(v, np.float64) for k, v in out.items()}
    out.update({f"{k}_times_m": v * m for k, v in out.items() if k.startswith("overlap")})
    return out


@dataclass
class Cells(common.Experiment):
    """The pieces as one experiment: tables concatenated (each piece's rows index its own run, and
    the first seed's come first); weights read from the first seed's piece at alpha = 1."""

    per_seed: pd.DataFrame | None = None  # the exponent of every seed alone

    def run(self):
        return load_run(self._first_piece())

    def row_norms(self, indices: list[int]) -> np.ndarray:
        """From the piece's row_norms.npy, so that kept tables (no weights) draw Fig. 6 too."""
        return np.load(self._first_piece() / NORMS)[indices]

    def _first_piece(self) -> Path:
        return piece_dir(self.out, grid.reference_alpha(self.summary), self.spec.seeds[0])


def combine(parts: list[common.Experiment], spec, args) -> Cells:
    """One experiment of all pieces; exponents fitted again over the pieces' seeds together."""
    from supjax import analysis

    summary = pd.concat([p.summary for p in parts], ignore_index=True)
    exponents = analysis.fit_exponents(summary)
    timing = {
        "train_s": sum(p.timing.get("train_s", 0.0) for p in parts),
        "analyze_s": sum(p.timing.get("analyze_s", 0.0) for p in parts),
        "machine": parts[0].timing.get("machine", common.machine()),
        "reused": all(p.timing.get("reused") for p in parts),
    }
    scale = "papercells" if args.scale == "paper" else f"papercells-{args.scale}"
    args.out.mkdir(parents=True, exist_ok=True)
    every_seed = exponents.seed.astype(str) == "all"
    per_seed = exponents[~every_seed].astype({"seed": int})
    return Cells(NAME, scale, spec, args.out, summary, exponents[every_seed], timing, per_seed)


def seed_spread(frame: pd.DataFrame, value: str, by: list[str]) -> dict:
    """``{key: [mean, std over seeds, number of seeds]}`` of ``value`` grouped by ``by``."""
    stats = frame.groupby(by)[value].agg(["mean", "std", "count"])
    return {_key(k): [row["mean"], row["std"], int(row["count"])] for k, row in stats.iterrows()}


def _key(k) -> str:
    return "|".join(f"{v:g}" for v in k) if isinstance(k, tuple) else f"{k:g}"


def headline_numbers(exp) -> dict:
    """grid.py's numbers, and every quoted one again with its spread over seeds."""
    s, n = exp.summary.copy(), exp.spec.n
    per_seed = exp.per_seed
    s["phi_half_over_m_by_n"] = s.represented_fraction / (s.m / n)
    s["overlap_times_m"] = s.mean_squared_overlap * s.m
    s["strong_overlap_times_m"] = s.strong_mean_squared_overlap * s.m  # Fig. 6d's measure (rows with norm > 1)
    s["loss_over_unlearned"] = s.final_loss / s.unlearned_loss
    by = ["alpha", "weight_decay", "m"]
    return {
        **grid.headline_numbers(exp),
        "by": "alpha|weight_decay|m: [mean, std over seeds, seeds]",
        "final_loss": seed_spread(s, "final_loss", by),
        "phi_half": seed_spread(s, "represented_fraction", by),
        "phi_half_over_m_by_n": seed_spread(s, "phi_half_over_m_by_n", by),
        "phi_one": seed_spread(s, "strong_fraction", by),
        "overlap_times_m": seed_spread(s, "overlap_times_m", by),
        "strong_overlap_times_m": seed_spread(s, "strong_overlap_times_m", by),
        "etf_variance_ratio": seed_spread(s, "etf_variance_ratio", by),
        "loss_over_unlearned": seed_spread(s, "loss_over_unlearned", by),
        "model_exponent_per_seed": seed_spread(per_seed, "model_exponent", ["alpha", "weight_decay"]),
        "model_exponent_all_seeds": {
            _key((r.alpha, r.weight_decay)): [r.model_exponent, r.stderr, r.ci_low, r.ci_high]
            for r in exp.exponents.itertuples()
        },
    }


if __name__ == "__main__":
    main()
