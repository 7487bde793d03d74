"""LLC run directories: the estimates, their diagnostics, and how to read them back.

An LLC run directory holds

* ``llc.toml``: the :class:`~supjax.llc.spec.LlcSpec` (what marks it as an LLC run); ``toy_run.json``;
* ``chains.csv``: one row per chain (the w*: toy model and step, its grid values and parameter count
  d; the chain and its setting: n beta, gamma_loc, eps; the loss convention);
* ``checkpoints/STEP``: orbax checkpoints of every chain; ``traces.npz``: ``losses``, ``reference``,
  ``acceptance``, ``below`` as ``[chains, draws // log_every]`` window means;
* ``llc.csv``: per chain, lambda_hat and its diagnostics; ``llc_summary.csv``: per w* and setting,
  the chains' mean and spread of lambda_hat and whether the setting passes (:data:`PASSES`).

The diagnostics of a chain: ``acceptance`` (mean MALA acceptance), ``diverged_at`` (the draw its loss
or position stopped being finite, -1 if never), ``below_fraction`` (the share of draws whose batch
loss fell below L(w*) on the same batch: w* is not a local minimum for that chain, or the chain
left its basin) and ``rising`` (the loss trace still rising at the end: the last eighth of the draws
above the fifth and sixth eighths by more than twice the spread of the eighths' means, so the chain
has not settled). A setting passes at a w* when every chain is finite and settled, the mean
acceptance is at least :data:`MIN_ACCEPTANCE`, at most :data:`MAX_BELOW` of draws fall below L(w*),
and lambda_hat is positive: the calibration a researcher runs over eps x gamma_loc before trusting
lambda_hat.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from supjax.engine import rundir
from supjax.errors import RunDirError

MIN_ACCEPTANCE = 0.9  # devinterp's guidance: a well-tuned chain's MALA acceptance is about 0.9 or more
MAX_BELOW = 0.2
PASSES = "finite, settled, acceptance >= 0.9, at most 20% of draws below L(w*), lambda_hat > 0"
SETTING = ["model", "step", "final", "nbeta", "localization", "step_size"]


@dataclass
class LlcRun:
    """A finished LLC run: the spec, the chain table and the traces."""

    spec: object
    chains: list[dict]  # the chain table, in chain order
    traces: dict[str, np.ndarray]  # losses, reference, acceptance, below: [chains, draws // log_every]
    info: dict = field(default_factory=dict)
    path: Path | None = None

    def table(self) -> pd.DataFrame:
        """One row per chain: its chain-table row, lambda_hat and its diagnostics."""
        return chain_table(self.chains, self.traces, self.spec.burn_in // self.spec.log_every)

    def summary(self) -> pd.DataFrame:
        """One row per w* and setting: lambda_hat over the chains (mean, std) and whether the setting passes."""
        return summarize(self.table())


def chain_table(chains: list[dict], traces: dict[str, np.ndarray], burn_in_windows: int) -> pd.DataFrame:
    """lambda_hat = n beta (mean L(w_t) - mean L(w*)) per chain after the burn-in, and the diagnostics."""
    frame = pd.DataFrame(chains)
    losses, reference = traces["losses"][:, burn_in_windows:], traces["reference"][:, burn_in_windows:]
    frame["llc"] = frame["nbeta"].to_numpy() * (np.mean(losses, axis=1) - np.mean(reference, axis=1))
    frame["mean_loss"] = np.mean(losses, axis=1)
    frame["loss_at_w_star"] = np.mean(reference, axis=1)
    frame["acceptance"] = np.mean(traces["acceptance"], axis=1)
    frame["below_fraction"] = np.mean(traces["below"], axis=1)
    frame["finite"] = np.all(np.isfinite(traces["losses"]), axis=1)
    frame["rising"] = [_rising(trace) for trace in traces["losses"]]
    return frame


def _rising(trace: np.ndarray) -> bool:
    """The last eighth of ``trace`` above the fifth and sixth eighths by more than twice the eighths' spread."""
    if len(trace) < 16 or not np.all(np.isfinite(trace)):
        return False
    eighths = np.array([part.mean() for part in np.array_split(trace, 8)])
    return bool(eighths[-1] - eighths[4:6].mean() > 2 * np.std(eighths[4:]))


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per w* and setting: the chains' lambda_hat mean and std, the diagnostics, and ``passes``."""
    keys = [*SETTING, "m", "weight_decay", "distribution", "alpha", "activation_density", "seed", "parameters"]
    grouped = table.groupby(keys, sort=False, dropna=False)
    out = grouped.agg(
        llc_mean=("llc", "mean"),
        llc_std=("llc", "std"),
        chains=("llc", "size"),
        acceptance=("acceptance", "mean"),
        below_fraction=("below_fraction", "mean"),
        finite=("finite", "all"),
        rising=("rising", "any"),
        loss_at_w_star=("loss_at_w_star", "mean"),
    ).reset_index()
    out["passes"] = (
        out.finite
        & ~out.rising
        & (out.acceptance >= MIN_ACCEPTANCE)
        & (out.below_fraction <= MAX_BELOW)
        & (out.llc_mean > 0)
    )
    return out


def write_tables(run: LlcRun) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``llc.csv`` and ``llc_summary.csv`` into the run's directory."""
    table, summary = run.table(), run.summary()
    rundir.save_atomic(run.path / "llc.csv", lambda f: table.to_csv(f, index=False), mode="w")
    rundir.save_atomic(run.path / "llc_summary.csv", lambda f: summary.to_csv(f, index=False), mode="w")
    return table, summary


def is_llc_run(path: str | Path) -> bool:
    return (Path(path) / "llc.toml").is_file()


def load_llc_run(path: str | Path) -> LlcRun:
    """Read a finished LLC run directory written by ``supjax llc`` or :func:`supjax.llc.run_llc`."""
    from supjax.llc.spec import LlcSpec

    path = Path(path)
    if not path.is_dir():
        raise RunDirError(path, "does not exist; pass an LLC run directory written by `supjax llc`")
    for name in ("llc.toml", "chains.csv", "traces.npz"):
        if not (path / name).is_file():
            raise RunDirError(path, f"has no {name}; pass a finished LLC run written by `supjax llc`")
    rundir.verify(path, "write them again with `supjax llc TOY_RUN --config DIR/llc.toml --out DIR --resume`")
    spec = LlcSpec.saved(path / "llc.toml")
    try:
        chains = pd.read_csv(path / "chains.csv").to_dict("records")
        with np.load(path / "traces.npz") as saved:
            traces = {name: saved[name] for name in saved.files}
        info = json.loads((path / "run.json").read_text()) if (path / "run.json").is_file() else {}
    except (ValueError, KeyError, OSError) as err:
        raise RunDirError(path, f"has a damaged file ({err}); estimate it again with --resume") from None
    expected = (len(chains), spec.draws // spec.log_every)
    if any(trace.shape != expected for trace in traces.values()):
        raise RunDirError(path, "its traces do not match its llc.toml; estimate it again with --resume")
    return LlcRun(spec, chains, traces, info, path)
