"""Slow end-to-end checks (``pytest -m slow``): the MLflow UI and the default run as a user runs them."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ui_serves_the_store_on_localhost_and_stops_cleanly_on_ctrl_c(tmp_path):
    port = free_port()
    env = os.environ | {"MLFLOW_TRACKING_URI": ""}
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
        assert (tmp_path / "mlflow.db").is_file()
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    assert f"open http://127.0.0.1:{port}" in out and "Traceback" not in out


def test_the_default_run_trains_evaluates_and_reports(tmp_path):
    env = os.environ.copy()
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-m", "benchmark", "run", "--results-dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rSum" in done.stdout and "probes" in done.stdout
    rsum = float(done.stdout.split("rSum ")[-1].split()[0])
    assert rsum > 150  # chance on the 250-image twin-free pool is about 13
