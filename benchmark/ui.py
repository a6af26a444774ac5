"""``ui``: the MLflow UI on the suite's store, bound to localhost by default."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from benchmark import tracking
from benchmark.errors import UserError


def check_port(host: str, port: int) -> None:
    """A one-line error when ``host:port`` cannot be bound (in use, or not this machine's address)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot serve on {host}:{port} ({exc.strerror}); pass another --port (or --host)") from None


def runs_tables(base: str) -> list[str]:
    """The direct URL of each experiment's runs table. MLflow 3 lands on its GenAI overview (traces, token
    usage) whatever the experiment's tags say (checked in headless Chromium), so the URL goes to the runs."""
    from mlflow.tracking import MlflowClient

    return [f"runs of {e.name}: {base}/#/experiments/{e.experiment_id}/runs"
            for e in MlflowClient().search_experiments() if e.name != "Default"]


def serve(results_dir: Path, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Run ``mlflow ui`` until Ctrl-C; returns its exit status (0 after a clean Ctrl-C)."""
    check_port(host, port)
    uri = tracking.setup(results_dir)
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # ~8 s start instead of ~26 s on 2 cores
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", host, "--port", str(port), "--workers", "1"]
    base = f"http://{host}:{port}"
    print(f"MLflow UI for {uri}\nopen {base} (Ctrl-C stops it)", flush=True)
    for line in runs_tables(base):
        print(line, flush=True)
    process = subprocess.Popen(command, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        print("MLflow UI stopped", flush=True)
        return 0
