"""One sweep trial: train a sampled config, report the dev score each epoch, log it as a nested MLflow run.

The objective is the best dev score (training.selection_score) over the trial's epochs; the test split is never evaluated.
Checkpoints go to a temporary folder that is removed after the trial.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark import config as configuration
from benchmark import runner, tracking
from benchmark.data.digest import dataset_digest
from benchmark.errors import UserError
from benchmark.sweep.dead_workers import WORKER_ATTR, worker_id
from benchmark.sweep.space import Space, suggest
from benchmark.training import EpochRecord, fit


@dataclass(frozen=True)
class SweepContext:
    """What every worker needs to run trials (plain data, so it crosses to worker processes)."""

    study: str
    storage: str
    base: dict[str, Any]  # the base RunConfig as a dict; each trial overrides the space's keys
    space: Space
    results: str
    experiment_id: str
    parent_run_id: str
    pruner: str
    echo: bool = True  # print each epoch (one worker) or only each finished trial (several)


def trial_config(ctx: SweepContext, params: dict[str, Any]) -> configuration.RunConfig:
    return configuration.with_values(configuration.from_dict(ctx.base), params)


def objective(trial, ctx: SweepContext, on_epoch=None) -> float:
    """Train one sampled config; returns its best dev score. ``on_epoch`` lets tests interrupt it."""
    import mlflow
    import optuna

    started = time.perf_counter()
    trial.set_user_attr("sweep_run", ctx.parent_run_id)  # which invocation ran it (workers may be on several machines)
    trial.set_user_attr(WORKER_ATTR, worker_id())  # which process: a trial of a dead worker is found and failed
    cfg = trial_config(ctx, suggest(trial, ctx.space))
    setup_seconds = train_seconds = 0.0
    prepared = None
    try:
        prepared = runner.prepare(cfg, Path(ctx.results))
        setup_seconds = time.perf_counter() - started
        tags = {"sweep.study": ctx.study, "sweep.role": "trial", "sweep.trial": str(trial.number),
                "dataset_digest": dataset_digest(prepared.splits)}
        with tracking.tracked_run(cfg, ctx.experiment_id, str(prepared.device), run_name=f"{ctx.study}-trial-{trial.number:03d}",
                                  parent_run_id=ctx.parent_run_id, tags=tags, echo=ctx.echo, stopped=(optuna.TrialPruned,),
                                  outcome_tag="sweep.state") as tracked:
            trial.set_user_attr("mlflow_run_id", tracked.run_id)

            def on_epoch_end(record: EpochRecord) -> None:
                tracked.log_epoch(record, cfg.train.epochs)
                trial.report(record.score, record.epoch)
                if on_epoch is not None:
                    on_epoch(record)
                if record.epoch < cfg.train.epochs and trial.should_prune():  # after the last epoch, pruning saves nothing
                    raise optuna.TrialPruned(f"pruned after epoch {record.epoch}")

            fit_started = time.perf_counter()
            try:
                with tempfile.TemporaryDirectory(prefix="itr-bench-trial-") as checkpoints:
                    progress = fit(prepared.model, prepared.training_data(), cfg, prepared.device, Path(checkpoints),
                                   prepared.meta(), on_epoch_end)
            finally:
                train_seconds = time.perf_counter() - fit_started
            mlflow.log_metrics({"best_dev_score": progress.best_score, "best_epoch": progress.best_epoch})
        trial.set_user_attr("best_epoch", progress.best_epoch)
        return progress.best_score
    except (optuna.TrialPruned, KeyboardInterrupt):
        raise
    except Exception as exc:
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
        if not isinstance(exc, UserError) and prepared is not None:  # a setup error is the sweep's to report
            traceback.print_exc()
        raise
    finally:
        trial.set_user_attr("setup_seconds", setup_seconds)
        trial.set_user_attr("train_seconds", train_seconds)
