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
from benchmark.runner import is_live
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
    """By the config hash tagged when the run started: every field that changes the numbers, as that
    run's code knew them (a field added since, even at its default, makes another config)."""
    return run.data.tags.get("config_hash") == configuration.config_hash(cfg)


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
    """The folder of the newest interrupted run of this cell that left a checkpoint, if any: ended
    KILLED or FAILED, or still RUNNING in MLflow but with no live process (killed with -9)."""
    for run in _candidates(experiment_id, cell, ("KILLED", "FAILED", "RUNNING")):
        folder = run.data.tags.get("run_dir")
        if folder and (Path(folder) / "checkpoints" / "last.pt").is_file() and not (Path(folder) / "metrics.json").exists():
            if _same_config(run, cell.cfg) and not is_live(Path(folder)):
                return Path(folder)
    return None
