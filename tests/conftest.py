import atexit
import logging
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

# One XLA compilation cache for the whole test session, subprocesses included (they inherit the
# environment): many tests compile the same small programs, in this process and in the CLI
# processes they start. It lives in a fresh directory, so no run of the suite reads another's
# programs; JAX's compile log (see CompileLog) is written before the cache is consulted, so the
# recompilation counts are unchanged.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="supjax-tests-xla-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ.update(
        JAX_COMPILATION_CACHE_DIR=_cache,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
    )


def sweep_cli(*args):
    """``supjax sweep ARGS --quiet`` in a subprocess (stdout and stderr piped, text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "supjax.cli", "sweep", *map(str, args), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class CompileLog:
    """Counts XLA compilations from JAX's own compile log (``jax.log_compiles``)."""

    def __init__(self, caplog):
        self.caplog = caplog

    def __enter__(self):
        import jax

        self.caplog.clear()
        self.caplog.set_level(logging.WARNING)
        self._log = jax.log_compiles()
        self._log.__enter__()
        return self

    def __exit__(self, *exc):
        self._log.__exit__(*exc)
        self.messages = [r.getMessage() for r in self.caplog.records]

    def count(self, name: str = "") -> int:
        """Programs compiled in the block; with ``name``, those of the jitted function ``name``."""
        prefix = f"Compiling jit({name})" if name else "Compiling "
        return sum(m.startswith(prefix) for m in self.messages)


@pytest.fixture
def compile_log(caplog):
    """``with compile_log: ...`` then ``compile_log.count("train_chunk")``."""
    return CompileLog(caplog)


@pytest.fixture
def tiny_spec():
    """A sweep small enough to train in a second or two."""
    from supjax import SweepSpec

    return SweepSpec(
        n=64,
        batch_size=128,
        widths=(4, 8),
        weight_decays=(-1.0, 1.0),
        alphas=(1.0,),
        steps=200,
        warmup_steps=20,
        log_every=10,
        progress=False,
    )


@pytest.fixture
def sigterm_after_a_chunk(monkeypatch):
    """Every compiled chunk of the engine sends this process SIGTERM once it returns, as a scheduler
    would in the middle of a run; ``monkeypatch.undo()`` ends it."""
    import signal

    from supjax.engine import program

    train_chunk = program.train_chunk

    def signalled(*args, **kwargs):
        out = train_chunk(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(program, "train_chunk", signalled)
    return monkeypatch
