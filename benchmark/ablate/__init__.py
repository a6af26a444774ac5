"""Ablations: a grid of variants over seeds, reused cells, the report, and a verdict per DSRLN claim."""

from benchmark.ablate.command import AblationResult, run_ablation
from benchmark.ablate.slurm import SlurmOptions

__all__ = ["AblationResult", "SlurmOptions", "run_ablation"]
