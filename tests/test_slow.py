"""Slow end-to-end checks (``pytest -m slow``): the MLflow UI and the default run as a user runs them."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, require
from mlflow.tracking import MlflowClient

from benchmark import runner
from benchmark.tracking import cpu

pytestmark = pytest.mark.slow


def test_ui_serves_the_store_on_localhost_renders_the_runs_table_and_stops_cleanly_on_ctrl_c(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = runner.run(tiny(experiment="itr-bench"), tmp_path)
    port = free_port()
    env = os.environ.copy()
    env.pop("MLFLOW_TRACKING_URI")
    process = subprocess.Popen([sys.executable, "-m", "benchmark", "ui", "--port", str(port), "--results-dir", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline, status = time.time() + 120, None
        while time.time() < deadline and status != 200:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status
            except OSError:
                time.sleep(1)
        assert status == 200
        require(shutil.which("chromium"), "no chromium to render the UI (apt-get install chromium)")
        url = f"http://127.0.0.1:{port}/#/experiments/{MlflowClient().get_run(run.run_id).info.experiment_id}/runs"
        dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                              "--disable-background-networking", "--disable-component-update", "--disable-sync",
                              f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=20000", "--dump-dom", url],
                             capture_output=True, text=True, timeout=120).stdout
        assert run.run_dir.name in dom and "Training runs" in dom  # the rendered runs table, not the GenAI overview
        assert f"synthetic ({MlflowClient().get_run(run.run_id).data.tags['dataset_digest']})" in dom  # its Datasets column
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    assert f"open http://127.0.0.1:{port}" in out and "Traceback" not in out
    assert f"runs of itr-bench: {url}" in out


def readme_default_run_outputs() -> dict[str, list[str]]:
    """The output blocks that README.md publishes for `python -m benchmark run`, run names left out, keyed by the
    CPU each was measured on (model name and torch's instruction set, ``tracking.cpu``): the last name in backticks
    in the paragraph before the block."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    parts = readme.split("\n```\ntest (")
    return {re.findall(r"`([^`]+)`", before.rsplit("\n\n", 1)[-1])[-1]: published_lines("test (" + block.split("```", 1)[0])
            for before, block in zip(parts, parts[1:])}


def published_lines(output: str) -> list[str]:
    """The test table, from its heading to before the wall-time line, with the run's timestamped name as RUN."""
    lines = output[output.index("test ("):].split("\nwall time ", 1)[0].strip().splitlines()
    return [re.sub(r"^test \(\S+,", "test (RUN,", lines[0]), *lines[1:]]


def test_readme_publishes_the_default_run_for_the_cpus_it_was_measured_on():
    assert set(readme_default_run_outputs()) == {"AMD EPYC, AVX2"}


def test_the_default_run_prints_the_figures_readme_publishes(tmp_path):
    """The same config and seed give the same numbers on the same thread count and CPU: README's are for 2 threads,
    one block per CPU it was measured on. Another CPU sums in another order, so there is nothing to compare with."""
    published = readme_default_run_outputs()
    cpus = [name for name in published if name in cpu()]
    if not cpus:
        pytest.skip(f"README.md publishes the default run for {sorted(published)}, not for this CPU ({cpu()}): "
                    "run `python -m benchmark run` on 2 threads here and add its block")
    env = os.environ | {"OMP_NUM_THREADS": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-m", "benchmark", "run", "--results-dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert published_lines(done.stdout) == published[cpus[0]]
