"""Compact text tables of metrics for the terminal."""

from __future__ import annotations

from benchmark.data.layout import TWIN_KINDS
from benchmark.foils import KINDS as FOIL_KINDS


def metrics_table(metrics: dict[str, float], prefix: str = "") -> str:
    """R@K and ranks per direction, rSum, and the probes when present."""
    lines = [f"{'':6}{'R@1':>8}{'R@5':>8}{'R@10':>8}{'medr':>8}{'meanr':>9}"]
    for direction in ("i2t", "t2i"):
        key = f"{prefix}{direction}"
        values = [metrics[f"{key}_r{k}"] for k in (1, 5, 10)]
        lines.append(f"{direction:6}" + "".join(f"{v:8.1f}" for v in values)
                     + f"{metrics[f'{key}_medr']:8.0f}{metrics[f'{key}_meanr']:9.1f}")
    lines.append(f"rSum {metrics[f'{prefix}rsum']:.1f}")
    probes = [f"{kind} {metrics[f'probe_{kind}']:.1f}" for kind in TWIN_KINDS if f"probe_{kind}" in metrics]
    if probes:
        lines.append("probes (% base image preferred over its twin; chance 50): " + ", ".join(probes))
    return "\n".join(lines)


def foil_line(metrics: dict[str, float]) -> str | None:
    kinds = [k for k in FOIL_KINDS if f"foiled_{k}" in metrics]
    if not kinds:
        return None
    return ("caption foils (% true caption above its foil; chance 50): " + ", ".join(
        f"{k} {metrics.get(f'probe_foil_{k}', float('nan')):.1f} ({metrics[f'foiled_{k}']:.0f}% of captions foiled)" for k in kinds))


def evaluation_report(metrics: dict[str, float]) -> str:
    """One table, or for COCO the 1K (5-fold mean) and 5K tables; then the caption-foil probes."""
    if "5k_rsum" not in metrics:
        lines = [metrics_table(metrics)]
    else:
        lines = ["COCO 1K (mean of 5 folds)", metrics_table(metrics, "1k_"), "COCO 5K", metrics_table(metrics, "5k_")]
    foils = foil_line(metrics)
    return "\n".join(lines + ([foils] if foils else []))
