"""Sweep workers as SLURM jobs (``benchmark.slurm``): one job per worker, in an array, all sharing the study in a
database. The sweep waits and prints each trial of its own as it finishes. Workers lost or failed are made up for:
while the sweep has run fewer trials than asked, a new worker job takes the rest, up to ``retries`` times. A lost
worker's RUNNING trial is failed by Optuna's heartbeats and its parameters queued again (``study_storage``)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from benchmark import slurm
from benchmark.errors import UserError
from benchmark.sweep.trial import SweepContext
from benchmark.sweep.worker import WorkerPlan, trial_line, work


class WorkerJob:
    """One sweep worker as a SLURM job."""

    def __call__(self, ctx: SweepContext, plan: WorkerPlan) -> int:
        work(ctx, plan)
        return plan.n_trials


def _finished(study, ctx: SweepContext) -> list:
    return [trial for trial in study.get_trials(deepcopy=False)
            if trial.user_attrs.get("sweep_run") == ctx.parent_run_id and trial.state.is_finished()]


def run_workers_slurm(ctx: SweepContext, plans: list[WorkerPlan], options: slurm.SlurmOptions, study, n_trials: int,
                      logs: Path) -> None:
    """Run the plans as SLURM jobs and wait for this sweep's ``n_trials`` trials (or for the retries to run out)."""
    executor = slurm.executor(options, logs, "itr-bench-sweep")
    jobs = executor.map_array(WorkerJob(), [ctx] * len(plans), plans)
    print(f"submitted {len(jobs)} sweep worker(s) to SLURM as job array {jobs[0].job_id.split('_')[0]}; logs in {logs}", flush=True)
    announced: set[int] = set()
    watch, retries = slurm.Watch(), 0
    try:
        while True:
            time.sleep(slurm.POLL_SECONDS)
            watch.poll()
            for trial in _finished(study, ctx):
                if trial.number not in announced:
                    announced.add(trial.number)
                    print(trial_line(study, trial), flush=True)
            outcomes = [watch.outcome(job) for job in jobs]
            if any(outcome and "UserError" in outcome for outcome in outcomes):
                raise UserError(next(outcome for outcome in outcomes if outcome and "UserError" in outcome))
            if any(outcome is None for outcome in outcomes):
                continue
            left = n_trials - len(_finished(study, ctx))
            if left <= 0:
                return
            if retries == options.retries:
                raise UserError(f"the sweep's SLURM workers ended with {left} of its {n_trials} trials not run "
                                f"({'; '.join(o for o in outcomes if o) or 'no error reported'}); logs in {logs}")
            retries += 1
            print(f"{left} trial(s) not run ({'; '.join(o for o in outcomes if o) or 'workers ended early'}); "
                  f"submitting a worker for them (retry {retries} of {options.retries})", flush=True)
            jobs = [executor.submit(WorkerJob(), ctx, dataclasses.replace(plans[0], n_trials=left, label=""))]
    except BaseException:
        slurm.cancel(jobs)
        raise
