"""supjax: a JAX engine for superposition and neural scaling (Liu, Liu, Gore 2025).

The training side (``run_sweep``) loads on first use, so ``import supjax.metrics`` or
``supjax.load_results`` never pull in the trainer.
"""

from supjax.config import SweepSpec
from supjax.errors import (
    CheckpointError,
    ConfigError,
    ConfigFileError,
    InputFileError,
    Interrupted,
    OptionError,
    RunDirError,
    SupjaxError,
    WeightFileError,
)
from supjax.results import Run, load_run

__version__ = "0.1.0"
__all__ = [
    "CheckpointError",
    "ConfigError",
    "ConfigFileError",
    "InputFileError",
    "Interrupted",
    "OptionError",
    "Run",
    "RunDirError",
    "SupjaxError",
    "SweepSpec",
    "WeightFileError",
    "analyze",
    "load_results",
    "load_run",
    "run_sweep",
]


def __getattr__(name):
    if name == "run_sweep":
        from supjax.sweep import run_sweep

        return run_sweep
    if name in ("analyze", "load_results"):
        from supjax import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'supjax' has no attribute {name!r}")
