"""Significance tests for retrieval comparisons, paired per query and across seeds.

Per query: each image query (i2t) and caption query (t2i) contributes
``100 * (hit@1 + hit@5 + hit@10) / n_queries_of_its_direction`` to rSum, so a system's rSum is the
sum of its queries' contributions. Two systems run with the same seeds on the same test set are
compared query by query:

- a paired randomisation test (labels swapped within each query, two-sided; checked against
  ``scipy.stats.permutation_test`` in the tests) of the rSum difference averaged over the shared
  seeds (the seeds are strata: each query-and-seed pair is swapped on its own);
- a 95% percentile bootstrap interval of that difference, resampling queries within each seed and
  direction;
- McNemar's exact test on R@1 hits (binomial test on the discordant queries).

Across seeds: Welch's t-test and Mann-Whitney U on per-seed rSum, with Hedges' g as the effect
size. Holm-Bonferroni corrects a table's family of comparisons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from benchmark.metrics import RECALL_KS

ALPHA = 0.05
PERMUTATIONS = 10_000
BOOTSTRAPS = 2_000


@dataclass(frozen=True)
class QueryScores:
    """One run's per-query rSum contributions, R@1 hits and stratum (direction) labels."""

    contributions: np.ndarray
    r1_hits: np.ndarray
    strata: np.ndarray


def query_scores(i2t_ranks: np.ndarray, t2i_ranks: np.ndarray) -> QueryScores:
    """From 1-based ranks; ``contributions.sum()`` is the run's rSum."""
    parts, hits, strata = [], [], []
    for stratum, ranks in enumerate((np.asarray(i2t_ranks), np.asarray(t2i_ranks))):
        recalled = sum((ranks <= k).astype(float) for k in RECALL_KS)
        parts.append(100.0 * recalled / len(ranks))
        hits.append(ranks <= 1)
        strata.append(np.full(len(ranks), stratum))
    return QueryScores(np.concatenate(parts), np.concatenate(hits), np.concatenate(strata))


def paired_permutation_p(a: np.ndarray, b: np.ndarray, seed: int = 0, n_resamples: int = PERMUTATIONS) -> float:
    """Two-sided p of ``sum(a) - sum(b)`` under random swaps of each pair ``(a[i], b[i])``.

    Swapping a pair flips the sign of its difference, so this draws sign vectors (all of them
    when there are at most ``n_resamples``) and counts ``|sum(signs * d)| >= |sum(d)|``; a
    randomised p counts the observed labelling too, ``(hits + 1) / (n_resamples + 1)``, as
    ``scipy.stats.permutation_test`` does. It is that test, vectorised as one matrix product.
    """
    diffs = np.asarray(a, float) - np.asarray(b, float)
    diffs = diffs[diffs != 0]  # a pair with no difference swaps to itself
    if diffs.size == 0:
        return 1.0
    observed = abs(diffs.sum()) * (1 - 1e-12)
    if 2 ** diffs.size <= n_resamples:  # exact: every sign vector once
        signs = 1 - 2 * ((np.arange(2 ** diffs.size)[:, None] >> np.arange(diffs.size)) & 1)
        return float(np.mean(np.abs(signs @ diffs) >= observed))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_resamples, 500):
        signs = rng.integers(0, 2, size=(min(500, n_resamples - start), diffs.size), dtype=np.int8) * 2 - 1
        hits += int(np.sum(np.abs(signs @ diffs) >= observed))
    return (hits + 1) / (n_resamples + 1)


def stratified_bootstrap_ci(values: np.ndarray, strata: np.ndarray, seed: int = 0, n_resamples: int = BOOTSTRAPS,
                            confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``values.sum()``, resampling with replacement within each stratum."""
    rng = np.random.default_rng(seed)
    totals = np.zeros(n_resamples)
    for stratum in np.unique(strata):
        members = values[strata == stratum]
        for start in range(0, n_resamples, 250):  # chunks keep memory at 250 x stratum size
            size = min(250, n_resamples - start)
            picks = rng.integers(0, len(members), size=(size, len(members)))
            totals[start:start + size] += members[picks].sum(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(totals, [tail, 100 - tail])
    return float(low), float(high)


def mcnemar_p(hits_a: np.ndarray, hits_b: np.ndarray) -> float:
    """Exact McNemar: a binomial test of the queries only one system gets right."""
    only_a = int(np.sum(hits_a & ~hits_b))
    only_b = int(np.sum(~hits_a & hits_b))
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def hedges_g(x: np.ndarray, y: np.ndarray) -> float:
    """Standardised mean difference ``x - y`` with the small-sample correction."""
    nx, ny = len(x), len(y)
    if nx < 2 or ny < 2:
        return math.nan
    pooled = math.sqrt(((nx - 1) * np.var(x, ddof=1) + (ny - 1) * np.var(y, ddof=1)) / (nx + ny - 2))
    if pooled == 0:
        return math.nan if np.mean(x) == np.mean(y) else math.copysign(math.inf, np.mean(x) - np.mean(y))
    return float((np.mean(x) - np.mean(y)) / pooled * (1 - 3 / (4 * (nx + ny) - 9)))


def seed_tests(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Welch's t and Mann-Whitney U (two-sided) on per-seed values, and Hedges' g."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    welch = mwu = math.nan
    if len(x) >= 2 and len(y) >= 2 and (np.var(x) > 0 or np.var(y) > 0):
        welch = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
    if len(x) >= 1 and len(y) >= 1:
        mwu = float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    return {"welch_p": welch, "mannwhitney_p": mwu, "hedges_g": hedges_g(x, y)}


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (NaNs stay NaN and do not count)."""
    p = np.asarray(pvalues, float)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), math.nan)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (len(valid) - position) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class PairedComparison:
    """``variant`` minus ``baseline`` over the seeds both ran."""

    seeds: tuple[int, ...]
    delta: float  # mean over shared seeds of the rSum difference
    ci_low: float
    ci_high: float
    permutation_p: float
    mcnemar_p: float
    per_seed_delta: tuple[float, ...]

    @property
    def consistent(self) -> bool:
        """The difference has the same sign in every shared seed."""
        signs = {np.sign(d) for d in self.per_seed_delta}
        return len(signs) == 1 and 0 not in signs


def significant_sign(result: PairedComparison | None, p_holm: float, alpha: float = ALPHA) -> int:
    """The one verdict rule of every table: +1 or -1 when the difference is significant after correction
    (``p_holm < alpha``) and has that sign in every shared seed, else 0."""
    if result is None or not (p_holm < alpha and result.consistent):
        return 0
    return 1 if result.delta > 0 else -1


def compare_paired(variant: dict[int, QueryScores], baseline: dict[int, QueryScores], seed: int = 0) -> PairedComparison | None:
    """Per-query tests over the seeds present in both (``None`` when they share no seed)."""
    shared = tuple(sorted(set(variant) & set(baseline)))
    if not shared:
        return None
    for s in shared:
        if len(variant[s].contributions) != len(baseline[s].contributions):
            raise ValueError(f"seed {s}: the two runs were evaluated on test sets of different sizes")
    n = len(shared)
    a = np.concatenate([variant[s].contributions for s in shared]) / n
    b = np.concatenate([baseline[s].contributions for s in shared]) / n
    strata = np.concatenate([variant[s].strata + 2 * i for i, s in enumerate(shared)])
    low, high = stratified_bootstrap_ci(a - b, strata, seed)
    hits_a = np.concatenate([variant[s].r1_hits for s in shared])
    hits_b = np.concatenate([baseline[s].r1_hits for s in shared])
    per_seed = tuple(float(variant[s].contributions.sum() - baseline[s].contributions.sum()) for s in shared)
    return PairedComparison(shared, float(a.sum() - b.sum()), low, high, paired_permutation_p(a, b, seed),
                            mcnemar_p(hits_a, hits_b), per_seed)


def minimum_detectable_effect(per_seed_delta: tuple[float, ...], alpha: float = ALPHA, power: float = 0.8) -> float:
    """The smallest true mean difference that a two-sided paired t-test over seeds detects with ``power``
    at ``alpha``, given the seed-to-seed spread of the observed differences: "were the seeds enough?".
    NaN with fewer than two seeds; 0 when every seed gave the same difference."""
    n = len(per_seed_delta)
    if n < 2:
        return math.nan
    spread = float(np.std(per_seed_delta, ddof=1))
    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * spread / math.sqrt(n))


def proportion_ci(outcomes: dict[int, np.ndarray], seed: int = 0) -> tuple[float, float, float]:
    """Mean percent of True outcomes pooled over seeds, with a 95% bootstrap interval within seeds."""
    values = np.concatenate([np.asarray(o, float) for o in outcomes.values()])
    strata = np.concatenate([np.full(len(o), i) for i, o in enumerate(outcomes.values())])
    scaled = 100.0 * values / len(values)
    low, high = stratified_bootstrap_ci(scaled, strata, seed)
    return float(scaled.sum()), low, high
