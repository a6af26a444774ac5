"""The MLflow store: processes that create one store at once all get it."""

import os
import subprocess
import sys

OPEN_STORE = "import sys; from pathlib import Path; from benchmark import tracking; tracking.setup(Path(sys.argv[1]))"


def test_processes_creating_one_store_at_once_all_succeed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_STORE, str(tmp_path / "results")], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outputs = [(p.wait(timeout=120), p.stdout.read()) for p in processes]
    assert all(code == 0 for code, _ in outputs), [out[-300:] for code, out in outputs if code]
    assert (tmp_path / "results" / "mlflow.db").exists()
