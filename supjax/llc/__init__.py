"""The local learning coefficient (LLC) of toy models: the engine's third wing.

* :mod:`supjax.llc.sgld`: devinterp's SGLD estimator for any loss (its conventions quoted);
* :class:`LlcSpec` and :func:`run_llc`: chains at every selected toy model of a run (final weights or
  snapshots) for every setting of a calibration grid, in one compiled program;
* :class:`LlcRun`: lambda_hat per chain and per w* and setting, with the diagnostics.

Example::

    from supjax import llc

    run = llc.run_llc("runs/phase", llc.LlcSpec(step_sizes=(1e-4, 3e-4), chains=4, draws=400), out="runs/llc")
    summary = run.summary()  # llc_mean, llc_std, acceptance, below_fraction, rising, passes per w* and setting
"""

from supjax.llc.results import LlcRun, is_llc_run, load_llc_run
from supjax.llc.sgld import default_nbeta, estimate
from supjax.llc.spec import LlcSpec
from supjax.llc.sweep import run_llc

__all__ = ["LlcRun", "LlcSpec", "default_nbeta", "estimate", "is_llc_run", "load_llc_run", "run_llc"]
