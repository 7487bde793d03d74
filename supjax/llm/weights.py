"""Finding and loading an LM head: one 2-D matrix out of a weight file, folder or hub cache entry.

:func:`load_matrix` takes a ``.safetensors`` file, a sharded ``model.safetensors.index.json``,
a ``.npy``, a ``.npz``, a model folder, a hub-cache folder or a repo id already downloaded
(:mod:`supjax.llm.hub`), and returns the LM head (or the tied input embedding) without
copying it into memory where the format allows: safetensors and ``.npy`` are memory-mapped,
half precision stays half precision. PyTorch pickles (``.bin``) need torch and are refused.

Every problem with the file raises :class:`supjax.errors.WeightFileError`: the path, what
is wrong, the fix.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from supjax.errors import OptionError, WeightFileError
from supjax.llm import hub
from supjax.llm.safetensors_io import load_safetensors_tensor, missing_tensor, read_safetensors_header

INDEX_FILE = "model.safetensors.index.json"

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
FORMATS = "a .safetensors, index .json, .npy, .npz, model folder or hub repo id"


class HeadMatrix(NamedTuple):
    """A loaded matrix: ``values: [n, m]`` (often a read-only memmap), its tensor name and file."""

    values: np.ndarray
    tensor: str
    source: Path


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


def resolve_weights_path(path: str | Path) -> Path:
    """A weight file, index or model folder for ``path``.

    ``path`` may be a file, a model folder, a hub-cache folder (``models--ORG--NAME``, resolved
    to its snapshot) or a repo id ``ORG/NAME`` already in the local hub cache; nothing is
    downloaded.
    """
    given = Path(path)
    if given.is_dir() and (given / "snapshots").is_dir():
        return hub.cache_folder_snapshot(given)
    if given.exists():
        return given
    if hub.looks_like_repo_id(path):
        return hub.cached_snapshot(str(path))
    raise WeightFileError(given, f"not found; pass {FORMATS}")


def _folder_tensors(folder: Path) -> dict[str, Path]:
    """``{tensor name: safetensors file}`` of a model folder (an index, or every .safetensors)."""
    if (folder / INDEX_FILE).is_file():
        return _index_tensors(folder / INDEX_FILE)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        if list(folder.glob("*.bin")) or list(folder.glob("*.pt")):
            fix = "holds only PyTorch pickles (.bin/.pt), which need torch; convert the model to safetensors or .npy"
        else:
            fix = "holds no .safetensors or index .json; pass the weight file itself"
        raise WeightFileError(folder, fix)
    return {name: file for file in files for name in read_safetensors_header(file)[0]}


def _index_tensors(index: Path) -> dict[str, Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: index.parent / shard for name, shard in weight_map.items()}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise WeightFileError(index, "is not a safetensors index (it needs a 'weight_map' object)") from None


def _choose_tensor(path: Path, names: Sequence[str], tensor: str | None, shapes: dict | None = None) -> str:
    if tensor is not None:
        if tensor not in names:
            raise missing_tensor(path, tensor, names)
        return tensor
    found = find_head_tensor(names)
    if found is None:
        matrices = [n for n in names if shapes is None or len(shapes[n]) == 2]
        raise WeightFileError(
            path, f"has no LM head or embedding by a usual name; pick one of {matrices[:6]} with --tensor"
        )
    return found


def load_matrix(path: str | Path, tensor: str | None = None) -> HeadMatrix:
    """Load one 2-D floating-point matrix without copying it into memory where the format allows.

    ``path``: see :func:`resolve_weights_path`. ``tensor``: the tensor's name; by default the
    LM head or tied input embedding, found by :func:`find_head_tensor`.
    """
    resolved = resolve_weights_path(path)
    if resolved.is_dir():
        location = _folder_tensors(resolved)
        name = _choose_tensor(resolved, list(location), tensor)
        values, source = load_safetensors_tensor(location[name], name), location[name]
    elif resolved.name.endswith(".json"):
        location = _index_tensors(resolved)
        name = _choose_tensor(resolved, list(location), tensor)
        if not location[name].is_file():
            raise WeightFileError(location[name], f"is missing (the shard of tensor '{name}'); download it")
        values, source = load_safetensors_tensor(location[name], name), location[name]
    elif resolved.suffix == ".npy":
        if tensor is not None:
            raise OptionError("--tensor", tensor, f"{resolved} holds a single array; drop --tensor")
        values, name, source = _load_npy(resolved), resolved.stem, resolved
    elif resolved.suffix == ".npz":
        values, name, source = (*_load_npz(resolved, tensor), resolved)
    elif resolved.suffix == ".safetensors":
        header, _ = read_safetensors_header(resolved)
        name = _choose_tensor(resolved, list(header), tensor, {n: e["shape"] for n, e in header.items()})
        values, source = load_safetensors_tensor(resolved, name), resolved
    elif resolved.suffix in (".bin", ".pt", ".pth", ".ckpt"):
        raise WeightFileError(
            resolved, "is a PyTorch pickle, which needs torch to read; convert it to safetensors or .npy"
        )
    else:
        raise WeightFileError(resolved, f"has an unknown format; pass {FORMATS}")
    return HeadMatrix(_check_matrix(values, name, source), name, source)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise WeightFileError(path, f"is not a readable .npy (truncated or corrupt: {err}); re-create it") from None


def _load_npz(path: Path, tensor: str | None) -> tuple[np.ndarray, str]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            name = names[0] if tensor is None and len(names) == 1 else _choose_tensor(path, names, tensor)
            return archive[name], name
    except WeightFileError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise WeightFileError(path, f"is not a readable .npz (truncated or corrupt: {err}); re-create it") from None


def _check_matrix(values: np.ndarray, name: str, source: Path) -> np.ndarray:
    if values.ndim != 2:
        raise WeightFileError(
            source, f"tensor '{name}' has shape {tuple(values.shape)}; need a 2-D [vocab, width] matrix (--tensor)"
        )
    if not jnp.issubdtype(values.dtype, jnp.floating):  # numpy's own test misses ml_dtypes' bfloat16
        raise WeightFileError(source, f"tensor '{name}' has dtype {values.dtype}; need a floating-point weight matrix")
    if values.shape[0] < 2 or values.shape[1] < 1:
        raise WeightFileError(
            source, f"tensor '{name}' has shape {tuple(values.shape)}; need at least 2 rows and 1 column"
        )
    return values
