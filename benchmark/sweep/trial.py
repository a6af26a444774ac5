"""One sweep trial: train a sampled config, report dev rSum each epoch, log it as a nested MLflow run.

The objective is the best dev rSum over the trial's epochs; the test split is never evaluated.
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
from benchmark.errors import UserError
from benchmark.sweep.space import Space, suggest
from benchmark.training import EpochRecord, fit
from variants.registry import parse_variant

# The MLflow run status each trial state ends in (the tag ``sweep.state`` names the state itself).
STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED", "interrupted": "KILLED"}


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
    """Train one sampled config; returns its best dev rSum. ``on_epoch`` lets tests interrupt it."""
    import mlflow
    import optuna

    started = time.perf_counter()
    trial.set_user_attr("sweep_run", ctx.parent_run_id)  # which invocation ran it (workers may be on several machines)
    cfg = trial_config(ctx, suggest(trial, ctx.space))
    state, train_seconds = "failed", 0.0
    try:
        prepared = runner.prepare(cfg, Path(ctx.results))
    except Exception as exc:
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
        raise
    setup_seconds = time.perf_counter() - started
    active = mlflow.start_run(experiment_id=ctx.experiment_id, run_name=f"{ctx.study}-trial-{trial.number:03d}",
                              parent_run_id=ctx.parent_run_id, nested=True)
    run_id = active.info.run_id
    trial.set_user_attr("mlflow_run_id", run_id)
    try:
        mlflow.log_params(configuration.flatten(cfg))
        tags = tracking.run_tags(parse_variant(cfg.model.variant).name, cfg.data.dataset, cfg.seed, str(prepared.device),
                                 configuration.config_hash(cfg), tracking.environment())
        mlflow.set_tags(tags | {"sweep.study": ctx.study, "sweep.role": "trial", "sweep.trial": str(trial.number)})
        log = runner.epoch_logger(run_id, cfg.train.epochs, echo=ctx.echo)

        def on_epoch_end(record: EpochRecord) -> None:
            log(record)
            trial.report(record.dev.metrics["rsum"], record.epoch)
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
        mlflow.log_metrics({"best_dev_rsum": progress.best_rsum, "best_epoch": progress.best_epoch})
        trial.set_user_attr("best_epoch", progress.best_epoch)
        state = "complete"
        return progress.best_rsum
    except optuna.TrialPruned:
        state = "pruned"
        raise
    except KeyboardInterrupt:
        state = "interrupted"
        raise
    except Exception as exc:
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
        if not isinstance(exc, UserError):
            traceback.print_exc()
        raise
    finally:
        trial.set_user_attr("setup_seconds", setup_seconds)
        trial.set_user_attr("train_seconds", train_seconds)
        mlflow.set_tag("sweep.state", state)
        mlflow.end_run(STATUS[state])
