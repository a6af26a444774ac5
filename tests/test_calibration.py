"""Calibration of the significance tests on simulated systems, not on permutations of one system.

A null pair is two systems with the same expected per-query accuracy and independent noise: each draws
its per-query ranks independently from one distribution. The rejection rate at alpha = 0.05 must lie in
the binomial interval of a correct test, the bootstrap interval must cover the true difference (zero) as
often as it claims, and a known effect must be found. The power figures are printed (pytest -s shows them).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from benchmark.report import stats

N_I2T, N_T2I = 200, 1000  # queries per direction (5 captions per image)
N_NULL = 300  # simulated null pairs


def ranks(rng, p_first: float, n: int) -> np.ndarray:
    """1 with probability ``p_first``, else uniform on 2..40: R@1 is ``100 * p_first`` in expectation."""
    return np.where(rng.random(n) < p_first, 1, rng.integers(2, 41, n))


def system(rng, p_first: float, n_i2t: int = N_I2T, n_t2i: int = N_T2I) -> dict[int, stats.QueryScores]:
    return {0: stats.query_scores(ranks(rng, p_first, n_i2t), ranks(rng, p_first, n_t2i))}


def binomial_interval(n: int, p: float, level: float = 0.999) -> tuple[int, int]:
    tail = (1 - level) / 2
    return int(scipy_stats.binom.ppf(tail, n, p)), int(scipy_stats.binom.ppf(1 - tail, n, p))


@pytest.fixture(scope="module")
def null_pairs():
    rng = np.random.default_rng(0)
    return [stats.compare_paired(system(rng, 0.4), system(rng, 0.4), seed=i) for i in range(N_NULL)]


def test_the_paired_randomisation_test_rejects_at_its_nominal_rate_under_the_null(null_pairs):
    rejected = sum(r.permutation_p < stats.ALPHA for r in null_pairs)
    low, high = binomial_interval(N_NULL, stats.ALPHA)
    print(f"\nnull pairs: {rejected}/{N_NULL} rejected at alpha 0.05 (a correct test: {low}..{high} at 99.9%)")
    assert low <= rejected <= high


def test_holm_keeps_the_familywise_error_of_five_null_comparisons(null_pairs):
    families = np.array([r.permutation_p for r in null_pairs]).reshape(-1, 5)
    any_rejected = sum(any(p < stats.ALPHA for p in stats.holm(list(family))) for family in families)
    _, high = binomial_interval(len(families), stats.ALPHA)
    print(f"\nfamilies of 5 null comparisons: {any_rejected}/{len(families)} with a Holm rejection (at most {high})")
    assert any_rejected <= high


def test_the_bootstrap_interval_covers_the_true_difference_as_often_as_it_claims(null_pairs):
    covered = sum(r.ci_low <= 0 <= r.ci_high for r in null_pairs)
    low, high = binomial_interval(N_NULL, 0.95)
    print(f"\nbootstrap 95% intervals covering 0: {covered}/{N_NULL} (a correct interval: {low}..{high} at 99.9%)")
    assert low <= covered <= high


def test_the_seed_level_tests_reject_at_their_nominal_rate_under_the_null():
    rng = np.random.default_rng(1)
    n = 2000
    draws = [(rng.normal(300, 5, 3), rng.normal(300, 5, 3)) for _ in range(n)]
    welch = sum(stats.seed_tests(x, y)["welch_p"] < stats.ALPHA for x, y in draws)
    low, high = binomial_interval(n, stats.ALPHA)
    mwu = sum(stats.seed_tests(x, y)["mannwhitney_p"] < stats.ALPHA for x, y in draws)
    print(f"\nseed level, 3 vs 3 seeds: Welch rejects {welch}/{n} (a correct test: {low}..{high}); "
          f"Mann-Whitney U {mwu}/{n} (its smallest two-sided p with 3 vs 3 is 0.1, so it never rejects)")
    assert low <= welch <= high and mwu == 0


def test_power_against_known_effects_on_a_field_sized_test_set():
    """1,000 images and 5,000 captions, one seed: power for +1 and +5 points of expected R@1 in both directions."""
    rng = np.random.default_rng(2)
    power = {}
    for effect in (0.01, 0.05):
        trials = [stats.compare_paired(system(rng, 0.40 + effect, 1000, 5000), system(rng, 0.40, 1000, 5000), seed=i)
                  for i in range(40)]
        power[effect] = np.mean([r.permutation_p < stats.ALPHA and r.delta > 0 for r in trials])
    print(f"\npower at alpha 0.05, one seed: +1 R@1 point {power[0.01]:.2f}, +5 points {power[0.05]:.2f}")
    assert power[0.05] >= 0.9 and power[0.01] > stats.ALPHA
