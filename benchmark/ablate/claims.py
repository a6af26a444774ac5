"""The DSRLN paper's claims (declared in the grid file), each checked against measured runs with a verdict.

Every (claim, comparison, evidence) row is tested the same way as the report's ablation table: a
paired per-query randomisation test over the seeds both variants ran (seeds as strata), Holm-
Bonferroni across all rows of the claims table, and the difference must have the same sign in
every seed. A row is *supported* (significant in the claimed direction), *contradicted*
(significant the other way), *inconclusive*, *not run* (a variant is missing) or *not informative*:
its probe cannot separate the grid's variants (every variant ≥ 95%, or none above chance;
``probes.informative``), or both variants of the row sit at its ceiling (≥ 95%), so no difference
could show.

A claim's verdict rests on its probe rows; its rSum rows are context (on the synthetic data rSum
measures retrieval, which every capability feeds, not the claimed one). Only a claim with no probe
(on real data, where its probe has no caption-foil stand-in) takes its verdict from its rSum rows.
A claim is not run when any of its variants is missing, supported only when every row is,
contradicted when some row is and none supports it, else not informative when some row is, else
inconclusive. All rows, rSum included, form one Holm family. Each row also
states its minimum detectable effect at 80% power given the seed-to-seed spread it showed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from benchmark.ablate.grid import Claim
from benchmark.data.layout import benchmarks
from benchmark.probes import SATURATED, informative
from benchmark.report import stats
from benchmark.report.data import ReportData
from benchmark.report.render import Cell, Table, format_p
from variants import parse_variant

# On real captions the twin probes do not exist; these caption-foil probes stand in where one fits.
REAL_PROBES = {"layout": "foil_spatial", "binding": "foil_nouns", "crowded_binding": "foil_nouns"}
NOT_INFORMATIVE = "not informative"


@dataclass(frozen=True)
class Row:
    claim: str
    baseline: str
    variant: str
    evidence: str  # "rSum" or "probe <name>"
    result: stats.PairedComparison | None
    p_holm: float = math.nan
    informative: bool = True  # the evidence can separate these variants (always, for rSum)

    def verdict(self, alpha: float = stats.ALPHA) -> str:
        if self.result is None:
            return "not run"
        if not self.informative:
            return NOT_INFORMATIVE
        return {1: "supported", -1: "contradicted", 0: "inconclusive"}[stats.significant_sign(self.result, self.p_holm, alpha)]

    @property
    def is_probe(self) -> bool:
        return self.evidence.startswith("probe")

    @property
    def mde(self) -> float:
        return stats.minimum_detectable_effect(self.result.per_seed_delta) if self.result else math.nan


def claim_verdict(verdicts: list[str]) -> str:
    """The verdict of a claim from its probe rows' verdicts (a contradiction is never hidden by a row that cannot inform)."""
    if not verdicts or "not run" in verdicts:
        return "not run"
    if all(v == "supported" for v in verdicts):
        return "supported"
    if "contradicted" in verdicts and "supported" not in verdicts:
        return "contradicted"
    if NOT_INFORMATIVE in verdicts:
        return NOT_INFORMATIVE
    return "inconclusive"


def _probe_scores(outcomes: dict[int, np.ndarray]) -> dict[int, stats.QueryScores]:
    return {seed: stats.QueryScores(100.0 * o / len(o), o == 1.0, np.zeros(len(o), int)) for seed, o in outcomes.items()}


class ProbeEvidence:
    """Each variant's probe accuracy (mean and 95% interval) and whether the probe informs on the grid."""

    def __init__(self, data: ReportData, dataset: str, probe: str):
        self.data, self.dataset, self.probe = data, dataset, probe
        self.accuracy = data.probe_accuracy(dataset, probe)
        self.informative = informative(self.accuracy)

    def row_informative(self, baseline: str, variant: str) -> bool:
        at_ceiling = all(self.accuracy[v][0] >= SATURATED for v in (baseline, variant) if v in self.accuracy)
        return self.informative and not at_ceiling

    def compare(self, baseline: str, variant: str) -> stats.PairedComparison | None:
        """None when the two share no seed with this probe (a variant not run)."""
        ours, theirs = (self.data.probe_outcomes(self.dataset, v, self.probe) for v in (variant, baseline))
        return stats.compare_paired(_probe_scores(ours), _probe_scores(theirs))


def check_claims(data: ReportData, dataset: str, claims: tuple[Claim, ...]) -> list[Row]:
    """Every row of the claims table, Holm-corrected together."""
    headline = benchmarks(dataset)[0]
    rows, evidence = [], {}
    for claim in claims:
        probe = claim.probe if dataset == "synthetic" else REAL_PROBES.get(claim.probe)
        if probe and probe not in evidence:
            evidence[probe] = ProbeEvidence(data, dataset, probe)
        for baseline, variant in ((parse_variant(b).display, parse_variant(v).display) for b, v in claim.comparisons):
            # None (not run) when the two share no seed, as when a variant is missing
            rsum = stats.compare_paired(data.scores(dataset, variant, headline), data.scores(dataset, baseline, headline))
            rows.append(Row(claim.text, baseline, variant, "rSum", rsum))
            if probe:
                result = evidence[probe].compare(baseline, variant)
                rows.append(Row(claim.text, baseline, variant, f"probe {probe}", result,
                                informative=result is not None and evidence[probe].row_informative(baseline, variant)))
    adjusted = stats.holm([r.result.permutation_p if r.result else math.nan for r in rows])
    return [dataclasses.replace(r, p_holm=p) for r, p in zip(rows, adjusted, strict=True)]


def verdicts(rows: list[Row]) -> dict[str, str]:
    """The verdict per claim, in table order (from the probe rows; rSum rows where a claim has no probe)."""
    out = {}
    for claim in dict.fromkeys(r.claim for r in rows):
        mine = [r for r in rows if r.claim == claim]
        evidence = [r for r in mine if r.is_probe] or mine
        out[claim] = claim_verdict([r.verdict() for r in evidence])
    return out


def claims_records(rows: list[Row]) -> dict:
    """Every row and the verdict per claim, machine-readable (``claims.json``)."""
    return {
        "rows": [{"claim": r.claim, "baseline": r.baseline, "variant": r.variant, "evidence": r.evidence,
                  "verdict": r.verdict(), "p_holm": r.p_holm, "informative": r.informative,
                  "delta": r.result.delta if r.result else None,
                  "ci": [r.result.ci_low, r.result.ci_high] if r.result else None,
                  "mde_80": None if math.isnan(r.mde) else r.mde,
                  "seeds": list(r.result.seeds) if r.result else []} for r in rows],
        "claims": verdicts(rows),
    }


def claims_table(rows: list[Row], dataset: str) -> Table:
    columns = [("", "Claim"), ("", "Comparison"), ("", "Evidence"), ("", "Seeds"), ("", "Δ"), ("", "95% CI"),
               ("", "MDE (80%)"), ("", "p Holm"), ("", "Verdict")]
    cells = []
    for row in rows:
        result = row.result
        cells.append([
            Cell(row.claim), Cell(f"{row.baseline} → {row.variant}"), Cell(row.evidence if row.is_probe else "rSum (context)"),
            Cell(",".join(map(str, result.seeds)) if result else "–"),
            Cell(f"{result.delta:+.1f}" if result else "–"),
            Cell(f"[{result.ci_low:+.1f}, {result.ci_high:+.1f}]" if result else "–"),
            Cell("–" if math.isnan(row.mde) else f"{row.mde:.1f}"),
            Cell(format_p(row.p_holm)),
            Cell(row.verdict(), bold=row.verdict() in ("supported", "contradicted")),
        ])
    has_probe = {r.claim for r in rows if r.is_probe}
    summary = [[Cell(claim), Cell("all probe rows" if claim in has_probe else "all rSum rows (no probe)"), *(Cell("") for _ in range(6)),
                Cell(verdict, bold=verdict in ("supported", "contradicted"))] for claim, verdict in verdicts(rows).items()]
    caption = (f"On {dataset}. Δ: variant minus baseline (probe accuracy points, or rSum points), mean over the shared "
               "seeds; 95% CI: bootstrap over captions (queries) within each seed. Seeds combined by a paired per-caption "
               "randomisation test stratified by seed, Holm–Bonferroni across all rows at α = 0.05, and the sign must agree "
               "in every seed. MDE (80%): the smallest mean difference a paired t-test over these seeds would detect with 80% "
               "power at α = 0.05, given the seed-to-seed spread of Δ. Not informative: the probe cannot separate the grid's "
               f"variants (all ≥ {SATURATED:.0f}% or none above chance) or both variants of the row are ≥ {SATURATED:.0f}%. "
               "A claim's verdict rests on its probe rows; its rSum rows are context. A claim is supported only when all "
               "its probe rows are.")
    return Table("claims", "Claims check", caption, columns, [("", cells), ("Verdict per claim", summary)])
