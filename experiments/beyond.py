"""Beyond the paper: does the width exponent survive cross-entropy, correlated features, importance?

    python experiments/beyond.py --scale quick [--figures figures]

The paper names its own limits: its toy model is trained with squared error while language
models use cross-entropy, and its features are independent and equally important. This trains
the base sweep of ``experiments/beyond_<scale>.toml`` (gamma = -1 and +1, alpha = 1 and 1.5,
six widths) once per variant into ``runs/beyond-<variant>-<scale>`` and fits alpha_m
(loss ~ m^-alpha_m, log-log over the widths, with its standard error) for each:

* loss: ``mse`` (the paper's), ``cross_entropy`` (one active feature per sample, logits
  x W W^T + b), ``soft_cross_entropy`` (several active features, the target their distribution);
* correlation: blocks of 4 features with Gaussian-copula correlation rho = 0, 0.3, 0.6, 0.9,
  and mutually exclusive blocks; every marginal p_i kept;
* importance: the squared error weighted by I_i = 1, i^-1/2, 0.99^i.

Writes ``figures/beyond_<scale>`` (PNG, PDF) and ``runs/beyond-<scale>.json`` (the exponents).
"""

from __future__ import annotations

import json
import time

import common
import matplotlib
import numpy as np
from matplotlib.figure import Figure

from supjax import plots

NAME = "beyond"
VARIANTS = {
    "loss": [("mse", {}), ("cross_entropy", {"loss": "cross_entropy"}), ("soft_ce", {"loss": "soft_cross_entropy"})],
    "correlation": [
        *((f"rho{rho:g}", {"correlation_block": 4, "correlation": rho}) for rho in (0.0, 0.3, 0.6, 0.9)),
        ("exclusive", {"correlation_block": 4, "exclusive_blocks": True}),
    ],
    "importance": [
        ("uniform", {}),
        ("power0.5", {"importance": "power:0.5"}),
        ("geometric0.99", {"importance": "geometric:0.99"}),
    ],
}


def main(argv=None) -> dict:
    started = time.perf_counter()
    args = common.parse_args(NAME, __doc__.splitlines()[0], argv)
    base = common.load_spec(NAME, args)
    root = args.out.parent
    results, first = {}, None
    for study, variants in VARIANTS.items():
        results[study] = {}
        for label, changes in variants:
            out = root / f"{NAME}-{label}-{args.scale}"
            exp = common.run_or_reuse(NAME, args.scale, base.replace(**changes), out)
            first = first or exp
            results[study][label] = exponents_of(exp)
    with matplotlib.rc_context(plots.STYLE):
        title = "Beyond the paper: the width exponent under cross-entropy, correlated features, importance"
        written = common.save_figure(figure(results), first, NAME, args.figures, title)
    path = root / f"{NAME}-{args.scale}.json"
    path.write_text(json.dumps(common._plain(results), indent=1) + "\n")
    print(f"{NAME} ({args.scale}): {time.perf_counter() - started:.0f} s; exponents in {path}")
    for file in written:
        print(f"  figure: {file}")
    return results


def exponents_of(exp) -> dict:
    """alpha_m, its stderr and R^2 for each (gamma, alpha) of one variant."""
    out = {}
    for row in exp.exponents.itertuples():
        out[f"gamma={row.weight_decay:+g},alpha={row.alpha:g}"] = {
            "model_exponent": row.model_exponent,
            "stderr": row.stderr,
            "r2": row.r2,
            "regime": row.regime,
        }
    return out


def figure(results: dict) -> Figure:
    fig = Figure(layout="constrained", figsize=(13.5, 3.8))
    axes = list(fig.subplots(1, 3))
    colours = common.gamma_colours([-1.0, 1.0])
    markers = {1.0: "o", 1.5: "s"}
    for ax, (study, variants) in zip(axes, results.items(), strict=True):
        labels = list(variants)
        for key in next(iter(variants.values())):
            gamma, alpha = (float(part.split("=")[1]) for part in key.split(","))
            values = [variants[label][key] for label in labels]
            x = np.arange(len(labels)) + (0.08 if alpha > 1 else -0.08)
            ax.errorbar(
                x,
                [v["model_exponent"] for v in values],
                yerr=[v["stderr"] for v in values],
                fmt=markers[alpha] + "-",
                color=colours.to_rgba(gamma),
                ms=5,
                lw=1,
                capsize=2,
                label=rf"$\gamma$ = {gamma:+g}, $\alpha$ = {alpha:g}",
            )
        ax.axhline(1.0, color="k", ls=":", lw=1)
        ax.set_xticks(range(len(labels)), labels, rotation=20)
        ax.set(ylabel=r"model exponent $\alpha_m$", title=study)
    axes[0].legend(loc="best")
    common.label_panels(axes)
    return fig


if __name__ == "__main__":
    main()
