"""Real language models: the rows of an LM head (or tied input embedding) as features.

The paper's second half reads a trained LLM the way it reads the toy model: the head matrix
``W: [n, m]`` (vocabulary n x width m) has one row W_i per token, and the statistics of
:mod:`supjax.metrics` apply unchanged. In the strong superposition regime the mean squared
overlap of the normalised rows is about 1/m, and the evaluation loss of open models fits
L = A / m^alpha + B_g with alpha = 0.91 +- 0.04.

One module per idea; the names below are re-exported here:

* :mod:`~supjax.llm.safetensors_io`: the safetensors format with numpy (memory-mapped bfloat16);
* :mod:`~supjax.llm.hub`: models already in the local Hugging Face cache (``huggingface_hub``);
* :mod:`~supjax.llm.weights`: the head matrix out of a file, folder or cache entry;
* :mod:`~supjax.llm.overlaps`: norms, frame operator and pair sums, streamed in row blocks;
* :mod:`~supjax.llm.head`: the paper's statistics of a head, exact or sampled with intervals;
* :mod:`~supjax.llm.tokens`: token counts and the rank-frequency exponent;
* :mod:`~supjax.llm.widths`: the grouped width-scaling fit of a loss table;
* :mod:`~supjax.llm.chinchilla`: the width exponent a Chinchilla fit implies;
* :mod:`~supjax.llm.plots`: the two figures.

The commands ``supjax llm``, ``llm-fit`` and ``llm-tokens`` live in :mod:`supjax.cli`.
"""

from supjax.llm.chinchilla import (
    CHINCHILLA_FITS,
    CHINCHILLA_PARAMETER_WIDTH_EXPONENT,
    ChinchillaFit,
    chinchilla_parameter_width_fit,
    chinchilla_shapes,
    chinchilla_width_exponent,
)
from supjax.llm.head import analyze_matrix, analyze_path
from supjax.llm.plots import plot_rank_frequency, plot_width_scaling
from supjax.llm.safetensors_io import (
    SAFETENSORS_DTYPES,
    load_safetensors_tensor,
    read_safetensors_header,
    save_safetensors,
)
from supjax.llm.tokens import count_tokens, count_tokens_in_files, rank_frequency, rank_frequency_fit
from supjax.llm.weights import HEAD_TENSOR_NAMES, INDEX_FILE, HeadMatrix, find_head_tensor, load_matrix
from supjax.llm.widths import (
    WIDTH_TABLE_COLUMNS,
    paper_widths,
    read_width_table,
    width_groups,
    width_scaling_fit,
)

__all__ = [
    "CHINCHILLA_FITS",
    "CHINCHILLA_PARAMETER_WIDTH_EXPONENT",
    "HEAD_TENSOR_NAMES",
    "INDEX_FILE",
    "SAFETENSORS_DTYPES",
    "WIDTH_TABLE_COLUMNS",
    "ChinchillaFit",
    "HeadMatrix",
    "analyze_matrix",
    "analyze_path",
    "chinchilla_parameter_width_fit",
    "chinchilla_shapes",
    "chinchilla_width_exponent",
    "count_tokens",
    "count_tokens_in_files",
    "find_head_tensor",
    "load_matrix",
    "load_safetensors_tensor",
    "paper_widths",
    "plot_rank_frequency",
    "plot_width_scaling",
    "rank_frequency",
    "rank_frequency_fit",
    "read_safetensors_header",
    "read_width_table",
    "save_safetensors",
    "width_groups",
    "width_scaling_fit",
]
