"""Ablation cells: find a finished run with the same resolved config and seed, or a resumable one.

A cell is reused when the experiment holds a FINISHED run with test metrics whose saved
``config.toml`` equals the cell's config in everything that changes the numbers (configs hold the
canonical variant name, so ``dsrln`` and ``gisa+dif+hier`` are the same cell) and that was trained by
the same component code (its ``variants_revision`` tag equals ``variants.REVISION``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark import config as configuration
from benchmark.config import RunConfig
from benchmark.data.loader import dataset_spec
from variants import REVISION


@dataclass
class Cell:
    cfg: RunConfig
    run_id: str | None = None  # set once the cell has a finished run
    reused: bool = False

    @property
    def variant(self) -> str:
        return self.cfg.model.variant

    @property
    def name(self) -> str:
        return f"{self.variant} seed {self.cfg.seed}"


def _candidates(experiment_id: str, cell: Cell, statuses: tuple[str, ...]):
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs([experiment_id], filter_string=(
        f"tags.variant = '{cell.variant}' AND tags.seed = '{cell.cfg.seed}' AND tags.dataset = '{cell.cfg.data.dataset}' "
        f"AND tags.variants_revision = '{REVISION}'"),  # runs of other component code are never reused
        order_by=["attributes.start_time DESC"])
    return [r for r in runs if r.info.status in statuses and "sweep.role" not in r.data.tags]


def _same_config(run, cfg: RunConfig) -> bool:
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="config.toml")
    except Exception:  # no config artifact (a run that died before logging it)
        return False
    return not configuration.differences(configuration.resolve(path), cfg)


def headline_rsum_key(dataset: str) -> str:
    """The MLflow metric of a run's headline test rSum (``test_1k_rsum`` on COCO)."""
    return dataset_spec(dataset).headline.test_key("rsum")


def find_finished(experiment_id: str, cell: Cell) -> str | None:
    """The newest FINISHED run with test metrics and the same config, if any."""
    for run in _candidates(experiment_id, cell, ("FINISHED",)):
        if headline_rsum_key(cell.cfg.data.dataset) in run.data.metrics and _same_config(run, cell.cfg):
            return run.info.run_id
    return None


def find_resumable(experiment_id: str, cell: Cell) -> Path | None:
    """The folder of the newest interrupted run of this cell that left a checkpoint, if any."""
    for run in _candidates(experiment_id, cell, ("KILLED", "FAILED")):
        folder = run.data.tags.get("run_dir")
        if folder and (Path(folder) / "checkpoints" / "last.pt").is_file() and not (Path(folder) / "metrics.json").exists():
            if _same_config(run, cell.cfg):
                return Path(folder)
    return None
