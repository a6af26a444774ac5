"""Run an ablation's pending cells on SLURM through submitit: one job array, a cap on how many cells run at
once, failed or lost cells resubmitted (from their last checkpoint) up to a limit, and progress while waiting.

Each cell is a ``CellJob``. A cell that SLURM preempts or times out is requeued by submitit (``checkpoint``) and
continues from its run's last checkpoint. Resubmitted single jobs are outside the array, so its cap does not hold
them (there are at most ``retries`` per cell). A cell whose job ends without a result (it raised, was cancelled, or
its node died) is resubmitted by ``run_cells_slurm`` up to ``retries`` times, resuming where its run stopped.
Jobs are followed through their result files and ``squeue``: clusters without SLURM accounting (no ``sacct``)
work too.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchmark import config as configuration
from benchmark.ablate.cells import Cell, find_finished, find_resumable
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
    retries: int = 2  # resubmissions of a cell whose job ended without a result


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
                        "run ablate on a login node of the cluster") from None


class CellJob:
    """One cell as a SLURM job: trains and evaluates it and returns its MLflow run id."""

    def __call__(self, cfg_dict: dict, results: str, resume_dir: str | None, requeued: bool = False) -> str:
        from benchmark import runner

        if requeued:  # the preempted process is gone, and its run's live lock with it: its checkpoint can be found
            resume_dir = _resume_dir(cfg_dict, results) or resume_dir
        cfg = configuration.from_dict(cfg_dict)
        return runner.run(cfg, Path(results), resume_dir=Path(resume_dir) if resume_dir else None).run_id

    def checkpoint(self, cfg_dict: dict, results: str, resume_dir: str | None, requeued: bool = False):
        """On preemption or timeout (submitit calls this in a signal handler, so it does nothing but ask): requeue,
        and the requeued job continues from the run's last checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(CellJob(), cfg_dict, results, resume_dir, True)


def _resume_dir(cfg_dict: dict, results: str) -> str | None:
    from benchmark import tracking

    cfg = configuration.from_dict(cfg_dict)
    tracking.setup(Path(results))
    folder = find_resumable(tracking.experiment_id(cfg.experiment, Path(results)), Cell(cfg))
    return str(folder) if folder else None


def _queued() -> set[str] | None:
    """The ids of the jobs SLURM still holds (array tasks as ``123_4``); None when squeue cannot answer."""
    try:
        listed = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return set(listed.stdout.split())


def run_cells_slurm(cells: list[Cell], resume_dirs: dict[int, Path], results: Path, options: SlurmOptions, logs: Path,
                    on_done) -> None:
    """Submit every cell without a run id as one job array and wait; ``on_done(index, run_id, problem, seconds)``
    after each cell ends (for good: after its last retry)."""
    import submitit

    executor = submitit.AutoExecutor(folder=logs / "slurm" / "%j", cluster="slurm")
    executor.update_parameters(name="itr-bench-ablate", timeout_min=options.time_minutes, cpus_per_task=options.cpus_per_cell,
                               slurm_array_parallelism=options.max_running, slurm_partition=options.partition,
                               gpus_per_node=options.gpus_per_cell, mem_gb=options.mem_gb)
    from benchmark import tracking

    pending = [i for i, cell in enumerate(cells) if cell.run_id is None]
    if not pending:
        return
    experiment = tracking.experiment_id(cells[0].cfg.experiment, results)
    arguments = {i: (configuration.to_dict(cells[i].cfg), str(results)) for i in pending}
    jobs = dict(zip(pending, executor.map_array(CellJob(), [arguments[i][0] for i in pending], [arguments[i][1] for i in pending],
                                                [str(resume_dirs[i]) if i in resume_dirs else None for i in pending])))
    print(f"submitted {len(jobs)} cells to SLURM as job array {next(iter(jobs.values())).job_id.split('_')[0]} "
          f"({options.max_running} at a time); logs in {logs / 'slurm'}", flush=True)
    started = {i: time.perf_counter() for i in jobs}
    attempts = {i: 0 for i in jobs}
    missing_since: dict[int, float] = {}
    last_status = time.monotonic()
    try:
        while jobs:
            time.sleep(POLL_SECONDS)
            queued = _queued()
            for i, job in list(jobs.items()):
                problem = _outcome(job, queued, missing_since, i)
                if problem is None:
                    continue
                if problem == "":
                    jobs.pop(i)
                    on_done(i, job.result(), None, time.perf_counter() - started[i])
                elif finished := find_finished(experiment, cells[i]):  # its result file was hidden (NFS), not missing
                    jobs.pop(i)
                    on_done(i, finished, None, time.perf_counter() - started[i])
                elif attempts[i] < options.retries:
                    attempts[i] += 1
                    resume = _resume_dir(*arguments[i])
                    print(f"{cells[i].name}: {problem}; resubmitting (retry {attempts[i]} of {options.retries}"
                          f"{', from its last checkpoint' if resume else ''})", flush=True)
                    jobs[i] = executor.submit(CellJob(), *arguments[i], resume)
                    missing_since.pop(i, None)
                else:
                    jobs.pop(i)
                    on_done(i, None, f"{problem} (after {options.retries} retries; logs in {job.paths.folder})",
                            time.perf_counter() - started[i])
            if jobs and time.monotonic() - last_status > STATUS_SECONDS:
                last_status = time.monotonic()
                print(f"waiting for {len(jobs)} cell(s) on SLURM: {', '.join(sorted(cells[i].name for i in jobs))}", flush=True)
    except BaseException:  # Ctrl-C, or an error here: no job should run on unwatched
        for job in jobs.values():
            job.cancel(check=False)
        print(f"cancelled {len(jobs)} SLURM job(s); rerun with --resume to continue them", flush=True)
        raise


def _outcome(job, queued: set[str] | None, missing_since: dict[int, float], index: int) -> str | None:
    """None while the job runs or waits; "" when it returned a run id; else why it ended without one."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    if job.paths.result_pickle.exists():
        try:
            job.result()
            return ""
        except (FailedJobError, UncompletedJobError) as exc:
            return f"its job {job.job_id} failed: {str(exc).strip().splitlines()[-1][:300]}"
    if queued is None or job.job_id in queued:
        missing_since.pop(index, None)
        return None
    first_missed = missing_since.setdefault(index, time.monotonic())
    if time.monotonic() - first_missed < LOST_AFTER_SECONDS:
        return None
    return f"its job {job.job_id} left the queue without a result (cancelled, out of memory, or its node died)"
