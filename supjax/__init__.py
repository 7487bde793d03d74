"""supjax: a JAX engine for superposition and neural scaling (Liu, Liu, Gore 2025)."""

from supjax.config import ConfigError, SweepSpec
from supjax.results import Run, load_run
from supjax.sweep import run_sweep

__version__ = "0.1.0"
__all__ = ["ConfigError", "Run", "SweepSpec", "load_run", "run_sweep"]
