"""The safetensors format, read and written with numpy: memory-mapped tensors, bfloat16 included.

Why not the ``safetensors`` package: its numpy and JAX backends cannot return bfloat16 (numpy
has no such dtype; ``safe_open(path, "np").get_tensor`` raises ``data type 'bfloat16' not
understood``, safetensors issue #598, fix pending in PR #382), and they copy a whole tensor
into memory. Most LM heads are stored in bfloat16, and a 152 000 x 8192 head is 2.5 GB; this
reader returns an ``np.memmap`` of :mod:`ml_dtypes` bfloat16 instead, so the analysis reads
only the rows it touches. It checks every header entry against the file size first, so a
truncated download is named before anything is mapped.

Format: 8-byte little-endian header length, a JSON header ``{name: {dtype, shape,
data_offsets: [begin, end]}, optional "__metadata__"}``, then the raw little-endian bytes,
offsets counted from the end of the header.

A bad file raises :class:`supjax.errors.WeightFileError` (path, what is wrong, the fix).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable
from pathlib import Path

import ml_dtypes
import numpy as np

from supjax.errors import WeightFileError

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
            raise WeightFileError(path, "is not a safetensors file (no valid header length); pass a .safetensors")
        if 8 + header_bytes > size:
            raise WeightFileError(
                path, f"is truncated ({size} bytes, its header alone needs {8 + header_bytes}); re-download it"
            )
        raw = file.read(header_bytes)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WeightFileError(path, "is not a safetensors file (its header is not JSON); pass a .safetensors") from None
    if not isinstance(header, dict):
        raise WeightFileError(path, "is not a safetensors file (its header is not a JSON object)")
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
        raise WeightFileError(path, f"tensor '{name}' has a malformed header entry; re-download it") from None
    if code in SAFETENSORS_DTYPES and end - begin != math.prod(shape) * SAFETENSORS_DTYPES[code].itemsize:
        raise WeightFileError(
            path, f"tensor '{name}': byte range does not match shape {shape} x {code}; re-download it"
        )
    if end > data_bytes:
        raise WeightFileError(
            path,
            f"is truncated: tensor '{name}' ends at data byte {end} but the file holds {data_bytes}; re-download it",
        )


def load_safetensors_tensor(path: str | Path, name: str) -> np.ndarray:
    """One tensor of a safetensors file as a read-only ``np.memmap`` (nothing is read until used).

    bfloat16 and float8 come back as :mod:`ml_dtypes` arrays.
    """
    path = Path(path)
    header, data_start = read_safetensors_header(path)
    if name not in header:
        raise missing_tensor(path, name, header)
    entry = header[name]
    if entry["dtype"] not in SAFETENSORS_DTYPES:
        raise WeightFileError(
            path,
            f"tensor '{name}' has dtype {entry['dtype']}, not supported; known: {', '.join(SAFETENSORS_DTYPES)}",
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


def missing_tensor(path: Path, name: str, names: Iterable[str]) -> WeightFileError:
    """The error for a tensor name that ``path`` lacks, with the closest names it has."""
    names = list(names)
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"{len(names)} tensors, e.g. {names[:3]}"
    return WeightFileError(path, f"has no tensor '{name}'; {hint}")
