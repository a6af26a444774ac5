"""Many machines, one tracking store: an MLflow server on PostgreSQL with proxied artifacts, two processes logging
runs to it over HTTP, and a report built from them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import free_port
from test_distributed import TINY_FLAGS


def _database(postgres_url: str, name: str) -> str:
    """A new database on the server (MLflow's tables and Optuna's both use alembic's version table: one each)."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def tracking_server(tmp_path, postgres_url):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", _database(postgres_url, "mlflow_runs"),
                               "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1"], stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.mark.slow
def test_two_processes_log_to_one_server_and_report_reads_their_runs(tmp_path, tracking_server):
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_server}
    flags = ["experiment=shared" if flag == "experiment=ddp" else flag for flag in TINY_FLAGS]
    machines = [subprocess.Popen([sys.executable, "-m", "benchmark", "run", "--results-dir", str(tmp_path / name),
                                  *[variant if flag == "sa" else flag for flag in flags]], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for name, variant in (("machine-a", "sa"), ("machine-b", "gisa"))]
    for machine in machines:
        out, err = machine.communicate(timeout=600)
        assert machine.returncode == 0, err[-3000:]
    assert not (tmp_path / "machine-a" / "mlflow.db").exists(), "no local store: the runs went to the server"
    logged = list((tmp_path / "artifacts").rglob("metrics.json"))
    assert len(logged) == 2, "the server stored both runs' artifacts (proxied, not written by the clients)"
    done = subprocess.run([sys.executable, "-m", "benchmark", "report", "--experiment", "shared", "--results-dir",
                           str(tmp_path / "desk"), "--out", str(tmp_path / "report")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    table = next((tmp_path / "report").glob("*.md")).read_text()
    assert "2 finished runs (synthetic)" in table and "\n| sa | 1 |" in table and "\n| gisa | 1 |" in table
    assert "| sa → gisa (relation) |" in table, "the paired test read both runs' per-query ranks through the server"
