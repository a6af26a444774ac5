"""Run an ablation's pending cells on SLURM (``benchmark.slurm``): one job array, a cap on how many cells run at
once, failed or lost cells resubmitted (from their last checkpoint) up to a limit, and progress while waiting.

Each cell is a ``CellJob``. A cell that SLURM preempts or times out is requeued by submitit (``checkpoint``) and
continues from its run's last checkpoint. Resubmitted single jobs are outside the array, so its cap does not hold
them (there are at most ``retries`` per cell).
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmark import config as configuration
from benchmark import slurm
from benchmark.ablate.cells import Cell, find_finished, find_resumable


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


def run_cells_slurm(cells: list[Cell], resume_dirs: dict[int, Path], results: Path, options: slurm.SlurmOptions, logs: Path,
                    on_done) -> None:
    """Submit every cell without a run id as one job array and wait; ``on_done(index, run_id, problem, seconds)``
    after each cell ends (for good: after its last retry)."""
    from benchmark import tracking

    pending = [i for i, cell in enumerate(cells) if cell.run_id is None]
    if not pending:
        return
    executor = slurm.executor(options, logs / "slurm", "itr-bench-ablate")
    experiment = tracking.experiment_id(cells[0].cfg.experiment, results)
    arguments = {i: (configuration.to_dict(cells[i].cfg), str(results)) for i in pending}
    jobs = dict(zip(pending, executor.map_array(CellJob(), [arguments[i][0] for i in pending], [arguments[i][1] for i in pending],
                                                [str(resume_dirs[i]) if i in resume_dirs else None for i in pending])))
    print(f"submitted {len(jobs)} cells to SLURM as job array {next(iter(jobs.values())).job_id.split('_')[0]} "
          f"({options.max_running} at a time); logs in {logs / 'slurm'}", flush=True)
    started = {i: time.perf_counter() for i in jobs}
    attempts = {i: 0 for i in jobs}
    watch = slurm.Watch()
    last_status = time.monotonic()
    try:
        while jobs:
            time.sleep(slurm.POLL_SECONDS)
            watch.poll()
            for i, job in list(jobs.items()):
                problem = watch.outcome(job)
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
                else:
                    jobs.pop(i)
                    on_done(i, None, f"{problem} (after {options.retries} retries; logs in {job.paths.folder})",
                            time.perf_counter() - started[i])
            if jobs and time.monotonic() - last_status > slurm.STATUS_SECONDS:
                last_status = time.monotonic()
                print(f"waiting for {len(jobs)} cell(s) on SLURM: {', '.join(sorted(cells[i].name for i in jobs))}", flush=True)
    except BaseException:  # Ctrl-C, or an error here: no job should run on unwatched
        slurm.cancel(jobs.values())
        print(f"cancelled {len(jobs)} SLURM job(s); rerun with --resume to continue them", flush=True)
        raise
