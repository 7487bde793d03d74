"""Fig. 4b's rows at the paper's settings: the width exponent at the gammas the paper plotted.

    python experiments/fig4b.py --alpha 2.0 --gamma -0.7777777777777778 --seed 0 --quiet   # one piece
    python experiments/fig4b.py --pieces issue --quiet     # the issue's 18 pieces, in order, resumably
    python experiments/fig4b.py --available                # the figures and numbers of the finished pieces

exp-10's settings exactly (n = 1000, batch 2048, 20000 steps, the six paper widths), one piece per
(alpha, gamma, seed): 6 models trained into ``<out>/alpha-A/gamma-G/seed-S`` and resumed from their
checkpoints if interrupted, so the grid runs as background pieces of about 25 minutes on one core.
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
STRONG = (-0.7777777777777778, -0.5555555555555556, -0.33333333333333337)  # Fig. 6e's gammas


def issue_pieces(spec) -> list[tuple[float, float, int]]:
    """The issue's pieces, most decisive first: alpha = 2's strong cells at seed 0, its weak cell
    (1/3, Fig. 5b's), the strong cells' seeds 1 and 2, then the rest of seed 0."""
    first = [(2.0, g, 0) for g in STRONG] + [(2.0, 0.33333333333333326, 0)]
    seeds = [(2.0, g, s) for s in (1, 2) for g in STRONG]
    rest = [(a, g, 0) for a in sorted(spec.alphas, reverse=True) for g in spec.weight_decays]
    ordered = []
    for piece in first + seeds + rest:
        alpha, gamma, seed = piece
        if piece not in ordered and alpha in spec.alphas and gamma in spec.weight_decays and seed in spec.seeds:
            ordered.append(piece)
    return ordered


def piece_dir(out: Path, alpha: float, gamma: float, seed: int) -> Path:
    return out / f"alpha-{float(alpha)!r}" / f"gamma-{gamma:.4f}" / f"seed-{seed}"


def train_piece(spec, out: Path, args) -> common.Experiment:
    part = common.run_or_reuse(NAME, args.scale, spec, out)
    papercells.keep_tables(out, KEPT / out.relative_to(args.out) if args.scale == "paper" else None)
    return part


def _options(parser) -> None:
    parser.add_argument("--alpha", type=float, help="train only the pieces of this data exponent")
    parser.add_argument("--gamma", type=float, help="train only the pieces of this weight decay")
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
            (a, g, s)
            for a in spec.alphas
            for g in spec.weight_decays
            for s in spec.seeds
            if (args.alpha is None or a == args.alpha)
            and (args.gamma is None or abs(g - args.gamma) < 1e-9)
            and (args.seed is None or s == args.seed)
        ]
    if not pieces:
        raise SystemExit(
            f"--alpha/--gamma/--seed: no piece of this scale matches; its grid is {spec.alphas} x "
            f"{spec.weight_decays} x {spec.seeds}"
        )
    if not args.available:
        for alpha, gamma, seed in pieces:
            piece = spec.replace(alphas=(alpha,), weight_decays=(gamma,), seeds=(seed,))
            train_piece(piece, piece_dir(args.out, alpha, gamma, seed), args)
            print(f"{NAME}: piece alpha {alpha}, gamma {gamma:.4f}, seed {seed} done", flush=True)
    print(f"{NAME}: {len(pieces)} pieces in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
