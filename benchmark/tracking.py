"""MLflow bookkeeping: where the store is, the experiment, and what each run records.

The default store is SQLite under ``results/`` (no server); ``MLFLOW_TRACKING_URI`` overrides
it. Telemetry is off: nothing goes to the network.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmark.errors import UserError

PACKAGES = ("torch", "numpy", "transformers", "mlflow", "optuna", "pandas", "scipy", "itr-bench")


def tracking_uri(results_dir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(results_dir / 'mlflow.db').resolve()}"


def setup(results_dir: Path) -> str:
    """Point MLflow at the suite's store (creating ``results_dir``) with telemetry off."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    results_dir.mkdir(parents=True, exist_ok=True)
    import mlflow

    uri = tracking_uri(results_dir)
    mlflow.set_tracking_uri(uri)
    return uri


def experiment_id(name: str, results_dir: Path) -> str:
    """The id of experiment ``name``, created with artifacts under ``results/mlartifacts``."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        local = tracking_uri(results_dir).startswith("sqlite:")
        location = (results_dir / "mlartifacts").resolve().as_uri() if local else None
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created meanwhile by a parallel run
            experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage == "deleted":
        raise UserError(f"MLflow experiment '{name}' is deleted; restore it in the MLflow UI or pass --experiment NEW_NAME")
    return experiment.experiment_id


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str:
    """The suite's git commit (``+dirty`` with uncommitted changes), or ``unknown`` outside git."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """What a reader needs to rerun a run: interpreter, machine, packages, threads."""
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "git_commit": git_commit(),
        "packages": package_versions(),
    }


def run_tags(variant: str, dataset: str, seed: int, device: str, config_hash: str, env: dict[str, Any]) -> dict[str, str]:
    tags = {
        "variant": variant, "dataset": dataset, "seed": str(seed), "device": device,
        "config_hash": config_hash, "git_commit": env["git_commit"],
    }
    return tags | {f"version.{name}": version for name, version in env["packages"].items()}
