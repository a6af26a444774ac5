"""Compact text tables of metrics for the terminal."""

from __future__ import annotations

from benchmark.data.layout import PROBE_KINDS, Benchmark
from benchmark.foils import KINDS as FOIL_KINDS
from benchmark.metrics import DIRECTIONS, RECALL_KS
from benchmark.probes import CAPTION_CHANCE, GROUP_CHANCE


def metrics_table(metrics: dict[str, float], prefix: str = "") -> str:
    """R@K and ranks per direction, rSum, and the probes when present."""
    lines = [f"{'':6}" + "".join(f"{f'R@{k}':>8}" for k in RECALL_KS) + f"{'medr':>8}{'meanr':>9}"]
    for direction in DIRECTIONS:
        key = f"{prefix}{direction}"
        values = [metrics[f"{key}_r{k}"] for k in RECALL_KS]
        lines.append(f"{direction:6}" + "".join(f"{v:8.1f}" for v in values)
                     + f"{metrics[f'{key}_medr']:8.0f}{metrics[f'{key}_meanr']:9.1f}")
    lines.append(f"rSum {metrics[f'{prefix}rsum']:.1f}")
    probes = [f"{kind} {metrics[f'probe_{kind}']:.1f} (group {metrics[f'probe_{kind}_group']:.1f})" for kind in PROBE_KINDS
              if f"probe_{kind}" in metrics]
    if probes:
        lines.append(f"probes (% base captions preferring the base over its twin, chance {CAPTION_CHANCE:.0f}; group: all five "
                     f"captions, chance {GROUP_CHANCE:.1f}): " + ", ".join(probes))
    return "\n".join(lines)


def foil_line(metrics: dict[str, float]) -> str | None:
    kinds = [k for k in FOIL_KINDS if f"foiled_{k}" in metrics]
    if not kinds:
        return None
    return ("caption foils (% true caption above its foil; chance 50): " + ", ".join(
        f"{k} {metrics.get(f'probe_foil_{k}', float('nan')):.1f} ({metrics[f'foiled_{k}']:.0f}% of captions foiled)" for k in kinds))


def evaluation_report(metrics: dict[str, float], benchmarks: tuple[Benchmark, ...]) -> str:
    """One table per benchmark (titled when there are several: COCO 1K and 5K); then the caption-foil probes."""
    if len(benchmarks) == 1:
        lines = [metrics_table(metrics, benchmarks[0].prefix)]
    else:
        lines = []
        for benchmark in benchmarks:
            folds = f" (mean of {benchmark.folds} folds)" if benchmark.folds > 1 else ""
            lines += [benchmark.title + folds, metrics_table(metrics, benchmark.prefix)]
    foils = foil_line(metrics)
    return "\n".join(lines + ([foils] if foils else []))


def run_note(cfg, test, best_epoch: int, best_score: float) -> str:
    """The Markdown description MLflow shows on a run's Overview page: what was trained and how it did on test."""
    return (f"**{cfg.model.variant}** on {cfg.data.dataset}, seed {cfg.seed}: best epoch {best_epoch} of {cfg.train.epochs} "
            f"(dev score {best_score:.1f}), evaluated on test:\n\n```\n{evaluation_report(test.metrics, test.benchmarks)}\n```\n")
