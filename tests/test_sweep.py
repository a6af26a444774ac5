"""Sweeps: trials in real Optuna storage, nested MLflow runs, resume, pruning, workers, export, errors."""

from __future__ import annotations

import importlib.util

import mlflow
import optuna
import pytest
from conftest import require, tiny_config
from test_cli import one_error_line

from benchmark import config
from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.sweep import SweepOptions, run_sweep
from benchmark.sweep.space import check_space, default_space
from benchmark.study_storage import open_storage

SMALL_SPACE = '"train.lr" = { float = [1e-4, 1e-2], log = true }\n"train.margin" = { float = [0.1, 0.4] }\n'


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(SMALL_SPACE)
    return str(path)


def sweep(results, study, space_file=None, pruner=None, **options):
    return run_sweep(tiny_config(), results, SweepOptions(study=study, space_file=space_file, **options), pruner=pruner)


def trials_of(results, study):
    return optuna.load_study(study_name=study, storage=open_storage(str(results / "optuna.journal"))).trials


def runs_of(study):
    runs = mlflow.search_runs(experiment_names=["tests"], filter_string=f"tags.`sweep.study` = '{study}'")
    return runs[runs["tags.sweep.role"] == "parent"], runs[runs["tags.sweep.role"] == "trial"]


def test_a_sweep_stores_its_trials_and_nests_one_mlflow_child_per_trial(results, space_file):
    result = sweep(results, "three", space_file, n_trials=3)
    trials = trials_of(results, "three")
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    parents, children = runs_of("three")
    assert len(parents) == 1 and len(children) == 3
    parent = parents.iloc[0]
    assert parent["status"] == "FINISHED" and parent["params.study"] == "three"
    assert float(parent["metrics.best_dev_score"]) == pytest.approx(result.best_value)
    assert float(parent["params.best.train.lr"]) == pytest.approx(result.best_params["train.lr"])
    assert set(children["tags.mlflow.parentRunId"]) == {parent["run_id"]}
    for trial in trials:
        child = children[children["tags.sweep.trial"] == str(trial.number)].iloc[0]
        assert child["tags.sweep.state"] == "complete" and child["status"] == "FINISHED"
        assert float(child["params.train.lr"]) == trial.params["train.lr"]
        assert float(child["params.train.margin"]) == trial.params["train.margin"]
        assert float(child["metrics.best_dev_score"]) == pytest.approx(trial.value)
        assert "metrics.dev_rsum" in child  # per-epoch curve
    assert "top 3 trials by dev score" in result.summary


def test_rerunning_a_study_adds_new_points_instead_of_replaying_old_ones(results, space_file):
    sweep(results, "resumed", space_file, n_trials=2)
    sweep(results, "resumed", space_file, n_trials=2)
    trials = trials_of(results, "resumed")
    assert [t.number for t in trials] == [0, 1, 2, 3]
    first, second = ([t.params["train.lr"] for t in trials[i:i + 2]] for i in (0, 2))
    assert not set(first) & set(second)
    parents, children = runs_of("resumed")
    assert len(parents) == 2 and len(children) == 4


def test_a_changed_config_cannot_silently_continue_a_study(results, space_file):
    sweep(results, "fixed", space_file, n_trials=1)
    with pytest.raises(UserError, match=r"different config \(train.epochs differ\)"):
        run_sweep(tiny_config(train={"epochs": 3}), results, SweepOptions(study="fixed", space_file=space_file, n_trials=1))


def test_a_pruned_trial_is_recorded_as_pruned(results, space_file):
    sweep(results, "pruned", space_file, n_trials=1, pruner=optuna.pruners.ThresholdPruner(lower=1e9))
    (trial,) = trials_of(results, "pruned")
    assert trial.state == optuna.trial.TrialState.PRUNED and list(trial.intermediate_values) == [1]
    _, children = runs_of("pruned")
    assert children.iloc[0]["tags.sweep.state"] == "pruned"


def test_a_trial_that_finished_its_epochs_is_never_pruned(results, space_file):
    run_sweep(tiny_config(train={"epochs": 1}), results, SweepOptions(study="last-epoch", space_file=space_file, n_trials=1),
              pruner=optuna.pruners.ThresholdPruner(lower=1e9))
    assert [t.state.name for t in trials_of(results, "last-epoch")] == ["COMPLETE"]


def test_ctrl_c_records_the_trial_closes_the_runs_and_leaves_the_study_resumable(results, space_file):
    def interrupt(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(tiny_config(), results, SweepOptions(study="stopped", space_file=space_file, n_trials=2), on_epoch=interrupt)
    parents, children = runs_of("stopped")
    assert parents.iloc[0]["status"] == "KILLED"
    assert children.iloc[0]["status"] == "KILLED" and children.iloc[0]["tags.sweep.state"] == "interrupted"
    sweep(results, "stopped", space_file, n_trials=1)
    states = [t.state.name for t in trials_of(results, "stopped")]
    assert states == ["FAIL", "COMPLETE"]


def test_two_workers_share_the_default_storage_and_lose_no_trial(results, space_file):
    sweep(results, "pair", space_file, n_trials=4, workers=2)
    trials = trials_of(results, "pair")
    assert len(trials) == 4
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    parents, children = runs_of("pair")
    assert len(parents) == 1 and sorted(children["tags.sweep.trial"].astype(int)) == [0, 1, 2, 3]
    assert set(children["tags.mlflow.parentRunId"]) == {parents.iloc[0]["run_id"]}
    assert len({t.params["train.lr"] for t in trials}) == 4  # concurrent workers never draw the same point


def test_one_worker_sweeps_are_reproducible_from_the_seed(results, space_file):
    for study in ("twin-a", "twin-b"):
        sweep(results, study, space_file, n_trials=2)
    assert [t.params for t in trials_of(results, "twin-a")] == [t.params for t in trials_of(results, "twin-b")]


def test_the_exported_best_config_runs_unchanged(results, space_file, tmp_path, capsys):
    best = tmp_path / "best.toml"
    result = sweep(results, "export", space_file, n_trials=2, export_best=str(best))
    exported = config.resolve(best)
    assert exported.train.lr == result.best_params["train.lr"] and exported.model.variant == "sa"
    assert main(["run", "--config", str(best), "--results-dir", str(results)]) == 0
    assert "test (" in capsys.readouterr().out


def test_the_default_space_is_the_union_of_the_variants_components():
    assert set(default_space("sa")) == {"train.lr", "train.margin", "model.embed_dim", "model.dropout"}
    full = default_space("dsrln")
    assert {"model.gisa_geometry", "model.dif_gate", "model.local_lambda", "model.hier_weight"} <= set(full)
    check_space(full, config.RunConfig())


@pytest.mark.parametrize("space, message", [
    ('"train.lrr" = { float = [1e-4, 1e-2] }', "unknown config key 'train.lrr'. Did you mean 'train.lr'?"),
    ('"train.lr" = { float = [1e-2, 1e-4] }', "train.lr': float must be [low, high] with low < high"),
    ('"train.lr" = { uniform = [1e-4, 1e-2] }', "search space entry 'train.lr' must be"),
    ('"model.embed_dim" = { choices = ["big"] }', "config 'model.embed_dim' must be int; got 'big'"),
    ('"seed" = { int = [0, 9] }', "entry 'seed' names what a run is"),
])
def test_a_bad_space_is_one_clear_line(capsys, tmp_path, space, message):
    path = tmp_path / "bad.toml"
    path.write_text(space + "\n")
    line = one_error_line(capsys, ["sweep", "--space", str(path), "--results-dir", str(tmp_path)])
    assert message in line


def test_bad_sweep_options_are_one_clear_line(capsys, tmp_path):
    assert "--n-trials must be at least 1" in one_error_line(capsys, ["sweep", "--n-trials", "0", "--results-dir", str(tmp_path)])
    existing = tmp_path / "taken.toml"
    existing.write_text("")
    assert "already exists" in one_error_line(capsys, ["sweep", "--export-best", str(existing), "--results-dir", str(tmp_path)])


def test_a_damaged_journal_is_one_clear_line_and_left_untouched(capsys, results, space_file, tmp_path):
    journal = tmp_path / "optuna.journal"
    good = b'{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}\n'
    for damage, reason in [(b'{"op_code": 4, "wor\x00\n', "(line 2: Invalid control character"), (b'{"op_code": 4', "(its last record, line 2, is cut off)")]:
        journal.write_bytes(good + damage)
        line = one_error_line(capsys, ["sweep", "--storage", str(journal), "--space", space_file, "--results-dir", str(results),
                                       "--config", _tiny_toml(results)])
        assert f"the Optuna journal {journal} is damaged {reason}" in line and "left untouched" in line
        assert journal.read_bytes() == good + damage


def test_an_unreachable_storage_is_one_clear_line_with_the_password_masked(capsys, results, space_file):
    require(importlib.util.find_spec("psycopg"), 'the PostgreSQL driver is missing; pip install -e ".[postgres]"')
    url = "postgresql://bench:secret@127.0.0.1:1/optuna"
    line = one_error_line(capsys, ["sweep", "--storage", url, "--space", space_file, "--results-dir", str(results),
                                   "--config", _tiny_toml(results)])
    assert line.startswith("error: cannot open the Optuna storage postgresql://bench:***@127.0.0.1:1/optuna (")
    assert "secret" not in line


def _tiny_toml(results) -> str:
    path = results / "tiny.toml"
    config.save_toml(tiny_config(), path)
    return str(path)
