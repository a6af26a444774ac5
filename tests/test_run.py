"""The training harness end to end: MLflow records, determinism, resume, checkpoints, eval."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import write_precomp
from mlflow.tracking import MlflowClient

from benchmark import runner, tracking
from benchmark.errors import UserError


class Interrupt(Exception):
    pass


def stop_after(epoch, exc=KeyboardInterrupt):
    def hook(record):
        if record.epoch == epoch:
            raise exc()
    return hook


def test_a_run_records_params_tags_epoch_and_test_metrics_and_artifacts(results, tiny):
    result = runner.run(tiny(), results)
    run = MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.002" and run.data.params["model.variant"] == "sa"
    for tag in ("variant", "dataset", "seed", "git_commit", "config_hash", "device", "version.torch", "version.mlflow",
                "dataset_digest", "lock_digest", "matches_lock"):
        assert tag in run.data.tags, tag
    note = run.data.tags["mlflow.note.content"]  # the run's description on MLflow's Overview page
    assert f"best epoch {result.best_epoch} of 2" in note and f"rSum {result.metrics['rsum']:.1f}" in note
    (dataset,) = [d.dataset for d in run.inputs.dataset_inputs]  # the UI's Datasets, with the suite's digest
    assert dataset.name == "synthetic" and dataset.digest == run.data.tags["dataset_digest"]
    experiment = MlflowClient().get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # opens on the runs table, not GenAI
    for key in ("test_rsum", "test_i2t_r1", "test_t2i_r10", "test_i2t_medr", "test_t2i_meanr",
                "test_probe_layout", "test_probe_binding_group", "test_probe_context", "test_probe_scene",
                "test_probe_crowded_binding", "test_probe_crowded_binding_group", "best_dev_score",
                "dev_probe_layout", "dev_probe_context_group"):
        assert key in run.data.metrics, key
    history = MlflowClient().get_metric_history(result.run_id, "dev_rsum")
    assert [m.step for m in history] == [1, 2]
    scores = {m.step: m.value for m in MlflowClient().get_metric_history(result.run_id, "dev_score")}
    # the kept epoch: the peak, or a later one within noise of it
    assert result.best_epoch >= max(scores, key=scores.get) and result.best_dev_score == scores[result.best_epoch]
    for key in ("train_loss", "epoch_seconds", "samples_per_s", "dev_i2t_r1"):
        assert len(MlflowClient().get_metric_history(result.run_id, key)) == 2
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id)}
    assert {"config.toml", "ranks.npz", "environment.json", "vocab.json", "metrics.json"} <= artifacts
    ranks = np.load(result.run_dir / "ranks.npz")
    # the twin-free pool: the 4 base images and their 20 captions; each probe compares the 20 base captions
    # (the crowded binding probe, those of the 4 crowded groups)
    assert len(ranks["i2t"]) == 4 and len(ranks["t2i"]) == 20 and len(ranks["probe_layout"]) == 20
    assert len(ranks["probe_crowded_binding"]) == 20
    assert result.metrics["rsum"] == pytest.approx(run.data.metrics["test_rsum"])


def test_the_same_config_and_seed_give_identical_numbers(results, tiny):
    first, second = runner.run(tiny(), results), runner.run(tiny(), results)
    assert first.metrics == second.metrics and first.best_dev_score == second.best_dev_score
    third = runner.run(tiny(seed=1), results)
    assert third.metrics != first.metrics


def test_resume_after_a_kill_equals_an_uninterrupted_run(results, tiny):
    cfg = tiny(train={"epochs": 3})
    whole = runner.run(cfg, results)
    with pytest.raises(KeyboardInterrupt):
        runner.run(cfg, results, on_epoch=stop_after(1))
    killed_dir = max((results / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    run_id = json.loads((killed_dir / "run.json").read_text())["mlflow_run_id"]
    assert MlflowClient().get_run(run_id).info.status == "KILLED"
    resumed = runner.run(cfg, results, resume_dir=killed_dir)
    assert resumed.run_id == run_id and MlflowClient().get_run(run_id).info.status == "FINISHED"
    assert resumed.metrics == whole.metrics and resumed.best_epoch == whole.best_epoch
    assert [m.step for m in MlflowClient().get_metric_history(run_id, "dev_rsum")] == [1, 2, 3]


def test_resuming_a_checkpoint_without_the_selection_peak_is_one_line(results, tiny):
    with pytest.raises(KeyboardInterrupt):
        runner.run(tiny(), results, on_epoch=stop_after(1))
    killed_dir = max((results / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    last = killed_dir / "checkpoints" / "last.pt"
    payload = torch.load(last, weights_only=True)
    del payload["peak_shares"]  # as written before selection within noise
    torch.save(payload, last)
    with pytest.raises(UserError, match="predates selection within noise of the peak.*start a new run instead of --resume"):
        runner.run(tiny(), results, resume_dir=killed_dir)


def test_resuming_a_live_run_is_refused_naming_its_process(results, tiny):
    refusals = []

    def resume_while_live(record):
        live_dir = max((results / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
        with pytest.raises(UserError) as refused:
            runner.run(tiny(), results, resume_dir=live_dir)
        refusals.append(str(refused.value))

    result = runner.run(tiny(train={"epochs": 1}), results, on_epoch=resume_while_live)
    assert refusals == [f"{result.run_dir} is live in process {os.getpid()}; let it finish, or stop it (Ctrl-C) before --resume"]
    assert MlflowClient().get_run(result.run_id).info.status == "FINISHED"


def test_resuming_against_another_store_is_one_line(results, tiny, tmp_path, monkeypatch):
    with pytest.raises(KeyboardInterrupt):
        runner.run(tiny(), results, on_epoch=stop_after(1))
    killed_dir = max((results / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    with monkeypatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
        with pytest.raises(UserError, match=r"MLflow run \w+ is not in the store sqlite:///.*other.db; resume with the --results-dir"):
            runner.run(tiny(), results, resume_dir=killed_dir)
    tracking.setup(results)  # back to the session's store


def test_a_failing_run_ends_failed_not_running(results, tiny):
    with pytest.raises(Interrupt):
        runner.run(tiny(), results, on_epoch=stop_after(1, Interrupt))
    failed = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("tests").experiment_id], "attributes.status = 'FAILED'")
    assert failed


def test_checkpoints_load_with_weights_only_and_eval_reproduces_test(results, tiny):
    result = runner.run(tiny(), results)
    payload = torch.load(result.run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert payload["config"]["model"]["variant"] == "sa" and payload["epoch"] == result.best_epoch
    split, evaluation = runner.evaluate_checkpoint(result.run_dir / "checkpoints" / "best.pt", results, device="cpu")
    assert split == "test" and evaluation.metrics == result.metrics
    first = next(iter(payload["model"]))
    payload["model"][first] = torch.zeros(3)  # damaged weights in an otherwise valid checkpoint
    torch.save(payload, result.run_dir / "damaged.pt")
    with pytest.raises(UserError, match=f"damaged.pt holds weights that do not fit the model its config builds .*{first}"):
        runner.evaluate_checkpoint(result.run_dir / "damaged.pt", results, device="cpu")


def test_a_coco_layout_reports_1k_fold_mean_and_5k(results, tiny, tmp_path):
    folder = tmp_path / "coco_precomp"
    for split, n_images in (("train", 12), ("dev", 5), ("testall", 10)):
        write_precomp(folder, split, n_images)
    result = runner.run(tiny(data={"dataset": "coco", "data_root": str(tmp_path)}), results)
    metrics = MlflowClient().get_run(result.run_id).data.metrics
    assert {"test_1k_rsum", "test_5k_rsum", "test_1k_i2t_r1", "test_5k_t2i_medr"} <= set(metrics)
    assert not {k for k in metrics if k.startswith("test_probe_") and not k.startswith("test_probe_foil_")}  # no twins in real data
    # caption foils instead: "image 3 caption 1 with a dog" has one noun and no spatial word, but can be shuffled
    assert metrics["test_foiled_nouns"] == 0 and metrics["test_foiled_spatial"] == 0 and metrics["test_foiled_shuffle"] == 100
    assert 0 <= metrics["test_probe_foil_shuffle"] <= 100 and "test_probe_foil_nouns" not in metrics


def test_resuming_on_data_that_changed_since_the_run_started_is_refused(results, tiny):
    with pytest.raises(KeyboardInterrupt):
        runner.run(tiny(), results, on_epoch=stop_after(1))
    killed_dir = max((results / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    saved = killed_dir / "config.toml"  # as if the run started when a default gave other data
    saved.write_text(saved.read_text().replace("fresh_train_noise = true", "fresh_train_noise = false"))
    with pytest.raises(UserError, match=r"this run started on other data \(dataset digest \w+, now \w+\)"):
        runner.run(tiny(), results, resume_dir=killed_dir)
