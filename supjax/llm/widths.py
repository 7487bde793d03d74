"""Width scaling of real LLMs: L = A / m^alpha + B_g fitted over a table of evaluation losses.

The paper fits the evaluation losses of 27 open models (OPT, Qwen2.5, GPT-2, Pythia) on four
datasets with one exponent and one amplitude shared by all, and one offset B_g per family and
dataset, and finds alpha = 0.91 +- 0.04. :func:`paper_widths` holds those models' widths, so
a loss table may leave the width column out for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from supjax.errors import InputFileError, OptionError
from supjax.fit import GroupedFit, grouped_power_law_fit

WIDTH_TABLE_COLUMNS = ("family", "model", "width", "dataset", "loss")


def package_table(name: str) -> pd.DataFrame:
    """A CSV of ``supjax/tables`` (see its README for the sources)."""
    with resources.files("supjax").joinpath("tables", name).open("r") as file:
        return pd.read_csv(file)


def paper_widths() -> pd.DataFrame:
    """The 27 open models of the paper's width fit: family, model, width, n_layers, vocab_size, head_tensor.

    Widths are each model's hidden_size / d_model / n_embd (OPT, Qwen2.5, GPT-2, Pythia);
    ``head_tensor`` is the matrix the paper analysed. OPT-350m's head is 512 wide (a
    projection of its 1024-wide hidden state); like the paper, the table gives m = 1024.
    """
    return package_table("llm_widths.csv")


def read_width_table(path: str | Path) -> pd.DataFrame:
    """A loss table with columns family, model, width, dataset, loss (one row per model and dataset).

    ``width`` may be left out (or empty) for models of :func:`paper_widths`, named by their
    Hugging Face id or its last part (``gpt2-xl``). Problems raise :class:`InputFileError`.
    """
    path = Path(path)
    need = ", ".join(WIDTH_TABLE_COLUMNS)
    if not path.is_file():
        raise InputFileError(path, f"not found; pass a CSV with columns {need}")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputFileError(path, f"is not a readable CSV ({err}); pass a CSV with columns {need}") from None
    if "width" not in table.columns and "model" in table.columns:
        table["width"] = np.nan
    missing = [c for c in WIDTH_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise InputFileError(path, f"has no columns {missing}; need {need}")
    known = paper_widths()
    lookup = {
        name: width
        for model, width in zip(known["model"], known["width"], strict=True)
        for name in (model, model.split("/")[-1])
    }
    table["width"] = pd.to_numeric(table["width"], errors="coerce")
    table["width"] = table["width"].fillna(table["model"].map(lambda name: lookup.get(str(name), np.nan)))
    unknown = table.loc[table["width"].isna(), "model"].unique().tolist()
    if unknown:
        raise InputFileError(path, f"has no width for models {unknown[:4]}; fill the width column")
    table["loss"] = pd.to_numeric(table["loss"], errors="coerce")
    if table["loss"].isna().any():
        raise InputFileError(path, "has empty or non-numeric entries in the loss column; fix those rows")
    return table


def width_groups(table: pd.DataFrame, group_by: Sequence[str] = ("family", "dataset")) -> np.ndarray:
    """Group labels ``"family/dataset"``: one offset B_g per model family and evaluation set."""
    unknown = [c for c in group_by if c not in table.columns]
    if unknown or not group_by:
        raise OptionError("--group-by", ",".join(group_by), f"name columns of the table: {', '.join(table.columns)}")
    return table[list(group_by)].astype(str).agg("/".join, axis=1).to_numpy()


def width_scaling_fit(table: pd.DataFrame, group_by: Sequence[str] = ("family", "dataset")) -> GroupedFit:
    """Fit L = A / m^alpha + B_g over a loss table, one offset per group (the paper's LLM fit).

    Groups are the combinations of ``group_by`` (default family x dataset: 4 x 4 = 16 offsets
    in the paper, which finds alpha = 0.91 +- 0.04 with A shared by all groups). The fit is
    :func:`supjax.fit.grouped_power_law_fit`.
    """
    return grouped_power_law_fit(
        table["width"].to_numpy(float), table["loss"].to_numpy(float), width_groups(table, group_by)
    )
