"""MLflow bookkeeping: where the store is, the experiment, what each run records, and its lifecycle.

The default store is SQLite under ``results/`` (no server); ``MLFLOW_TRACKING_URI`` overrides
it. Telemetry is off: nothing goes to the network.

``tracked_run`` owns the lifecycle of every training run (``run``, sweep trials): it starts or
reopens the MLflow run, records the config and tags once, and ends the run in the status its
outcome calls for (see ``STATUS``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import variants
from benchmark import config as configuration
from benchmark.errors import UserError
from benchmark.lockfile import lock_status
from benchmark.processes import signals_deferred

PACKAGES = ("torch", "numpy", "transformers", "mlflow", "optuna", "pandas", "scipy", "itr-bench")


def tracking_uri(results_dir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(results_dir / 'mlflow.db').resolve()}"


def setup(results_dir: Path) -> str:
    """Point MLflow at the suite's store (creating ``results_dir``) with telemetry off."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    results_dir.mkdir(parents=True, exist_ok=True)
    import mlflow

    uri = tracking_uri(results_dir)
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        _open_sqlite_store(uri)
    else:
        _probe_store(uri)
    return uri


def _open_sqlite_store(uri: str) -> None:
    """Create (or migrate) the SQLite store under an exclusive lock on ``<database>.lock``: two
    processes that create one store at once race in MLflow's schema migration, and one of them
    fails ("Online migration expected to match one row")."""
    import fcntl
    import sqlite3

    database = uri.removeprefix("sqlite:///")
    try:  # MLflow retries a file it cannot open for ~100 s; sqlite3 says why at once
        with contextlib.closing(sqlite3.connect(database, timeout=60)) as connection:
            connection.execute("BEGIN IMMEDIATE")  # a write lock: the file can be written
            connection.rollback()
        lock = open(f"{database}.lock", "a")
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UserError(f"cannot use the MLflow store {uri} ({reason}); fix the path or unset MLFLOW_TRACKING_URI") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        _probe_store(uri)


def _probe_store(uri: str) -> None:
    """One request to the store, without retries: a store that is down or unwritable is one clear line."""
    from mlflow.tracking import MlflowClient

    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        MlflowClient().search_experiments(max_results=1)
    except Exception as exc:  # MlflowException (a server down), sqlalchemy's errors (a file that cannot be opened)
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UserError(f"cannot use the MLflow store {uri} ({reason}); start its server, fix the path, "
                        "or unset MLFLOW_TRACKING_URI") from None
    finally:
        if retries is None:
            del os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
        else:
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = retries


# What the suite's experiments are, for MLflow. It does not change where MLflow 3.17's UI lands (its GenAI
# overview, checked in headless Chromium): `ui` prints each experiment's runs-table URL for that.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def experiment_id(name: str, results_dir: Path) -> str:
    """The id of experiment ``name`` (tagged as model development), created with artifacts under ``results/mlartifacts``."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        local = tracking_uri(results_dir).startswith("sqlite:")
        location = (results_dir / "mlartifacts").resolve().as_uri() if local else None
        try:
            client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created meanwhile by a parallel run
            pass
        experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage == "deleted":
        raise UserError(f"MLflow experiment '{name}' is deleted; restore it in the MLflow UI or pass --experiment NEW_NAME")
    if experiment.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
        try:
            client.set_experiment_tag(experiment.experiment_id, *EXPERIMENT_KIND)
        except MlflowException:  # set meanwhile by a parallel run: a server's store inserts, and the second insert fails
            if client.get_experiment(experiment.experiment_id).tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
                raise
    return experiment.experiment_id


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str:
    """The suite's git commit (``+dirty`` with uncommitted changes), or ``unknown`` outside git."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def cpu_name() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu() -> str:
    """The CPU as torch's kernels see it, e.g. ``AMD EPYC, AVX2``: the bits of a run follow it."""
    import torch

    return f"{cpu_name()}, {torch.backends.cpu.get_cpu_capability()}"


def environment() -> dict[str, Any]:
    """What a reader needs to rerun a run: interpreter, machine, packages, threads."""
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        # torch picks its CPU kernels by instruction set, and they sum in different orders: the bits follow the CPU
        "cpu": cpu(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "lock": lock_status(),
    }


def run_tags(cfg: configuration.RunConfig, device: str, env: dict[str, Any]) -> dict[str, str]:
    tags = {
        "variant": cfg.model.variant, "dataset": cfg.data.dataset, "seed": str(cfg.seed), "device": device,
        "config_hash": configuration.config_hash(cfg), "git_commit": env["git_commit"],
        "variants_revision": str(variants.REVISION),
    }
    tags |= {key: env["lock"][key] for key in ("lock_digest", "matches_lock")}
    return tags | {f"version.{name}": version for name, version in env["packages"].items()}


def log_dataset(name: str, folder: Path, digest: str) -> None:
    """Record the data a run read as its MLflow dataset input (the UI's Datasets), under the suite's own digest."""
    import warnings

    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.exceptions import MlflowException

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "can be interpreted in multiple ways": a local folder either way
        source = resolve_dataset_source(folder.resolve().as_uri())
    dataset = MetaDataset(source, name=name, digest=digest)
    try:
        mlflow.log_input(dataset, context="training")
    except MlflowException:  # a parallel run inserted this dataset meanwhile (a server checks, then inserts): it
        mlflow.log_input(dataset, context="training")  # exists now, and this run's input links to it


# How a tracked run ends: its outcome -> MLflow run status.
STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED", "interrupted": "KILLED"}


@dataclass
class TrackedRun:
    """An open MLflow run; ``outcome`` is set when the ``tracked_run`` block ends."""

    run_id: str
    echo: bool = True  # print one line per epoch
    outcome: str = field(default="failed", init=False)

    def log_epoch(self, record, epochs: int) -> None:
        """Log an epoch's metrics (a ``training.EpochRecord``) and, with ``echo``, print one line."""
        import mlflow
        from tqdm import tqdm

        metrics = {"train_loss": record.train_loss, "lr": record.lr, "epoch_seconds": record.seconds,
                   "samples_per_s": record.samples_per_s, "dev_score": record.score}
        metrics |= {f"dev_{k}": v for k, v in record.dev.metrics.items()}
        mlflow.log_metrics(metrics, step=record.epoch, run_id=self.run_id)
        if not self.echo:
            return
        probes = "  ".join(f"{k[6:]} {v:.1f}" for k, v in record.dev.metrics.items() if k.startswith("probe_") and not k.endswith("_group"))
        note = record.selection_note()
        tqdm.write(
            f"epoch {record.epoch}/{epochs}  loss {record.train_loss:.3f}  dev rSum {record.dev.metrics['rsum']:.1f}"
            f"  score {record.score:.1f}{note and ' ' + note}  {probes}  {record.seconds:.1f}s  {record.samples_per_s:.0f} pairs/s"
        )


def existing_run(run_id: str):
    """The MLflow run ``run_id`` of the current store, or a one-line error saying how to reach its store."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.get_run(run_id)
    except MlflowException:
        raise UserError(f"MLflow run {run_id} is not in the store {mlflow.get_tracking_uri()}; resume with the "
                        "--results-dir (or MLFLOW_TRACKING_URI) the run started with") from None


@contextlib.contextmanager
def tracked_run(cfg: configuration.RunConfig, experiment: str, device: str, *, run_id: str | None = None,
                run_name: str | None = None, parent_run_id: str | None = None, tags: dict[str, str] | None = None,
                env: dict[str, Any] | None = None, echo: bool = True, record: bool = True,
                stopped: tuple[type[BaseException], ...] = (), outcome_tag: str | None = None) -> Iterator[TrackedRun]:
    """Start a run (or reopen ``run_id``), record its config and tags, and end it by outcome.

    The config and tags are recorded when ``record`` is true; a resumed run that has finished an epoch
    passes ``record=False`` (it recorded them when it started).

    The block's outcome is ``complete`` (FINISHED), ``interrupted`` by Ctrl-C or SIGTERM (KILLED),
    ``pruned`` when it raises one of ``stopped`` (KILLED), else ``failed`` (FAILED). A run nested
    under ``parent_run_id`` is a sweep trial. With ``outcome_tag``, the outcome is also that tag's value.
    """
    import mlflow

    if run_id is not None:
        existing_run(run_id)
    active = mlflow.start_run(run_id=run_id, experiment_id=experiment, run_name=run_name,
                              parent_run_id=parent_run_id, nested=parent_run_id is not None)
    run = TrackedRun(active.info.run_id, echo)
    try:
        if record:
            mlflow.log_params(configuration.flatten(cfg))
            mlflow.set_tags(run_tags(cfg, device, env or environment()) | (tags or {}))
        yield run
        run.outcome = "complete"
    except KeyboardInterrupt:
        run.outcome = "interrupted"
        raise
    except stopped:
        run.outcome = "pruned"
        raise
    finally:
        with signals_deferred():  # a signal here (torchrun's SIGTERM, a second Ctrl-C) would leave the run RUNNING
            if outcome_tag:
                mlflow.set_tag(outcome_tag, run.outcome)
            mlflow.end_run(STATUS[run.outcome])
