"""The DSRLN paper's claims, each checked against measured runs with a verdict.

Every (claim, comparison, evidence) row is tested the same way as the report's ablation table: a
paired per-query randomisation test over the seeds both variants ran (seeds as strata), Holm-
Bonferroni across all rows of the claims table, and the difference must have the same sign in
every seed. A row is *supported* (significant in the claimed direction), *contradicted*
(significant the other way), *inconclusive*, or *not run* (a variant is missing). A claim is
supported only when all its rows are, contradicted when some row is and none supports it, and
not run when any of its variants is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchmark.data.layout import benchmarks
from benchmark.report import stats
from benchmark.report.data import ReportData
from benchmark.report.render import Cell, Table, format_p
from variants import parse_variant


@dataclass(frozen=True)
class Claim:
    text: str
    comparisons: tuple[tuple[str, str], ...]  # (baseline, variant): the variant should be better
    probe: str  # the synthetic twin probe that isolates the claimed ability


CLAIMS = (
    Claim("GISA models relations between regions better than vanilla SA", (("sa", "gisa"), ("sa+dif", "gisa+dif")), "layout"),
    Claim("relative geometry beats knowing each region's absolute position", (("sa-pos", "gisa"),), "layout"),
    Claim("grid features via DIF add context that regions lack", (("sa", "sa+dif"), ("gisa", "gisa+dif")), "scene"),
    Claim("DIF's gain comes from box-masked interaction, not from more features or capacity",
          (("gisa+concat", "gisa+dif"), ("gisa+concat-matched", "gisa+dif"), ("gisa+dif-unmasked", "gisa+dif")), "scene"),
    Claim("local + global alignment beats global only", (("gisa+dif", "gisa+dif+hier"),), "attribute"),
)
# On real captions the twin probes do not exist; these caption-foil probes stand in where one fits.
REAL_PROBES = {"layout": "foil_spatial", "attribute": "foil_nouns"}


@dataclass(frozen=True)
class Row:
    claim: str
    baseline: str
    variant: str
    evidence: str  # "rSum" or "probe <name>"
    result: stats.PairedComparison | None
    p_holm: float = math.nan

    def verdict(self, alpha: float = stats.ALPHA) -> str:
        return row_verdict(self.result, self.p_holm, alpha)


def row_verdict(result: stats.PairedComparison | None, p_holm: float, alpha: float = stats.ALPHA) -> str:
    if result is None:
        return "not run"
    return {1: "supported", -1: "contradicted", 0: "inconclusive"}[stats.significant_sign(result, p_holm, alpha)]


def claim_verdict(verdicts: list[str]) -> str:
    if not verdicts or "not run" in verdicts:
        return "not run"
    if all(v == "supported" for v in verdicts):
        return "supported"
    if "contradicted" in verdicts and "supported" not in verdicts:
        return "contradicted"
    return "inconclusive"


def _probe_scores(data: ReportData, dataset: str, variant: str, probe: str) -> dict[int, stats.QueryScores] | None:
    out = {}
    for run in data.runs_of(dataset, variant).itertuples():
        outcomes = data.ranks(run.run_id).get(f"probe_{probe}")
        if outcomes is None:
            return None
        outcomes = outcomes.astype(bool)
        out[int(run.seed)] = stats.QueryScores(100.0 * outcomes / len(outcomes), outcomes, np.zeros(len(outcomes), int))
    return out


def check_claims(data: ReportData, dataset: str) -> list[Row]:
    """Every row of the claims table, Holm-corrected together."""
    headline = benchmarks(dataset)[0]
    present = set(data.labels(dataset))
    rows = []
    for claim in CLAIMS:
        probe = claim.probe if dataset == "synthetic" else REAL_PROBES.get(claim.probe)
        for baseline, variant in ((parse_variant(b).display, parse_variant(v).display) for b, v in claim.comparisons):
            missing = not {baseline, variant} <= present
            rsum = None if missing else stats.compare_paired(data.scores(dataset, variant, headline), data.scores(dataset, baseline, headline))
            rows.append(Row(claim.text, baseline, variant, "rSum", rsum))
            if probe:
                result = None
                if not missing:
                    ours, theirs = _probe_scores(data, dataset, variant, probe), _probe_scores(data, dataset, baseline, probe)
                    result = stats.compare_paired(ours, theirs) if ours and theirs else None
                rows.append(Row(claim.text, baseline, variant, f"probe {probe}", result))
    adjusted = stats.holm([r.result.permutation_p if r.result else math.nan for r in rows])
    return [Row(r.claim, r.baseline, r.variant, r.evidence, r.result, p) for r, p in zip(rows, adjusted, strict=True)]


def claims_records(rows: list[Row]) -> dict:
    """Every row and the verdict per claim, machine-readable (``claims.json``)."""
    return {
        "rows": [{"claim": r.claim, "baseline": r.baseline, "variant": r.variant, "evidence": r.evidence,
                  "verdict": r.verdict(), "p_holm": r.p_holm,
                  "delta": r.result.delta if r.result else None,
                  "ci": [r.result.ci_low, r.result.ci_high] if r.result else None,
                  "seeds": list(r.result.seeds) if r.result else []} for r in rows],
        "claims": {claim: claim_verdict([r.verdict() for r in rows if r.claim == claim]) for claim in dict.fromkeys(r.claim for r in rows)},
    }


def claims_table(rows: list[Row], dataset: str) -> Table:
    columns = [("", "Claim"), ("", "Comparison"), ("", "Evidence"), ("", "Seeds"), ("", "Δ"), ("", "95% CI"),
               ("", "p Holm"), ("", "Verdict")]
    cells = []
    for row in rows:
        result = row.result
        cells.append([
            Cell(row.claim), Cell(f"{row.baseline} → {row.variant}"), Cell(row.evidence),
            Cell(",".join(map(str, result.seeds)) if result else "–"),
            Cell(f"{result.delta:+.1f}" if result else "–"),
            Cell(f"[{result.ci_low:+.1f}, {result.ci_high:+.1f}]" if result else "–"),
            Cell(format_p(row.p_holm)),
            Cell(row.verdict(), bold=row.verdict() in ("supported", "contradicted")),
        ])
    summary = []
    for claim in dict.fromkeys(r.claim for r in rows):
        verdict = claim_verdict([r.verdict() for r in rows if r.claim == claim])
        summary.append([Cell(claim), Cell("all rows"), Cell(""), Cell(""), Cell(""), Cell(""), Cell(""),
                        Cell(verdict, bold=verdict in ("supported", "contradicted"))])
    caption = (f"On {dataset}. Δ: variant minus baseline (rSum points, or probe accuracy points), mean over the shared "
               "seeds; 95% CI: bootstrap over queries within each seed. Seeds combined by a paired per-query randomisation "
               "test stratified by seed, Holm–Bonferroni across all rows at α = 0.05, and the sign must agree in every seed. "
               "A claim is supported only when all its rows are.")
    return Table("claims", "Claims check", caption, columns, [("", cells), ("Verdict per claim", summary)])
