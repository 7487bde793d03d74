"""Models in the local Hugging Face cache, found by ``huggingface_hub`` (the optional ``llm`` extra).

supjax reads models that are already on disk and downloads nothing: fetch one first with
``hf download ORG/NAME`` (or ``huggingface_hub.snapshot_download``), then pass its repo id, its
cache folder ``models--ORG--NAME`` or any file in it. The lookup is
``snapshot_download(repo_id, local_files_only=True)``, which resolves ``refs/main`` to its
snapshot folder without touching the network.
"""

from __future__ import annotations

from pathlib import Path

from supjax.errors import WeightFileError

CACHE_FOLDER_PREFIX = "models--"


def looks_like_repo_id(path: str | Path) -> bool:
    """``ORG/NAME``: one slash, no leading ``.`` or ``/`` (a relative path that does not exist reads the same)."""
    text = str(path)
    return text.count("/") == 1 and not text.startswith((".", "/")) and not text.endswith("/")


def cached_snapshot(repo_id: str, cache_dir: str | Path | None = None) -> Path:
    """The snapshot folder of ``repo_id`` in the local hub cache (default: huggingface_hub's own).

    Raises :class:`WeightFileError` when huggingface_hub is missing, the id is malformed, or
    the model is not in the cache.
    """
    try:
        import huggingface_hub
        from huggingface_hub import constants
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
    except ImportError:
        raise WeightFileError(
            repo_id, 'is not a file here; reading hub models needs huggingface_hub: pip install "supjax[llm]"'
        ) from None
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True))
    except HFValidationError:
        raise WeightFileError(repo_id, "no such file, and not a valid hub repo id ORG/NAME; check the path") from None
    except LocalEntryNotFoundError:
        where = cache_dir or constants.HF_HUB_CACHE
        raise WeightFileError(
            repo_id,
            f"no such file, nor such a model in the local hub cache {where}; download it: hf download {repo_id}",
        ) from None


def cache_folder_snapshot(folder: str | Path) -> Path:
    """The snapshot of a hub-cache repo folder ``.../models--ORG--NAME`` (the one ``refs/main`` names)."""
    folder = Path(folder)
    if not folder.name.startswith(CACHE_FOLDER_PREFIX):
        raise WeightFileError(
            folder, f"has snapshots/ but is not named {CACHE_FOLDER_PREFIX}ORG--NAME; pass a snapshot"
        )
    repo_id = folder.name.removeprefix(CACHE_FOLDER_PREFIX).replace("--", "/")
    return cached_snapshot(repo_id, cache_dir=folder.parent)
