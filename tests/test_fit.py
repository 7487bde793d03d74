import numpy as np
import pytest

from supjax import fit

WIDTHS = np.array([10, 15, 25, 39, 63, 100, 158, 251])


def test_power_law_fit_is_exact_on_a_power_law():
    result = fit.power_law_fit(WIDTHS, 3.0 * WIDTHS**-0.9)
    assert result.exponent == pytest.approx(0.9, abs=1e-10)
    assert result.prefactor == pytest.approx(3.0, rel=1e-10)
    assert result.r2 == pytest.approx(1.0, abs=1e-12)
    assert result.stderr < 1e-10
    assert result.n_points == len(WIDTHS)
    np.testing.assert_allclose(result.predict(WIDTHS), 3.0 * WIDTHS**-0.9, rtol=1e-10)


def test_power_law_fit_with_noise_is_within_its_standard_error():
    rng = np.random.default_rng(0)
    m = np.repeat(WIDTHS, 3)
    loss = 3.0 * m**-0.9 * np.exp(0.05 * rng.normal(size=m.size))
    result = fit.power_law_fit(m, loss)
    assert 0 < result.stderr < 0.05
    assert abs(result.exponent - 0.9) < 3 * result.stderr
    assert 0.95 < result.r2 < 1.0


def test_power_law_fit_drops_unusable_points():
    loss = 3.0 * WIDTHS**-0.9
    loss[[1, 4]] = [-1.0, np.nan]
    result = fit.power_law_fit(WIDTHS, loss)
    assert result.n_points == len(WIDTHS) - 2
    assert result.exponent == pytest.approx(0.9, abs=1e-10)
    two = fit.power_law_fit([10, 20], [1.0, 0.5])
    assert two.exponent == pytest.approx(1.0) and np.isnan(two.stderr)
    one = fit.power_law_fit([10, 20], [1.0, 0.0])
    assert one.n_points == 1 and np.isnan(one.exponent) and np.isnan(one.r2)


def synthetic_groups(offsets, noise, seed=0, widths_per_group=15):
    rng = np.random.default_rng(seed)
    widths = np.geomspace(64, 8192, widths_per_group)
    m = np.tile(widths, len(offsets))
    group = np.repeat(list(offsets), widths_per_group)
    clean = 3.0 * m**-0.9 + np.repeat(list(offsets.values()), widths_per_group)
    return m, clean * (1 + noise * rng.normal(size=m.size)), group


def test_grouped_fit_recovers_shared_exponent_and_offsets():
    offsets = {"wikitext": 0.2, "c4": 0.3, "pile": 0.4, "books": 0.5}
    m, loss, group = synthetic_groups(offsets, noise=0.01)
    result = fit.grouped_power_law_fit(m, loss, group)
    assert result.converged and result.n_points == m.size
    assert 0 < result.stderr < 0.1
    assert abs(result.exponent - 0.9) < 3 * result.stderr
    assert set(result.offsets) == set(offsets)
    for name, offset in offsets.items():
        assert abs(result.offsets[name] - offset) < 4 * result.offset_stderr[name]
    assert result.r2 > 0.99
    residuals = loss - result.predict(m, group)
    assert np.sum(residuals**2) == pytest.approx(result.rss, rel=1e-9)


def test_grouped_fit_is_exact_without_noise_and_from_a_bad_start():
    offsets = {0: 0.0, 1: 0.1, 2: 0.2, 3: 0.3}
    m, loss, group = synthetic_groups(offsets, noise=0.0, widths_per_group=6)
    for start in (None, [2.5]):
        result = fit.grouped_power_law_fit(m, loss, group, start_exponents=start)
        assert result.exponent == pytest.approx(0.9, abs=1e-7)
        assert result.amplitude == pytest.approx(3.0, rel=1e-6)
        for key, offset in offsets.items():
            assert result.offsets[key] == pytest.approx(offset, abs=1e-8)


def test_grouped_fit_with_too_few_points_is_nan():
    result = fit.grouped_power_law_fit([10, 20, 40], [1.0, 0.6, 0.4], ["a", "b", "c"])
    assert np.isnan(result.exponent) and not result.converged
    assert set(result.offsets) == {"a", "b", "c"}


def seeded_runs(seed_scale, seed_slope, seeds=5, rng=1):
    """Per-seed power laws L = c_s m^-(0.9 + d_s) with point noise: [m, loss, seed] flattened."""
    generator = np.random.default_rng(rng)
    m, loss, labels = [], [], []
    for seed in range(seeds):
        scale = 3.0 * np.exp(seed_scale * generator.normal())
        slope = 0.9 + seed_slope * generator.normal()
        m.append(WIDTHS)
        loss.append(scale * WIDTHS**-slope * np.exp(0.02 * generator.normal(size=WIDTHS.size)))
        labels.append(np.full(WIDTHS.size, seed))
    return np.concatenate(m), np.concatenate(loss), np.concatenate(labels)


def test_bootstrap_interval_covers_the_planted_exponent():
    m, loss, seeds = seeded_runs(seed_scale=0.1, seed_slope=0.03)
    interval = fit.bootstrap_exponent(m, loss, seeds, n_boot=2000, rng=0)
    assert interval.low < 0.9 < interval.high
    assert interval.low <= interval.exponent <= interval.high
    assert 0 < interval.std < 0.1
    assert interval.samples.shape == (2000,)
    again = fit.bootstrap_exponent(m, loss, seeds, n_boot=2000, rng=0)
    assert (again.low, again.high) == (interval.low, interval.high)
    narrow = fit.bootstrap_exponent(m, loss, seeds, n_boot=2000, ci=0.5, rng=0)
    assert interval.low < narrow.low < narrow.high < interval.high


def test_bootstrap_resamples_whole_seeds():
    # Seeds differ only by a prefactor, so every resample of whole seeds has the same slope;
    # resampling single points would mix prefactors across widths and spread the slopes.
    m = np.tile(WIDTHS, 4)
    seeds = np.repeat(np.arange(4), WIDTHS.size)
    loss = np.array([1.0, 2.0, 0.5, 3.0])[seeds] * m**-0.9
    interval = fit.bootstrap_exponent(m, loss, seeds, n_boot=200, rng=3)
    assert interval.low == pytest.approx(0.9, abs=1e-9) and interval.high == pytest.approx(0.9, abs=1e-9)
    assert interval.std < 1e-9
    with pytest.raises(ValueError, match="two seeds"):
        fit.bootstrap_exponent(WIDTHS, WIDTHS**-0.9, np.zeros(WIDTHS.size))


def test_regime_labels():
    phi = np.array([[1.0, 0.95, 0.9], [0.5, 0.1, np.nan]])
    np.testing.assert_array_equal(fit.regime_label(phi), [["strong", "strong", "mixed"], ["mixed", "weak", "unknown"]])
    assert fit.regime_label(0.039) == "weak"
    assert fit.regime_label(0.3, weak_below=0.2) == "mixed"
    with pytest.raises(ValueError):
        fit.regime_label(0.5, strong_above=0.4, weak_below=0.6)
