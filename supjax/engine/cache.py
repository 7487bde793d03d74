"""The persistent compilation cache: a program compiled once is read back by every later process.

On by default, in ``$XDG_CACHE_HOME/supjax/xla`` (``~/.cache/supjax/xla``). Every program supjax
compiles is kept, whatever its compile time or size (a sweep's chunk takes seconds to compile
on a CPU and milliseconds to read back), up to ``SUPJAX_CACHE_MAX_BYTES`` (default 2 GB; the
oldest read entries go first). ``SUPJAX_CACHE_DIR=DIR`` moves it, ``SUPJAX_CACHE_DIR=off`` turns it
off. A cache directory set through JAX itself (``JAX_COMPILATION_CACHE_DIR`` or
``jax.config.update("jax_compilation_cache_dir", ...)``) is left as it is. A program read from the
cache is the program a fresh compile makes: it computes the same bits.
"""

from __future__ import annotations

import os
from pathlib import Path

OFF = ("", "0", "off", "false", "no", "none")
DEFAULT_MAX_BYTES = 2 * 10**9


def directory() -> Path | None:
    """Where supjax keeps compiled programs, or None when turned off (``SUPJAX_CACHE_DIR``)."""
    chosen = os.environ.get("SUPJAX_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in OFF else Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "supjax" / "xla"


def enable() -> Path | None:
    """Point JAX's persistent compilation cache at :func:`directory` (once, before the first compile);
    returns the directory in use (JAX's own setting where one was made), or None."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    where = directory()
    if where is None:
        return None
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # an unwritable cache only costs compile time
    jax.config.update("jax_compilation_cache_dir", str(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    max_bytes = os.environ.get("SUPJAX_CACHE_MAX_BYTES", "")
    jax.config.update("jax_compilation_cache_max_size", int(max_bytes) if max_bytes.isdigit() else DEFAULT_MAX_BYTES)
    return where
