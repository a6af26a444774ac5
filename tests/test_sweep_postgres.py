"""Distributed storage for real: two sweep workers share one study on a throwaway PostgreSQL server (the
``postgres_url`` fixture in conftest)."""

from __future__ import annotations

import mlflow
import optuna
from conftest import tiny_config
from test_sweep import SMALL_SPACE

from benchmark.sweep import SweepOptions, run_sweep
from benchmark.study_storage import open_storage


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
