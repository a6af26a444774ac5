"""Shared fixtures: one MLflow store per test session, tiny configs, precomp files on disk."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
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
        "data": {"synthetic": {"train_groups": 8, "dev_groups": 3, "test_groups": 4, "crowded_groups": 4, "n_regions": 10,
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


def _postgres_binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on a free port, from Debian's ``postgresql`` package (``.ci/run`` installs it);
    the test skips, saying why, where no server can be started here, and under CI (``CI=true``) fails instead."""
    initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
    require(initdb and pg_ctl, "no PostgreSQL server binaries (initdb, pg_ctl) here; install Debian's postgresql package")
    require(importlib.util.find_spec("psycopg"), 'the PostgreSQL driver is missing; pip install -e ".[postgres]"')
    folder = Path(tempfile.mkdtemp(prefix="itr-bench-pg-"))  # not under pytest's 0700 root: the server user must reach it
    as_server_user = []
    if os.getuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, "postgres")
        as_server_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    try:
        subprocess.run([*as_server_user, initdb, "-D", str(folder / "data"), "--auth=trust", "-U", "bench"],
                       check=True, capture_output=True)
        subprocess.run([*as_server_user, pg_ctl, "-D", str(folder / "data"), "-l", str(folder / "server.log"), "-w",
                        "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        require(False, f"could not start a PostgreSQL server here: {exc}")
    yield f"postgresql://bench:not-a-secret@127.0.0.1:{port}/postgres"
    subprocess.run([*as_server_user, pg_ctl, "-D", str(folder / "data"), "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)
