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
    # an observed sum of exactly 0 (two variants with equal accuracy): every draw reaches it, including the zero sums
    assert stats.paired_permutation_p(np.array([1.0, -1.0] * 10), np.zeros(20), n_resamples=999) == 1.0


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


# Chunking the draws (a memory bound) must not change a single number: each of these compares the
# chunked implementation with the same draws made all at once, for sizes around the chunk lengths.

def _unchunked_bootstrap(values, strata, seed, n_resamples, confidence):
    rng = np.random.default_rng(seed)
    totals = np.zeros(n_resamples)
    for stratum in np.unique(strata):
        members = values[strata == stratum]
        totals += members[rng.integers(0, len(members), size=(n_resamples, len(members)))].sum(axis=1)
    tail = 50 * (1 - confidence)
    return tuple(np.percentile(totals, [tail, 100 - tail]))


@pytest.mark.parametrize("n_resamples", [1, 7, 250, 251, 600])
@pytest.mark.parametrize("confidence", [0.95, 0.8, 1.0])
def test_the_chunked_bootstrap_equals_one_unchunked_draw(n_resamples, confidence):
    rng = np.random.default_rng(8)
    values, strata = rng.exponential(1.0, 90), np.repeat([4, 0, 2], 30)  # strata in no particular order
    got = stats.stratified_bootstrap_ci(values, strata, seed=3, n_resamples=n_resamples, confidence=confidence)
    assert got == _unchunked_bootstrap(values, strata, 3, n_resamples, confidence)


def test_every_bootstrap_total_is_one_whole_resample():
    # constant values: every resample sums to the same total, so even the full range (confidence 1) is one point
    assert stats.stratified_bootstrap_ci(np.ones(10), np.zeros(10, int), n_resamples=600, confidence=1.0) == (10.0, 10.0)
    # the first member is drawn too: in 600 resamples of [1, 0] some total is positive
    assert stats.stratified_bootstrap_ci(np.array([1.0, 0.0]), np.zeros(2, int), n_resamples=600, confidence=1.0)[1] > 0


@pytest.mark.parametrize("n_resamples", [999, 1000, 1234])
def test_the_chunked_permutation_draws_equal_one_unchunked_draw(n_resamples):
    diffs = np.random.default_rng(9).normal(0.1, 1, 60)
    signs = np.random.default_rng(5).integers(0, 2, size=(n_resamples, 60), dtype=np.int8) * 2 - 1
    hits = int(np.sum(np.abs(signs @ diffs) >= abs(diffs.sum()) * (1 - 1e-12)))
    assert stats.paired_permutation_p(diffs, np.zeros(60), seed=5, n_resamples=n_resamples) == (hits + 1) / (n_resamples + 1)


def test_the_bootstrap_and_the_proportion_are_seeded_with_0_by_default():
    values, strata = np.random.default_rng(10).normal(size=50), np.zeros(50, int)
    ci = stats.stratified_bootstrap_ci(values, strata)
    assert ci == stats.stratified_bootstrap_ci(values, strata, seed=0) != stats.stratified_bootstrap_ci(values, strata, seed=1)
    outcomes = {0: np.random.default_rng(11).random(37) < 0.6, 1: np.random.default_rng(12).random(41) < 0.5}
    assert stats.proportion_ci(outcomes) == stats.proportion_ci(outcomes, seed=0) != stats.proportion_ci(outcomes, seed=1)


def test_the_proportion_is_the_pooled_percentage_with_its_interval_in_seed_strata():
    outcomes = {0: np.array([True, False, True, True]), 3: np.array([True, True, False, False])}
    mean, low, high = stats.proportion_ci(outcomes, seed=2)
    assert mean == 62.5  # 5 of 8
    scaled = np.r_[outcomes[0], outcomes[3]] * 100.0 / 8
    assert (low, high) == stats.stratified_bootstrap_ci(scaled, np.repeat([0, 1], 4), 2)


def _scores(seed, n=120, strength=0.4):
    return _system(np.random.default_rng(seed), n // 6, strength)


def test_a_paired_comparison_uses_only_the_shared_seeds_and_its_seed():
    variant = {s: _scores(100 + s, strength=0.5) for s in (0, 1, 2)}
    baseline = {s: _scores(200 + s) for s in (1, 2, 3)}
    result = stats.compare_paired(variant, baseline, seed=5)
    assert result.seeds == (1, 2)
    per_seed = tuple(float(variant[s].contributions.sum() - baseline[s].contributions.sum()) for s in (1, 2))
    assert result.per_seed_delta == per_seed and result.delta == pytest.approx(np.mean(per_seed))
    hits = [np.r_[tuple(d[s].r1_hits for s in (1, 2))] for d in (variant, baseline)]
    assert result.mcnemar_p == stats.mcnemar_p(*hits)
    assert result == stats.compare_paired(variant, baseline, seed=5)  # deterministic in its seed
    other = stats.compare_paired(variant, baseline, seed=6)  # both the bootstrap and the permutations follow it
    assert (other.ci_low, other.ci_high) != (result.ci_low, result.ci_high) and other.permutation_p != result.permutation_p
    assert stats.compare_paired(variant, baseline) == stats.compare_paired(variant, baseline, seed=0)
    assert stats.compare_paired(variant, {7: baseline[1]}) is None


def test_a_paired_comparison_draws_its_strata_in_seed_order_with_i2t_first():
    """The seeded interval a report prints is reproducible: one stratum per (seed, direction), in that order."""
    variant = {s: _scores(300 + s, strength=0.5) for s in (4, 9)}
    baseline = {s: _scores(400 + s) for s in (4, 9)}
    result = stats.compare_paired(variant, baseline, seed=3)
    diff = np.concatenate([variant[s].contributions - baseline[s].contributions for s in (4, 9)]) / 2
    strata = np.concatenate([variant[s].strata + 2 * i for i, s in enumerate((4, 9))])  # 0, 1 | 2, 3
    assert sorted(set(strata)) == [0, 1, 2, 3]
    assert (result.ci_low, result.ci_high) == stats.stratified_bootstrap_ci(diff, strata, 3)


def test_a_paired_comparison_refuses_test_sets_of_different_sizes():
    with pytest.raises(ValueError, match="seed 0: the two runs were evaluated on test sets of different sizes"):
        stats.compare_paired({0: _scores(1, n=120)}, {0: _scores(2, n=60)})


def test_too_few_seeds_give_nan_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no variance of one value, no rank test of an empty side
        assert np.isnan(stats.hedges_g(np.array([1.0]), np.array([2.0, 3.0])))
        assert all(np.isnan(v) for v in stats.seed_tests(np.array([1.0, 2.0]), np.array([])).values())


def test_hedges_g_with_a_pooled_spread_of_exactly_one():
    assert stats.hedges_g(np.array([0.0, 1.0, 2.0]), np.array([3.0, 4.0, 5.0])) == pytest.approx(-3 * (1 - 3 / 15))
