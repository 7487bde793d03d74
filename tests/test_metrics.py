import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supjax import metrics


def orthonormal_rows(n, seed=0):
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))[0].astype(np.float32)


def simplex_frame(m):
    """m + 1 unit vectors in R^m with pairwise dot -1/m: the centred basis of R^{m+1} in the sum-zero subspace."""
    centring = np.eye(m + 1) - 1.0 / (m + 1)
    # Orthonormal columns spanning the sum-zero subspace; row i holds the coordinates of e_i - 1/(m+1) in them.
    basis = np.linalg.qr(centring @ np.random.default_rng(1).normal(size=(m + 1, m)))[0]
    return (basis / np.linalg.norm(basis, axis=1, keepdims=True)).astype(np.float32)


def harmonic_frame(n, m):
    """n unit rows in R^m (m even) with w^T w = (n/m) I: cos/sin of 2 pi i k / n for k = 1..m/2."""
    angles = 2 * np.pi * np.outer(np.arange(n), np.arange(1, m // 2 + 1)) / n
    return (np.sqrt(2.0 / m) * np.concatenate([np.cos(angles), np.sin(angles)], axis=1)).astype(np.float32)


def dense_overlaps(W):
    """Overlaps o_ij over i != j in float64, zero rows as w_i = 0: [models, n (n - 1)]."""
    W = np.asarray(W, np.float64)
    norms = np.linalg.norm(W, axis=-1, keepdims=True)
    unit = np.divide(W, norms, out=np.zeros_like(W), where=norms > 1e-12)
    gram = unit @ np.swapaxes(unit, -1, -2)
    return gram[:, ~np.eye(W.shape[-2], dtype=bool)]


def test_orthonormal_set_has_no_overlap_and_full_dimensionality():
    Q = orthonormal_rows(32)
    statistics = metrics.overlap_statistics(Q)
    assert float(statistics.mean_squared_overlap) == pytest.approx(0.0, abs=1e-10)
    assert float(statistics.coherence) < 1e-5
    assert float(metrics.tight_frame_distance(Q)) < 1e-6
    np.testing.assert_allclose(metrics.feature_dimensionality(Q), 1.0, atol=1e-5)
    assert float(metrics.represented_fraction(Q)) == 1.0
    # Norms are 1 up to rounding, so phi_1 is tested on rows scaled clear of the threshold.
    assert float(metrics.represented_fraction(1.5 * Q, threshold=1.0)) == 1.0
    assert float(metrics.represented_fraction(0.8 * Q, threshold=1.0)) == 0.0
    assert float(metrics.represented_fraction(0.8 * Q)) == 1.0


def test_simplex_is_an_etf():
    m = 10
    S = simplex_frame(m)
    np.testing.assert_allclose(S @ S.T - np.eye(m + 1), -(1 - np.eye(m + 1)) / m, atol=1e-6)
    etf = metrics.etf_likeness(S)
    statistics = metrics.overlap_statistics(S)
    assert float(etf["mean_squared_overlap"]) == pytest.approx(metrics.welch_bound(m + 1, m), abs=1e-6)
    assert float(etf["welch_bound"]) == pytest.approx(1 / m**2)
    assert float(etf["welch_excess"]) == pytest.approx(0.0, abs=1e-6)
    assert float(statistics.coherence) == pytest.approx(metrics.coherence_bound(m + 1, m), abs=1e-6)
    assert float(etf["coherence_ratio"]) == pytest.approx(1.0, abs=1e-5)
    assert float(etf["etf_variance_ratio"]) == pytest.approx(0.0, abs=1e-6)
    assert float(etf["tight_frame_distance"]) < 1e-5


def test_random_directions_match_the_beta_distribution():
    m = 50
    W = jax.random.normal(jax.random.key(0), (2000, m))
    etf = metrics.etf_likeness(W)
    assert float(etf["mean_squared_overlap"]) == pytest.approx(1 / m, rel=0.05)
    assert float(etf["etf_variance_ratio"]) == pytest.approx(1.0, rel=0.1)
    assert float(etf["welch_excess"]) > 0


def test_reference_values():
    assert metrics.welch_bound(5, 10) == 0.0
    assert metrics.welch_bound(101, 10) == pytest.approx(91 / 1000)
    assert metrics.coherence_bound(10, 10) == 0.0
    assert metrics.coherence_bound(55, 10) == pytest.approx(np.sqrt(45 / 540))
    assert metrics.coherence_bound(56, 10) == pytest.approx(1 / np.sqrt(10))
    a, b = 0.5, (20 - 1) / 2  # (w_i . w_j)^2 ~ Beta(1/2, (m - 1)/2) in R^20
    assert metrics.random_squared_overlap_variance(20) == pytest.approx(a * b / ((a + b) ** 2 * (a + b + 1)))
    np.testing.assert_allclose(metrics.welch_bound(np.array([5, 101]), 10), [0.0, 0.091])


def test_harmonic_tight_frame_sits_on_the_welch_bound():
    n, m = 40, 8
    F = harmonic_frame(n, m)
    np.testing.assert_allclose(np.linalg.norm(F, axis=1), 1.0, atol=1e-6)
    assert float(metrics.tight_frame_distance(F)) < 1e-5
    assert float(metrics.mean_squared_overlap(F)) == pytest.approx(metrics.welch_bound(n, m), rel=1e-5)
    assert float(metrics.tight_frame_distance(F + 0.3 * np.eye(n, m, dtype=np.float32))) > 0.01


@pytest.mark.parametrize("block_size", [None, 1, 7, 64, 203, 1000])
def test_blockwise_overlaps_equal_the_dense_computation(block_size):
    W = np.random.default_rng(2).normal(size=(3, 203, 17)).astype(np.float32)
    W[0, 5] = 0.0  # a zero row: w_i = 0, so its overlaps are 0 and still counted
    overlaps = dense_overlaps(W)
    expected = [
        np.abs(overlaps).mean(-1),
        (overlaps**2).mean(-1),
        (overlaps**2).var(-1),
        np.abs(overlaps).max(-1),
    ]
    statistics = metrics.overlap_statistics(W, block_size)
    for value, reference in zip(statistics, expected, strict=True):
        assert value.shape == (3,)
        np.testing.assert_allclose(value, reference, rtol=1e-6, atol=1e-8)
    single = metrics.overlap_statistics(W[1], block_size)
    assert single.mean_squared_overlap.shape == ()
    np.testing.assert_allclose(single.mean_squared_overlap, expected[1][1], rtol=1e-6)
    np.testing.assert_allclose(statistics.abs_overlap_std, np.sqrt(expected[1] - expected[0] ** 2), rtol=1e-5)


def test_welch_identity_for_unit_rows():
    n, m = 300, 20
    W = np.random.default_rng(3).normal(size=(2, n, m))
    W /= np.linalg.norm(W, axis=-1, keepdims=True)
    frame_operator = np.swapaxes(W, -1, -2) @ W
    frame_excess = np.sum((frame_operator - n / m * np.eye(m)) ** 2, axis=(-2, -1))
    msq = np.asarray(metrics.mean_squared_overlap(W.astype(np.float32)))
    np.testing.assert_allclose(msq, metrics.welch_bound(n, m) + frame_excess / (n * (n - 1)), rtol=1e-5)
    distance = np.asarray(metrics.tight_frame_distance(W.astype(np.float32), block_size=37))
    np.testing.assert_allclose(distance, np.sqrt(frame_excess) / (n / np.sqrt(m)), rtol=1e-5)
    np.testing.assert_allclose(msq, metrics.welch_bound(n, m) + distance**2 * n / (m * (n - 1)), rtol=1e-5)


def test_feature_dimensionality():
    m = 10
    np.testing.assert_allclose(metrics.feature_dimensionality(simplex_frame(m)), m / (m + 1), rtol=1e-5)
    shared = np.eye(4, 3, dtype=np.float32)
    shared[3] = shared[0]  # two features on one direction share it; a zero row has none
    shared[2] = 0.0
    np.testing.assert_allclose(metrics.feature_dimensionality(shared), [0.5, 1.0, 0.0, 0.5], atol=1e-6)
    shared[3] = 2.0 * shared[0]  # on a shared direction, D_i = ||W_i||^2 / (||W_0||^2 + ||W_3||^2)
    np.testing.assert_allclose(metrics.feature_dimensionality(shared), [0.2, 1.0, 0.0, 0.8], atol=1e-6)

    W = np.random.default_rng(4).normal(size=(2, 61, 9)).astype(np.float32)
    W64 = W.astype(np.float64)
    norms = np.linalg.norm(W64, axis=-1)
    projections = (W64 @ np.swapaxes(W64, -1, -2)) / norms[..., None]
    expected = norms**2 / np.sum(projections**2, axis=-1)
    np.testing.assert_allclose(metrics.feature_dimensionality(W, block_size=8), expected, rtol=1e-5)


def test_unlearned_loss_by_hand():
    W = np.array([[0.2, 0.0], [0.0, 0.6], [0.3, 0.4], [1.0, 0.0]], np.float32)  # norms 0.2, 0.6, 0.5, 1.0
    p = np.array([0.1, 0.2, 0.3, 0.4])
    expected = (4 / 3 * 0.1 - 0.1**2) + (4 / 3 * 0.3 - 0.3**2)
    assert float(metrics.unlearned_loss(W, p)) == pytest.approx(expected, rel=1e-6)
    stack = np.stack([W, 2 * W])  # norms 0.4, 1.2, 1.0, 2.0: only feature 0 unlearned
    per_model_p = np.stack([p, 2 * p])
    np.testing.assert_allclose(metrics.unlearned_loss(stack, per_model_p), [expected, 4 / 3 * 0.2 - 0.2**2], rtol=1e-6)
    assert float(metrics.unlearned_loss(W, p, threshold=0.0)) == 0.0


def test_per_feature_loss_against_numpy():
    rng = np.random.default_rng(5)
    models, n, m = 2, 37, 6
    W = rng.normal(size=(models, n, m)).astype(np.float32) / np.sqrt(m)
    b = rng.normal(size=(models, n)).astype(np.float32) * 0.1
    p = rng.uniform(size=n)

    def expected(value, bias):
        gram = W.astype(np.float64) @ np.swapaxes(W.astype(np.float64), -1, -2)
        prediction = np.maximum(value * gram + bias[:, None, :], 0.0)
        return np.sum((prediction - value * np.eye(n)) ** 2, axis=-1)

    np.testing.assert_allclose(metrics.per_feature_loss(W, b, block_size=5), expected(1.0, b), rtol=1e-5)
    np.testing.assert_allclose(
        metrics.per_feature_loss(W, b, p=p, value=2.0, block_size=8), p * expected(2.0, b), rtol=1e-5
    )
    shared_bias = metrics.per_feature_loss(W, b[0])
    np.testing.assert_allclose(shared_bias, expected(1.0, np.stack([b[0], b[0]])), rtol=1e-5)
    single = metrics.per_feature_loss(W[1], b[1])
    assert single.shape == (n,)
    np.testing.assert_allclose(single, expected(1.0, b)[1], rtol=1e-5)


def test_bfloat16_input_gives_the_float32_answer():
    W = jax.random.normal(jax.random.key(6), (2, 300, 24)) / np.sqrt(24)
    W_half = W.astype(jnp.bfloat16)
    upcast = W_half.astype(jnp.float32)
    for function in (metrics.mean_squared_overlap, metrics.coherence, metrics.tight_frame_distance):
        half = np.asarray(function(W_half))
        assert half.dtype == np.float32
        np.testing.assert_allclose(half, function(upcast), rtol=1e-5)  # the same numbers, upcast
        np.testing.assert_allclose(half, function(W), rtol=1e-2)  # within bfloat16 rounding
    np.testing.assert_allclose(metrics.feature_dimensionality(W_half), metrics.feature_dimensionality(W), rtol=1e-2)
    np.testing.assert_allclose(metrics.row_norms(W_half), metrics.row_norms(W), rtol=1e-2)


def test_large_n_runs_blockwise_in_bounded_memory():
    n, m = 50_000, 64
    block = metrics.default_block_size(n)
    assert 1 <= block < n and block * n * 4 <= metrics.GRAM_SLAB_BYTES
    assert metrics.default_block_size(n, models=8) * 8 * n * 4 <= metrics.GRAM_SLAB_BYTES

    shape = jax.ShapeDtypeStruct((1, n, m), jnp.float32)
    compiled = metrics._overlap_statistics.lower(shape, block_size=block).compile()
    memory = compiled.memory_analysis()
    assert memory is not None, "XLA's CPU backend reports the memory of a compiled program"
    # A dense n x n Gram would need 10 GB; the loop holds a slab and one elementwise copy of it.
    assert memory.temp_size_in_bytes < 3 * metrics.GRAM_SLAB_BYTES
    assert f"{n},{n}]" not in compiled.as_text()

    W = jax.random.normal(jax.random.key(7), (n, m))
    statistics = metrics.overlap_statistics(W)
    assert float(statistics.mean_squared_overlap) == pytest.approx(1 / m, rel=0.01)
    assert float(statistics.squared_overlap_variance) == pytest.approx(
        metrics.random_squared_overlap_variance(m), rel=0.02
    )


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        metrics.row_norms(np.ones(5))
    with pytest.raises(ValueError, match="two rows"):
        metrics.overlap_statistics(np.ones((1, 4)))
    with pytest.raises(ValueError, match="block_size"):
        metrics.overlap_statistics(np.ones((4, 4)), block_size=0)


def test_weighted_squared_overlap_from_the_frame_operator_equals_the_pairwise_mean():
    rng = np.random.default_rng(4)
    W = rng.normal(size=(3, 50, 6)).astype(np.float32)
    W[0, 7] = 0.0  # a zero row has no direction: weight it or not, it adds no overlap
    a = rng.random((3, 50)).astype(np.float32)
    w = W / np.maximum(np.linalg.norm(W, axis=-1, keepdims=True), 1e-12)
    off = ~np.eye(50, dtype=bool)
    pairs = a[:, :, None] * a[:, None, :]
    squared = np.einsum("kim,kjm->kij", w, w) ** 2
    expected = (squared * pairs)[:, off].sum(1) / pairs[:, off].sum(1)
    np.testing.assert_allclose(metrics.weighted_squared_overlap(W, a, block_size=7), expected, rtol=1e-5)
    np.testing.assert_allclose(metrics.weighted_squared_overlap(W), metrics.mean_squared_overlap(W), rtol=1e-5)
    raw = np.einsum("kim,kjm->kij", W, W) ** 2
    np.testing.assert_allclose(metrics.weighted_squared_overlap(W, normalise=False), raw[:, off].mean(1), rtol=1e-5)
    kept = (np.linalg.norm(W, axis=-1) > 2.4).astype(np.float32)  # represented rows only
    expected = np.array(
        [
            squared[k][np.ix_(kept[k] > 0, kept[k] > 0)][off[: int(kept[k].sum()), : int(kept[k].sum())]].mean()
            for k in range(3)
        ]
    )
    np.testing.assert_allclose(metrics.weighted_squared_overlap(W, kept), expected, rtol=1e-5)


def test_the_frame_operator_is_additive_over_row_blocks_and_streams_in_float64():
    rng = np.random.default_rng(5)
    W = rng.normal(size=(90, 8)).astype(np.float32)
    whole = metrics.frame_operator(W, block_size=16)
    parts = [metrics.frame_operator(W[i : i + 30]) for i in range(0, 90, 30)]
    summed = metrics.FrameOperator(*(sum(np.asarray(p[k], np.float64) for p in parts) for k in range(4)))
    for name, a, b in zip(metrics.FrameOperator._fields, whole, summed, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, err_msg=name)
    assert summed.frame.dtype == np.float64  # numpy in, numpy out: the streamed sum is not narrowed
    assert isinstance(metrics.squared_overlap_from_frame(summed), np.floating)

    overlaps = dense_overlaps(W[None])[0]
    np.testing.assert_allclose(metrics.squared_overlap_from_frame(summed), np.mean(overlaps**2), rtol=1e-6)
    w = W / np.linalg.norm(W, axis=1, keepdims=True)
    distance = np.linalg.norm(w.T.astype(np.float64) @ w - (90 / 8) * np.eye(8)) / (90 / np.sqrt(8))
    np.testing.assert_allclose(metrics.tight_frame_distance_from_frame(summed), distance, rtol=1e-5)
    np.testing.assert_allclose(metrics.tight_frame_distance(W), distance, rtol=1e-5)
