"""``sweep``: tune one variant with Optuna; every trial is a nested MLflow run under one parent.

The study is created (or found and checked) once, before any worker starts; rerunning with the
same ``--study`` adds trials to it. The parent MLflow run records the study, the storage (password
masked), the best value and the best params.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark import config as configuration
from benchmark import runner, tracking
from benchmark.config import RunConfig
from benchmark.errors import UserError
from benchmark.processes import stop, threads_per_worker, worker_environment
from benchmark.sweep import space as spaces
from benchmark.sweep.dead_workers import fail_dead_trials, local_pid
from benchmark.slurm import SlurmOptions
from benchmark.slurm import check as check_slurm
from benchmark.study_storage import default_storage, is_url, masked, open_storage
from benchmark.sweep.slurm import run_workers_slurm
from benchmark.sweep.trial import SweepContext, trial_config
from benchmark.sweep.worker import (
    PRUNERS,
    WorkerPlan,
    work,
    worker_process,
)


@dataclass
class SweepOptions:
    n_trials: int = 20
    study: str | None = None  # default: <variant>-<dataset>
    storage: str | None = None  # default: results/optuna.journal
    workers: int = 1
    space_file: str | None = None
    timeout: float | None = None  # seconds per worker; a running trial is finished, not cut
    pruner: str = "median"
    export_best: str | None = None
    slurm: SlurmOptions | None = None  # run the workers as SLURM jobs (the storage must be a database URL)


@dataclass
class SweepResult:
    study: str
    parent_run_id: str
    best_value: float | None
    best_params: dict[str, Any]
    trials: Any  # pandas DataFrame of this invocation's trials
    summary: str
    timing: dict[str, float] = field(default_factory=dict)


def _check_options(options: SweepOptions) -> None:
    if options.n_trials < 1:
        raise UserError(f"--n-trials must be at least 1; got {options.n_trials}")
    if options.workers < 1:
        raise UserError(f"--workers must be at least 1; got {options.workers}")
    if options.timeout is not None and options.timeout <= 0:
        raise UserError(f"--timeout must be a positive number of seconds; got {options.timeout:g}")
    if options.pruner not in PRUNERS:
        raise UserError(f"unknown pruner '{options.pruner}'; choose one of: {', '.join(PRUNERS)}")
    if options.slurm is not None:
        if not is_url(options.storage or ""):
            raise UserError("--executor slurm needs a database storage that every node reaches, e.g. --storage "
                            "postgresql://user:pass@host/db (a journal file needs file locks, which shared file systems often lack)")
        check_slurm(options.slurm)
    if options.export_best and Path(options.export_best).exists():
        raise UserError(f"{options.export_best} already exists; pass a new --export-best path (nothing is overwritten)")


def _open_study(name: str, storage, base: RunConfig, space: spaces.Space):
    """Create the study with its base config and space, or load it and check they match."""
    import optuna

    if name not in optuna.study.get_all_study_names(storage):
        try:
            study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
            study.set_user_attr("base_config", configuration.to_dict(base))
            study.set_user_attr("space", space)
            return study
        except optuna.exceptions.DuplicatedStudyError:  # another machine created it just now
            time.sleep(1)  # let it write the base config and space
    study = optuna.load_study(study_name=name, storage=storage)
    if "base_config" not in study.user_attrs:
        raise UserError(f"study '{name}' in this storage was not made by itr-bench; pass another --study")
    changed = configuration.differences(configuration.from_dict(study.user_attrs["base_config"]), base)
    if changed:
        raise UserError(f"study '{name}' was run with a different config ({', '.join(changed)} differ); "
                        f"rerun with the same options to continue it, or pass a new --study")
    if study.user_attrs["space"] != space:
        raise UserError(f"study '{name}' was run with a different search space; use the same space, or pass a new --study")
    return study


def _plans(options: SweepOptions, seed: int) -> list[WorkerPlan]:
    workers = min(options.workers, options.n_trials)
    threads = options.slurm.cpus_per_cell if options.slurm else threads_per_worker(workers) if workers > 1 else None
    return [WorkerPlan(index=i, n_trials=options.n_trials // workers + (i < options.n_trials % workers),
                       seed=seed, timeout=options.timeout, threads=threads,
                       label=f"[worker {i}] " if workers > 1 else "")
            for i in range(workers)]


MAX_RESTARTS = 3  # per worker: a worker that keeps dying (out of memory) stops the sweep


def _run_workers(ctx: SweepContext, plans: list[WorkerPlan], study, storage) -> None:
    """Spawn one process per plan; on Ctrl-C or SIGTERM, let each finish its trial's bookkeeping.

    A worker killed by a signal (kill -9, the out-of-memory killer) leaves its trial RUNNING: that
    trial is failed, and a new worker runs the rest of its share, so the sweep still runs the
    trials it was asked for."""
    spawn = multiprocessing.get_context("spawn")
    pending, restarts = list(plans), dict.fromkeys(range(len(plans)), 0)
    while pending:
        processes = [spawn.Process(target=worker_process, args=(ctx, plan), name=f"sweep-worker-{plan.index}") for plan in pending]
        try:
            with worker_environment(pending[0].threads):
                for process in processes:
                    process.start()
            for process in processes:
                process.join()
        except KeyboardInterrupt:
            stop(processes)
            raise
        codes = [process.exitcode for process in processes]
        if 2 in codes:
            raise SystemExit(2)  # the worker printed its one-line error
        if any(code and code > 0 for code in codes):
            raise UserError(f"a sweep worker crashed (exit codes {codes}); its traceback is above")
        killed = [(plan, process) for plan, process in zip(pending, processes) if process.exitcode]
        pending = []
        for plan, process in killed:
            name = signal.Signals(-process.exitcode).name
            failed = fail_dead_trials(study, storage, process.pid, f"its worker was killed by {name}")
            done = sum(local_pid(t) == process.pid and t.state.is_finished() and t.number not in failed
                       for t in study.get_trials(deepcopy=False))
            left = plan.n_trials - done
            restarts[plan.index] += 1
            print(f"{plan.label}killed by {name}; its trial(s) {failed or 'none'} marked failed, "
                  f"{left} of its {plan.n_trials} trials left", flush=True)
            if restarts[plan.index] > MAX_RESTARTS:
                raise UserError(f"sweep worker {plan.index} was killed {restarts[plan.index]} times (last by {name}); "
                                "out of memory? try fewer --workers or a smaller model")
            if left > 0:
                pending.append(dataclasses.replace(plan, n_trials=left))


def _timing(trials) -> dict[str, float]:
    """Mean trial time, and the share of it outside model training and dev evaluation."""
    done = trials[trials["state"].isin(["COMPLETE", "PRUNED"])]
    if done.empty or "user_attrs_train_seconds" not in done:
        return {}
    seconds = done["duration"].dt.total_seconds()
    train = done["user_attrs_train_seconds"].astype(float)
    setup = done["user_attrs_setup_seconds"].astype(float)
    return {
        "mean_trial_seconds": float(seconds.mean()),
        "mean_train_seconds": float(train.mean()),
        "mean_setup_seconds": float(setup.mean()),
        "overhead_seconds": float((seconds - train - setup).mean()),
        "overhead_fraction": float(((seconds - train - setup) / seconds).mean()),
    }


def summarise(study, invocation_trials, top: int = 5) -> str:
    """Counts by state and the top trials of the whole study, as a table."""
    frame = study.trials_dataframe(attrs=("number", "value", "state", "duration", "params"))
    if frame.empty:
        return f"study '{study.study_name}': no trials yet"
    counts = frame["state"].value_counts().to_dict()
    ours = invocation_trials["state"].value_counts().to_dict() if len(invocation_trials) else {}
    lines = [f"study '{study.study_name}': {len(frame)} trials "
             f"({', '.join(f'{v} {k.lower()}' for k, v in counts.items())}); "
             f"this sweep ran {len(invocation_trials)} ({', '.join(f'{v} {k.lower()}' for k, v in ours.items()) or 'none'})"]
    complete = frame[frame["state"] == "COMPLETE"].sort_values(["value", "number"], ascending=[False, True]).head(top)
    if complete.empty:
        return "\n".join(lines + ["no trial completed"])
    table = complete.rename(columns=lambda c: c.removeprefix("params_")).rename(columns={"number": "trial", "value": "dev score"})
    table["seconds"] = table.pop("duration").dt.total_seconds().round(0).astype(int)
    table = table.drop(columns=["state"])
    lines += [f"top {len(table)} trials by dev score:", table.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
    return "\n".join(lines)


def _log_parent(client, run_id: str, study, timing: dict[str, float], summary: str, space: spaces.Space, results: Path) -> None:
    try:
        best = study.best_trial
    except ValueError:
        best = None
    if best is not None:
        client.log_param(run_id, "best_trial", best.number)
        for key, value in best.params.items():
            client.log_param(run_id, f"best.{key}", value)
        client.log_metric(run_id, "best_dev_score", best.value)
    for key, value in timing.items():
        client.log_metric(run_id, key, value)
    folder = results / "sweeps" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.txt").write_text(summary + "\n")
    (folder / "space.json").write_text(json.dumps(space, indent=2))
    client.log_artifact(run_id, str(folder / "summary.txt"))
    client.log_artifact(run_id, str(folder / "space.json"))


def run_sweep(base: RunConfig, results: Path, options: SweepOptions, pruner=None, on_epoch=None) -> SweepResult:
    """Tune ``base``'s variant over the search space; returns the best trial and a summary.

    ``pruner`` (any Optuna pruner object, instead of ``options.pruner``) and ``on_epoch`` (a per-epoch
    callback) are for Python users and tests; they apply with one worker only (they do not cross to
    worker processes).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _check_options(options)
    variant = base.model.variant
    space = spaces.check_space(spaces.load_space(options.space_file) if options.space_file else spaces.default_space(variant), base)
    runner.check(base, results)  # the data and the variant (and caches synthetic data), before any trial
    study_name = options.study or f"{variant}-{base.data.dataset}"
    storage_name = options.storage or default_storage(results)
    storage = open_storage(storage_name)
    study = _open_study(study_name, storage, base, space)
    trials_before = len(study.trials)

    tracking.setup(results)
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = tracking.experiment_id(base.experiment, results)
    if stale := fail_dead_trials(study, storage, why="its worker died before this sweep started"):
        print(f"trial(s) {stale} of '{study_name}' were left RUNNING by a worker that died; marked failed", flush=True)
    parent = client.create_run(experiment, run_name=f"sweep-{study_name}-{time.strftime('%Y%m%d-%H%M%S')}", tags={
        "sweep.study": study_name, "sweep.role": "parent", "sweep.storage": masked(storage_name),
        "variant": variant, "dataset": base.data.dataset, "git_commit": tracking.git_commit()})
    parent_id = parent.info.run_id
    plans = _plans(options, base.seed)
    for key, value in {"study": study_name, "storage": masked(storage_name), "n_trials": options.n_trials,
                       "workers": len(plans), "pruner": options.pruner, "sampler": "TPE", "seed": base.seed,
                       "timeout": options.timeout, "epochs": base.train.epochs}.items():
        client.log_param(parent_id, key, value)

    print(f"sweep of {variant} on {base.data.dataset}: study '{study_name}' in {masked(storage_name)} "
          f"({trials_before} trials so far), {options.n_trials} new trials on {len(plans)} worker(s), "
          f"TPE sampler (seed {base.seed}), {options.pruner} pruner, {base.train.epochs} epochs per trial, "
          f"objective: best dev score (test is never used)\nsearch space:\n{spaces.describe(space)}\n"
          f"MLflow parent run {parent_id}", flush=True)
    ctx = SweepContext(study_name, storage_name, configuration.to_dict(base), space, str(results), experiment,
                       parent_id, options.pruner, echo=len(plans) == 1 and options.slurm is None)
    status = "FAILED"
    try:
        if options.slurm is not None:
            logs = results / "sweeps" / f"{study_name}-{time.strftime('%Y%m%d-%H%M%S')}" / "slurm"
            run_workers_slurm(ctx, plans, options.slurm, study, options.n_trials, logs)
        elif len(plans) == 1:
            work(ctx, plans[0], pruner, on_epoch)
        else:
            _run_workers(ctx, plans, study, storage)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        print(f"interrupted; the study is saved: rerun the same command to continue '{study_name}'", flush=True)
        raise
    finally:
        frame = study.trials_dataframe(attrs=("number", "value", "state", "duration", "params", "user_attrs"))
        ours = frame[frame["user_attrs_sweep_run"] == parent_id] if "user_attrs_sweep_run" in frame else frame.iloc[:0]
        timing = _timing(ours) if len(ours) else {}
        summary = summarise(study, ours)
        _log_parent(client, parent_id, study, timing, summary, space, results)
        client.set_terminated(parent_id, status)
        print(summary)
        if timing:
            print(f"time per trial {timing['mean_trial_seconds']:.1f} s (training and dev evaluation "
                  f"{timing['mean_train_seconds']:.1f} s, data and model setup {timing['mean_setup_seconds']:.1f} s, "
                  f"Optuna + MLflow {timing['overhead_seconds']:.2f} s = {100 * timing['overhead_fraction']:.1f}%)")
    complete = len(frame) and (frame["state"] == "COMPLETE").any()
    best_value, best_params = (study.best_value, study.best_params) if complete else (None, {})
    if options.export_best:
        if best_value is None:
            raise UserError("no trial completed, so there is no best config to export")
        configuration.save_toml(trial_config(ctx, best_params), options.export_best)
        print(f"best config (trial {study.best_trial.number}, dev score {best_value:.1f}) written to {options.export_best}; "
              f"train it with: python -m benchmark run --config {options.export_best}")
    return SweepResult(study_name, parent_id, best_value, best_params, ours, summary, timing)
