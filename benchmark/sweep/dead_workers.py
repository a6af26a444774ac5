"""Trials whose worker died without a word (kill -9, the out-of-memory killer): found and failed.

Every trial records the worker that runs it (``host:pid``). A trial still RUNNING whose worker is
on this machine and no longer alive can never finish: it is marked FAIL in the study, with the
reason, and its MLflow run is ended FAILED. Workers on other machines share a database storage,
where Optuna's heartbeats fail their stale trials (``study_storage.open_storage``).
"""

from __future__ import annotations

import os
import socket

WORKER_ATTR = "worker"


def worker_id() -> str:
    """``host:pid`` of this process, as trials record it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def local_pid(trial) -> int | None:
    """The pid of the worker that ran ``trial`` when it ran on this machine, else None."""
    host, _, number = trial.user_attrs.get(WORKER_ATTR, "").rpartition(":")
    return int(number) if host == socket.gethostname() and number.isdigit() else None


def _dead_here(trial, pid: int | None) -> bool:
    """Whether ``trial``'s worker ran on this machine and is gone (or is ``pid``, known dead)."""
    worker = local_pid(trial)
    if worker is None:
        return False
    return worker == pid if pid is not None else not _alive(worker)


def fail_dead_trials(study, storage, pid: int | None = None, why: str = "its worker died without finishing it") -> list[int]:
    """Mark FAIL every RUNNING trial of a dead worker on this machine (the worker ``pid``, when given);
    end their MLflow runs FAILED. Returns the trial numbers."""
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    numbers = []
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _dead_here(trial, pid):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, "error", f"WorkerDied: {why} ({trial.user_attrs[WORKER_ATTR]})")
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        if run_id := trial.user_attrs.get("mlflow_run_id"):
            client = MlflowClient()
            client.set_tag(run_id, "sweep.state", "failed")
            client.set_terminated(run_id, "FAILED")
        numbers.append(trial.number)
    return numbers
