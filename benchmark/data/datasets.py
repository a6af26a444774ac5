"""From a data config to loaded splits: synthetic data is generated (or found cached) first."""

from __future__ import annotations

from pathlib import Path

from benchmark.config import DataConfig
from benchmark.data.layout import INPUTS, DatasetSpec
from benchmark.data.loader import (
    Split,
    dataset_folder,
    dataset_spec,
    load_splits,
    resolve_root,
)
from benchmark.data.synthetic import ensure_dataset
from benchmark.errors import UserError
from variants import VariantSpec


def dataset_root(cfg: DataConfig, results_dir: Path) -> Path:
    """The data root holding ``<name>_precomp/``."""
    dataset_spec(cfg.dataset)
    if cfg.dataset == "synthetic":
        return ensure_dataset(cfg.synthetic, results_dir)
    return resolve_root(cfg.data_root)


def train_feature_noise(cfg: DataConfig) -> float:
    """The std of the Gaussian noise that training draws afresh for each step (synthetic data with
    ``fresh_train_noise``, whose train split is then written without it; else 0)."""
    return cfg.synthetic.noise if cfg.dataset == "synthetic" and cfg.synthetic.fresh_train_noise else 0.0


def open_dataset(cfg: DataConfig, results_dir: Path, splits: tuple[str, ...] | None = None) -> tuple[DatasetSpec, dict[str, Split]]:
    """The dataset's spec and its validated splits (all of them by default)."""
    spec = dataset_spec(cfg.dataset)
    folder = dataset_folder(spec, dataset_root(cfg, results_dir))
    return spec, load_splits(spec, folder, splits)


def available_inputs(split: Split) -> frozenset[str]:
    """The optional inputs (``INPUTS``) that a split has."""
    return frozenset(name for name in INPUTS if getattr(split, name) is not None)


def check_inputs(spec: VariantSpec, split: Split) -> None:
    """A one-line error naming the files to add when the split lacks an input the variant needs."""
    missing = sorted(spec.requires - available_inputs(split))
    if missing:
        raise UserError(
            f"variant '{spec.name}' needs {', '.join(INPUTS[m][0] for m in missing)} but the dataset has none; "
            f"add {' and '.join(INPUTS[m][1] for m in missing)} for every split (see README 'Real data')"
        )
