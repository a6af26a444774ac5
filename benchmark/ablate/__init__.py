"""Ablations: a grid of variants over seeds, reused cells, the report, and a verdict per DSRLN claim."""

from benchmark.ablate.command import AblationResult, run_ablation

__all__ = ["AblationResult", "run_ablation"]
