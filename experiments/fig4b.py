"""Fig. 4b's rows at the paper's settings: the width exponent at the gammas the paper plotted.

    python experiments/fig4b.py --alpha 2.0 --seed 0 --gammas strong --quiet   # one piece
    python experiments/fig4b.py --pieces issue --quiet     # the issue's 6 pieces, in order, resumably
    python experiments/fig4b.py --available                # the figures and numbers of the finished pieces

exp-10's settings exactly (n = 1000, batch 2048, 20000 steps, the six paper widths), one piece per
(alpha, seed, gamma set): 18 models trained into ``<out>/alpha-A/seed-S/SET`` and resumed from their
checkpoints if interrupted, so the grid runs as background pieces of about an hour on one core.
A finished piece's tables (no weights) are kept in ``experiments/results/fig4b/`` like papercells'.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import common
import matplotlib
import numpy as np
import pandas as pd
import papercells

from supjax import fit, plots

NAME = "fig4b"
SCALES = ("smoke", "paper")
KEPT = common.EXPERIMENTS / "results" / NAME
PAPER_CELLS = common.EXPERIMENTS / "data" / "paper_fig4b_cells.csv"  # the paper's heatmap, read off its PNG
FRACTIONS = {
    round(-1 + 2 * i / 9, 4): f"{2 * i - 9:+d}/9" if i not in (0, 9) else f"{2 * i // 9 - 1:+d}" for i in range(10)
}
GAMMA_SETS = {  # a piece trains one set: 18 models share each step's data (6 alone ran 2.5x slower a model)
    "strong": (-0.7777777777777778, -0.5555555555555556, -0.33333333333333337),  # Fig. 6e's gammas
    "rest": (-0.11111111111111116, 0.33333333333333326, 0.5555555555555554),  # Fig. 5b's 1/3 among them
}


def issue_pieces(spec) -> list[tuple[float, int, str]]:
    """The issue's pieces, most decisive first: alpha = 2's strong cells at seed 0, its other cells,
    the strong cells' seeds 1 and 2, then alpha = 1.5 at seed 0."""
    order = [(2.0, 0, "strong"), (2.0, 0, "rest"), (2.0, 1, "strong"), (2.0, 2, "strong")]
    order += [(1.5, 0, "strong"), (1.5, 0, "rest")]
    return [(a, s, g) for a, s, g in order if a in spec.alphas and s in spec.seeds]


def piece_dir(out: Path, alpha: float, seed: int, gammas: str) -> Path:
    return out / f"alpha-{float(alpha)!r}" / f"seed-{seed}" / gammas


def train_piece(spec, out: Path, args) -> common.Experiment:
    part = common.run_or_reuse(NAME, args.scale, spec, out)
    papercells.keep_tables(out, KEPT / out.relative_to(args.out) if args.scale == "paper" else None)
    return part


def _options(parser) -> None:
    parser.add_argument("--alpha", type=float, help="train only the pieces of this data exponent")
    parser.add_argument("--gammas", choices=list(GAMMA_SETS), help="train only the pieces of this set of weight decays")
    parser.add_argument("--seed", type=int, help="train only the pieces of this seed")
    parser.add_argument("--pieces", choices=["issue", "all"], help="train these pieces in order (issue: 18)")
    parser.add_argument("--available", action="store_true", help="train nothing: report the finished pieces")


def main(argv=None):
    started = time.perf_counter()
    args = common.parse_args(NAME, __doc__.splitlines()[0], argv, extra=_options, scales=SCALES)
    spec = common.load_spec(NAME, args)
    if args.pieces == "issue":
        pieces = issue_pieces(spec)
    else:
        pieces = [
            (a, s, g)
            for a in spec.alphas
            for s in spec.seeds
            for g in GAMMA_SETS
            if (args.alpha is None or a == args.alpha)
            and (args.seed is None or s == args.seed)
            and (args.gammas is None or g == args.gammas)
        ]
    if not pieces:
        raise SystemExit(
            f"--alpha/--seed/--gammas: no piece matches; this scale has alphas {list(spec.alphas)}"
            f" and seeds {list(spec.seeds)}"
        )
    if args.available:
        return report(args, spec)
    if not args.available:
        for alpha, seed, gammas in pieces:
            piece = spec.replace(alphas=(alpha,), seeds=(seed,), weight_decays=GAMMA_SETS[gammas])
            train_piece(piece, piece_dir(args.out, alpha, seed, gammas), args)
            print(f"{NAME}: piece alpha {alpha}, seed {seed}, {gammas} gammas done", flush=True)
    print(f"{NAME}: {len(pieces)} pieces in {time.perf_counter() - started:.0f} s")
    return None


# ---- the analysis: every finished cell (these pieces and papercells') against the paper's ----------


def cells(out: Path, widths: int = 6, with_papercells: bool = True) -> pd.DataFrame:
    """One row per (alpha, gamma, seed) trained at the paper's settings: the width exponent (the
    paper's fit: least squares of log final loss on log m over the six widths) and its stderr.

    From this experiment's finished pieces in ``out`` and papercells' kept tables (gamma = -1, 1/9)."""
    summaries = [pd.read_csv(f) for f in sorted(out.glob("alpha-*/seed-*/*/summary.csv"))]
    if with_papercells:
        summaries += [pd.read_csv(f) for f in sorted(papercells.KEPT.glob("alpha-*/seed-*/summary.csv"))]
    if not summaries:
        raise SystemExit(f"{out}: no finished piece (alpha-A/seed-S/SET/summary.csv) to report")
    summary = pd.concat(summaries, ignore_index=True)
    rows = []
    for (alpha, gamma, seed), models in summary.groupby(["alpha", "weight_decay", "seed"]):
        if models.m.nunique() < widths:
            continue  # an unfinished cell
        law = fit.power_law_fit(models.m.to_numpy(), models.final_loss.to_numpy())
        rows.append(
            {"alpha": alpha, "weight_decay": gamma, "seed": seed, "exponent": law.exponent, "stderr": law.stderr}
        )
    return pd.DataFrame(rows)


def compare(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Per (alpha, gamma): our mean exponent over seeds, its seed spread, the paper's cell, and the
    paper's distance from our mean in units of our seed spread (the noise on a one-run paper cell)."""
    by = ours.groupby(["alpha", "weight_decay"]).exponent
    table = pd.DataFrame({"ours": by.mean(), "seed_std": by.std(), "seeds": by.count()}).reset_index()
    paper = paper.assign(weight_decay=paper.weight_decay.round(4))
    table["key"] = table.weight_decay.round(4)
    table = table.merge(
        paper[["alpha", "weight_decay", "model_exponent"]].rename(
            columns={"weight_decay": "key", "model_exponent": "paper"}
        ),
        on=["alpha", "key"],
        how="left",
    )
    table["difference"] = table.paper - table.ours
    table["in_seed_stds"] = table.difference / table.seed_std
    table["gamma"] = table.key.map(FRACTIONS)
    return table.drop(columns="key")


def report(args, spec) -> dict:
    """Fig. 4b, 6e and 5b at the paper's settings from the finished cells, and numbers.json."""
    paper = pd.read_csv(PAPER_CELLS)
    ours = cells(args.out, len(spec.widths), with_papercells=args.scale == "paper")
    table = compare(ours, paper)
    numbers = {
        "cells": table.to_dict(orient="records"),
        "per_seed": ours.to_dict(orient="records"),
        "paper": "experiments/data/paper_fig4b_cells.csv (read off the paper's Fig-4-3.png)",
    }
    target = args.out / "numbers.json"
    target.write_text(json.dumps(common._plain(numbers), indent=1) + "\n")
    cells_trained = len(ours.groupby(["alpha", "weight_decay"]))
    caption = f"n = 1000, batch 2048, 20000 steps; {cells_trained} cells, {len(ours)} runs; 2-core CPU, 1 core a piece"
    written = []
    with matplotlib.rc_context(plots.STYLE):
        for name, fig in (
            ("fig4b", figure_4b(ours, paper)),
            ("fig6e", figure_exponents(table, paper, "strong")),
            ("fig5b", figure_exponents(table, paper, "weak")),
        ):
            fig.suptitle(f"{TITLES[name]}\n({caption})", fontsize=10)
            written += plots.save(fig, args.figures / f"{name}_paper_settings")
    print(table.to_string(index=False, float_format="%.3f"))
    for path in [target, *written]:
        print(f"  wrote {path}")
    return numbers


TITLES = {
    "fig4b": "Fig. 4b at the paper's settings: the width exponent over weight decay and data exponent",
    "fig6e": "Fig. 6e at the paper's settings: strong superposition (the paper's gammas)",
    "fig5b": "Fig. 5b at the paper's settings: weak superposition (the paper's gammas)",
}


def figure_4b(ours: pd.DataFrame, paper: pd.DataFrame):
    """(a) our cells, the mean over seeds (cells not trained left blank); (b) the paper's heatmap, read
    off its figure; the same colour scale."""
    import matplotlib.pyplot as plt

    gammas, alphas = np.linspace(-1, 1, 10), np.arange(17) * 0.125
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    mean = ours.groupby(["alpha", "weight_decay"]).exponent.mean()
    grid = np.full((len(alphas), len(gammas)), np.nan)
    for (alpha, gamma), value in mean.items():
        grid[np.argmin(abs(alphas - alpha)), np.argmin(abs(gammas - gamma))] = value
    theirs = paper.pivot_table(index="alpha", columns="weight_decay", values="model_exponent").to_numpy()
    extent = (-1 - 1 / 9, 1 + 1 / 9, -0.0625, 2.0625)
    for ax, values, title in (
        (axes[0], grid, "(a) supjax, mean over seeds"),
        (axes[1], theirs, "(b) the paper (read off its Fig. 4b)"),
    ):
        image = ax.imshow(values, origin="lower", extent=extent, aspect="auto", cmap="viridis", vmin=0, vmax=2.4)
        ax.set(xlabel=r"weight decay $\gamma$", ylabel=r"data exponent $\alpha$", title=title)
        ax.axvline(0, color="white", lw=0.5)
    for (alpha, gamma), value in mean.items():
        axes[0].text(gamma, alpha, f"{value:.2f}", ha="center", va="center", fontsize=6, color="w")
    fig.colorbar(image, ax=axes, label=r"model exponent $\alpha_m$")
    return fig


def figure_exponents(table: pd.DataFrame, paper: pd.DataFrame, regime: str):
    """Our width exponent against alpha for each gamma of the regime (mean and seed spread), beside
    the paper's cells at the same gammas (hollow), with the paper's predictions (dashed)."""
    import matplotlib.pyplot as plt

    rows = table[(table.weight_decay < 0) if regime == "strong" else (table.weight_decay > 0)]
    paper = paper[(paper.weight_decay < 0) if regime == "strong" else (paper.weight_decay > 0)]
    colours = plots.gamma_colours(np.linspace(-1, 1, 10))
    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    for gamma, cell in rows.groupby("weight_decay"):
        colour = colours.to_rgba(gamma)
        theirs = paper[np.isclose(paper.weight_decay, gamma, atol=1e-3) & (paper.alpha >= 1)]
        ax.plot(theirs.alpha, theirs.model_exponent, "o", mfc="none", color=colour, alpha=0.7)
        ax.errorbar(
            cell.alpha,
            cell.ours,
            yerr=cell.seed_std.fillna(0),
            fmt="s",
            color=colour,
            capsize=3,
            label=rf"$\gamma = {FRACTIONS[round(gamma, 4)]}$",
        )
    a = np.linspace(1, 2, 50)
    if regime == "strong":  # the paper's lines: 1/m, and m^-2(alpha - 1) once alpha > 1.5
        ax.plot([0.9, 2.1], [1, 1], "k--", lw=1)
        ax.plot(a, 2 * (a - 1), "k--", lw=1)
    else:
        ax.plot(a, a - 1, "k--", lw=1)
    ax.plot([], [], "o", mfc="none", color="grey", label="the paper's cells (one run each)")
    ax.set(xlabel=r"data exponent $\alpha$", ylabel=r"model exponent $\alpha_m$", xlim=(0.9, 2.1))
    ax.legend(fontsize=7)
    return fig


if __name__ == "__main__":
    main()
