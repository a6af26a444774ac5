"""The MLflow store: processes that create one store at once all get it; a store that cannot be used is one line."""

import os
import subprocess
import sys

import pytest

from benchmark import tracking
from benchmark.errors import UserError

OPEN_STORE = "import sys; from pathlib import Path; from benchmark import tracking; tracking.setup(Path(sys.argv[1]))"


def test_processes_creating_one_store_at_once_all_succeed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_STORE, str(tmp_path / "results")], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outputs = [(p.wait(timeout=120), p.stdout.read()) for p in processes]
    assert all(code == 0 for code, _ in outputs), [out[-300:] for code, out in outputs if code]
    assert (tmp_path / "results" / "mlflow.db").exists()


@pytest.mark.parametrize("uri, reason", [
    ("http://127.0.0.1:1", "Max retries exceeded"),  # a server that is down
    ("sqlite:///{tmp}/folder/mlflow.db", "unable to open database file"),  # a path that is a folder
])
def test_a_store_that_cannot_be_used_is_one_line(tmp_path, monkeypatch, uri, reason):
    (tmp_path / "folder" / "mlflow.db").mkdir(parents=True)
    uri = uri.format(tmp=tmp_path)
    with monkeypatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        with pytest.raises(UserError, match=f"cannot use the MLflow store {uri} .*{reason}.*; (start its server, )?fix the path"):
            tracking.setup(tmp_path / "results")
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_a_kind_tag_set_meanwhile_by_a_parallel_run_is_no_error(results, monkeypatch):
    """Through a tracking server, two processes creating one experiment both insert its kind tag; the second insert
    fails. The tag is there, so that is no error; an insert that fails with the tag absent still is."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from benchmark import tracking

    tracking.setup(results)
    real = MlflowClient.set_experiment_tag

    def set_then_fail(self, experiment_id, key, value):
        real(self, experiment_id, key, value)  # the parallel run's insert
        raise MlflowException("duplicate key value violates unique constraint experiment_tag_pk")

    monkeypatch.setattr(MlflowClient, "set_experiment_tag", set_then_fail)
    experiment = tracking.experiment_id("tag-race", results)
    assert MlflowClient().get_experiment(experiment).tags[tracking.EXPERIMENT_KIND[0]] == tracking.EXPERIMENT_KIND[1]

    def fail(self, experiment_id, key, value):
        raise MlflowException("the server is down")

    monkeypatch.setattr(MlflowClient, "set_experiment_tag", fail)
    with pytest.raises(MlflowException, match="the server is down"):
        tracking.experiment_id("tag-race-2", results)


def test_a_dataset_inserted_meanwhile_by_a_parallel_run_is_linked_not_an_error(results, tmp_path, monkeypatch):
    """Through a tracking server, two runs logging one dataset at once both insert it; the second insert fails
    (seen in CI: unique constraint "dataset_pk"). The retry finds the dataset and links the run to it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from benchmark import tracking

    tracking.setup(results)
    real, calls = mlflow.log_input, []

    def insert_race(dataset, context=None, **kwargs):
        calls.append(dataset.digest)
        if len(calls) == 1:
            raise MlflowException('duplicate key value violates unique constraint "dataset_pk"')
        return real(dataset, context=context, **kwargs)

    monkeypatch.setattr(mlflow, "log_input", insert_race)
    mlflow.set_experiment("dataset-race")
    with mlflow.start_run() as run:
        tracking.log_dataset("synthetic", tmp_path, "0123456789abcdef")
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert calls == ["0123456789abcdef"] * 2 and [i.dataset.digest for i in inputs] == ["0123456789abcdef"]
