"""``reproduce``: a finished run trained again from what it logged, every number compared, and every
difference in its circumstances reported (and refused under --strict)."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient
from test_cli import one_error_line

from benchmark import runner, tracking
from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.report.collect import load_runs
from benchmark.reproduce import comparison, reproduce


@pytest.fixture(autouse=True)
def clean_checkout(monkeypatch):
    """The commit and lock these tests see: a clean checkout in a locked environment, whatever state the
    developer's tree and venv are in (CI's are both)."""
    monkeypatch.setattr(tracking, "git_commit", lambda: "c0ffee" * 6 + "c0ff")
    monkeypatch.setattr(tracking, "lock_status", lambda: {"lock_digest": "0123abcd", "matches_lock": "true", "lock_mismatches": []})


def test_a_short_synthetic_run_reproduces_exactly_from_its_folder_and_from_its_run_id(results, tiny, capsys):
    original = runner.run(tiny(), results)
    lines = []
    again, exact = reproduce(str(original.run_dir), results, strict=True, echo=lines.append)
    assert exact and lines[-1] == f"reproduced exactly ({len(original.metrics) + 2} metrics identical)"
    assert "same commit, packages, lock, Python, threads, CPU, device and data" in lines[1]
    client = MlflowClient()
    assert client.get_run(again.run_id).data.tags["reproduces"] == original.run_id
    tags = client.get_run(original.run_id).data.tags
    assert tags["reproduced_by"] == again.run_id and tags["reproduced_exactly"] == "true"
    assert main(["reproduce", original.run_id, "--results-dir", str(results)]) == 0  # from the store's artifacts
    assert "reproduced exactly" in capsys.readouterr().out
    runset = load_runs("tests")  # what a report shows: the original, marked; the reproductions are checks, not runs
    assert again.run_id not in set(runset.runs["run_id"])
    assert runset.runs.set_index("run_id").loc[original.run_id, "reproduced"] == "exactly"
    assert runset.excluded["reproductions (each is marked on the run it reproduced)"] >= 2


def test_a_sweep_trial_reproduces_from_its_params_and_tags(results, tiny, tmp_path):
    from benchmark.sweep import SweepOptions, run_sweep

    space = tmp_path / "space.toml"
    space.write_text('"train.lr" = { float = [1e-4, 1e-2], log = true }\n')
    run_sweep(tiny(), results, SweepOptions(study="to-reproduce", space_file=str(space), n_trials=1))
    (trial_id,) = [r.info.run_id for r in MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("tests").experiment_id],
        "tags.`sweep.study` = 'to-reproduce' and tags.`sweep.role` = 'trial'")]
    lines = []
    _, exact = reproduce(trial_id, results, strict=True, echo=lines.append)
    assert exact and lines[-1] == "reproduced exactly (2 metrics identical)"  # the trial's best dev score and epoch


def test_a_changed_commit_data_thread_count_or_cpu_is_reported_and_refused_under_strict(results, tiny):
    original = runner.run(tiny(), results)
    environment = json.loads((original.run_dir / "environment.json").read_text())
    environment |= {"git_commit": "0" * 40, "torch_threads": environment["torch_threads"] + 1, "cpu": "Other CPU, AVX2"}
    (original.run_dir / "environment.json").write_text(json.dumps(environment))
    MlflowClient().set_tag(original.run_id, "dataset_digest", "feedfacefeedface")
    lines = []
    with pytest.raises(UserError, match=r"--strict: 4 difference\(s\)"):
        reproduce(str(original.run_dir), results, strict=True, echo=lines.append)
    differs = [line for line in lines if "differs:" in line]
    assert f"git commit: {'0' * 40} then" in differs[0]
    assert "torch threads" in differs[1]
    assert "CPU (its kernels sum in another order): Other CPU, AVX2 then" in differs[2]
    assert "dataset digest: feedfacefeedface then" in differs[3] and "the data differs" in differs[3]


def test_a_metric_that_does_not_come_back_is_named_and_exits_1(results, tiny, capsys):
    original = runner.run(tiny(), results)
    metrics = json.loads((original.run_dir / "metrics.json").read_text())
    metrics["test"]["rsum"] += 1.5
    (original.run_dir / "metrics.json").write_text(json.dumps(metrics))
    assert main(["reproduce", str(original.run_dir), "--results-dir", str(results)]) == 1
    out = capsys.readouterr().out
    assert f"1 of {len(metrics['test']) + 2} metrics differ (largest: test_rsum" in out
    assert MlflowClient().get_run(original.run_id).data.tags["reproduced_exactly"] == "false"


def test_comparison_names_the_largest_difference():
    lines, summary, exact = comparison({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 1.0, "b": 2.5, "c": 1.0})
    assert not exact and summary == "2 of 3 metrics differ (largest: c 3 -> 1)"
    assert lines[2].split() == ["b", "2", "2.5", "+0.5"] and len(lines[1].split()) == 3


def test_an_unfinished_run_or_an_unknown_id_is_one_line(results, tiny, capsys):
    class Stop(Exception):
        pass

    def stop(record):
        raise Stop

    with pytest.raises(Stop):
        runner.run(tiny(), results, on_epoch=stop)
    unfinished = max((results / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    capsys.readouterr()  # what the run wrote (the store's creation, when this test runs alone)
    line = one_error_line(capsys, ["reproduce", str(unfinished), "--results-dir", str(results)])
    assert "has not finished (no metrics.json)" in line
    line = one_error_line(capsys, ["reproduce", "0123456789abcdef", "--results-dir", str(results)])
    assert "'0123456789abcdef' is neither a run folder" in line
