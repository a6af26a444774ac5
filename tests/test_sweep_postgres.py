"""Distributed storage for real: two sweep workers share one study on a throwaway PostgreSQL server.

The server is started from Debian's ``postgresql`` package (``.ci/run`` installs it); the test
skips, saying why, where no server can be started here, and under CI (``CI=true``) fails instead.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import mlflow
import optuna
import pytest
from conftest import require, tiny_config
from test_sweep import SMALL_SPACE

from benchmark.sweep import SweepOptions, run_sweep
from benchmark.study_storage import open_storage


def _postgres_binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
    require(initdb and pg_ctl, "no PostgreSQL server binaries (initdb, pg_ctl) here; install Debian's postgresql package")
    require(importlib.util.find_spec("psycopg"), 'the PostgreSQL driver is missing; pip install -e ".[postgres]"')
    folder = Path(tempfile.mkdtemp(prefix="itr-bench-pg-"))  # not under pytest's 0700 root: the server user must reach it
    as_server_user = []
    if os.getuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, "postgres")
        as_server_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
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


def test_two_workers_share_one_study_on_postgresql(results, tmp_path, postgres_url):
    space = tmp_path / "space.toml"
    space.write_text(SMALL_SPACE)
    run_sweep(tiny_config(), results, SweepOptions(study="on-postgres", storage=postgres_url, workers=2, n_trials=4,
                                                   space_file=str(space)))
    trials = optuna.load_study(study_name="on-postgres", storage=open_storage(postgres_url)).trials
    assert len(trials) == 4 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    runs = mlflow.search_runs(experiment_names=["tests"], filter_string="tags.`sweep.study` = 'on-postgres'")
    parent = runs[runs["tags.sweep.role"] == "parent"].iloc[0]
    assert parent["tags.sweep.storage"] == postgres_url.replace("not-a-secret", "***")
    assert (runs["tags.sweep.role"] == "trial").sum() == 4
