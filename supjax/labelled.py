"""A run as labelled arrays: ``Run.to_xarray()`` returns an xarray Dataset.

One dimension per grid axis that varies, in the order the model table nests them (``m``,
``distribution``, ``activation_density``, ``seed``, ``importance``, ``weight_decay``; an axis with
one value becomes a scalar coordinate), and a ``step`` dimension. So a phase diagram is a
``.sel``, a ``.mean`` and a ``.plot``::

    ds = supjax.load_run("runs/phase").to_xarray()
    ds.final_loss.mean("seed").sel(m=32).plot()              # weight decay (x) by distribution (y)
    ds.loss.sel(weight_decay=-1.0).mean("seed").plot.line(x="step", hue="m")

Variables: ``loss`` [grid, step] (the logged window means), ``final_loss``, ``diverged_at``,
``expected_active`` [grid]; with ``summary.csv``, every column of the summary [grid]; with
``trajectory.csv`` (``supjax analyze RUN --over-time``), every metric at every snapshot
[grid, step], NaN at the steps between snapshots (``to_xarray(steps="snapshots")`` keeps
only the snapshot steps, where every variable is defined). Weights stay out.

xarray is an optional extra (``pip install "supjax[xarray]"``): a pure-Python package, but a
large one that the engine and most analyses do not need.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from supjax.config import SweepSpec
from supjax.engine import table
from supjax.errors import SupjaxError

GRID = table.axes(SweepSpec)  # the grid axes' columns: m, distribution, activation_density, seed, importance, ...


def to_xarray(run, path: str | Path | None = None, steps: str = "all"):
    """The :class:`supjax.results.Run` ``run`` as an ``xarray.Dataset`` (see the module docstring).

    ``path``: the run directory, for its ``summary.csv`` and ``trajectory.csv`` (default: none
    read); ``steps``: ``"all"`` logged steps, or ``"snapshots"`` only.
    """
    try:
        import xarray as xr
    except ImportError:
        raise SupjaxError('Run.to_xarray needs xarray: pip install "supjax[xarray]"') from None
    if steps not in ("all", "snapshots"):
        raise ValueError(f"steps must be 'all' or 'snapshots', not {steps!r}")
    models = run.table()
    dims = [c for c in GRID if c in models and models[c].nunique() > 1] or ["m"]  # one model: still by width
    scalars = {c: models[c].iloc[0] for c in GRID if c in models and c not in dims}
    log_steps = run.spec.log_every * np.arange(1, run.losses.shape[1] + 1)
    rows = np.repeat(np.arange(len(models)), len(log_steps))
    curves = models[dims].iloc[rows].assign(step=np.tile(log_steps, len(models)), loss=run.losses.ravel())
    frames = [curves.set_index([*dims, "step"])]

    derived = [c.name for c in SweepSpec.DERIVED if c.name != "alpha"]  # alpha: a coordinate of distribution
    per_model = models[[*dims, "index", "final_loss", *derived, "diverged_at"]]
    summary = _table(path, "summary.csv")
    if summary is not None:
        extra = [c for c in summary.columns if c not in per_model.columns and c not in (*GRID, "alpha")]
        per_model = per_model.merge(summary[["index", *extra]], on="index")
    over_time = _table(path, "trajectory.csv")
    snapshot_steps = np.array([], int)
    if over_time is not None:
        # The summary's metrics at every snapshot (on the step axis, replacing their final
        # values, which are the last snapshot's); the loss there as snapshot_loss.
        metrics = [c for c in over_time.columns if c not in models.columns and c != "step" and is_numeric(over_time[c])]
        timed = over_time[["index", "step", *metrics]].assign(snapshot_loss=over_time.final_loss)
        timed = models[["index", *dims]].merge(timed, on="index").drop(columns="index")
        frames.append(timed.set_index([*dims, "step"]))
        per_model = per_model.drop(columns=[c for c in metrics if c in per_model.columns])
        snapshot_steps = np.sort(over_time.step.unique())
    frames.append(per_model.set_index(dims))

    dataset = xr.merge([frame.to_xarray() for frame in frames], join="outer", compat="no_conflicts")
    if "distribution" in dims:
        alpha = models.groupby("distribution").alpha.first()
        dataset = dataset.assign_coords(alpha=("distribution", alpha.reindex(dataset.distribution.values).to_numpy()))
    dataset = dataset.assign_coords(scalars).assign_coords(is_snapshot=("step", np.isin(dataset.step, snapshot_steps)))
    if steps == "snapshots":
        dataset = dataset.sel(step=snapshot_steps)
    dataset.attrs.update(n=run.spec.n, steps=run.spec.steps, log_every=run.spec.log_every)
    return dataset


def _table(path, name: str) -> pd.DataFrame | None:
    if path is None or not (Path(path) / name).is_file():
        return None
    return pd.read_csv(Path(path) / name)


def is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
