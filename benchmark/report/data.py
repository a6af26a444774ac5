"""The report's read model: the runs it covers, their per-query ranks (loaded once, lazily) and the
paired comparisons between variants. ``build_report`` returns it; ``ablate`` checks its claims on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.data.layout import Benchmark, benchmarks
from benchmark.metrics import DIRECTIONS
from benchmark.report import stats


def benchmarks_of(datasets: list[str]) -> list[tuple[str, Benchmark]]:
    """(dataset, benchmark) for each benchmark the runs cover."""
    return [(d, b) for d in datasets for b in benchmarks(d)]


def direction_ranks(ranks: dict[str, np.ndarray], benchmark: Benchmark, direction: str) -> np.ndarray:
    """One direction's per-query ranks of a benchmark from a run's ``ranks.npz`` (COCO's folds concatenated)."""
    return np.concatenate([ranks[key] for key in benchmark.ranks_keys(direction)])


@dataclass(frozen=True)
class Comparison:
    """``variant`` against ``baseline`` on one benchmark, with every test."""

    dataset: str
    benchmark: str  # its title
    baseline: str
    variant: str
    axis: str
    paired: stats.PairedComparison | None
    seed_level: dict[str, float]
    baseline_rsum: float
    variant_rsum: float


class ReportData:
    """The runs plus lazily loaded per-query scores, shared by the tables and the figures."""

    def __init__(self, runs: pd.DataFrame, ranks_loader):
        self.runs = runs
        self._load = ranks_loader
        self._ranks: dict[str, dict[str, np.ndarray]] = {}
        self._probe_accuracy: dict[tuple[str, str], dict[str, tuple[float, float, float]]] = {}

    def ranks(self, run_id: str) -> dict[str, np.ndarray]:
        if run_id not in self._ranks:
            self._ranks[run_id] = self._load(run_id)
        return self._ranks[run_id]

    def labels(self, dataset: str) -> list[str]:
        return list(dict.fromkeys(self.runs.loc[self.runs["dataset"] == dataset, "label"]))

    def runs_of(self, dataset: str, label: str) -> pd.DataFrame:
        return self.runs[(self.runs["dataset"] == dataset) & (self.runs["label"] == label)]

    def scores(self, dataset: str, label: str, benchmark: Benchmark) -> dict[int, stats.QueryScores]:
        """Per seed, the per-query scores of one benchmark (equal COCO folds: the fold-mean rSum is the pooled one)."""
        return {int(r.seed): stats.query_scores(*(direction_ranks(self.ranks(r.run_id), benchmark, d) for d in DIRECTIONS))
                for r in self.runs_of(dataset, label).itertuples()}

    def probe_outcomes(self, dataset: str, label: str, probe: str) -> dict[int, np.ndarray]:
        """Per seed, one probe's per-caption outcomes (1, ½ or 0; ``probes.probe_outcomes``); empty when none."""
        key = f"probe_{probe}"
        return {int(r.seed): self.ranks(r.run_id)[key].astype(float) for r in self.runs_of(dataset, label).itertuples()
                if key in self.ranks(r.run_id)}

    def probe_accuracy(self, dataset: str, probe: str) -> dict[str, tuple[float, float, float]]:
        """Per variant that has the probe: its per-caption accuracy and 95% interval in %, pooled over seeds (computed once)."""
        key = (dataset, probe)
        if key not in self._probe_accuracy:
            self._probe_accuracy[key] = {label: stats.proportion_ci(outcomes) for label in self.labels(dataset)
                                         if (outcomes := self.probe_outcomes(dataset, label, probe))}
        return self._probe_accuracy[key]

    def compare(self, dataset: str, benchmark: Benchmark, baseline: str, variant: str, axis: str) -> Comparison:
        column = benchmark.test_key("rsum")
        base_values = self.runs_of(dataset, baseline)[column].to_numpy(float)
        variant_values = self.runs_of(dataset, variant)[column].to_numpy(float)
        paired = stats.compare_paired(self.scores(dataset, variant, benchmark), self.scores(dataset, baseline, benchmark))
        return Comparison(dataset, benchmark.title, baseline, variant, axis, paired, stats.seed_tests(variant_values, base_values),
                          float(base_values.mean()), float(variant_values.mean()))
