"""Real language models: the rows of an LM head (or tied input embedding) as features.

The paper's second half reads a trained LLM the way it reads the toy model: the head matrix
``W: [n, m]`` (vocabulary n x width m) has one row W_i per token, and the statistics of
:mod:`supjax.metrics` (norms, overlaps, ETF-likeness) apply unchanged. In the strong
superposition regime the mean squared overlap of the normalised rows is about 1/m, and the
evaluation loss of open models fits L = A / m^alpha + B_g with alpha = 0.91 +- 0.04.

Three parts:

* loading: one 2-D tensor from a safetensors file (or a sharded ``model.safetensors.index.json``),
  a ``.npy``/``.npz``, a model directory or a Hugging Face hub cache, memory-mapped and without
  torch (:func:`load_matrix`); then :func:`analyze_matrix`, blockwise on the accelerator.
* token frequencies: counts of token ids, the rank-frequency exponent and its plot
  (:func:`count_tokens`, :func:`rank_frequency_fit`; text files need the optional ``tokenizers``).
* width scaling: the grouped fit of a loss table (:func:`width_scaling_fit`), the widths of the
  paper's 27 models (:func:`paper_widths`), and the width exponent implied by the Chinchilla
  fit (:func:`chinchilla_width_exponent`).

Bad input raises :class:`supjax.config.ConfigError`, one line naming the path or tensor and
the fix; :func:`run_llm_command` lets it through for the CLI to print.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pandas as pd

from supjax import metrics
from supjax.config import ConfigError
from supjax.fit import GroupedFit, PowerLawFit, grouped_power_law_fit, power_law_fit

# ---- safetensors, read and written with numpy --------------------------------------------------

# Format: 8-byte little-endian header length, a JSON header {name: {dtype, shape,
# data_offsets: [begin, end]}, optional "__metadata__"}, then the raw little-endian bytes,
# offsets counted from the end of the header.
SAFETENSORS_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
SAFETENSORS_CODES = {dtype: code for code, dtype in SAFETENSORS_DTYPES.items()}
MAX_HEADER_BYTES = 100 * 2**20  # the limit of the reference implementation
INDEX_FILE = "model.safetensors.index.json"


def read_safetensors_header(path: str | Path) -> tuple[dict, int]:
    """The tensor entries of a safetensors file and the byte offset where its data starts.

    Returns ``({name: {"dtype", "shape", "data_offsets"}}, data_start)`` without
    ``__metadata__``. Checks that every entry's byte range matches its shape and lies inside
    the file, so a truncated download is reported here, before anything is mapped.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as file:
        prefix = file.read(8)
        header_bytes = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if header_bytes < 2 or header_bytes > MAX_HEADER_BYTES:
            raise ConfigError("PATH", str(path), "not a safetensors file (no valid header length); pass a .safetensors")
        if 8 + header_bytes > size:
            raise ConfigError(
                "PATH",
                str(path),
                f"file is truncated ({size} bytes, header alone needs {8 + header_bytes}); re-download",
            )
        raw = file.read(header_bytes)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(
            "PATH", str(path), "not a safetensors file (header is not JSON); pass a .safetensors"
        ) from None
    if not isinstance(header, dict):
        raise ConfigError("PATH", str(path), "not a safetensors file (header is not a JSON object)")
    header.pop("__metadata__", None)
    data_start = 8 + header_bytes
    for name, entry in header.items():
        _check_entry(path, name, entry, size - data_start)
    return header, data_start


def _check_entry(path: Path, name: str, entry, data_bytes: int) -> None:
    try:
        shape = [int(d) for d in entry["shape"]]
        begin, end = (int(o) for o in entry["data_offsets"])
        code = entry["dtype"]
    except (KeyError, TypeError, ValueError):
        raise ConfigError("PATH", str(path), f"tensor '{name}' has a malformed header entry; re-download") from None
    if code in SAFETENSORS_DTYPES and end - begin != math.prod(shape) * SAFETENSORS_DTYPES[code].itemsize:
        raise ConfigError("PATH", str(path), f"tensor '{name}': byte range does not match shape {shape} x {code}")
    if end > data_bytes:
        raise ConfigError(
            "PATH",
            str(path),
            f"file is truncated: tensor '{name}' ends at data byte {end} but the file holds {data_bytes}; re-download",
        )


def load_safetensors_tensor(path: str | Path, name: str) -> np.ndarray:
    """One tensor of a safetensors file as a read-only ``np.memmap`` (nothing is read until used).

    bfloat16 and float8 come back as :mod:`ml_dtypes` arrays.
    """
    path = Path(path)
    header, data_start = read_safetensors_header(path)
    if name not in header:
        raise _missing_tensor(path, name, header)
    entry = header[name]
    if entry["dtype"] not in SAFETENSORS_DTYPES:
        raise ConfigError(
            "--tensor", name, f"dtype {entry['dtype']} is not supported; known: {', '.join(SAFETENSORS_DTYPES)}"
        )
    dtype = SAFETENSORS_DTYPES[entry["dtype"]]
    shape = tuple(int(d) for d in entry["shape"])
    if math.prod(shape) == 0:
        return np.empty(shape, dtype)
    offset = data_start + int(entry["data_offsets"][0])
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def save_safetensors(path: str | Path, tensors: dict[str, np.ndarray], metadata: dict | None = None) -> Path:
    """Write ``{name: array}`` as a safetensors file (little-endian, header padded to 8 bytes).

    Dtypes as in :data:`SAFETENSORS_DTYPES` (``ml_dtypes.bfloat16`` for BF16). ``metadata`` is
    stored as string pairs under ``__metadata__``.
    """
    path = Path(path)
    header: dict = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}} if metadata else {}
    arrays, offset = [], 0
    for name, array in tensors.items():
        array = np.asarray(array)
        code = SAFETENSORS_CODES.get(array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype)
        if code is None:
            raise ValueError(f"tensor '{name}': dtype {array.dtype} has no safetensors code")
        array = np.ascontiguousarray(array, dtype=SAFETENSORS_DTYPES[code])
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        arrays.append(array)
        offset += array.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # keeps tensor data 8-byte aligned, as the reference writer does
    with open(path, "wb") as file:
        file.write(len(raw).to_bytes(8, "little"))
        file.write(raw)
        for array in arrays:
            file.write(array.reshape(-1).view(np.uint8).data)  # no bytes copy of a large tensor
    return path


def _missing_tensor(path: Path, name: str, names: Iterable[str]) -> ConfigError:
    names = list(names)
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"{len(names)} tensors, e.g. {names[:3]}"
    return ConfigError("--tensor", name, f"no such tensor in {path}; {hint}")


# ---- finding the head matrix ---------------------------------------------------------------------

# Output heads first (untied models: Pythia's embed_out, Qwen2.5-7B+'s lm_head), then the
# input embeddings that tied models (GPT-2, OPT, small Qwen2.5, BERT) use as their head.
# A name also matches with any prefix ("bert.", "model.", "transformer.", "gpt_neox.").
HEAD_TENSOR_NAMES = (
    "lm_head.weight",
    "embed_out.weight",
    "model.embed_tokens.weight",
    "model.decoder.embed_tokens.weight",
    "decoder.embed_tokens.weight",
    "embed_tokens.weight",
    "transformer.wte.weight",
    "wte.weight",
    "embeddings.word_embeddings.weight",
    "word_embeddings.weight",
    "gpt_neox.embed_in.weight",
    "embed_in.weight",
)


def find_head_tensor(names: Iterable[str]) -> str | None:
    """The LM-head or tied-embedding tensor among ``names``, by :data:`HEAD_TENSOR_NAMES` order.

    An exact name wins; otherwise the shortest name ending in ``"." + candidate``; each
    candidate is also tried without its ``.weight`` (``wte``, ``lm_head``).
    """
    names = list(names)
    for candidate in HEAD_TENSOR_NAMES:
        for form in (candidate, candidate.removesuffix(".weight")):  # .npz keys often drop ".weight"
            if form in names:
                return form
            prefixed = sorted((n for n in names if n.endswith("." + form)), key=lambda n: (len(n), n))
            if prefixed:
                return prefixed[0]
    return None


class HeadMatrix(NamedTuple):
    """A loaded matrix: ``values: [n, m]`` (often a read-only memmap), its tensor name and file."""

    values: np.ndarray
    tensor: str
    source: Path


def _hub_cache_dirs() -> list[Path]:
    """Where ``huggingface_hub`` keeps downloads, in its own order of precedence."""
    dirs = [os.environ.get("HF_HUB_CACHE"), os.environ.get("HUGGINGFACE_HUB_CACHE")]
    if os.environ.get("HF_HOME"):
        dirs.append(str(Path(os.environ["HF_HOME"]) / "hub"))
    dirs.append(str(Path.home() / ".cache" / "huggingface" / "hub"))
    return [Path(d) for d in dirs if d]


def _snapshot(repo_dir: Path) -> Path | None:
    """The snapshot that ``refs/main`` points to in a hub-cache repo folder, else the newest one."""
    snapshots = repo_dir / "snapshots"
    main = repo_dir / "refs" / "main"
    if main.is_file() and (snapshots / main.read_text().strip()).is_dir():
        return snapshots / main.read_text().strip()
    candidates = sorted((p for p in snapshots.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def resolve_weights_path(path: str | Path) -> Path:
    """A weight file, index or model directory for ``path``.

    ``path`` may be a file, a model directory, a hub-cache repo folder (``models--org--name``,
    resolved to its snapshot), or a repo id ``org/name`` already downloaded to the local
    hub cache (``HF_HUB_CACHE``, ``HF_HOME/hub`` or ``~/.cache/huggingface/hub``); nothing is
    downloaded.
    """
    given = Path(path)
    if given.is_dir() and (given / "snapshots").is_dir():
        snapshot = _snapshot(given)
        if snapshot is None:
            raise ConfigError("PATH", str(path), "hub cache folder has no snapshot; download the model first")
        return snapshot
    if given.exists():
        return given
    if str(path).count("/") == 1 and not str(path).startswith((".", "/")):
        folder = "models--" + str(path).replace("/", "--")
        for cache in _hub_cache_dirs():
            if (cache / folder / "snapshots").is_dir() and (snapshot := _snapshot(cache / folder)) is not None:
                return snapshot
        raise ConfigError(
            "PATH",
            str(path),
            "no such file, nor such a model in the local Hugging Face hub cache; check the path or download it",
        )
    raise ConfigError("PATH", str(path), "file not found; pass a .safetensors, index .json, .npy, .npz or model folder")


def _directory_tensors(folder: Path) -> dict[str, Path]:
    """``{tensor name: safetensors file}`` of a model directory (an index, or every .safetensors)."""
    if (folder / INDEX_FILE).is_file():
        return _index_tensors(folder / INDEX_FILE)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        if list(folder.glob("*.bin")) or list(folder.glob("*.pt")):
            fix = "only PyTorch pickles (.bin/.pt) here, which need torch; convert the model to safetensors or .npy"
        else:
            fix = "no .safetensors or index .json in this folder; pass the weight file itself"
        raise ConfigError("PATH", str(folder), fix)
    return {name: file for file in files for name in read_safetensors_header(file)[0]}


def _index_tensors(index: Path) -> dict[str, Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: index.parent / shard for name, shard in weight_map.items()}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise ConfigError("PATH", str(index), "not a safetensors index (needs a 'weight_map' object)") from None


def _choose_tensor(path: Path, names: Sequence[str], tensor: str | None, shapes: dict | None = None) -> str:
    if tensor is not None:
        if tensor not in names:
            raise _missing_tensor(path, tensor, names)
        return tensor
    found = find_head_tensor(names)
    if found is None:
        matrices = [n for n in names if shapes is None or len(shapes[n]) == 2]
        raise ConfigError(
            "--tensor",
            None,
            f"no LM head or embedding by a usual name in {path}; pick one of {matrices[:6]} with --tensor",
        )
    return found


def load_matrix(path: str | Path, tensor: str | None = None) -> HeadMatrix:
    """Load one 2-D floating-point matrix without copying it into memory where the format allows.

    ``path``: a ``.safetensors`` file, a sharded ``model.safetensors.index.json``, a ``.npy``,
    a ``.npz``, a model directory, or a hub-cache repo (see :func:`resolve_weights_path`).
    ``tensor``: the tensor's name; by default the LM head or tied input embedding is found
    by :func:`find_head_tensor`. Safetensors and ``.npy`` are memory-mapped; half precision
    stays half precision (the analysis accumulates in float32).
    """
    resolved = resolve_weights_path(path)
    if resolved.is_dir():
        location = _directory_tensors(resolved)
        name = _choose_tensor(resolved, list(location), tensor)
        values, source = load_safetensors_tensor(location[name], name), location[name]
    elif resolved.name.endswith(".json"):
        location = _index_tensors(resolved)
        name = _choose_tensor(resolved, list(location), tensor)
        if not location[name].is_file():
            raise ConfigError("PATH", str(location[name]), f"shard of tensor '{name}' is missing; download it")
        values, source = load_safetensors_tensor(location[name], name), location[name]
    elif resolved.suffix == ".npy":
        if tensor is not None:
            raise ConfigError("--tensor", tensor, f"{resolved} holds a single array; drop --tensor")
        values, name, source = _load_npy(resolved), resolved.stem, resolved
    elif resolved.suffix == ".npz":
        values, name, source = (*_load_npz(resolved, tensor), resolved)
    elif resolved.suffix == ".safetensors":
        header, _ = read_safetensors_header(resolved)
        name = _choose_tensor(resolved, list(header), tensor, {n: e["shape"] for n, e in header.items()})
        values, source = load_safetensors_tensor(resolved, name), resolved
    elif resolved.suffix in (".bin", ".pt", ".pth", ".ckpt"):
        raise ConfigError("PATH", str(resolved), "PyTorch pickles need torch to read; convert to safetensors or .npy")
    else:
        raise ConfigError(
            "PATH", str(resolved), "unknown format; pass a .safetensors, index .json, .npy, .npz or folder"
        )
    return HeadMatrix(_check_matrix(values, name, source), name, source)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ConfigError(
            "PATH", str(path), f"not a readable .npy (truncated or corrupt: {err}); re-create it"
        ) from None


def _load_npz(path: Path, tensor: str | None) -> tuple[np.ndarray, str]:
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            name = names[0] if tensor is None and len(names) == 1 else _choose_tensor(path, names, tensor)
            return archive[name], name
    except ConfigError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ConfigError(
            "PATH", str(path), f"not a readable .npz (truncated or corrupt: {err}); re-create it"
        ) from None


def _check_matrix(values: np.ndarray, name: str, source: Path) -> np.ndarray:
    if values.ndim != 2:
        raise ConfigError(
            "--tensor", name, f"has shape {tuple(values.shape)} in {source}; need a 2-D [vocab, width] matrix"
        )
    if not jnp.issubdtype(values.dtype, jnp.floating):
        raise ConfigError("--tensor", name, f"has dtype {values.dtype}; need a floating-point weight matrix")
    if values.shape[0] < 2 or values.shape[1] < 1:
        raise ConfigError("--tensor", name, f"has shape {tuple(values.shape)}; need at least 2 rows and 1 column")
    return values


# ---- analysis ------------------------------------------------------------------------------------


def _device(device) -> jax.Device:
    if device is None or isinstance(device, jax.Device):
        return device or jax.devices()[0]
    try:
        return jax.devices(device)[0]
    except RuntimeError:
        raise ConfigError("--device", device, f"no such JAX backend here; available: {jax.default_backend()}") from None


def analyze_matrix(
    W,
    block_size: int | None = None,
    device=None,
    sample_rows: int | None = None,
    seed: int = 0,
) -> dict:
    """Norm, overlap and ETF statistics of the rows of ``W: [n, m]``, as a flat dict of floats.

    Keys (the sweep summary table's column names where they exist):

    * ``n`` (rows analysed), ``total_rows``, ``m``, ``dtype``, ``device``, ``block_size``,
      ``sampled_rows`` (None: all rows);
    * row norms ||W_i||: ``mean_norm``, ``std_norm``, ``min_norm``, ``median_norm``,
      ``max_norm``; ``represented_fraction`` phi_{1/2} (share with norm > 1/2) and
      ``strong_fraction`` phi_1 (norm > 1). An LLM's norms have their own scale, so these
      thresholds are the toy model's, kept for comparison;
    * overlaps o_ij = w_i . w_j of the normalised rows, over i != j: ``mean_abs_overlap``,
      ``abs_overlap_std``, ``mean_squared_overlap``, ``squared_overlap_variance``,
      ``coherence`` (max |o_ij|); ``inverse_width`` 1/m (the random-direction value of the mean
      squared overlap) and ``overlap_width_product`` = m x mean_squared_overlap (about 1 for
      random directions; the paper's LLM check);
    * ETF-likeness as in :func:`supjax.metrics.etf_likeness`: ``welch_bound``,
      ``welch_excess``, ``tight_frame_distance``, ``coherence_bound``, ``coherence_ratio``,
      ``etf_variance_ratio``;
    * ``analysis_seconds``: wall time on ``device`` (transfer included).

    The O(n^2 m) overlap pass runs once, in row blocks of ``block_size`` (default: a float32
    slab [block, n] of 256 MiB), so memory is W plus that slab: a 152 000 x 8192 bfloat16 head
    (2.5 GB) fits one 80 GB GPU. bfloat16/float16 stay narrow in device memory and products
    accumulate in float32. On a CPU, XLA converts a narrow W to float32 once for its matrix
    products (4 more bytes per entry, about 13 GB peak for that head) and the pass is slow
    (about 4e14 flops; 152 000 x 32 takes 50 s on 2 cores). ``device``: a ``jax.Device`` or
    platform name (``"cpu"``, ``"gpu"``), default the first device.
    ``sample_rows``: analyse only that many rows drawn without replacement (seeded by
    ``seed``), an unbiased estimate of the means over pairs for heads too large for the
    hardware; the coherence of a sample is a lower bound on the full one.
    """
    start = time.perf_counter()
    n_all, m = W.shape
    if sample_rows is not None and sample_rows < n_all:
        if sample_rows < 2:
            raise ConfigError("--sample-rows", sample_rows, "need at least 2 rows")
        rows = np.sort(np.random.default_rng(seed).choice(n_all, size=sample_rows, replace=False))
        W = np.asarray(W[rows])
    else:
        sample_rows = None
    if np.dtype(W.dtype) == np.float64 and not jax.config.jax_enable_x64:
        W = np.asarray(W, np.float32)  # jax would narrow it anyway; say so by doing it here
    target = _device(device)
    W = jax.device_put(np.asarray(W) if isinstance(W, np.memmap) else W, target)
    n = W.shape[0]
    block = metrics.default_block_size(n) if block_size is None else int(block_size)

    norms = np.asarray(metrics.row_norms(W), np.float64)
    statistics = metrics.overlap_statistics(W, block)
    frame_distance = float(metrics.tight_frame_distance(W, block))
    mean_squared = float(statistics.mean_squared_overlap)
    welch = float(metrics.welch_bound(n, m))
    lowest_coherence = float(metrics.coherence_bound(n, m))
    # etf_likeness(W) would repeat the O(n^2 m) pass; its fields are assembled from the one pass.
    report = {
        "n": int(n),
        "total_rows": int(n_all),
        "m": int(m),
        "dtype": str(W.dtype),
        "device": str(target),
        "block_size": block,
        "sampled_rows": sample_rows,
        "mean_norm": float(norms.mean()),
        "std_norm": float(norms.std(ddof=1)),
        "min_norm": float(norms.min()),
        "median_norm": float(np.median(norms)),
        "max_norm": float(norms.max()),
        "represented_fraction": float(np.mean(norms > 0.5)),
        "strong_fraction": float(np.mean(norms > 1.0)),
        "mean_abs_overlap": float(statistics.mean_abs_overlap),
        "abs_overlap_std": float(statistics.abs_overlap_std),
        "mean_squared_overlap": mean_squared,
        "squared_overlap_variance": float(statistics.squared_overlap_variance),
        "coherence": float(statistics.coherence),
        "inverse_width": 1.0 / m,
        "overlap_width_product": m * mean_squared,
        "welch_bound": welch,
        "welch_excess": mean_squared - welch,
        "tight_frame_distance": frame_distance,
        "coherence_bound": lowest_coherence,
        "coherence_ratio": float(statistics.coherence) / lowest_coherence if lowest_coherence > 0 else math.nan,
        "etf_variance_ratio": float(statistics.squared_overlap_variance)
        / float(metrics.random_squared_overlap_variance(m))
        if m > 1
        else math.nan,
    }
    report["analysis_seconds"] = time.perf_counter() - start
    return report


def analyze_path(path: str | Path, tensor: str | None = None, **options) -> dict:
    """:func:`load_matrix` then :func:`analyze_matrix`; adds ``path``, ``tensor``, ``load_seconds``."""
    start = time.perf_counter()
    head = load_matrix(path, tensor)
    loaded = time.perf_counter() - start
    report = analyze_matrix(head.values, **options)
    return {"path": str(head.source), "tensor": head.tensor, "load_seconds": loaded, **report}


# ---- token frequencies ---------------------------------------------------------------------------


def count_tokens(sequences: Iterable[Sequence[int]], vocab_size: int | None = None) -> np.ndarray:
    """Occurrences of every token id in ``sequences`` (iterables of ids): ``-> counts: [vocab_size]``.

    ``vocab_size`` defaults to the largest id + 1; ids outside ``[0, vocab_size)`` raise.
    """
    counts = np.zeros(0 if vocab_size is None else vocab_size, np.int64)
    for sequence in sequences:
        ids = np.asarray(sequence, np.int64).ravel()
        if ids.size == 0:
            continue
        if ids.min() < 0 or (vocab_size is not None and ids.max() >= vocab_size):
            raise ValueError(f"token ids must lie in [0, {vocab_size}); got {ids.min()}..{ids.max()}")
        if ids.max() >= counts.size:
            counts = np.pad(counts, (0, int(ids.max()) + 1 - counts.size))
        counts += np.bincount(ids, minlength=counts.size)
    return counts


def rank_frequency(counts) -> tuple[np.ndarray, np.ndarray]:
    """Ranks 1..k and relative frequencies f(r) of the k tokens seen, most frequent first."""
    counts = np.asarray(counts, np.float64).ravel()
    seen = np.sort(counts[counts > 0])[::-1]
    return np.arange(1, seen.size + 1, dtype=np.float64), seen / max(seen.sum(), 1.0)


def rank_frequency_fit(counts, min_rank: int = 1, max_rank: int | None = None) -> PowerLawFit:
    """Fit f(r) ∝ r^-a over ranks ``[min_rank, max_rank]`` (log-log least squares); ``exponent`` is a.

    a is Zipf's exponent (about 1 for natural text); the paper's feature-frequency exponent
    is the same a (p_i ∝ i^-a). The head and the tail of a finite corpus bend away from a
    power law, so the default of all ranks is a first look; narrow the range to fit the bulk.
    """
    ranks, frequencies = rank_frequency(counts)
    keep = (ranks >= min_rank) & (ranks <= (max_rank or ranks.size))
    return power_law_fit(ranks[keep], frequencies[keep])


def _tokenizer(path: str | Path):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError("--tokenizer", str(path), 'needs the tokenizers library: pip install "supjax[llm]"') from None
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise ConfigError("--tokenizer", str(path), "file not found; pass a tokenizer.json or the folder holding one")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception on bad JSON
        raise ConfigError("--tokenizer", str(path), f"not a tokenizers JSON file ({err})") from None
    # A saved tokenizer may carry the padding and truncation of its model's inputs (all-MiniLM
    # pads every encoding to 128 ids); either would distort the counts.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def count_tokens_in_files(tokenizer_path: str | Path, text_paths: Sequence[str | Path], lines_per_batch: int = 1024):
    """Token counts ``[vocab_size]`` of text files under a ``tokenizer.json`` (needs ``tokenizers``).

    Files are read line by line and encoded in batches without special tokens, as the paper's
    ``LLMs/token-freq-0.py`` does for each sample.
    """
    tokenizer = _tokenizer(tokenizer_path)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)

    def batches():
        for text_path in text_paths:
            if not Path(text_path).is_file():
                raise ConfigError("TEXT", str(text_path), "file not found; pass text files to count tokens in")
            with open(text_path, encoding="utf-8", errors="replace") as file:
                lines = []
                for line in file:
                    lines.append(line)
                    if len(lines) == lines_per_batch:
                        yield from (e.ids for e in tokenizer.encode_batch(lines, add_special_tokens=False))
                        lines = []
                if lines:
                    yield from (e.ids for e in tokenizer.encode_batch(lines, add_special_tokens=False))

    return count_tokens(batches(), vocab_size)


def plot_rank_frequency(counts, fit: PowerLawFit | None, out: str | Path) -> list[Path]:
    """Log-log plot of f(r) against r with the fitted power law; writes ``out``.png and ``out``.pdf."""
    from matplotlib.figure import Figure

    ranks, frequencies = rank_frequency(counts)
    figure = Figure(figsize=(4.0, 3.0), constrained_layout=True)
    axes = figure.add_subplot()
    axes.loglog(ranks, frequencies, ".", markersize=2, color="C0", label="tokens")
    if fit is not None and np.isfinite(fit.exponent):
        axes.loglog(ranks, fit.predict(ranks), "--", color="black", label=rf"$f \propto r^{{-{fit.exponent:.2f}}}$")
    axes.set_xlabel(r"rank $r$")
    axes.set_ylabel(r"frequency $f(r)$")
    axes.legend(frameon=False)
    return _save(figure, out)


def _save(figure, out: str | Path) -> list[Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_name(out.name + suffix) for suffix in (".png", ".pdf")]
    for path in paths:
        figure.savefig(path, dpi=200)
    return paths


# ---- width scaling ---------------------------------------------------------------------------------

WIDTH_TABLE_COLUMNS = ("family", "model", "width", "dataset", "loss")


def _table(name: str) -> pd.DataFrame:
    with resources.files("supjax").joinpath("tables", name).open("r") as file:
        return pd.read_csv(file)


def paper_widths() -> pd.DataFrame:
    """The 27 open models of the paper's width fit: family, model, width, n_layers, vocab_size, head_tensor.

    Widths are each model's hidden_size / d_model / n_embd (OPT, Qwen2.5, GPT-2, Pythia);
    ``head_tensor`` is the matrix the paper analysed. OPT-350m's head is 512 wide (a
    projection of its 1024-wide hidden state); like the paper, the table gives m = 1024.
    """
    return _table("llm_widths.csv")


def chinchilla_shapes() -> pd.DataFrame:
    """Hoffmann et al. 2022, Table A9: the 50 Chinchilla model shapes (params, d_model, n_layers, ...)."""
    return _table("chinchilla_shapes.csv")


def read_width_table(path: str | Path) -> pd.DataFrame:
    """A loss table with columns family, model, width, dataset, loss (one row per model and dataset).

    ``width`` may be left out (or empty) for models of :func:`paper_widths`, named by their
    Hugging Face id or its last part (``gpt2-xl``).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            "TABLE", str(path), "file not found; pass a CSV with columns " + ", ".join(WIDTH_TABLE_COLUMNS)
        )
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError("TABLE", str(path), f"not a readable CSV ({err})") from None
    if "width" not in table.columns and "model" in table.columns:
        table["width"] = np.nan
    missing = [c for c in WIDTH_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError("TABLE", str(path), f"missing columns {missing}; need {', '.join(WIDTH_TABLE_COLUMNS)}")
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
        raise ConfigError("TABLE", str(path), f"no width for models {unknown[:4]}; fill the width column")
    table["loss"] = pd.to_numeric(table["loss"], errors="coerce")
    if table["loss"].isna().any():
        raise ConfigError("TABLE", str(path), "the loss column has empty or non-numeric entries; fix those rows")
    return table


def width_groups(table: pd.DataFrame, group_by: Sequence[str] = ("family", "dataset")) -> np.ndarray:
    """Group labels ``"family/dataset"``: one offset B_g per model family and evaluation set."""
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


def plot_width_scaling(
    table: pd.DataFrame, fit: GroupedFit, out: str | Path, group_by: Sequence[str] = ("family", "dataset")
) -> list[Path]:
    """Log-log plot of L - B_g against m, one marker per family, with A / m^alpha; ``out``.png/.pdf."""
    from matplotlib.figure import Figure

    groups = width_groups(table, group_by)
    reduced = table["loss"].to_numpy(float) - np.array([fit.offsets[g] for g in groups])
    widths = table["width"].to_numpy(float)
    figure = Figure(figsize=(4.0, 3.0), constrained_layout=True)
    axes = figure.add_subplot()
    markers = "osv^Dp*hX"
    for index, family in enumerate(sorted(table["family"].astype(str).unique())):
        rows = (table["family"].astype(str) == family).to_numpy() & (reduced > 0)
        axes.scatter(widths[rows], reduced[rows], marker=markers[index % len(markers)], alpha=0.6, label=family)
    grid = np.geomspace(widths.min() / 1.2, widths.max() * 1.2, 100)
    label = rf"$A/m^{{\alpha}}$, $\alpha = {fit.exponent:.3f} \pm {fit.stderr:.2g}$"
    axes.plot(grid, fit.amplitude * grid**-fit.exponent, "--", color="black", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(r"model width $m$")
    axes.set_ylabel(r"$L - B_g$")
    axes.legend(frameon=False, fontsize="small")
    return _save(figure, out)


class ChinchillaFit(NamedTuple):
    """The parameter term of a Chinchilla fit, L(N, D) = E + A / N^alpha_N + B / D^beta."""

    irreducible_loss: float
    """E."""
    amplitude: float
    """A."""
    parameter_exponent: float
    """alpha_N."""
    source: str


CHINCHILLA_FITS = {
    "hoffmann2022": ChinchillaFit(1.69, 406.4, 0.34, "Hoffmann et al. 2022 (approach 3)"),
    "besiroglu2024": ChinchillaFit(1.8172, 482.01, 0.3478, "Besiroglu et al. 2024 (replication of approach 3)"),
}

# k in N ∝ m^k: the log-log slope of params on d_model over the 50 Chinchilla shapes of
# Hoffmann et al. Table A9 (see chinchilla_parameter_width_fit); 2.5226 to four digits.
CHINCHILLA_PARAMETER_WIDTH_EXPONENT = 2.52


def chinchilla_parameter_width_fit(shapes: pd.DataFrame | None = None) -> PowerLawFit:
    """Fit N = c m^k over model shapes (default :func:`chinchilla_shapes`); ``exponent`` is k.

    Fitted as 1/N = (1/c) m^-k with :func:`supjax.fit.power_law_fit`, so ``exponent`` = k,
    ``stderr`` its error and ``prefactor`` = 1/c. Table A9 gives k = 2.52: depth grows with
    width (n_layers ∝ m^0.67 across the table), so the non-embedding count 12 m^2 n_layers
    grows as m^2.67, and the 2 x 32 000 x m embedding parameters included in N pull the
    total down to m^2.52.
    """
    shapes = chinchilla_shapes() if shapes is None else shapes
    return power_law_fit(shapes["d_model"].to_numpy(float), 1.0 / shapes["params"].to_numpy(float))


def chinchilla_width_exponent(
    fit: str | ChinchillaFit = "besiroglu2024",
    parameter_width_exponent: float = CHINCHILLA_PARAMETER_WIDTH_EXPONENT,
) -> float:
    """The width exponent a Chinchilla fit implies: alpha_m = k alpha_N for N ∝ m^k.

    The parameter term A / N^alpha_N with N = c m^k is A c^-alpha_N / m^(k alpha_N), so the
    loss falls with width as m^-alpha_m, alpha_m = k alpha_N.

    How the paper's "about 0.88" arises: k = 2.52 is the slope of log N on log m over the 50
    model shapes Chinchilla trained (Table A9; :func:`chinchilla_parameter_width_fit`), and
    alpha_N = 0.3478 is the replication of Besiroglu et al. 2024 (E = 1.8172, A = 482.01):
    2.52 x 0.3478 = 0.876. With Hoffmann et al.'s own alpha_N = 0.34 (E = 1.69, A = 406.4)
    the same k gives 0.857. The idealised N ∝ m^3 (depth ∝ width, N = 12 m^2 n_layers) gives
    1.02 and 1.04; non-embedding parameters alone over Table A9 (k = 2.67) give 0.91 and 0.93.
    All lie near the 0.91 +- 0.04 that the paper fits to 27 open models.

    ``fit``: a key of :data:`CHINCHILLA_FITS` or a :class:`ChinchillaFit`;
    ``parameter_width_exponent``: k.
    """
    if isinstance(fit, str):
        if fit not in CHINCHILLA_FITS:
            raise ConfigError("fit", fit, f"unknown Chinchilla fit; known: {', '.join(CHINCHILLA_FITS)}")
        fit = CHINCHILLA_FITS[fit]
    return parameter_width_exponent * fit.parameter_exponent


# ---- command line ------------------------------------------------------------------------------------


def add_llm_commands(subparsers) -> None:
    """Add ``llm``, ``llm-fit`` and ``llm-tokens`` to an argparse subparsers object."""
    llm = subparsers.add_parser("llm", help="norms, overlaps and ETF-likeness of an LLM head or embedding matrix")
    llm.add_argument("path", help=".safetensors, model.safetensors.index.json, .npy, .npz, model folder or hub id")
    llm.add_argument("--tensor", help="tensor name (default: the LM head or tied input embedding)")
    llm.add_argument("--device", help="JAX platform to run on: cpu, gpu or tpu (default: the first device)")
    llm.add_argument("--block-size", type=int, help="rows per block of the overlap pass (default: 256 MiB slabs)")
    llm.add_argument("--sample-rows", type=int, help="estimate from this many random rows instead of all")
    llm.add_argument("--seed", type=int, default=0, help="seed of --sample-rows")
    llm.add_argument("--json", action="store_true", help="print one JSON object")

    fit = subparsers.add_parser("llm-fit", help="fit L = A / m^alpha + B_g to a table of LLM losses and plot it")
    fit.add_argument("table", help="CSV with columns family, model, width, dataset, loss")
    fit.add_argument("--out", help="plot path without suffix (default: TABLE-width-fit next to the table)")
    fit.add_argument("--no-plot", action="store_true", help="fit only")
    fit.add_argument("--group-by", default="family,dataset", help="columns whose combinations get one offset B_g")
    fit.add_argument("--json", action="store_true", help="print one JSON object")

    tokens = subparsers.add_parser("llm-tokens", help="token rank-frequency exponent of text files")
    tokens.add_argument("tokenizer", help='tokenizer.json (or its folder); needs pip install "supjax[llm]"')
    tokens.add_argument("text", nargs="+", help="text files")
    tokens.add_argument("--min-rank", type=int, default=1, help="first rank of the fit")
    tokens.add_argument("--max-rank", type=int, help="last rank of the fit (default: all seen tokens)")
    tokens.add_argument("--out", default="rank-frequency", help="plot path without suffix")
    tokens.add_argument("--counts", help="also save the counts as this .npy")
    tokens.add_argument("--json", action="store_true", help="print one JSON object")


def run_llm_command(args) -> int:
    """Run ``llm``, ``llm-fit`` or ``llm-tokens`` from parsed ``args``; print; return the exit code.

    Raises :class:`ConfigError` on bad input, for the caller to print as one line (exit 2).
    """
    if args.command == "llm":
        report = analyze_path(
            args.path,
            args.tensor,
            block_size=args.block_size,
            device=args.device,
            sample_rows=args.sample_rows,
            seed=args.seed,
        )
        _print(report, args.json, f"supjax llm: {report['tensor']} of {report['path']}")
        return 0
    if args.command == "llm-fit":
        return _run_fit(args)
    if args.command == "llm-tokens":
        return _run_tokens(args)
    raise ValueError(f"not an llm command: {args.command}")


def _run_fit(args) -> int:
    table = read_width_table(args.table)
    group_by = [c.strip() for c in args.group_by.split(",") if c.strip()]
    unknown = [c for c in group_by if c not in table.columns]
    if unknown or not group_by:
        raise ConfigError("--group-by", args.group_by, f"columns of the table: {', '.join(table.columns)}")
    fit = width_scaling_fit(table, group_by)
    if not np.isfinite(fit.exponent):
        raise ConfigError("TABLE", args.table, "too few points to fit: need 3+ widths and more rows than 2 + groups")
    report = {
        "exponent": fit.exponent,
        "stderr": fit.stderr,
        "amplitude": fit.amplitude,
        "r2": fit.r2,
        "n_points": fit.n_points,
        "n_groups": len(fit.offsets),
        "converged": fit.converged,
        "chinchilla_width_exponent": chinchilla_width_exponent(),
        "offsets": fit.offsets,
    }
    if not args.no_plot:
        out = args.out or str(Path(args.table).with_suffix("")) + "-width-fit"
        report["plots"] = [str(p) for p in plot_width_scaling(table, fit, out, group_by)]
    _print(report, args.json, "supjax llm-fit: L = A / m^alpha + B_g")
    return 0


def _run_tokens(args) -> int:
    counts = count_tokens_in_files(args.tokenizer, args.text)
    if args.min_rank < 1 or (args.max_rank is not None and args.max_rank <= args.min_rank):
        raise ConfigError("--min-rank", args.min_rank, "need 1 <= --min-rank < --max-rank")
    fit = rank_frequency_fit(counts, args.min_rank, args.max_rank)
    report = {
        "tokens": int(counts.sum()),
        "distinct_tokens": int(np.count_nonzero(counts)),
        "vocab_size": int(counts.size),
        "exponent": fit.exponent,
        "stderr": fit.stderr,
        "r2": fit.r2,
        "fitted_ranks": fit.n_points,
        "plots": [str(p) for p in plot_rank_frequency(counts, fit, args.out)],
    }
    if args.counts:
        np.save(args.counts, counts)
        report["counts"] = args.counts
    _print(report, args.json, "supjax llm-tokens: f(r) ∝ r^-exponent")
    return 0


def _plain(value):
    """JSON-safe: nan and inf become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _print(report: dict, as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps(_plain(report)))
        return
    print(title)
    width = max(len(k) for k in report)
    for key, value in report.items():
        if isinstance(value, dict):
            print(f"  {key}:")
            for inner, number in value.items():
                print(f"    {inner:<{width}} {number:.4g}")
        else:
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            print(f"  {key:<{width}} {text}")
