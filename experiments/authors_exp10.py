"""The authors' exp-10.py against supjax at the paper's settings (alpha = 1, gamma = -1): which overlap Fig. 6d plots.

    python experiments/authors_exp10.py prepare --authors PATH/TO/SuperpositionScaling --work /tmp/exp10
    (cd /tmp/exp10 && python exp-10.py 0 90)         # the authors' code, task 0: about 1 to 2 hours, PyTorch
    python experiments/authors_exp10.py convert --work /tmp/exp10   # -> experiments/data/exp10_task0.npz
    python experiments/authors_exp10.py compare [--ours experiments/results/papercells/alpha-1.0]

``prepare`` copies ``exp/exp-10.py`` and ``exp/adamw.py`` from a checkout of liuyz0/SuperpositionScaling,
changed only in where they write (``outputs/`` instead of ``../outputs/``). Task 0 is weight decay
torch.linspace(-1, 1, 10)[0] = -1 and the code's alpha 0 (the paper's alpha = 1): the six widths one
after another, 20000 steps of batch 2048 at n = 1000, as the paper ran them. ``convert`` (needs torch)
keeps its losses and W as one ``.npz`` in the repository, so ``compare`` runs without torch or the hour.

``compare`` measures the authors' W and supjax's (every seed of the papercells piece at alpha = 1,
gamma = -1) width by width: the final loss, row norms, phi_{1/2} and phi_1, and the squared overlap
several ways (normalised rows over all pairs, as supjax.summary reports it; raw rows; only the
represented rows; pairs weighted by p_i p_j), into ``<ours>/exp10_comparison.json`` and
``figures/exp10_vs_supjax_papercells.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import common
import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
import papercells
from matplotlib.figure import Figure

from supjax import SweepSpec, plots

DATA = common.EXPERIMENTS / "data" / "exp10_task0.npz"
WIDTHS = (10, 15, 25, 39, 63, 100)  # floor(exp(linspace(ln 10, ln 100, 6))), exp-10's m_ran
# the columns of a piece's summary.csv that the comparison reads
MODEL = ["index", "m", "weight_decay", "seed", "distribution", "activation_density", "final_loss"]
# Fig. 6d read off the paper's figure (figures/Fig-6-3.png): every alpha's points lie on about 1/m.
PAPER_FIG6D_TIMES_M = "about 1.0 at every width"


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(prog="experiments/authors_exp10.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="copy the authors' exp-10.py into --work, writing to WORK/outputs")
    prepare.add_argument("--authors", required=True, type=Path, help="a checkout of liuyz0/SuperpositionScaling")
    prepare.add_argument("--work", required=True, type=Path, help="where to run it (outside this repository)")
    convert = commands.add_parser("convert", help="the finished run's .pt files as experiments/data/exp10_task0.npz")
    convert.add_argument("--work", required=True, type=Path)
    compare = commands.add_parser("compare", help="measure the authors' W against supjax's")
    compare.add_argument(
        "--ours", type=Path, default=papercells.KEPT / "alpha-1.0", help="papercells' alpha = 1 pieces (seed-*/ inside)"
    )
    compare.add_argument("--data", type=Path, default=DATA)
    compare.add_argument("--figures", type=Path, default=common.REPO / "figures")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return prepare_run(args.authors, args.work)
    if args.command == "convert":
        return convert_run(args.work)
    return compare_runs(args.ours, args.data, args.figures)


def prepare_run(authors: Path, work: Path) -> None:
    (work / "outputs").mkdir(parents=True, exist_ok=True)
    for name in ("exp-10.py", "adamw.py"):
        source = authors / "exp" / name
        if not source.is_file():
            raise SystemExit(f"{source}: not found; pass --authors a checkout of liuyz0/SuperpositionScaling")
        shutil.copy(source, work / name)
    script = work / "exp-10.py"
    text = script.read_text()
    script.write_text(text.replace('f"../outputs/', 'f"outputs/'))
    print(f"prepared {work}; run: (cd {work} && python exp-10.py 0 90)")


def convert_run(work: Path) -> None:
    import torch  # only here: the authors' outputs are torch files

    losses, matrices = (work / "outputs" / f"exp-10{part}-0.pt" for part in ("", "-W"))
    for path in (losses, matrices):
        if not path.is_file():
            raise SystemExit(f"{path}: not found; run the authors' exp-10.py 0 90 in {work} first")
    W = torch.load(matrices)
    arrays = {f"W_{m}": W[k].numpy().astype(np.float32) for k, m in enumerate(WIDTHS)}  # W[ii]: width m_ran[ii]
    DATA.parent.mkdir(exist_ok=True)
    np.savez_compressed(DATA, losses=torch.load(losses).numpy().astype(np.float32), **arrays)
    print(f"wrote {DATA}")


def compare_runs(ours: Path, data_path: Path, figures: Path) -> dict:
    if not data_path.is_file():
        raise SystemExit(f"{data_path}: not found; run the authors' code, then `convert` (see the docstring)")
    pieces = sorted(d for d in ours.glob("seed-*") if (d / papercells.OVERLAPS).is_file())
    if not pieces:
        raise SystemExit(f"{ours}: no finished seed-*/ pieces; train them with experiments/papercells.py --alpha 1.0")
    with np.load(data_path) as z:
        theirs = {int(k[2:]): z[k] for k in z.files if k.startswith("W_")}
        their_losses = z["losses"]  # [widths, steps]: MSE averaged over batch and features, every step
    widths = sorted(theirs)
    # the pieces' tables: summary.csv (final loss) and overlaps.csv (papercells.measures of every model)
    ours_frame = pd.concat(
        [pd.read_csv(d / "summary.csv")[MODEL].merge(pd.read_csv(d / papercells.OVERLAPS), on="index") for d in pieces]
    )
    ours_frame = ours_frame[ours_frame.weight_decay == -1.0]
    first = ours_frame.iloc[0]
    p = SweepSpec.from_toml(pieces[0] / "config.toml").probabilities(first.distribution, first.activation_density)
    table = {"authors": {}, "supjax": {}, "supjax_seeds": sorted(ours_frame.seed.unique().tolist()), "widths": widths}
    for k, m in enumerate(widths):
        row = {key: float(v[0]) for key, v in papercells.measures(theirs[m][None], p).items()}
        row["final_loss"] = float(theirs[m].shape[0] * their_losses[k, -100:].mean())
        table["authors"][m] = row
        at_m = ours_frame[ours_frame.m == m]
        table["supjax"][m] = {key: [at_m[key].mean(), at_m[key].std(ddof=0)] for key in row}
    table["paper_fig6d_m_times_overlap"] = PAPER_FIG6D_TIMES_M
    (ours / "exp10_comparison.json").write_text(json.dumps(common._plain(table), indent=1) + "\n")
    with matplotlib.rc_context(plots.STYLE):
        paths = plots.save(figure(table), figures / "exp10_vs_supjax_papercells")
    print(_text_table(table))
    print(f"  numbers: {ours / 'exp10_comparison.json'}   figure: {paths[0]}")
    return table


OVERLAPS = {
    "overlap_all": "normalised rows, all pairs",
    "overlap_raw": "raw rows, all pairs",
    "overlap_represented": r"normalised, $\|W_i\| > 1/2$ only",
    "overlap_strong": r"normalised, $\|W_i\| > 1$ only",
    "overlap_frequency_weighted": r"normalised, pairs weighted $p_i p_j$",
}


def figure(table: dict) -> Figure:
    fig = Figure(layout="constrained", figsize=(11.5, 3.8))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    widths = np.array(table["widths"])
    colours = matplotlib.colormaps["tab10"](np.arange(len(OVERLAPS)))
    for colour, (key, label) in zip(colours, OVERLAPS.items(), strict=True):
        theirs = [table["authors"][m][f"{key}_times_m"] for m in widths]
        ours = np.array([table["supjax"][m][f"{key}_times_m"] for m in widths])
        ax1.plot(widths, theirs, "o-", color=colour, ms=4, label=label)
        ax1.errorbar(widths, ours[:, 0], yerr=ours[:, 1], fmt="x--", color=colour, ms=5, lw=1, capsize=2)
    ax1.axhline(1.0, color="k", ls=":", lw=1)
    ax1.set(xscale="log", yscale="log", xlabel="width $m$", ylabel=r"$m \times$ mean squared overlap")
    ax1.set_title("o: the authors' exp-10.py   x: supjax (seeds)", loc="right", fontsize=8)
    ax1.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax1.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax1.set_yticks([0.4, 0.6, 1, 2, 3])
    ax1.legend(
        fontsize=7, loc="lower left", title="all pairs (blue) lies under norm > 1/2 (green): every row has norm > 1/2"
    )
    ax1.get_legend().get_title().set_fontsize(6)
    for ax, key, label in ((ax2, "final_loss", "final loss $L$"), (ax3, "phi_one", r"$\phi_1$")):
        theirs = [table["authors"][m][key] for m in widths]
        ours = np.array([table["supjax"][m][key] for m in widths])
        ax.plot(widths, theirs, "o-", color="k", ms=4, label="authors' exp-10.py")
        ax.errorbar(widths, ours[:, 0], yerr=ours[:, 1], fmt="x--", color="tab:red", capsize=2, label="supjax")
        ax.set(xscale="log", xlabel="width $m$", ylabel=label)
        ax.legend(fontsize=8)
    ax2.set_yscale("log")
    for ax in (ax1, ax2, ax3):
        plots.width_axis(ax, widths)
    common.label_panels([ax1, ax2, ax3])
    fig.suptitle(
        r"exp-10 at the paper's settings ($\alpha = 1$, $\gamma = -1$, n = 1000, 20000 steps): authors' code vs supjax",
        fontsize=10,
    )
    return fig


def _text_table(table: dict) -> str:
    keys = ("final_loss", "phi_one", *(f"{k}_times_m" for k in OVERLAPS))
    lines = ["m    " + "  ".join(f"{k[:22]:>22}" for k in keys)]
    for m in table["widths"]:
        theirs = "  ".join(f"{table['authors'][m][k]:>22.4g}" for k in keys)
        ours = "  ".join(f"{table['supjax'][m][k][0]:>13.4g} +- {table['supjax'][m][k][1]:<5.2g}" for k in keys)
        lines += [f"{m:<4} {theirs}   (authors)", f"{'':<4} {ours}   (supjax)"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
