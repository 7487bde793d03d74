"""Token frequencies: counts of token ids, the rank-frequency curve and its Zipf exponent.

The paper's feature frequencies p_i ∝ i^-a have a counterpart in text: the frequency of the
token of rank r falls as r^-a (Zipf, a about 1). Counting the tokens of text files needs a
``tokenizer.json`` and the optional ``tokenizers`` library (``pip install "supjax[llm]"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from supjax.errors import InputFileError
from supjax.fit import PowerLawFit, power_law_fit


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
    if min_rank < 1 or (max_rank is not None and max_rank <= min_rank):
        raise ValueError(f"need 1 <= min_rank < max_rank; got {min_rank} and {max_rank}")
    ranks, frequencies = rank_frequency(counts)
    keep = (ranks >= min_rank) & (ranks <= (max_rank or ranks.size))
    return power_law_fit(ranks[keep], frequencies[keep])


def load_tokenizer(path: str | Path):
    """A ``tokenizers.Tokenizer`` from a tokenizer.json (or its folder), without padding or truncation."""
    path = Path(path)
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise InputFileError(
            path, 'reading a tokenizer needs the tokenizers library: pip install "supjax[llm]"'
        ) from None
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise InputFileError(path, "not found; pass a tokenizer.json or the folder holding one")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception on bad JSON
        raise InputFileError(path, f"is not a tokenizers JSON file ({err}); pass a tokenizer.json") from None
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
    tokenizer = load_tokenizer(tokenizer_path)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    missing = [str(p) for p in text_paths if not Path(p).is_file()]
    if missing:
        raise InputFileError(missing[0], "not found; pass text files to count tokens in")

    def batches():
        for text_path in text_paths:
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
