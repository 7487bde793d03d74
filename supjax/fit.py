"""Scaling-law fits of loss against width m, with their errors.

* :func:`power_law_fit`: ordinary least squares of log L on log m, L = A m^-alpha_m (numpy).
* :func:`bootstrap_exponent`: a confidence interval for alpha_m by resampling whole seeds
  (:func:`scipy.stats.bootstrap`).
* :func:`grouped_power_law_fit`: L = A / m^alpha + B_g with one A and one alpha shared by all
  groups and one offset B_g per group (the paper's LLM fit), by nonlinear least squares
  (:func:`scipy.optimize.least_squares`, Levenberg-Marquardt).
* :func:`regime_label`: 'strong' / 'weak' / 'mixed' from the represented fraction phi_{1/2}.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

# ---- log-log power law -------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLawFit:
    """L = prefactor * m^-exponent, fitted as a straight line in log-log coordinates.

    ``exponent`` is the model exponent alpha_m (minus the slope); ``stderr`` the standard error
    of the slope (nan with fewer than 3 points); ``r2`` the coefficient of determination of the
    log-log fit; ``n_points`` the number of points used. Fields are nan when fewer than two
    points (or fewer than two distinct widths) remain.
    """

    exponent: float
    stderr: float
    prefactor: float
    r2: float
    n_points: int

    def predict(self, m) -> np.ndarray:
        """The fitted loss prefactor * m^-exponent."""
        return self.prefactor * np.asarray(m, np.float64) ** -self.exponent


def _usable_points(m, loss) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(m, loss, keep)`` as float64 vectors; ``keep`` marks points with finite positive m and loss."""
    m = np.asarray(m, np.float64).ravel()
    loss = np.asarray(loss, np.float64).ravel()
    if m.shape != loss.shape:
        raise ValueError(f"m and loss must have the same length; got {m.size} and {loss.size}")
    keep = np.isfinite(m) & (m > 0) & np.isfinite(loss) & (loss > 0)
    return m, loss, keep


def _weighted_slopes(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Least-squares slopes of y on x for each row of ``weights: [fits, points]`` (nan if x is constant)."""
    total = weights.sum(axis=-1, keepdims=True)
    x_centred = x - (weights * x).sum(axis=-1, keepdims=True) / total
    y_centred = y - (weights * y).sum(axis=-1, keepdims=True) / total
    spread = (weights * x_centred**2).sum(axis=-1)
    covariance = (weights * x_centred * y_centred).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 0, covariance / spread, np.nan)


def power_law_fit(m, loss) -> PowerLawFit:
    """Fit L = A m^-alpha_m by ordinary least squares of log L on log m.

    ``m`` and ``loss`` are equal-length sequences (one point per trained model; repeated widths,
    e.g. several seeds, are fine). Points with a non-positive or non-finite loss (a diverged
    run, or a loss that has no logarithm) or width are dropped before fitting.
    """
    m, loss, keep = _usable_points(m, loss)
    x, y = np.log(m[keep]), np.log(loss[keep])
    n_points = int(x.size)
    nan = float("nan")
    if n_points < 2 or np.ptp(x) == 0:
        return PowerLawFit(nan, nan, nan, nan, n_points)
    x_centred, y_centred = x - x.mean(), y - y.mean()
    spread = float(x_centred @ x_centred)
    slope = float(x_centred @ y_centred) / spread
    intercept = y.mean() - slope * x.mean()
    residual_sum = float(np.sum((y_centred - slope * x_centred) ** 2))
    total_sum = float(y_centred @ y_centred)
    stderr = float(np.sqrt(residual_sum / (n_points - 2) / spread)) if n_points >= 3 else nan
    r2 = 1.0 - residual_sum / total_sum if total_sum > 0 else nan
    return PowerLawFit(-slope, stderr, float(np.exp(intercept)), r2, n_points)


# ---- bootstrap over seeds ----------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapInterval:
    """Percentile interval ``(low, high)`` for alpha_m, the bootstrap std, and the full-data fit.

    ``samples`` holds the bootstrap exponents (resamples whose widths were all equal, which
    have no slope, are left out).
    """

    low: float
    high: float
    std: float
    exponent: float
    samples: np.ndarray = field(repr=False, compare=False)


def bootstrap_exponent(
    m, loss, seeds, n_boot: int = 1000, ci: float = 0.95, rng=0, method: str = "percentile"
) -> BootstrapInterval:
    """Bootstrap confidence interval of alpha_m over seeds, by :func:`scipy.stats.bootstrap`.

    ``m``, ``loss`` and ``seeds`` are equal-length sequences, one entry per trained model (a
    width, its final loss and its seed label). Each of the ``n_boot`` resamples draws as many
    seeds as there are, with replacement, and a drawn seed brings all of its widths: runs of one
    seed share data and initialisation noise, so they are resampled together. Each resample is
    refitted as in :func:`power_law_fit` (a seed drawn k times counts k times, as weight k).
    Returns the central ``ci`` interval (``method``: scipy's ``"percentile"``, the default, or
    ``"basic"`` / ``"BCa"``; BCa needs more seeds than a sweep usually has) and the std of
    the resampled exponents. ``rng`` is a seed or a ``numpy.random.Generator``. A resample
    whose points all share one width has no slope; if one occurs the interval is nan.
    """
    m, loss, keep = _usable_points(m, loss)
    seeds = np.asarray(seeds).ravel()
    if seeds.shape != m.shape:
        raise ValueError(f"seeds must have one label per point; got {seeds.size} labels for {m.size} points")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1); got {ci}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive; got {n_boot}")
    x, y, seeds = np.log(m[keep]), np.log(loss[keep]), seeds[keep]
    labels, seed_index = np.unique(seeds, return_inverse=True)
    if labels.size < 2:
        raise ValueError(f"a bootstrap over seeds needs at least two seeds; got {labels.size}")

    def exponent(drawn, axis=-1):
        # drawn: [..., seeds] resampled seed numbers; a seed drawn k times weighs its points by k.
        drawn = np.moveaxis(drawn, axis, -1)
        counts = (drawn[..., :, None] == np.arange(labels.size)).sum(axis=-2)
        return -_weighted_slopes(x, y, counts[..., seed_index].astype(np.float64))

    result = stats.bootstrap(
        (np.arange(labels.size),),
        exponent,
        n_resamples=n_boot,
        confidence_level=ci,
        method=method,
        vectorized=True,
        rng=np.random.default_rng(rng),
    )
    samples = np.asarray(result.bootstrap_distribution)
    std = float(np.std(samples, ddof=1)) if samples.size > 1 else float("nan")
    low, high = result.confidence_interval
    exponent_all = power_law_fit(m[keep], loss[keep]).exponent
    return BootstrapInterval(float(low), float(high), std, exponent_all, samples)


# ---- grouped nonlinear fit -----------------------------------------------------------------


@dataclass(frozen=True)
class GroupedFit:
    """L = amplitude / m^exponent + offsets[g], one amplitude and exponent shared by all groups.

    ``stderr`` is the standard error of the exponent from sigma^2 (J^T J)^-1 with
    sigma^2 = RSS / (N - p), p = 2 + number of groups (nan when N <= p); ``offset_stderr`` the
    same for each B_g. ``r2`` = 1 - RSS / total sum of squares around the mean loss.
    ``converged`` is least_squares' ``success`` (it stopped on a tolerance, not the evaluation limit).
    """

    exponent: float
    stderr: float
    amplitude: float
    offsets: dict
    offset_stderr: dict
    r2: float
    rss: float
    n_points: int
    converged: bool

    def predict(self, m, group) -> np.ndarray:
        """The fitted loss at widths ``m`` in groups ``group`` (labels as in the fit)."""
        offsets = np.array([self.offsets[_python_label(g)] for g in np.asarray(group).ravel()])
        return self.amplitude * np.asarray(m, np.float64).ravel() ** -self.exponent + offsets


def _python_label(label):
    """numpy scalars as Python values, so offsets are keyed by ``'c4'`` and ``3``, not ``np.str_``."""
    return label.item() if isinstance(label, np.generic) else label


def _grouped_design(scaled_m: np.ndarray, group_index: np.ndarray, n_groups: int, exponent: float) -> np.ndarray:
    """Columns [m^-alpha, one-hot(group)]: the model is linear in (a, B_g) for a fixed alpha."""
    design = np.zeros((scaled_m.size, 1 + n_groups))
    design[:, 0] = scaled_m**-exponent
    design[np.arange(scaled_m.size), 1 + group_index] = 1.0
    return design


def _grouped_residuals(params, log_m, scaled_m, group_index, loss) -> np.ndarray:
    """r = a m^-alpha + B_g - L: ``[N]`` for params (a, alpha, B_1..B_G)."""
    return params[0] * scaled_m ** -params[1] + params[2 + group_index] - loss


def _grouped_jacobian(params, log_m, scaled_m, group_index, loss) -> np.ndarray:
    """dr/d(a, alpha, B_1..B_G): ``[N, 2 + G]``."""
    amplitude, exponent = params[0], params[1]
    power = scaled_m**-exponent
    jacobian = np.zeros((loss.size, params.size))
    jacobian[:, 0] = power
    jacobian[:, 1] = -amplitude * log_m * power
    jacobian[np.arange(loss.size), 2 + group_index] = 1.0
    return jacobian


def grouped_power_law_fit(
    m,
    loss,
    group,
    start_exponents=None,
    max_evaluations: int = 2000,
    tol: float = 1e-12,
) -> GroupedFit:
    """Fit L = A / m^alpha + B_g by nonlinear least squares (Levenberg-Marquardt, as MINPACK
    implements it in :func:`scipy.optimize.least_squares`).

    One amplitude A and one exponent alpha are shared by every group and each group g gets its
    own offset B_g (the irreducible loss of a dataset, say). Sharing A, as the paper's LLM fit
    does, ties the groups to one curve shifted vertically; it pins alpha far better than
    separate fits of a few points each. Residuals are in loss units (not log), as the paper's
    fit. Points with a non-finite loss or non-positive width are dropped.

    Widths are rescaled by their geometric mean m0 inside the fit, which decorrelates A from
    alpha; A is reported for m itself (A = a m0^alpha). Starting exponents: the
    ``start_exponents`` given, else a grid over [0.05, 4] on which, at fixed alpha, A and B_g are
    the exact linear least-squares solution; the three best grid points are refined and the
    lowest RSS kept. ``tol`` is least_squares' ``ftol`` / ``xtol`` / ``gtol``; ``max_evaluations``
    its ``max_nfev``.
    """
    m = np.asarray(m, np.float64).ravel()
    loss = np.asarray(loss, np.float64).ravel()
    group = np.asarray(group).ravel()
    if not m.shape == loss.shape == group.shape:
        raise ValueError(f"m, loss and group must have the same length; got {m.size}, {loss.size}, {group.size}")
    keep = np.isfinite(m) & (m > 0) & np.isfinite(loss)
    m, loss, group = m[keep], loss[keep], group[keep]
    labels, group_index = np.unique(group, return_inverse=True)
    n_groups, n_points = labels.size, int(loss.size)
    n_params = 2 + n_groups
    nan = float("nan")
    if n_points < n_params or np.unique(m).size < 3:
        nothing = {_python_label(g): nan for g in labels}
        return GroupedFit(nan, nan, nan, nothing, dict(nothing), nan, nan, n_points, False)

    log_m = np.log(m) - np.mean(np.log(m))
    scaled_m = np.exp(log_m)

    def linear_fit(exponent):
        design = _grouped_design(scaled_m, group_index, n_groups, exponent)
        coefficients = np.linalg.lstsq(design, loss, rcond=None)[0]
        return float(np.sum((design @ coefficients - loss) ** 2)), coefficients

    if start_exponents is None:
        grid = np.linspace(0.05, 4.0, 80)
        grid_rss = np.array([linear_fit(a)[0] for a in grid])
        start_exponents = grid[np.argsort(grid_rss)[:3]]

    data = (log_m, scaled_m, group_index, loss)
    best = None
    for exponent in np.atleast_1d(np.asarray(start_exponents, np.float64)):
        coefficients = linear_fit(exponent)[1]
        start = np.concatenate([[coefficients[0], exponent], coefficients[1:]])
        result = optimize.least_squares(
            _grouped_residuals,
            start,
            jac=_grouped_jacobian,
            args=data,
            method="lm",
            ftol=tol,
            xtol=tol,
            gtol=tol,
            max_nfev=max_evaluations,
        )
        rss = float(result.fun @ result.fun)
        if best is None or rss < best[1]:
            best = (result.x, rss, bool(result.success))
    params, rss, converged = best

    jacobian = _grouped_jacobian(params, *data)
    if n_points > n_params:
        covariance = rss / (n_points - n_params) * np.linalg.pinv(jacobian.T @ jacobian)
        errors = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    else:
        errors = np.full(n_params, nan)
    total = float(np.sum((loss - loss.mean()) ** 2))
    exponent = float(params[1])
    return GroupedFit(
        exponent=exponent,
        stderr=float(errors[1]),
        amplitude=float(params[0] * np.exp(np.mean(np.log(m)) * exponent)),
        offsets={_python_label(g): float(b) for g, b in zip(labels, params[2:], strict=True)},
        offset_stderr={_python_label(g): float(e) for g, e in zip(labels, errors[2:], strict=True)},
        r2=1.0 - rss / total if total > 0 else nan,
        rss=float(rss),
        n_points=n_points,
        converged=bool(converged),
    )


# ---- regimes -----------------------------------------------------------------------------------


def regime_label(represented_fraction, strong_above: float = 0.9, weak_below: float = 0.5):
    """'strong', 'weak' or 'mixed' superposition from phi_{1/2}, the share of rows with norm > 1/2.

    In the strong regime (weight growth, gamma < 0) nearly every feature is represented, phi
    about 1; in the weak regime (weight decay) only about m of the n features are, phi about
    m/n, which is small for the paper's widths (m/n <= 0.1). So phi > ``strong_above`` (0.9)
    is 'strong', phi < ``weak_below`` (0.5) is 'weak', and anything between is 'mixed'; a nan
    is 'unknown'. When m/n itself approaches ``weak_below`` the weak regime cannot be told
    apart this way: lower ``weak_below`` toward m/n or read phi directly.

    Works elementwise on arrays (returns a string array of the same shape) and returns a plain
    ``str`` for a scalar.
    """
    if not 0.0 <= weak_below <= strong_above <= 1.0:
        raise ValueError(f"need 0 <= weak_below <= strong_above <= 1; got {weak_below} and {strong_above}")
    phi = np.asarray(represented_fraction, np.float64)
    labels = np.select(
        [np.isnan(phi), phi > strong_above, phi < weak_below], ["unknown", "strong", "weak"], default="mixed"
    )
    return str(labels) if labels.ndim == 0 else labels
