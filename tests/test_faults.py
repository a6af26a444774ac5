"""Fault drills: real signals, real full disks, real damaged files. Nothing written before a fault is lost.

The SIGINT twins of the SIGTERM drills and the killed sweep parent are marked slow (CI runs them too).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import tiny_config
from mlflow.tracking import MlflowClient

from benchmark import config, training
from benchmark.checkpoint import load_checkpoint, save_checkpoint
from benchmark.errors import UserError

# subprocesses use the store under their --results-dir, not this session's
ONE_THREAD = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB tmpfs (needs root and mount rights; skipped, saying why, without them)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                                           capture_output=True).returncode:
        pytest.skip("a real full disk needs a tmpfs mount: run as root with mount rights")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_checkpoint_write_on_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(small_disk):
    small = {"model": {"w": torch.zeros(10)}, "config": {}, "vocab": [], "dims": {}, "epoch": 1}
    save_checkpoint(small, small_disk / "best.pt")
    with pytest.raises(UserError, match=r"cannot write checkpoint .*best.pt \(No space left on device\); free space"):
        save_checkpoint(small | {"model": {"w": torch.zeros(1_000_000)}, "epoch": 2}, small_disk / "best.pt")
    assert load_checkpoint(small_disk / "best.pt")["epoch"] == 1
    assert sorted(p.name for p in small_disk.iterdir()) == ["best.pt"]


def test_generating_data_on_a_full_disk_is_one_line_and_leaves_nothing(small_disk, capsys):
    from benchmark.cli import main

    assert main(["data", "generate", "--results-dir", str(small_disk)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot write the synthetic dataset under {small_disk / 'data'} ("), err
    assert not any((small_disk / "data").iterdir())


def test_best_is_written_before_last(results, tiny, monkeypatch, tmp_path):
    """So the last.pt on disk never names a best epoch whose best.pt is missing."""
    from benchmark import runner

    written = []
    real_save = training.save_checkpoint
    monkeypatch.setattr(training, "save_checkpoint", lambda payload, path: (written.append(path.name), real_save(payload, path)))
    runner.run(tiny(train={"epochs": 1}), results)
    assert written == ["best.pt", "last.pt"]


def _ablate(folder, *args):
    """``ablate`` of the one-cell grid with the tiny config, as a command line (run in ``folder``)."""
    return [sys.executable, "-m", "benchmark", "ablate", "--grid", str(folder / "one.toml"), "--seeds", "1",
            "--config", "tiny.toml", "--results-dir", str(folder / "results"), *args]


def _write_inputs(folder):
    (folder / "one.toml").write_text('variants = ["sa"]\n')
    config.save_toml(tiny_config(train={"epochs": 4}, data={"synthetic": {"train_groups": 40}}), folder / "tiny.toml")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The test metrics of the tiny config trained without interruption."""
    folder = tmp_path_factory.mktemp("whole")
    _write_inputs(folder)
    done = subprocess.run([sys.executable, "-m", "benchmark", "run", "--config", "tiny.toml", "--results-dir", "results"],
                          cwd=folder, env=ONE_THREAD, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (folder / "results" / "runs").iterdir()
    return json.loads((run_dir / "metrics.json").read_text())["test"]


def _started_past_its_first_checkpoint(command, folder):
    """Start ``command`` in ``folder`` and return once its run has written ``last.pt`` (epoch 1 done)."""
    process = subprocess.Popen(command, cwd=folder, env=ONE_THREAD, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not list(folder.glob("results/runs/*/checkpoints/last.pt")):
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.05)
    return process


def _interrupted_ablation(tmp_path, signum):
    """Start a one-cell ablation, send ``signum`` once its first epoch is checkpointed; returns the run folder."""
    _write_inputs(tmp_path)
    results = tmp_path / "results"
    process = _started_past_its_first_checkpoint(_ablate(tmp_path), tmp_path)
    process.send_signal(signum)
    output = process.communicate(timeout=60)[0]
    assert "Traceback" not in output, output
    (run_dir,) = results.glob("runs/*")
    assert not (run_dir / "metrics.json").exists(), "the cell finished before the signal: make its epochs longer"
    return results, run_dir, process.returncode


@pytest.mark.parametrize("signum, code", [pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow), (signal.SIGTERM, 130),
                                          (signal.SIGKILL, -signal.SIGKILL)])
def test_an_interrupted_ablation_cell_resumes_from_its_checkpoint_to_the_same_numbers(tmp_path, uninterrupted, signum, code):
    results, run_dir, returncode = _interrupted_ablation(tmp_path, signum)
    assert returncode == code
    run_id = json.loads((run_dir / "run.json").read_text())["mlflow_run_id"]
    done = subprocess.run(_ablate(tmp_path, "--resume"), cwd=tmp_path, env=ONE_THREAD, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "(1 resumed from checkpoints)" in done.stdout, done.stdout + done.stderr
    assert sorted(p.name for p in (results / "runs").iterdir()) == [run_dir.name]  # continued, not restarted
    assert MlflowClient(f"sqlite:///{results / 'mlflow.db'}").get_run(run_id).info.status == "FINISHED"
    assert json.loads((run_dir / "metrics.json").read_text())["test"] == uninterrupted


def _worker_pid(log) -> int:
    """The process id an ablation cell's log starts with."""
    return int(re.search(r"\(worker process (\d+)\)", log.read_text()).group(1))


def test_an_ablation_worker_killed_with_kill_9_fails_its_cell_and_the_other_cells_finish(tmp_path):
    """--jobs 2 over three cells: the worker of the first cell past its first checkpoint is killed (as the
    out-of-memory killer would); that cell is reported, the other two finish, and no worker is left."""
    _write_inputs(tmp_path)
    process = _started_past_its_first_checkpoint(_ablate(tmp_path, "--seeds", "3", "--jobs", "2"), tmp_path)
    run_dir = next(tmp_path.glob("results/runs/*/checkpoints/last.pt")).parent.parent
    seed = run_dir.name.rsplit("seed", 1)[1]
    logs = tmp_path / "results" / "ablations"
    os.kill(_worker_pid(next(logs.glob(f"*/sa-seed{seed}.log"))), signal.SIGKILL)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 2, output
    assert f"sa seed {seed}: its process died (exit code -9)" in output
    assert output.count(": test rSum ") == 2 and "Traceback" not in output, output
    for log in logs.glob("*/*.log"):
        worker = _worker_pid(log)
        assert not os.path.exists(f"/proc/{worker}") or "zombie" in open(f"/proc/{worker}/status").read().lower()


def test_a_run_killed_with_kill_9_resumes_to_the_numbers_of_an_uninterrupted_run(tmp_path, uninterrupted):
    _write_inputs(tmp_path)
    results = tmp_path / "results"
    command = [sys.executable, "-m", "benchmark", "run", "--config", "tiny.toml", "--results-dir", str(results)]
    process = _started_past_its_first_checkpoint(command, tmp_path)
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    (run_dir,) = results.glob("runs/*")
    assert not (run_dir / "metrics.json").exists(), "the run finished before the kill: make its epochs longer"
    done = subprocess.run([*command[:4], "--resume", str(run_dir), "--results-dir", str(results)], cwd=tmp_path, env=ONE_THREAD,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["test"] == uninterrupted


def _sweep(folder, n_trials):
    """A 2-worker sweep of the tiny config over train.lr, started in ``folder``."""
    (folder / "space.toml").write_text('"train.lr" = { float = [1e-4, 1e-2], log = true }\n')
    config.save_toml(tiny_config(train={"epochs": 4}, data={"synthetic": {"train_groups": 40}}), folder / "tiny.toml")
    command = [sys.executable, "-m", "benchmark", "sweep", "--config", "tiny.toml", "--space", "space.toml", "--workers", "2",
               "--n-trials", str(n_trials), "--study", "drill", "--pruner", "none", "--results-dir", "results"]
    return subprocess.Popen(command, cwd=folder, env=ONE_THREAD, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _study(folder):
    import optuna

    from benchmark.study_storage import open_storage

    return optuna.load_study(study_name="drill", storage=open_storage(str(folder / "results" / "optuna.journal")))


def _running_trial(folder, process):
    """The first trial seen RUNNING with its worker and MLflow run recorded (waits for one)."""
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        if (folder / "results" / "optuna.journal").exists():
            running = [t for t in _study(folder).trials if t.state.name == "RUNNING" and "mlflow_run_id" in t.user_attrs]
            if running:
                return running[0]
        time.sleep(0.2)


def _mlflow_runs(folder):
    client = MlflowClient(f"sqlite:///{folder / 'results' / 'mlflow.db'}")
    return {r.info.run_id: r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])}


def test_a_sweep_worker_killed_with_kill_9_fails_its_trial_and_the_sweep_still_runs_every_trial(tmp_path):
    process = _sweep(tmp_path, 4)
    victim = _running_trial(tmp_path, process)
    os.kill(int(victim.user_attrs["worker"].rpartition(":")[2]), signal.SIGKILL)
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0 and "Traceback" not in output, output
    assert f"killed by SIGKILL; its trial(s) [{victim.number}] marked failed" in output
    trials = {t.number: t for t in _study(tmp_path).trials}
    assert trials[victim.number].state.name == "FAIL"
    assert trials[victim.number].user_attrs["error"].startswith("WorkerDied: its worker was killed by SIGKILL")
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials.values()) == 4  # the 4 asked for, besides the killed one
    runs = _mlflow_runs(tmp_path)
    assert runs[victim.user_attrs["mlflow_run_id"]].info.status == "FAILED"
    assert not [r for r in runs.values() if r.info.status == "RUNNING"]


@pytest.mark.slow
def test_workers_of_a_sweep_killed_with_kill_9_stop_and_close_their_trials(tmp_path):
    process = _sweep(tmp_path, 4)
    victim = _running_trial(tmp_path, process)
    process.kill()
    process.wait(timeout=60)
    workers = {int(t.user_attrs["worker"].rpartition(":")[2]) for t in _study(tmp_path).trials if "worker" in t.user_attrs}
    deadline = time.monotonic() + 120
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "sweep workers run on as orphans"
        time.sleep(0.5)
    trials = {t.number: t for t in _study(tmp_path).trials}
    assert trials[victim.number].state.name == "FAIL" and not [t for t in trials.values() if t.state.name == "RUNNING"]
    children = [r for r in _mlflow_runs(tmp_path).values() if r.data.tags.get("sweep.role") == "trial"]
    assert children and not [r for r in children if r.info.status == "RUNNING"]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().split()[2] == "Z" if os.path.exists(f"/proc/{pid}/stat") else True


@pytest.mark.parametrize("signum", [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM])
def test_a_signalled_run_ends_killed_with_its_checkpoint_and_exit_130(tmp_path, signum):
    _write_inputs(tmp_path)
    command = [sys.executable, "-m", "benchmark", "run", "--config", "tiny.toml", "--results-dir", "results"]
    process = _started_past_its_first_checkpoint(command, tmp_path)
    process.send_signal(signum)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 130 and "Traceback" not in output and output.rstrip().endswith("interrupted"), output
    (run_dir,) = tmp_path.glob("results/runs/*")
    assert not (run_dir / "metrics.json").exists() and (run_dir / "checkpoints" / "best.pt").is_file()
    run_id = json.loads((run_dir / "run.json").read_text())["mlflow_run_id"]
    assert _mlflow_runs(tmp_path)[run_id].info.status == "KILLED"


@pytest.mark.parametrize("signum", [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM])
def test_a_signalled_two_worker_sweep_fails_its_running_trials_and_ends_every_run_killed(tmp_path, signum):
    process = _sweep(tmp_path, 4)
    victim = _running_trial(tmp_path, process)
    process.send_signal(signum)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 130 and "Traceback" not in output, output
    assert "interrupted; the study is saved: rerun the same command to continue 'drill'" in output
    trials = {t.number: t for t in _study(tmp_path).trials}
    assert trials[victim.number].state.name == "FAIL" and not [t for t in trials.values() if t.state.name == "RUNNING"]
    runs = _mlflow_runs(tmp_path)
    assert runs[victim.user_attrs["mlflow_run_id"]].info.status == "KILLED"
    assert [r.info.status for r in runs.values() if r.data.tags.get("sweep.role") == "parent"] == ["KILLED"]
    assert not [r for r in runs.values() if r.info.status == "RUNNING"]
