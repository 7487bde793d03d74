"""Sparse autoencoders on superposed features: how well do SAEs recover the true features W_i?

    python experiments/sae.py --scale quick [--out runs/sae-quick] [--figures figures]
    python experiments/sae.py --scale paper --set 'toy.seeds=[0]' --set 'toy.weight_decays=[-0.7777777777777778,
        -0.33333333333333337]' --out runs/sae-paper/seed-0-strong --figures runs/sae-paper/figures   # one piece

At the paper's scale (``sae_paper.toml``: n = 1000, the paper's six widths, 20000 steps) the toy grid
trains in pieces of one seed and one regime (24 models, about 90 minutes of one core), each resumable;
the SAEs of a piece train when its toy models are done. Another SAE grid on a piece's toy models (the
larger dictionaries, one ratio a piece: the program pads every SAE to the largest) trains into ``OUT/NAME``
with ``--saes NAME``::

    python experiments/sae.py --scale paper --set 'toy.seeds=[0]' --set 'toy.weight_decays=[...]' \
        --set 'sae.architectures=["topk"]' --set 'sae.ks=[1, 2]' --set 'sae.dictionary_ratios=[2.0]' \
        --out runs/sae-paper/seed-0-strong --saes saes-d2 --figures runs/sae-paper/figures-d2

Reads ``experiments/sae_<scale>.toml``: a ``[toy]`` table (a SweepSpec: a toy-model grid over both
regimes, several widths, two data exponents) and an ``[sae]`` table (a SaeSpec: every architecture
at a few sparsities, on every toy model). Trains the toy grid into ``<out>/toy`` (reused when it
holds the same grid, resumed when interrupted), the SAEs into ``<out>/saes`` (the same), evaluates
every SAE against the true features (:mod:`supjax.sae.evaluate`), draws

* ``figures/sae_phase_<scale>``: MCC over (gamma, m) at fixed L0, per architecture and alpha;
* ``figures/sae_feature_recovery_<scale>``: best cosine per feature against its rank, strong and weak;
* ``figures/sae_frontier_<scale>``: SAE L0 against the fraction of variance unexplained, per regime;

and writes the answers to ``<out>/numbers.json`` (REPRODUCTION.md quotes them): how recovery depends
on the regime, the packing m/n, the feature frequency, the architecture, and the toy model's
ETF-likeness.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import common  # first: puts the working tree's supjax on the path
import numpy as np
import pandas as pd
import scipy.stats

from supjax import ConfigError, SweepSpec, plots, sae
from supjax.engine.spec import resume_diff
from supjax.errors import SupjaxError

NAME = "sae"
SCALES = ("smoke", "quick", "paper")
FIGURES = {
    "sae_phase": "SAE recovery (MCC; in brackets, d random directions) over weight decay and width, at fixed L0",
    "sae_feature_recovery": "Per-feature recovery against frequency rank, strong and weak superposition",
    "sae_frontier": "SAE sparsity (L0) against fraction of variance unexplained, per regime",
}


def main(argv=None) -> dict:
    started = time.perf_counter()
    args = common.parse_args(NAME, __doc__.splitlines()[0], argv, _options, scales=SCALES)
    if args.combine:
        return combined(args, started)
    toy_spec, sae_spec = load_specs(args.scale, args.set, quiet=args.quiet)
    cpu = time.process_time()  # on a shared core, CPU seconds are the work; wall seconds depend on the neighbours
    toy = common.run_or_reuse(f"{NAME}-toy", args.scale, toy_spec, args.out / "toy")
    toy_cpu = time.process_time() - cpu
    summary, features, timing = train_or_reuse(toy.out, sae_spec, args.out / args.saes)
    timing = {"toy": {**toy.timing, "cpu_s_this_call": toy_cpu}, "saes": timing}
    caption = (
        f"{args.scale} scale: toy n = {toy_spec.n}, {len(toy.summary)} models; {len(summary)} SAEs, "
        f"{sae_spec.steps} steps, batch {sae_spec.batch_size}; {toy.timing.get('machine', common.machine())}"
    )
    written = draw(summary, features, caption, args.figures, args.scale)
    numbers = answers(summary, features)
    numbers["timing"] = timing
    numbers["setup"] = {
        "toy_models": len(toy.summary),
        "saes": len(summary),
        "n": toy_spec.n,
        "widths": list(toy_spec.widths),
        "weight_decays": list(toy_spec.weight_decays),
        "alphas": list(toy_spec.alphas),
        "sae_steps": sae_spec.steps,
        "sae_batch": sae_spec.batch_size,
        "architectures": list(sae_spec.architectures),
    }
    what = f"{len(toy.summary)} toy models, {len(summary)} SAEs"
    report = args.out if args.saes == "saes" else args.out / args.saes  # another SAE grid on the same toy models
    return common.write_and_report(NAME, args.scale, what, report, numbers, written, started)


def _options(parser) -> None:
    parser.add_argument("--saes", default="saes", metavar="NAME",
                        help="train the SAEs into OUT/NAME (another SAE grid on OUT's toy models: its numbers.json "
                             "goes there too)")  # fmt: skip
    parser.add_argument("--combine", nargs="+", type=Path, metavar="PIECE",
                        help="answer over finished pieces (their OUT/NAME SAE runs) together, into --out")  # fmt: skip
    parser.add_argument("--dictionaries", nargs="+", default=(), metavar="NAME",
                        help="with --combine: each piece's SAE runs NAME (e.g. saes saes-d2 saes-d4) side by side, "
                             "per regime, architecture, dictionary size and k")  # fmt: skip


def combined(args, started: float) -> dict:
    """The answers and figures over several finished pieces' SAE runs (``PIECE/NAME``) at once."""
    summary, features = combine([piece / args.saes for piece in args.combine])
    args.out.mkdir(parents=True, exist_ok=True)
    what = f"{summary.model.nunique()} toy models, {len(summary)} SAEs from {len(args.combine)} pieces"
    written = draw(summary, features, f"{args.scale} scale: {what}", args.figures, args.scale)
    numbers = answers(summary, features)
    numbers["pieces"] = [str(p) for p in args.combine]
    if args.dictionaries:
        numbers["dictionaries"] = dictionaries(args.combine, args.dictionaries)
    return common.write_and_report(NAME, args.scale, what, args.out, numbers, written, started)


def dictionaries(pieces: list[Path], names) -> dict:
    """What a larger dictionary and a higher L0 buy: the SAE runs ``PIECE/NAME`` of every piece, means per
    regime, architecture, dictionary ratio and sparsity, and per width at the sparsity nearest the true L0."""
    summary = combine([piece / name for name in names for piece in pieces])[0]
    summary = summary.assign(
        mcc_above_chance=summary.mcc - summary.mcc_chance,
        latents_alive=(1 - summary.dead_fraction) * summary.dictionary_size,
    )
    columns = ["mcc", "mcc_chance", "mcc_above_chance", "recovered_fraction", "recovered_fraction_represented",
               "fvu", "dead_fraction", "latents_alive", "sae_l0"]  # fmt: skip
    keys = ["regime", "architecture", "dictionary_ratio", "sparsity"]
    target = max(1.0, float(np.median(summary["true_l0"])))
    by_width = {}
    for ratio, part in summary.groupby("dictionary_ratio"):  # the sparsity nearest the true L0, at each size
        for measure in ("mcc_above_chance", "recovered_fraction", "latents_alive"):
            fixed = plots.at_fixed_l0(part, target, measure).assign(dictionary_ratio=ratio)
            for key, value in _by(fixed, ["regime", "architecture", "dictionary_ratio", "m"], (measure,)).items():
                by_width.setdefault(key, {}).update(value)
    return {
        "fixed_l0_target": target,
        "by_dictionary_and_sparsity": _by(summary, keys, columns),
        "by_width_at_true_l0": by_width,
    }


def draw(summary: pd.DataFrame, features: dict, caption: str, folder: Path, scale: str) -> list[Path]:
    """The three SAE figures (``FIGURES``) into ``folder`` as ``STEM_SCALE.png`` and ``.pdf``."""
    import matplotlib

    written = []
    with matplotlib.rc_context(plots.STYLE):
        for stem, fig in plots.sae_figures(summary, features).items():
            fig.suptitle(f"{FIGURES[stem]}\n({caption})", fontsize=10)
            written += plots.save(fig, folder / f"{stem}_{scale}")
    return written


def combine(runs: list[Path]) -> tuple[pd.DataFrame, dict]:
    """The evaluated tables of several SAE runs as one: each run's toy model and SAE numbers offset past
    the previous runs' (a piece's toy run numbers its models from 0)."""
    frames, parts, models, saes = [], [], 0, 0
    for run in runs:
        try:
            summary, features = sae.load_tables(run)
        except SupjaxError as err:  # a piece not finished
            raise SystemExit(f"experiments/sae.py: {err}") from None
        summary = summary.assign(model=summary.model + models, sae=summary.sae + saes)
        features = {**features, "sae": features["sae"] + saes, "model": features["model"] + models,
                    "models": features["models"] + models}  # fmt: skip
        frames.append(summary)
        parts.append(features)
        models, saes = int(features["models"].max()) + 1, int(features["sae"].max()) + 1
    together = {k: np.concatenate([f[k] for f in parts]) for k in parts[0]}
    return pd.concat(frames, ignore_index=True), together


def load_specs(scale: str, overrides=(), quiet: bool = False) -> tuple[SweepSpec, sae.SaeSpec]:
    """The ``[toy]`` and ``[sae]`` tables of ``sae_<scale>.toml``; ``--set toy.KEY=V`` or ``sae.KEY=V``."""
    return common.load_toy_and_wing(NAME, scale, "sae", sae.SaeSpec, overrides, quiet)


def train_or_reuse(toy_run, spec: sae.SaeSpec, out) -> tuple[pd.DataFrame, dict, dict]:
    """Train the SAEs into ``out`` (resumed if interrupted), or reuse the evaluated run there."""
    timing_file = out / "experiment.json"
    if (out / "sae_summary.csv").is_file() and timing_file.is_file():
        try:
            resume_diff(sae.SaeSpec.from_toml(out / "sae.toml"), spec, out, "sae.toml")
        except ConfigError:
            raise SystemExit(f"{out} holds other SAEs; pass a new --out or delete it") from None
        summary, features = sae.load_tables(out)
        return summary, features, {**json.loads(timing_file.read_text()), "reused": True}
    started, cpu = time.perf_counter(), time.process_time()
    sae.run_sae(toy_run, spec, out=out, resume=(out / "sae.toml").is_file())
    timing = {
        "train_and_evaluate_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
        "machine": common.machine(),
    }
    timing_file.write_text(json.dumps(timing, indent=2) + "\n")
    summary, features = sae.load_tables(out)
    return summary, features, {**timing, "reused": False}


# ---- the answers ---------------------------------------------------------------------------------


def answers(summary: pd.DataFrame, features: dict) -> dict:
    """How recovery depends on regime, packing, frequency, architecture and ETF-likeness, at fixed L0."""
    target = max(1.0, float(np.median(summary["true_l0"])))
    measures = ("mcc", "mcc_represented", "recovered_fraction", "recovered_fraction_represented", "fvu")
    fixed = {m: plots.at_fixed_l0(summary, target, m) for m in measures}
    table = fixed["mcc"].copy()
    for m in measures[1:]:
        table[m] = fixed[m][m].to_numpy()
    table["dead_fraction"] = plots.at_fixed_l0(summary, target, "dead_fraction")["dead_fraction"].to_numpy()
    table["mcc_above_chance"] = table["mcc"] - table["mcc_chance"]
    table["recovered_fraction_chance"] = fixed["recovered_fraction"]["recovered_fraction_chance"].to_numpy()
    measures = (*measures, "mcc_chance", "mcc_above_chance", "recovered_fraction_chance")
    toy = summary.drop_duplicates("model").set_index("model")
    for column in ("represented_features", "mean_squared_overlap", "welch_excess", "etf_variance_ratio", "m_over_n"):
        table[column] = toy.loc[table.model, column].to_numpy()
    return {
        "fixed_l0_target": target,
        "true_l0_mean": float(summary["true_l0"].mean()),
        "regime": _by(table, ["architecture", "regime"], (*measures, "sae_l0", "represented_features")),
        "packing": _packing(table),
        "architecture": _by(table[table.regime == "strong"], ["architecture"], (*measures, "sae_l0", "dead_fraction")),
        "frequency": _frequency(summary, features, table),
        "data_exponent_strong": _by(table[table.regime == "strong"], ["architecture", "alpha"], measures),
        "etf_likeness": _etf(table),
    }


def _by(table: pd.DataFrame, keys: list[str], columns) -> dict:
    means = table.groupby(keys)[list(columns)].mean()
    return {"|".join(map(str, k if isinstance(k, tuple) else (k,))): row.to_dict() for k, row in means.iterrows()}


def _packing(table: pd.DataFrame) -> dict:
    """Strong regime: MCC (and above its chance level) per width (m/n) and architecture, and the
    Spearman correlation with m/n; weak regime: represented features per width."""
    strong = table[table.regime == "strong"]
    columns = ("mcc", "mcc_chance", "mcc_above_chance", "recovered_fraction", "fvu")
    out = {"mcc_by_architecture_and_m": _by(strong, ["architecture", "m"], columns)}
    for measure in ("mcc", "mcc_above_chance", "recovered_fraction"):
        rho = scipy.stats.spearmanr(strong["m_over_n"], strong[measure])
        out[f"spearman_{measure}_vs_m_over_n_strong"] = {"rho": rho.statistic, "p": rho.pvalue, "points": len(strong)}
    weak = table[table.regime == "weak"]
    rho = scipy.stats.spearmanr(weak["m_over_n"], weak["represented_features"])
    out["weak_represented_features_vs_m"] = _by(weak, ["m"], ("represented_features", "mcc_represented"))
    out["spearman_represented_vs_m_weak"] = float(rho.statistic)
    return out


def _frequency(summary: pd.DataFrame, features: dict, table: pd.DataFrame) -> dict:
    """Best cosine per frequency quartile (ranks 1..n/4, ...) and its Spearman correlation with p_i,
    per regime and architecture, over the SAEs at fixed L0."""
    order = {int(m): k for k, m in enumerate(features["models"])}
    n = features["best_cosine"].shape[1]
    quarters = np.array_split(np.arange(n), 4)
    out = {}
    for (architecture, regime), rows in table.groupby(["architecture", "regime"]):
        by_quarter, rhos, norms = [], [], []
        for _, row in rows.iterrows():
            chosen = (summary.model == row["model"]) & (summary.architecture == architecture)
            chosen &= summary.sparsity == row["sparsity"]
            best = features["best_cosine"][np.isin(features["sae"], summary.loc[chosen, "sae"])].mean(axis=0)
            p = features["p"][order[int(row["model"])]]
            norms.append(features["row_norm"][order[int(row["model"])]])
            by_quarter.append([best[q].mean() for q in quarters])
            rhos.append(scipy.stats.spearmanr(p, best).statistic)
        norm = np.mean(norms, axis=0)
        out[f"{architecture}|{regime}"] = {
            "best_cosine_by_frequency_quarter": np.mean(by_quarter, axis=0).tolist(),
            "row_norm_by_frequency_quarter": [float(norm[q].mean()) for q in quarters],
            "spearman_best_cosine_vs_p": float(np.nanmean(rhos)),
        }
    return out


def _etf(table: pd.DataFrame) -> dict:
    """Strong regime: does MCC above chance track the toy model's ETF-likeness? Spearman over all strong
    models, and within width (both centred on the width's mean, so the width's own effect is taken out)."""
    strong = table[table.regime == "strong"]
    out = {}
    for measure in ("mean_squared_overlap", "welch_excess", "etf_variance_ratio"):
        rho = scipy.stats.spearmanr(strong[measure], strong["mcc_above_chance"])
        centred = strong.assign(
            x=strong[measure] - strong.groupby(["architecture", "m"])[measure].transform("mean"),
            y=strong["mcc_above_chance"] - strong.groupby(["architecture", "m"])["mcc_above_chance"].transform("mean"),
        )
        within = scipy.stats.spearmanr(centred["x"], centred["y"])
        out[measure] = {
            "spearman_all": float(rho.statistic),
            "p_all": float(rho.pvalue),
            "spearman_within_width": float(within.statistic),
            "p_within_width": float(within.pvalue),
            "points": len(strong),
        }
    return out


if __name__ == "__main__":
    main()
