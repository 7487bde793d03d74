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

import time
from pathlib import Path

import common
import papercells

NAME = "fig4b"
SCALES = ("smoke", "paper")
KEPT = common.EXPERIMENTS / "results" / NAME
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
    if not args.available:
        for alpha, seed, gammas in pieces:
            piece = spec.replace(alphas=(alpha,), seeds=(seed,), weight_decays=GAMMA_SETS[gammas])
            train_piece(piece, piece_dir(args.out, alpha, seed, gammas), args)
            print(f"{NAME}: piece alpha {alpha}, seed {seed}, {gammas} gammas done", flush=True)
    print(f"{NAME}: {len(pieces)} pieces in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
