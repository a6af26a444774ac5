"""The protocol's metrics against a deliberately naive reference implementation."""

import numpy as np
import pytest
import torch

from benchmark.data.layout import DATASETS
from benchmark.evaluation import score
from benchmark import metrics
from benchmark.metrics import DIRECTIONS, METRIC_KEYS, fold_metrics, query_ranks, retrieval_metrics
from benchmark.report.data import direction_ranks
from benchmark.report.stats import query_scores


def naive_ranks(sims, cpi=5):
    """Sort every query's candidates; ties are broken against the ground truth."""
    n_images, n_captions = sims.shape
    i2t = []
    for i in range(n_images):
        gt = set(range(cpi * i, cpi * i + cpi))
        order = sorted(range(n_captions), key=lambda j: (-sims[i, j], j in gt))
        i2t.append(min(order.index(j) for j in gt) + 1)
    t2i = []
    for j in range(n_captions):
        order = sorted(range(n_images), key=lambda i: (-sims[i, j], i == j // cpi))
        t2i.append(order.index(j // cpi) + 1)
    return np.array(i2t), np.array(t2i)


def naive_metrics(sims, cpi=5):
    i2t, t2i = naive_ranks(sims, cpi)
    out = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = 100.0 * sum(r <= k for r in ranks) / len(ranks)
        out[f"{name}_medr"] = np.floor(np.median(ranks - 1)) + 1  # the field's floor(median)+1 on 0-based ranks
        out[f"{name}_meanr"] = np.mean(ranks - 1) + 1
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranks_match_naive_reference_on_random_scores(seed):
    sims = np.random.default_rng(seed).normal(size=(40, 200))
    ranks = query_ranks(sims)
    expected_i2t, expected_t2i = naive_ranks(sims)
    np.testing.assert_array_equal(ranks.i2t, expected_i2t)
    np.testing.assert_array_equal(ranks.t2i, expected_t2i)


def test_ranks_counted_in_row_chunks_match_the_naive_reference(monkeypatch):
    monkeypatch.setattr(metrics, "_ROW_CHUNK", 7)  # 40 images in 6 blocks, the last one short
    sims = np.random.default_rng(3).normal(size=(40, 200))
    ranks = query_ranks(sims)
    expected_i2t, expected_t2i = naive_ranks(sims)
    np.testing.assert_array_equal(ranks.i2t, expected_i2t)
    np.testing.assert_array_equal(ranks.t2i, expected_t2i)


def test_captions_per_image_reaches_every_metric():
    sims = np.random.default_rng(4).normal(size=(12, 24))  # 2 captions per image
    expected = naive_metrics(sims, cpi=2)
    got = retrieval_metrics(sims, captions_per_image=2)
    assert got == pytest.approx({k: expected[k] for k in got})
    folds = fold_metrics(sims, n_folds=3, captions_per_image=2)
    parts = [naive_metrics(sims[i * 4:(i + 1) * 4, i * 8:(i + 1) * 8], cpi=2) for i in range(3)]
    assert folds == pytest.approx({k: np.mean([part[k] for part in parts]) for k in folds})


def test_five_folds_by_default_and_one_fold_is_the_whole_matrix():
    sims = np.random.default_rng(5).normal(size=(30, 150))  # 30 images: 5 and 6 folds both divide them
    assert fold_metrics(sims) == fold_metrics(sims, n_folds=5) != fold_metrics(sims, n_folds=6)
    assert fold_metrics(sims, n_folds=1) == retrieval_metrics(sims)


def test_metrics_match_naive_reference_on_tied_scores():
    sims = np.random.default_rng(3).integers(0, 4, size=(30, 150)).astype(np.float32)  # many ties
    got, expected = retrieval_metrics(sims), naive_metrics(sims)
    assert set(got) == set(METRIC_KEYS)
    for key in METRIC_KEYS:
        assert got[key] == pytest.approx(expected[key]), key


def test_constant_scores_get_the_worst_rank_not_the_best():
    metrics = retrieval_metrics(np.zeros((20, 100)))
    assert metrics["rsum"] == 0.0
    assert metrics["t2i_medr"] == 20


def test_perfect_scores_give_full_recall():
    sims = np.kron(np.eye(12), np.ones((1, 5)))  # each image scores only its own captions
    metrics = retrieval_metrics(sims)
    assert metrics["rsum"] == 600.0 and metrics["i2t_medr"] == 1 and metrics["t2i_meanr"] == 1


def test_accepts_torch_tensors():
    sims = np.random.default_rng(4).normal(size=(10, 50)).astype(np.float32)
    assert retrieval_metrics(torch.from_numpy(sims)) == retrieval_metrics(sims)
    # a bf16 tensor that still requires grad, as a model returns it: numpy can hold neither as it is
    half = torch.from_numpy(sims).to(torch.bfloat16).requires_grad_()
    assert retrieval_metrics(half) == retrieval_metrics(half.detach().float().numpy())


def test_ranks_are_integers():
    ranks = query_ranks(np.random.default_rng(4).normal(size=(10, 50)))
    assert ranks.i2t.dtype == ranks.t2i.dtype == np.int64


def test_fold_metrics_is_the_mean_of_per_fold_metrics():
    sims = np.random.default_rng(5).normal(size=(50, 250))
    folds = [retrieval_metrics(sims[k * 10:(k + 1) * 10, k * 50:(k + 1) * 50]) for k in range(5)]
    got = fold_metrics(sims, n_folds=5)
    for key in METRIC_KEYS:
        assert got[key] == pytest.approx(np.mean([f[key] for f in folds])), key


def test_fold_rsum_is_the_sum_of_the_six_mean_recalls_not_the_scan_bug():
    sims = np.random.default_rng(6).normal(size=(50, 250)) + 2 * np.kron(np.eye(50), np.ones((1, 5)))
    got = fold_metrics(sims, n_folds=5)
    recalls = [got[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10)]
    assert got["rsum"] == pytest.approx(sum(recalls))
    assert got["rsum"] != pytest.approx(2 * sum(recalls[:3]))  # SCAN/SGRAF/VSRN's printed value


def test_bad_shapes_and_values_are_rejected():
    with pytest.raises(ValueError, match=r"captions per image.*\(20 columns\)"):
        retrieval_metrics(np.zeros((4, 19)))
    with pytest.raises(ValueError, match=r"^similarities contain NaN or inf; the model has likely diverged$"):
        retrieval_metrics(np.full((2, 10), np.nan))
    with pytest.raises(ValueError, match=r"^similarities must be 2-D \(n_images, n_captions\); got shape \(10,\)$"):
        retrieval_metrics(np.zeros(10))
    with pytest.raises(ValueError, match="folds"):
        fold_metrics(np.zeros((12, 60)), n_folds=5)


@pytest.mark.parametrize("dataset", ["synthetic", "f30k", "coco"])
def test_the_ranks_each_benchmark_writes_read_back_to_its_metrics(dataset):
    """One owner of the names: evaluation writes ranks under Benchmark.ranks_keys, the report reads them back
    through the same Benchmark, and the per-query scores add up to the rSum logged under Benchmark.key."""
    benchmarks = DATASETS[dataset].benchmarks
    rng = np.random.default_rng(1)
    sims = rng.normal(size=(50, 250)).astype(np.float32)
    sims[np.arange(250) // 5, np.arange(250)] += 1.5
    result = score(sims, benchmarks)
    assert set(result.ranks) == {key for b in benchmarks for d in DIRECTIONS for key in b.ranks_keys(d)}
    for benchmark in benchmarks:
        scores = query_scores(*(direction_ranks(result.ranks, benchmark, d) for d in DIRECTIONS))
        assert scores.contributions.sum() == pytest.approx(result.metrics[benchmark.key("rsum")])
    if dataset == "coco":  # 1K is the mean of 5 folds of 10 images here, 5K the whole matrix: they differ
        assert result.metrics["1k_rsum"] != result.metrics["5k_rsum"]
        one_k, five_k = fold_metrics(sims, 5), retrieval_metrics(sims)
        for key in METRIC_KEYS:  # the values, not only the keys
            assert result.metrics[f"1k_{key}"] == pytest.approx(one_k[key]) and result.metrics[f"5k_{key}"] == five_k[key]
