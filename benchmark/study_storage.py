"""Where an Optuna study lives: a journal file under ``results/`` by default, or any Optuna storage URL.

Shared by ``sweep`` (which writes studies) and ``report`` (which reads them for its figures).

The default is Optuna's journal file storage. Each worker appends to one log file under a file
lock, so several processes on this machine share a study with no server and no "database is
locked" failures (SQLite's weakness under concurrent writers). For workers on several machines,
pass a PostgreSQL (or MySQL) URL; ``pip install -e ".[postgres]"`` adds the driver.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from benchmark.errors import UserError


HEARTBEAT_S = 30


def default_storage(results: Path) -> str:
    return str(results / "optuna.journal")


def is_url(storage: str) -> bool:
    return "://" in storage


def masked(storage: str) -> str:
    """The storage with any password hidden, for logs and MLflow."""
    if not is_url(storage):
        return storage
    from sqlalchemy.engine import make_url

    try:
        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy can read: show the scheme only
        return storage.split("://", 1)[0] + "://***"


def open_storage(storage: str):
    """An Optuna storage: a database URL (``postgresql://...``, ``sqlite:///...``) or a journal file path."""
    import optuna

    if not is_url(storage):
        return _journal(Path(storage))
    try:
        # heartbeats: a trial whose worker (on any machine) stops beating for 2 minutes is failed, and the same
        # parameters are queued again (at most twice), so a killed worker's trial is retried, not lost
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5; say so once here, not per worker
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(storage, heartbeat_interval=HEARTBEAT_S, grace_period=4 * HEARTBEAT_S,
                                              heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
    except ImportError:
        raise UserError(f"the database driver for {masked(storage)} is not installed; "
                        f"for PostgreSQL run: pip install -e \".[postgres]\"") from None
    except Exception as exc:  # sqlalchemy's OperationalError, ArgumentError, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot open the Optuna storage {masked(storage)} ({reason}); "
                        f"check the URL and that the database server is running") from None


def _journal(path: Path):
    """The journal file storage; a damaged file is one clear error, and is never "repaired" by writing
    to it (Optuna would append after a bad record, and fail on every later read)."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if path.exists():
        _check_journal(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as exc:
        raise UserError(f"cannot open the Optuna journal {path} ({exc.strerror}); pass a writable --storage FILE") from None


def _check_journal(path: Path) -> None:
    """Every line of the journal must be one whole JSON record."""
    damaged = f"the Optuna journal {path} is damaged"
    advice = "it was left untouched: restore it from a backup, or start afresh with --storage NEW_FILE"
    try:
        with open(path, "rb") as journal:
            for number, line in enumerate(journal, start=1):
                if not line.endswith(b"\n"):
                    raise UserError(f"{damaged} (its last record, line {number}, is cut off); {advice}")
                try:
                    json.loads(line)
                except ValueError as exc:
                    raise UserError(f"{damaged} (line {number}: {exc}); {advice}") from None
    except OSError as exc:
        raise UserError(f"cannot read the Optuna journal {path} ({exc.strerror}); pass --storage FILE") from None
