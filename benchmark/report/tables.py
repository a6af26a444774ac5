"""The report's tables, computed from the read model: main results, ablation, diagnostics, probe validity."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmark.data.layout import PROBE_KINDS, TEST_PREFIX
from benchmark.foils import KINDS as FOIL_KINDS
from benchmark.metrics import SUMMARY_KEYS
from benchmark.probes import CAPTION_CHANCE, GROUP_CHANCE, PROBES, SATURATED, group_outcomes, informative
from benchmark.report import stats
from benchmark.report.collect import display_name
from benchmark.report.data import Comparison, ReportData, benchmarks_of
from benchmark.report.references import reference_rows
from benchmark.report.render import Cell, Table, format_p
from variants import one_component_pairs

METRICS = [("rSum" if key == "rsum" else key.replace("_r", " R@"), key) for key in SUMMARY_KEYS]  # (column, metric key)


def _mean_std(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.1f}"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"


def significant(comparisons: list[Comparison], alpha: float = stats.ALPHA) -> list[tuple[float, str]]:
    """(Holm-adjusted permutation p, marker) per comparison: a marker needs p_holm < alpha and the
    same sign in every shared seed."""
    adjusted = stats.holm([c.paired.permutation_p if c.paired else math.nan for c in comparisons])
    markers = {1: "up", -1: "down", 0: ""}
    return [(p, markers[stats.significant_sign(c.paired, p, alpha)]) for c, p in zip(comparisons, adjusted, strict=True)]


SIGNIFICANCE_NOTE = ("▲/▼: significantly higher/lower than {baseline} by a paired per-query randomisation test on rSum "
                     "(10,000 label swaps within each query and seed), Holm–Bonferroni-corrected across this table's "
                     "{n} comparisons at α = {alpha}, and of the same sign in every seed.")


def main_table(data: ReportData, datasets: list[str], baseline: str | None) -> tuple[Table, list[Comparison]]:
    covered = benchmarks_of(datasets)
    columns = [("", "Method"), ("", "n")] + [(b.title, name) for _, b in covered for name, _ in METRICS]
    labels = list(dict.fromkeys(label for d in datasets for label in data.labels(d)))
    rows = []
    for label in labels:
        row = [Cell(label), Cell("/".join(str(len(data.runs_of(d, label))) for d in datasets))]
        for dataset, benchmark in covered:
            runs = data.runs_of(dataset, label)
            keys = [benchmark.test_key(key) for _, key in METRICS]
            row += [Cell(_mean_std(runs[k]) if k in runs else "–") for k in keys]
        rows.append(row)
    _bold_best(rows, data, covered, labels)
    comparisons: list[Comparison] = []
    if baseline:
        for dataset, benchmark in covered:
            for label in data.labels(dataset):
                if label != baseline and baseline in data.labels(dataset):
                    comparisons.append(data.compare(dataset, benchmark, baseline, label, "vs baseline"))
        column_of = {b.title: 2 + i * len(METRICS) + len(METRICS) - 1 for i, (_, b) in enumerate(covered)}
        for comparison, (_, marker) in zip(comparisons, significant(comparisons), strict=True):
            rows[labels.index(comparison.variant)][column_of[comparison.benchmark]].marker = marker
    sections = [("Measured (this suite; mean ± std over seeds; n = seeds)", rows)]
    references, notes = reference_rows([b.published for _, b in covered if b.published], len(METRICS))
    if references:
        sections.append(("Reported (published numbers, not rerun here; see notes)", references))
    caption = "Cells: mean ± sample std over n seeds; bold: the best measured value per column. "
    caption += SIGNIFICANCE_NOTE.format(baseline=baseline, n=len(comparisons), alpha=stats.ALPHA) if comparisons else \
        "No significance markers: no baseline with runs on these benchmarks."
    if references:
        caption += " Reported rows are copied from the cited papers (benchmark/report/published.csv) and marked with their notes."
    names = ", ".join(b.title for _, b in covered)
    return Table("main", f"Main results ({names})", caption, columns, sections, notes), comparisons


def _bold_best(rows, data, covered, labels) -> None:
    for b_index, (dataset, benchmark) in enumerate(covered):
        for m_index, (_, key) in enumerate(METRICS):
            means = []
            for label in labels:
                runs = data.runs_of(dataset, label)
                column = benchmark.test_key(key)
                means.append(runs[column].mean() if column in runs and not runs.empty else math.nan)
            if all(math.isnan(m) for m in means):
                continue
            best = np.nanmax(means)
            for row, mean in zip(rows, means, strict=True):
                if mean == best:
                    row[2 + b_index * len(METRICS) + m_index].bold = True


def ablation_table(data: ReportData, datasets: list[str]) -> tuple[Table, list[Comparison]]:
    comparisons = []
    for dataset, benchmark in benchmarks_of(datasets):
        for baseline, variant, axis in one_component_pairs(data.labels(dataset)):
            comparisons.append(data.compare(dataset, benchmark, baseline, variant, axis))
    columns = [("", "Change"), ("", "Benchmark"), ("", "Seeds"), ("rSum", "baseline"), ("rSum", "variant"),
               ("rSum", "Δ"), ("rSum", "95% CI"), ("paired", "p"), ("paired", "p Holm"), ("paired", "McNemar R@1 p"),
               ("seeds", "Welch p"), ("seeds", "M-W U p"), ("seeds", "Hedges g")]
    rows = []
    for comparison, (p_holm, marker) in zip(comparisons, significant(comparisons), strict=True):
        paired = comparison.paired
        rows.append([
            Cell(f"{comparison.baseline} → {comparison.variant} ({comparison.axis})"), Cell(comparison.benchmark),
            Cell(",".join(map(str, paired.seeds)) if paired else "none shared"),
            Cell(f"{comparison.baseline_rsum:.1f}"), Cell(f"{comparison.variant_rsum:.1f}"),
            Cell(f"{paired.delta:+.1f}" if paired else "–", marker=marker),
            Cell(f"[{paired.ci_low:+.1f}, {paired.ci_high:+.1f}]" if paired else "–"),
            Cell(format_p(paired.permutation_p) if paired else "–"), Cell(format_p(p_holm)), Cell(format_p(paired.mcnemar_p) if paired else "–"),
            Cell(format_p(comparison.seed_level["welch_p"])), Cell(format_p(comparison.seed_level["mannwhitney_p"])),
            Cell("–" if math.isnan(comparison.seed_level["hedges_g"]) else f"{comparison.seed_level['hedges_g']:+.2f}"),
        ])
    caption = ("Each row changes one component. Δ: variant minus baseline rSum, averaged over the shared seeds; 95% CI: "
               "percentile bootstrap over queries within each seed and direction. "
               + SIGNIFICANCE_NOTE.format(baseline="the row's baseline", n=len(comparisons), alpha=stats.ALPHA)
               + " McNemar: exact test on R@1 hits of both directions. Welch and Mann-Whitney U: two-sided, on per-seed "
               "rSum; Hedges g: their standardised difference.")
    if not rows:
        caption = "No two measured variants differ in exactly one component, so there is no ablation to show."
    return Table("ablation", "Ablation: one component at a time", caption, columns, [("", rows)]), comparisons


def _ci(mean: float, low: float, high: float) -> str:
    return f"{mean:.1f} [{low:.1f}, {high:.1f}]"


def _group_cell(outcomes: dict[int, np.ndarray]) -> str:
    return _ci(*stats.proportion_ci({seed: group_outcomes(o) for seed, o in outcomes.items()})) if outcomes else "–"


def _twin_kinds(data: ReportData) -> list[str]:
    return [k for k in PROBE_KINDS if any(f"probe_{k}" in data.ranks(r.run_id) for r in data.runs.itertuples())]


def diagnostics_table(data: ReportData) -> Table | None:
    """Probe accuracies with 95% bootstrap intervals: twin probes on synthetic data (per caption and per group,
    with chance and whether each probe informs on these variants), caption foils on real data."""
    datasets = sorted(set(data.runs["dataset"]))
    twins = _twin_kinds(data)
    foils = [f"foil_{k}" for k in FOIL_KINDS if any(f"probe_foil_{k}" in data.ranks(r.run_id) for r in data.runs.itertuples())]
    if not twins and not foils:
        return None
    columns = [("", "Method"), ("", "Dataset"), ("", "n"), ("", "best epochs")]
    columns += [(f"{k} probe (%)", score) for k in twins for score in ("per caption", "group")]
    columns += [("caption foils (%)", k.removeprefix("foil_")) for k in foils]
    rows, informs = [], {}
    for dataset in datasets:
        accuracy = {kind: data.probe_accuracy(dataset, kind) for kind in twins + foils}
        for label in data.labels(dataset):
            runs = data.runs_of(dataset, label)
            epochs = runs["best_epoch"].dropna().astype(int).astype(str) if "best_epoch" in runs else []
            row = [Cell(label), Cell(dataset), Cell(str(len(runs))), Cell(",".join(epochs) or "–")]
            for kind in twins:
                row += [Cell(_ci(*accuracy[kind][label]) if label in accuracy[kind] else "–"),
                        Cell(_group_cell(data.probe_outcomes(dataset, label, kind)))]
            row += [Cell(_ci(*accuracy[kind][label]) if label in accuracy[kind] else "–") for kind in foils]
            rows.append(row)
        informs[dataset] = {kind: informative(accuracy[kind]) for kind in twins}
    sections = [("", rows)]
    if twins:
        chance = [Cell("chance"), Cell(""), Cell(""), Cell("")] + [Cell(f"{c:.1f}") for _ in twins for c in (CAPTION_CHANCE, GROUP_CHANCE)]
        summary = [chance + [Cell("50.0") for _ in foils]]
        for dataset, flags in informs.items():
            if any(data.probe_outcomes(dataset, label, k) for label in data.labels(dataset) for k in twins):
                summary.append([Cell("informative?"), Cell(dataset), Cell(""), Cell("")]
                               + [Cell(("yes" if flags[k] else "no"), bold=not flags[k]) for k in twins for _ in range(2)]
                               + [Cell("") for _ in foils])
        sections.append(("Chance and informativeness", summary))
    caption = ("Pooled over the n seeds; 95% percentile bootstrap interval over captions (or groups) within each seed. "
               "Best epochs: the epoch dev selection kept, per seed (the probes are those of that checkpoint). ")
    if twins:
        caption += ("Twin probes (synthetic): per caption, the percent of base-image captions that score their own image "
                    "above its twin (a tie counts ½); group, the percent of bases all five of whose captions do so "
                    f"(chance {GROUP_CHANCE:.1f}). " + " ".join(f"{PROBES[k].kind}: {PROBES[k].twin}." for k in twins)
                    + f" Informative: some variant is above chance (lower bound > {CAPTION_CHANCE:.0f}) and not every variant "
                    f"reaches {SATURATED:.0f}. ")
        held_out = sorted({kind for kinds in data.runs.get("held_out_twins", []) for kind in kinds})
        if held_out:
            caption += (f"Never trained on (train.held_out_twins): the {', '.join(held_out)} twins, so their probe measures "
                        "what a variant picks up from the captions alone; the other twins are hard negatives in training. ")
    if foils:
        shares = []
        for dataset in datasets:
            runs = data.runs[data.runs["dataset"] == dataset]
            parts = [f"{k} {runs[f'{TEST_PREFIX}foiled_{k}'].iloc[0]:.0f}%" for k in FOIL_KINDS if f"{TEST_PREFIX}foiled_{k}" in runs]
            if parts:
                shares.append(f"{dataset}: {', '.join(parts)}")
        caption += ("Caption foils (real data): percent of test captions scored above a minimally edited foil for their own "
                    "image (swapped nouns, swapped spatial words, shuffled words; chance 50). Captions foiled per rule: "
                    + "; ".join(shares) + ".")
    return Table("diagnostics", "Diagnostics: probes", caption, columns, sections)


def probe_validity_table(data: ReportData) -> Table | None:
    """Per twin probe (synthetic): its blind control (which cannot tell the pair apart by construction, as the
    test suite proves) and its positive control, with their accuracies, and whether the probe is informative."""
    twins = _twin_kinds(data)
    if not twins:
        return None
    columns = [("", "Probe"), ("", "Capability"), ("", "Twin differs by"), ("blind control", "variant"),
               ("blind control", "accuracy (%)"), ("positive control", "variant"), ("positive control", "accuracy (%)"),
               ("", "Informative?")]
    rows = []
    for dataset in sorted(set(data.runs["dataset"])):
        for kind in twins:
            probe = PROBES[kind]
            accuracy = data.probe_accuracy(dataset, kind)
            if not accuracy:
                continue
            blind, positive = (display_name(v) for v in (probe.blind, probe.positive))
            flag = informative(accuracy)
            rows.append([Cell(kind), Cell(probe.capability), Cell(probe.twin), Cell(blind),
                         Cell(_ci(*accuracy[blind]) if blind in accuracy else "not run"), Cell(positive),
                         Cell(_ci(*accuracy[positive]) if positive in accuracy else "not run"),
                         Cell("yes" if flag else "no", bold=not flag)])
    caption = ("Blind control: a variant whose inputs cannot tell the base from the twin by construction; "
               "tests/test_probe_validity.py asserts that its image embeddings of base and twin are identical, so it must "
               f"sit at chance ({CAPTION_CHANCE:.0f}). Positive control: the variant with the capability; it should reach 90. "
               f"Informative: some variant of the grid is above chance and not every variant reaches {SATURATED:.0f}.")
    return Table("probe_validity", "Probe validity", caption, columns, [("", rows)])
