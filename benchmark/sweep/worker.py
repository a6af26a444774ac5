"""A sweep worker: load the shared study and run its share of trials, printing one line per trial.

With one worker this runs in the calling process; with several, each is a spawned process with
its share of the CPU threads. The sampler is TPE reseeded per trial (``sampler.py``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import UserError
from benchmark.processes import install_worker_signals
from benchmark.sweep.sampler import TrialSeededTPE
from benchmark.study_storage import open_storage
from benchmark.sweep.trial import SweepContext, objective

PRUNERS = ("median", "hyperband", "none")


@dataclass(frozen=True)
class WorkerPlan:
    index: int
    n_trials: int
    seed: int  # the sweep's seed; each trial's sampler seed derives from it and the trial number
    timeout: float | None = None
    threads: int | None = None  # torch threads (None: leave as is)
    label: str = ""  # printed before each trial line when several workers share the terminal


def make_pruner(name: str, epochs: int):
    """``median`` (default): prune a trial whose dev score at an epoch is below the median of earlier
    trials at that epoch, once 3 trials have finished and from epoch 2 (epoch 1 is the
    sum-over-negatives warm-up). It needs no tuning of its own, which suits budgets of tens of
    trials; ``hyperband`` pays off with hundreds of trials and longer schedules."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"unknown pruner '{name}'; choose one of: {', '.join(PRUNERS)}")


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def trial_line(study, trial) -> str:
    """``trial 3  dev score 337.8  best 337.8 (trial 3)  152 s  train.lr=0.00032 ...``"""
    state = trial.state.name.lower()
    if state == "complete":
        outcome = f"dev score {trial.value:6.1f}"
    elif state == "pruned":
        step = max(trial.intermediate_values, default=0)
        outcome = f"pruned at epoch {step} (dev score {trial.intermediate_values.get(step, float('nan')):.1f})"
    else:
        outcome = f"{state}: {trial.user_attrs.get('error', 'see the output above')}"
    try:
        best = f"best {study.best_value:.1f} (trial {study.best_trial.number})"
    except ValueError:  # no complete trial yet
        best = "best -"
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    params = "  ".join(f"{key}={_short(value)}" for key, value in trial.params.items())
    return f"trial {trial.number:>3}  {outcome}  {best}  {seconds:.0f} s  {params}"


def work(ctx: SweepContext, plan: WorkerPlan, pruner=None, on_epoch=None) -> None:
    """Run ``plan.n_trials`` trials of the study. A user mistake in a trial stops the worker with
    that error; any other failure is recorded as a failed trial and the sweep goes on."""
    import optuna

    from benchmark import tracking

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our trial lines replace Optuna's
    if plan.threads:
        import torch

        torch.set_num_threads(plan.threads)
    tracking.setup(Path(ctx.results))
    epochs = ctx.base["train"]["epochs"]
    study = optuna.load_study(study_name=ctx.study, storage=open_storage(ctx.storage),
                              sampler=TrialSeededTPE(plan.seed),
                              pruner=pruner or make_pruner(ctx.pruner, epochs))
    stopped: list[str] = []

    def announce(study, trial) -> None:
        print(plan.label + trial_line(study, trial), flush=True)
        if trial.state.name == "FAIL" and trial.user_attrs.get("error", "").startswith("UserError: "):
            stopped.append(trial.user_attrs["error"].removeprefix("UserError: "))
            study.stop()

    study.optimize(lambda trial: objective(trial, ctx, on_epoch), n_trials=plan.n_trials, timeout=plan.timeout,
                   catch=(Exception,), callbacks=[announce], gc_after_trial=True)
    if stopped:
        raise UserError(stopped[0])


def worker_process(ctx: SweepContext, plan: WorkerPlan) -> None:
    """Entry point of a spawned worker: exit 0, 2 (user mistake, one ``error:`` line) or 130 (interrupted)."""
    install_worker_signals()
    try:
        work(ctx, plan)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
