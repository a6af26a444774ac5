"""SLURM through submitit, shared by ``ablate --executor slurm`` and ``sweep --executor slurm``: the options, the
checks, the executor, and whether a job is still running, returned, or lost.

Jobs are followed through their result files and ``squeue``, so clusters without SLURM accounting (no ``sacct``)
work too.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import UserError

POLL_SECONDS = 5.0
STATUS_SECONDS = 60.0
# A job out of squeue this long without a result file is lost: longer than squeue's lag behind a submission and
# than NFS's attribute cache (60 s), which can hide a result file that was written.
LOST_AFTER_SECONDS = 90.0


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    gpus_per_cell: int = 0
    cpus_per_cell: int = 2
    time_minutes: int = 120
    mem_gb: int | None = None
    max_running: int = 8  # the job array's concurrency cap
    retries: int = 2  # resubmissions of a job that ended without a result


def check(options: SlurmOptions) -> None:
    """One-line errors for bad options, and for a machine with no SLURM client or no submitit."""
    for name in ("cpus_per_cell", "time_minutes", "max_running"):
        if getattr(options, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if options.gpus_per_cell < 0 or options.retries < 0 or (options.mem_gb is not None and options.mem_gb < 1):
        raise UserError("--gpus-per-cell and --retries must be 0 or more, --mem at least 1 (GB)")
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UserError('--executor slurm needs submitit; pip install -e ".[slurm]"') from None
    try:
        subprocess.run(["squeue", "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        raise UserError("--executor slurm needs the SLURM client commands (sbatch, squeue) on this machine's PATH; "
                        "run it on a login node of the cluster") from None


def executor(options: SlurmOptions, folder: Path, name: str):
    """A submitit executor for SLURM with the options' resources."""
    import submitit

    made = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    made.update_parameters(name=name, timeout_min=options.time_minutes, cpus_per_task=options.cpus_per_cell,
                           slurm_array_parallelism=options.max_running, slurm_partition=options.partition,
                           gpus_per_node=options.gpus_per_cell, mem_gb=options.mem_gb)
    return made


def queued() -> set[str] | None:
    """The ids of the jobs SLURM still holds (array tasks as ``123_4``); None when squeue cannot answer."""
    try:
        listed = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return set(listed.stdout.split())


class Watch:
    """Whether each job is still running, returned, or ended without a result (the queue is read once per poll)."""

    def __init__(self):
        self._missing_since: dict[str, float] = {}
        self._queued: set[str] | None = None

    def poll(self) -> None:
        self._queued = queued()

    def outcome(self, job) -> str | None:
        """None while the job runs or waits; "" when it returned; else why it ended without a result."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        if job.paths.result_pickle.exists():
            try:
                job.result()
                return ""
            except (FailedJobError, UncompletedJobError) as exc:
                return f"its job {job.job_id} failed: {str(exc).strip().splitlines()[-1][:300]}"
        if self._queued is None or job.job_id in self._queued:
            self._missing_since.pop(job.job_id, None)
            return None
        if time.monotonic() - self._missing_since.setdefault(job.job_id, time.monotonic()) < LOST_AFTER_SECONDS:
            return None
        return f"its job {job.job_id} left the queue without a result (cancelled, out of memory, or its node died)"


def cancel(jobs) -> None:
    for job in jobs:
        job.cancel(check=False)
