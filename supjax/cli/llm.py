"""The LLM wing's commands: ``llm``, ``llm-fit`` and ``llm-tokens`` (real language models, :mod:`supjax.llm`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from supjax.errors import InputFileError, OptionError


def add(commands) -> dict:
    llm = commands.add_parser("llm", help="norms, overlaps and ETF-likeness of an LLM head or embedding matrix")
    llm.add_argument("path", help=".safetensors, model.safetensors.index.json, .npy, .npz, model folder or hub id")
    llm.add_argument("--tensor", help="tensor name (default: the LM head or tied input embedding)")
    llm.add_argument("--device", help="JAX platform to run on: cpu, gpu or tpu (default: the first device)")
    llm.add_argument("--block-size", type=int, help="rows per block (default: 2048 on a CPU, 8192 on a GPU)")
    llm.add_argument("--sample-rows", type=int, help="estimate from this many random rows, with intervals")
    llm.add_argument("--seed", type=int, default=0, help="seed of --sample-rows")
    llm.add_argument("--confidence", type=float, default=0.95, help="level of the --sample-rows intervals")
    llm.add_argument("--no-pairwise", action="store_true", help="skip the n^2 m pass (mean |o|, Var(o^2), coherence)")
    llm.add_argument("--quiet", action="store_true", help="no progress bar")
    llm.add_argument("--json", action="store_true", help="print one JSON object")

    fit = commands.add_parser("llm-fit", help="fit L = A / m^alpha + B_g to a table of LLM losses and plot it")
    fit.add_argument("table", help="CSV with columns family, model, width, dataset, loss")
    fit.add_argument("--out", help="plot path without suffix (default: TABLE-width-fit next to the table)")
    fit.add_argument("--no-plot", action="store_true", help="fit only")
    fit.add_argument("--group-by", default="family,dataset", help="columns whose combinations get one offset B_g")
    fit.add_argument("--json", action="store_true", help="print one JSON object")

    tokens = commands.add_parser("llm-tokens", help="token rank-frequency exponent of text files")
    tokens.add_argument("tokenizer", help='tokenizer.json (or its folder); needs pip install "supjax[llm]"')
    tokens.add_argument("text", nargs="+", help="text files")
    tokens.add_argument("--min-rank", type=int, default=1, help="first rank of the fit")
    tokens.add_argument("--max-rank", type=int, help="last rank of the fit (default: all seen tokens)")
    tokens.add_argument("--out", default="rank-frequency", help="plot path without suffix")
    tokens.add_argument("--counts", help="also save the counts as this .npy")
    tokens.add_argument("--json", action="store_true", help="print one JSON object")
    return {"llm": _llm, "llm-fit": _llm_fit, "llm-tokens": _llm_tokens}


def _llm(args) -> int:
    from supjax import llm

    if args.sample_rows is not None and args.sample_rows < 3:
        raise OptionError("--sample-rows", args.sample_rows, "need at least 3 rows for an interval")
    if not 0 < args.confidence < 1:
        raise OptionError("--confidence", args.confidence, "a level in (0, 1), e.g. 0.95")
    report = llm.analyze_path(
        args.path,
        args.tensor,
        block_size=args.block_size,
        device=args.device,
        sample_rows=args.sample_rows,
        seed=args.seed,
        pairwise=not args.no_pairwise,
        confidence=args.confidence,
        progress=not (args.quiet or args.json),
    )
    _print_report(report, args.json, f"supjax llm: {report['tensor']} of {report['path']}")
    return 0


def _llm_fit(args) -> int:
    from supjax import llm, plots

    table = llm.read_width_table(args.table)
    group_by = [c.strip() for c in args.group_by.split(",") if c.strip()]
    fit = llm.width_scaling_fit(table, group_by)
    if not math.isfinite(fit.exponent):
        raise InputFileError(args.table, "has too few points to fit: need 3+ widths and more rows than 2 + groups")
    report = {
        "exponent": fit.exponent,
        "stderr": fit.stderr,
        "amplitude": fit.amplitude,
        "r2": fit.r2,
        "n_points": fit.n_points,
        "n_groups": len(fit.offsets),
        "converged": fit.converged,
        "chinchilla_width_exponent": llm.chinchilla_width_exponent(),
        "offsets": fit.offsets,
    }
    if not args.no_plot:
        out = Path(args.out or str(Path(args.table).with_suffix("")) + "-width-fit")
        report["plots"] = [str(p) for p in plots.save(llm.plot_width_scaling(table, fit, group_by), out)]
    _print_report(report, args.json, "supjax llm-fit: L = A / m^alpha + B_g")
    return 0


def _llm_tokens(args) -> int:
    from supjax import llm, plots

    if args.min_rank < 1 or (args.max_rank is not None and args.max_rank <= args.min_rank):
        raise OptionError("--min-rank", args.min_rank, "need 1 <= --min-rank < --max-rank")
    counts = llm.count_tokens_in_files(args.tokenizer, args.text)
    fit = llm.rank_frequency_fit(counts, args.min_rank, args.max_rank)
    report = {
        "tokens": int(counts.sum()),
        "distinct_tokens": int(np.count_nonzero(counts)),
        "vocab_size": int(counts.size),
        "exponent": fit.exponent,
        "stderr": fit.stderr,
        "r2": fit.r2,
        "fitted_ranks": fit.n_points,
        "plots": [str(p) for p in plots.save(llm.plot_rank_frequency(counts, fit), Path(args.out))],
    }
    if args.counts:
        np.save(args.counts, counts)
        report["counts"] = args.counts
    _print_report(report, args.json, "supjax llm-tokens: f(r) ∝ r^-exponent")
    return 0


def _json_safe(value):
    """JSON-safe: nan and inf become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _print_report(report: dict, as_json: bool, title: str) -> None:
    """One JSON object, or ``title`` and one aligned line per key; ``KEY_ci`` joins KEY's line."""
    if as_json:
        print(json.dumps(_json_safe(report)))
        return
    print(title)
    keys = [k for k in report if not (k.endswith("_ci") and k.removesuffix("_ci") in report)]
    width = max(len(k) for k in keys)
    for key in keys:
        value = report[key]
        if isinstance(value, dict):
            print(f"  {key}:")
            for inner, number in value.items():
                print(f"    {inner:<{width}} {number:.4g}")
            continue
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        if f"{key}_ci" in report:
            low, high = report[f"{key}_ci"]
            text += f"  [{low:.4g}, {high:.4g}]"
        print(f"  {key:<{width}} {text}")
