"""``ablate`` and ``sweep`` with ``--executor slurm`` against a real SLURM: a one-node cluster (munged, slurmctld and slurmd on localhost,
a throwaway config on free ports) started from Debian's ``slurm-wlm`` and ``munge`` packages (``.ci/run`` installs
them). It runs without SLURM accounting, as many small clusters do, so jobs are followed without ``sacct``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import free_port, require, tiny_config
from test_ablate import grid_file  # noqa: F401  (a fixture)
from test_sweep import SMALL_SPACE

from benchmark.ablate import run_ablation
from benchmark.slurm import SlurmOptions
from benchmark.study_storage import open_storage
from benchmark.sweep import SweepOptions, run_sweep

CONF = """ClusterName=itrbench
SlurmctldHost={host}
SlurmctldPort={controller_port}
SlurmdPort={node_port}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={folder}/munge.socket
CredType=cred/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName={host} CPUs={cpus} RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm_cluster():
    binaries = [shutil.which(name) for name in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")]
    require(all(binaries), "no SLURM here (munged, slurmctld, slurmd, sbatch); install Debian's slurm-wlm and munge")
    require(os.getuid() == 0, "a one-node SLURM needs root here (slurmd runs jobs as their user)")
    folder = Path(tempfile.mkdtemp(prefix="itr-bench-slurm-"))
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    shutil.chown(folder, "munge")
    shutil.chown(key, "munge")
    folder.chmod(0o755)
    conf = folder / "slurm.conf"
    conf.write_text(CONF.format(host=socket.gethostname().split(".")[0], controller_port=free_port(), node_port=free_port(),
                                folder=folder, cpus=os.cpu_count()))
    environment = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        subprocess.run(["runuser", "-u", "munge", "--", "munged", f"--key-file={key}", f"--socket={folder}/munge.socket",
                        f"--pid-file={folder}/munged.pid", f"--log-file={folder}/munged.log", f"--seed-file={folder}/munge.seed"],
                       check=True, capture_output=True, timeout=30)
        subprocess.run(["slurmctld", "-f", str(conf)], check=True, capture_output=True, env=environment, timeout=30)
        subprocess.run(["slurmd", "-f", str(conf)], check=True, capture_output=True, env=environment, timeout=30)
        deadline = time.monotonic() + 60
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=environment).stdout:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the node never became idle: {(folder / 'slurmd.log').read_text()[-1000:]}")
            time.sleep(0.5)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        require(False, f"could not start a one-node SLURM here: {exc}")
    yield environment
    # Jobs first, then the daemons: a step still running when slurmd stops is left behind as a stray slurmstepd.
    subprocess.run(["scancel", "--full", f"--user={os.getuid()}"], capture_output=True, env=environment, timeout=60)
    deadline = time.monotonic() + 60
    while subprocess.run(["squeue", "-h"], capture_output=True, text=True, env=environment).stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.5)
    subprocess.run(["scontrol", "shutdown"], capture_output=True, env=environment, timeout=60)
    for pid_file in ("slurmd.pid", "munged.pid"):
        if (folder / pid_file).is_file():
            subprocess.run(["kill", (folder / pid_file).read_text().strip()], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_a_tiny_grid_runs_as_a_slurm_job_array_and_a_rerun_reuses_every_cell(results, grid_file, tmp_path, slurm_cluster,  # noqa: F811
                                                                            monkeypatch, capsys):
    monkeypatch.setenv("SLURM_CONF", slurm_cluster["SLURM_CONF"])
    base = tiny_config(experiment="slurm-tests", train={"epochs": 1})
    options = SlurmOptions(partition="debug", cpus_per_cell=1, time_minutes=10, max_running=2)
    first = run_ablation(base, results, grid_file, n_seeds=1, reports=tmp_path / "reports", slurm=options)
    out = capsys.readouterr().out
    assert "submitted 2 cells to SLURM as job array" in out and "2 at a time on SLURM" in out
    assert [(c.variant, c.reused) for c in first.cells] == [("sa", False), ("gisa", False)] and all(c.run_id for c in first.cells)
    assert (first.report_dir / "claims.json").is_file()
    second = run_ablation(base, results, grid_file, n_seeds=1, reports=tmp_path / "reports", slurm=options)
    assert all(c.reused for c in second.cells) and "2 already finished (reused), 0 to run" in capsys.readouterr().out


@pytest.mark.slow
def test_a_cell_whose_job_is_cancelled_is_resubmitted_and_the_grid_completes(results, grid_file, tmp_path, slurm_cluster,  # noqa: F811
                                                                            monkeypatch, capsys):
    """scancel of a running cell stands for a node that died or a preemption without requeue: no result comes back."""
    monkeypatch.setenv("SLURM_CONF", slurm_cluster["SLURM_CONF"])
    monkeypatch.setattr("benchmark.slurm.LOST_AFTER_SECONDS", 2.0)
    cancelled: list[str] = []

    def cancel_the_first_running_job() -> None:
        deadline = time.monotonic() + 120
        while not cancelled and time.monotonic() < deadline:
            running = subprocess.run(["squeue", "-h", "-r", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True).stdout.split()
            if running:
                subprocess.run(["scancel", running[0]], check=True)
                cancelled.append(running[0])
            time.sleep(0.5)

    canceller = threading.Thread(target=cancel_the_first_running_job)
    canceller.start()
    base = tiny_config(experiment="slurm-retry-tests", train={"epochs": 1})
    result = run_ablation(base, results, grid_file, n_seeds=1, reports=tmp_path / "reports",
                          slurm=SlurmOptions(partition="debug", cpus_per_cell=1, time_minutes=10, max_running=2, retries=1))
    canceller.join()
    assert cancelled, "a job was running and got cancelled"
    out = capsys.readouterr().out
    assert f"its job {cancelled[0]} left the queue without a result" in out and "resubmitting (retry 1 of 1" in out
    assert all(c.run_id for c in result.cells)


@pytest.mark.slow
def test_a_preempted_cell_is_requeued_and_continues_from_its_checkpoint(results, grid_file, tmp_path, slurm_cluster,  # noqa: F811
                                                                       monkeypatch, capsys):
    """SIGUSR2 is SLURM's warning before preemption or the time limit; submitit requeues the job, and the cell
    continues in its own run folder from its last checkpoint instead of starting again."""
    monkeypatch.setenv("SLURM_CONF", slurm_cluster["SLURM_CONF"])
    signalled: list[str] = []

    def warn_the_first_cell_past_its_first_checkpoint() -> None:
        deadline = time.monotonic() + 180
        while not signalled and time.monotonic() < deadline:
            if [path for path in results.glob("runs/*/checkpoints/last.pt") if path.parents[1] not in before]:
                running = subprocess.run(["squeue", "-h", "-r", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True).stdout.split()
                if running:
                    subprocess.run(["scancel", "--signal=USR2", running[0]], check=True)
                    signalled.append(running[0])
            time.sleep(0.2)

    before = set(results.glob("runs/*"))
    warner = threading.Thread(target=warn_the_first_cell_past_its_first_checkpoint)
    warner.start()
    base = tiny_config(experiment="slurm-requeue-tests", train={"epochs": 4}, data={"synthetic": {"train_groups": 40}})
    result = run_ablation(base, results, grid_file, n_seeds=1, reports=tmp_path / "reports",
                          slurm=SlurmOptions(partition="debug", cpus_per_cell=1, time_minutes=10, max_running=1, retries=0))
    warner.join()
    assert signalled, "a cell was running past its first checkpoint and got the warning"
    assert all(c.run_id for c in result.cells)
    folders = set(results.glob("runs/*")) - before
    assert len(folders) == 2, f"one run folder per cell: the requeued cell continued, it did not start again ({sorted(folders)})"
    assert all((folder / "metrics.json").is_file() for folder in folders)


@pytest.mark.slow
def test_sweep_workers_run_as_slurm_jobs_on_one_postgresql_study(results, tmp_path, slurm_cluster, postgres_url, monkeypatch, capsys):
    import optuna

    monkeypatch.setenv("SLURM_CONF", slurm_cluster["SLURM_CONF"])
    space = tmp_path / "space.toml"
    space.write_text(SMALL_SPACE)
    slurm = SlurmOptions(partition="debug", cpus_per_cell=1, time_minutes=10, max_running=2)
    run_sweep(tiny_config(), results, SweepOptions(study="on-slurm", storage=postgres_url, workers=2, n_trials=4,
                                                   space_file=str(space), slurm=slurm))
    out = capsys.readouterr().out
    assert "submitted 2 sweep worker(s) to SLURM as job array" in out
    assert len([line for line in out.splitlines() if line.startswith("trial ")]) == 4, out
    trials = optuna.load_study(study_name="on-slurm", storage=open_storage(postgres_url)).trials
    assert len(trials) == 4 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert len({t.user_attrs["worker"] for t in trials}) == 2, "two worker jobs shared the study"
