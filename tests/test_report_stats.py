"""The report's significance tests against exact enumerations, scipy and hand-worked values."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats

from benchmark.metrics import QueryRanks, metrics_from_ranks
from benchmark.report import stats


def test_query_contributions_add_up_to_rsum():
    rng = np.random.default_rng(0)
    i2t, t2i = rng.integers(1, 30, 100), rng.integers(1, 30, 500)
    scores = stats.query_scores(i2t, t2i)
    assert scores.contributions.sum() == pytest.approx(metrics_from_ranks(QueryRanks(i2t, t2i))["rsum"])
    assert scores.r1_hits.sum() == (i2t == 1).sum() + (t2i == 1).sum()


def test_the_permutation_p_matches_an_exact_enumeration_of_all_swaps():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.4, 1, 12), rng.normal(0, 1, 12)
    observed = abs(a.sum() - b.sum())
    diffs = a - b
    flips = np.array(list(itertools.product([1, -1], repeat=12)))
    exact = np.mean(np.abs(flips @ diffs) >= observed - 1e-12)
    assert stats.paired_permutation_p(a, b, n_resamples=5000) == pytest.approx(exact)  # 4,096 sign vectors: all


def _exact_p(diffs):
    flips = np.array(list(itertools.product([1, -1], repeat=len(diffs))))
    return np.mean(np.abs(flips @ diffs) >= abs(diffs.sum()) - 1e-12)


def test_the_permutation_p_on_small_cases_worked_by_hand():
    assert stats.paired_permutation_p(np.zeros(4), np.zeros(4)) == 1.0  # no pair differs
    # zeros swap to themselves and are dropped: [1, 1, 1] has 8 sign vectors, 2 of them reach |sum| = 3
    assert stats.paired_permutation_p(np.array([1.0, 1, 1, 0]), np.zeros(4)) == 0.25
    # the observed sign vector itself always counts (>=): [2, 1] reaches 3 twice in 4
    assert stats.paired_permutation_p(np.array([2.0, 1]), np.zeros(2)) == 0.5
    # differences that cancel: every sign vector reaches |sum| = 0
    assert stats.paired_permutation_p(np.array([1.0, -1.0]), np.zeros(2)) == 1.0


def test_the_exact_enumeration_is_used_up_to_n_resamples_sign_vectors_and_sampling_beyond():
    diffs = np.random.default_rng(2).normal(0.5, 1, 11)  # 2,048 sign vectors
    exact = _exact_p(diffs)
    assert stats.paired_permutation_p(diffs, np.zeros(11), n_resamples=2048) == pytest.approx(exact)
    sampled = stats.paired_permutation_p(diffs, np.zeros(11), n_resamples=2047)
    assert sampled != pytest.approx(exact) and sampled == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 2047))


def test_the_sampled_permutation_p_is_hits_plus_one_over_draws_plus_one():
    diffs = np.ones(16)  # only the all-plus and all-minus vectors reach 16: P = 2 / 65,536, so no draw of 999 does
    assert stats.paired_permutation_p(diffs, np.zeros(16), n_resamples=999) == 1 / 1000


def test_a_sampled_draw_that_ties_the_observed_sum_counts():
    diffs = np.array([1.0, -1.0] * 5 + [1.0])  # |sum| is odd, so every one of the 2,048 sign vectors reaches 1
    assert stats.paired_permutation_p(diffs, np.zeros(11), n_resamples=100) == 1.0


def test_the_sampled_permutation_p_is_seeded_with_0_by_default():
    diffs = np.random.default_rng(6).normal(0.3, 1, 40)
    p = stats.paired_permutation_p(diffs, np.zeros(40), n_resamples=999)
    assert p == stats.paired_permutation_p(diffs, np.zeros(40), seed=0, n_resamples=999)
    assert p != stats.paired_permutation_p(diffs, np.zeros(40), seed=1, n_resamples=999)


def test_the_randomised_permutation_p_agrees_with_scipy():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.05, 1, 300), rng.normal(0, 1, 300)
    theirs = scipy_stats.permutation_test((a, b), lambda x, y, axis: np.sum(x, axis=axis) - np.sum(y, axis=axis),
                                          permutation_type="samples", vectorized=True, n_resamples=20_000,
                                          random_state=0).pvalue
    ours = stats.paired_permutation_p(a, b, n_resamples=20_000)
    assert 0.001 < theirs < 0.5 and ours == pytest.approx(theirs, abs=0.01)


def test_holm_adjusts_like_the_textbook():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, float("nan"), 0.01]) == pytest.approx([0.5, float("nan"), 0.02], nan_ok=True)
    assert stats.holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1


def test_significance_needs_p_below_alpha_strictly_and_keeps_the_sign():
    result = stats.PairedComparison((0, 1), 0.5, 0.1, 0.9, 0.01, 0.2, (0.4, 0.6))
    assert stats.significant_sign(result, 0.049) == 1 and stats.significant_sign(result, 0.05) == 0
    assert stats.minimum_detectable_effect((1.0, 2.0)) == pytest.approx((scipy_stats.t.ppf(0.975, 1) + scipy_stats.t.ppf(0.8, 1)) * np.std([1.0, 2.0], ddof=1) / np.sqrt(2))


def test_mcnemar_is_the_exact_binomial_on_discordant_queries():
    hits_a = np.array([True] * 10 + [False] * 2 + [True] * 30)
    hits_b = np.array([False] * 10 + [True] * 2 + [True] * 30)
    assert stats.mcnemar_p(hits_a, hits_b) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert stats.mcnemar_p(hits_a, hits_a) == 1.0
    balanced = np.array([True, False, True, False]), np.array([False, True, False, True])
    assert stats.mcnemar_p(*balanced) == 1.0  # 2 against 2: binomial p 1


def test_the_stratified_bootstrap_agrees_with_scipy_on_one_stratum():
    values = np.random.default_rng(2).exponential(1.0, 400)
    ours = stats.stratified_bootstrap_ci(values, np.zeros(400, int), seed=0, n_resamples=4000)
    theirs = scipy_stats.bootstrap((values,), np.sum, method="percentile", n_resamples=4000, random_state=0).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), rel=0.02)


def test_seed_level_tests_are_scipys_with_hedges_g():
    x, y = np.array([510.0, 515.0, 512.0]), np.array([500.0, 503.0, 499.0])
    result = stats.seed_tests(x, y)
    assert result["welch_p"] == pytest.approx(scipy_stats.ttest_ind(x, y, equal_var=False).pvalue)
    assert result["mannwhitney_p"] == pytest.approx(scipy_stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    pooled = np.sqrt((np.var(x, ddof=1) + np.var(y, ddof=1)) / 2)
    assert result["hedges_g"] == pytest.approx((x.mean() - y.mean()) / pooled * (1 - 3 / (4 * 6 - 9)))


def _g(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    pooled = np.sqrt(((len(x) - 1) * np.var(x, ddof=1) + (len(y) - 1) * np.var(y, ddof=1)) / (len(x) + len(y) - 2))
    return (x.mean() - y.mean()) / pooled * (1 - 3 / (4 * (len(x) + len(y)) - 9))


def _welch(x, y):
    with warnings.catch_warnings():  # scipy warns of precision loss when one side is constant; the p is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return scipy_stats.ttest_ind(x, y, equal_var=False).pvalue


def _mwu(x, y):
    return scipy_stats.mannwhitneyu(x, y, alternative="two-sided").pvalue


@pytest.mark.parametrize("x, y, welch, mwu, g", [
    ([1.0, 2.0], [3.0, 5.0], _welch([1, 2], [3, 5]), _mwu([1, 2], [3, 5]), _g([1, 2], [3, 5])),  # two seeds are enough
    ([1.0, 1.0], [2.0, 3.0], _welch([1, 1], [2, 3]), _mwu([1, 1], [2, 3]), _g([1, 1], [2, 3])),  # one side constant
    ([2.0, 3.0], [1.0, 1.0], _welch([2, 3], [1, 1]), _mwu([2, 3], [1, 1]), _g([2, 3], [1, 1])),
    ([2.0, 2.0], [1.0, 1.0], float("nan"), _mwu([2, 2], [1, 1]), float("inf")),  # no spread, different means
    ([1.0, 1.0], [2.0, 2.0], float("nan"), _mwu([1, 1], [2, 2]), float("-inf")),
    ([1.0, 1.0], [1.0, 1.0], float("nan"), _mwu([1, 1], [1, 1]), float("nan")),  # no spread, no difference
    ([1.0], [2.0], float("nan"), _mwu([1], [2]), float("nan")),  # one seed: only the rank test runs
    ([1.0], [2.0, 3.0], float("nan"), _mwu([1], [2, 3]), float("nan")),
    ([1.0, 2.0], [3.0], float("nan"), _mwu([1, 2], [3]), float("nan")),
])
@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")
def test_seed_level_tests_at_their_edges(x, y, welch, mwu, g):
    result = stats.seed_tests(np.array(x), np.array(y))
    assert [result["welch_p"], result["mannwhitney_p"], result["hedges_g"]] == pytest.approx([welch, mwu, g], nan_ok=True)


def _system(rng, n_images, strength):
    """Per-seed QueryScores: ``strength`` is the chance that a query's true match ranks first."""
    def ranks(n):
        return np.where(rng.random(n) < strength, 1, rng.integers(2, 40, n))
    return stats.query_scores(ranks(n_images), ranks(5 * n_images))


def test_a_real_difference_is_found_and_a_null_one_is_not():
    rng = np.random.default_rng(3)
    base = {seed: _system(rng, 200, 0.3) for seed in range(3)}
    better = {seed: _system(rng, 200, 0.45) for seed in range(3)}
    shuffled = {seed: stats.QueryScores(rng.permutation(s.contributions), s.r1_hits, s.strata) for seed, s in base.items()}
    real = stats.compare_paired(better, base)
    null = stats.compare_paired(shuffled, base)
    assert real.permutation_p < 0.001 and real.ci_low > 0 and real.consistent
    assert null.delta == pytest.approx(0, abs=1e-9) and null.permutation_p > 0.5 and null.ci_low < 0 < null.ci_high
