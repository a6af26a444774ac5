"""Hyperparameter sweeps: an Optuna study per variant, every trial a nested MLflow run."""

from benchmark.sweep.study import SweepOptions, SweepResult, run_sweep

__all__ = ["SweepOptions", "SweepResult", "run_sweep"]
