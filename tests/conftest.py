"""Shared fixtures: one MLflow store per test session, tiny configs, precomp files on disk."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from benchmark import config

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def results(tmp_path_factory) -> Path:
    """A results folder with one SQLite MLflow store for the whole session (creating one costs ~5 s)."""
    path = tmp_path_factory.mktemp("results")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{path / 'mlflow.db'}"
    return path


def require(available: object, why: str) -> None:
    """A prerequisite that `.ci/run` installs: skip, saying why, when it is missing here; under CI, fail instead."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why}; .ci/run installs it, so under CI this is a failure, not a skip")
    pytest.skip(why)


def has_latex() -> bool:
    """Whether pdflatex is here, for tests that also compile their output. Under CI a missing engine fails the
    test; elsewhere the test goes on without compiling, with a warning in the summary."""
    if shutil.which("pdflatex"):
        return True
    if os.environ.get("CI"):
        pytest.fail("no pdflatex; .ci/run installs texlive-latex-recommended, so under CI this is a failure")
    warnings.warn("no LaTeX engine here, so the generated LaTeX was not compiled (apt-get install texlive-latex-recommended)")
    return False


def tiny_config(**overrides) -> config.RunConfig:
    """A run that trains in a second or two: 8 train groups, tiny dims, 2 epochs."""
    layers = {
        "device": "cpu",
        "experiment": "tests",
        "data": {"synthetic": {"train_groups": 8, "dev_groups": 3, "test_groups": 4, "n_regions": 10,
                               "region_dim": 16, "grid_size": 3, "grid_dim": 8}},
        "model": {"variant": "sa", "embed_dim": 16, "word_dim": 8, "num_heads": 2},
        "train": {"epochs": 2, "batch_size": 16, "lr_milestones": [1]},
        "eval": {"image_chunk": 5},
    }
    return config.resolve(None, layers, overrides)


@pytest.fixture
def tiny():
    return tiny_config


def write_precomp(folder: Path, split: str, n_images: int, *, n_regions: int = 4, dim: int = 6,
                  rows_per_image: int = 1, seed: int = 0) -> np.ndarray:
    """A minimal valid split in the precomp layout; returns the per-image region features."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    feats = rng.normal(size=(n_images, n_regions, dim)).astype(np.float32)
    np.save(folder / f"{split}_ims.npy", np.repeat(feats, rows_per_image, axis=0))
    caps = [f"image {i} caption {j} with a dog" for i in range(n_images) for j in range(5)]
    (folder / f"{split}_caps.txt").write_text("\n".join(caps) + "\n")
    return feats
