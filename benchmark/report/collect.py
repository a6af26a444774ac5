"""Read finished runs from MLflow into pandas, with their per-query ranks and training curves.

A run counts when it is FINISHED and has test metrics. Sweep runs (parents and trials, which
never touch test) are left out. Runs group by dataset x variant x recipe, where the recipe is the
config minus the seed and the variant: two runs of one variant trained differently are never
averaged together. Of several runs with the same group and seed (a rerun), the newest counts.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config import NOT_RECIPE
from benchmark.data.layout import DATASETS, TWIN_KINDS
from benchmark.errors import UserError
from variants import AXES, parse_variant


@dataclass
class RunSet:
    """The runs a report covers, one row each, and what was left out."""

    runs: pd.DataFrame  # run_id, dataset, variant, recipe, held_out_twins, label, seed, start_time, test_* metrics
    excluded: dict[str, int] = field(default_factory=dict)


def _recipe(params: pd.Series) -> str:
    kept = {k.removeprefix("params."): v for k, v in params.items()
            if k.startswith("params.") and k.removeprefix("params.") not in NOT_RECIPE and isinstance(v, str)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:8]


def _held_out(param: str | None) -> tuple[str, ...]:
    """The twin kinds a run never trained on, from its logged ``train.held_out_twins`` (none before it existed)."""
    return tuple(ast.literal_eval(param)) if isinstance(param, str) else ()


REPRODUCED = {"true": "exactly", "false": "differs"}  # a run's reproduced_exactly tag, as the report shows it


def load_runs(experiment: str, dataset: str | None = None, variants: list[str] | None = None,
              include_unfinished: bool = False, run_ids: list[str] | None = None) -> RunSet:
    """Search the experiment and keep what a report may average (only ``run_ids`` when given)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    if MlflowClient().get_experiment_by_name(experiment) is None:
        raise UserError(f"MLflow experiment '{experiment}' does not exist in {mlflow.get_tracking_uri()}; "
                        f"run `python -m benchmark run` first, or pass --experiment NAME")
    frame = mlflow.search_runs(experiment_names=[experiment], output_format="pandas")
    excluded: dict[str, int] = {}

    def drop(mask: pd.Series, why: str) -> None:
        nonlocal frame
        if mask.any():
            excluded[why] = excluded.get(why, 0) + int(mask.sum())
        frame = frame[~mask]

    if frame.empty:
        return RunSet(frame, excluded)
    if run_ids is not None:
        drop(~frame["run_id"].isin(run_ids), "runs outside this ablation")
    if "tags.sweep.role" in frame:
        drop(frame["tags.sweep.role"].notna(), "sweep runs (they never evaluate on test)")
    if "tags.reproduces" in frame:  # a check of another run, marked on that run's row (``reproduced``)
        drop(frame["tags.reproduces"].notna(), "reproductions (each is marked on the run it reproduced)")
    statuses = ("FINISHED", "FAILED", "KILLED") if include_unfinished else ("FINISHED",)
    drop(~frame["status"].isin(statuses), "unfinished runs (failed, killed or running)")
    headlines = sorted({f"metrics.{spec.headline.test_key('rsum')}" for spec in DATASETS.values()} & set(frame.columns))
    has_test = frame[headlines].notna().any(axis=1)  # all False without such columns
    drop(~has_test, "runs without test metrics")
    if dataset:
        drop(frame["tags.dataset"] != dataset, f"runs on other datasets than {dataset}")
    if variants:
        drop(~frame["tags.variant"].isin(variants), "runs of other variants")
    if frame.empty:  # the filters left nothing: say what they left out
        return RunSet(frame, excluded)
    runs = pd.DataFrame({
        "run_id": frame["run_id"], "dataset": frame["tags.dataset"], "variant": frame["tags.variant"],
        "seed": frame["tags.seed"].astype(int), "start_time": frame["start_time"],
        "recipe": [_recipe(row) for _, row in frame.iterrows()],
        "held_out_twins": [_held_out(value) for value in frame.get("params.train.held_out_twins", [None] * len(frame))],
        "reproduced": [REPRODUCED.get(value, "") for value in frame.get("tags.reproduced_exactly", [None] * len(frame))],
    })
    for column in sorted(frame.columns):  # search_runs orders metric columns as the runs list them
        if column.startswith("metrics.test_") or column in ("metrics.best_epoch", "metrics.wall_seconds"):
            runs[column.removeprefix("metrics.")] = frame[column].to_numpy()
    runs = runs.sort_values("start_time", ascending=False)
    duplicated = runs.duplicated(["dataset", "variant", "recipe", "seed"])
    if duplicated.any():
        excluded["older reruns of the same variant, recipe and seed"] = int(duplicated.sum())
    runs = runs[~duplicated]
    runs["label"] = [display_name(v) for v in runs["variant"]]
    several = runs.groupby(["dataset", "variant"])["recipe"].transform("nunique") > 1
    runs.loc[several, "label"] = runs["label"] + " [" + runs["recipe"] + "]"
    order = {v: i for i, v in enumerate(variants)} if variants else None
    runs["order"] = [order[v] if order else _complexity(v) for v in runs["variant"]]
    runs = runs.sort_values(["dataset", "order", "label", "seed"]).drop(columns="order")
    return RunSet(runs.reset_index(drop=True), excluded)


def display_name(variant: str) -> str:
    """``sa+dif`` for the canonical ``dif``; a name the registry does not know is shown as it is."""
    try:
        return parse_variant(variant).display
    except UserError:
        return variant


def _complexity(variant: str) -> tuple:
    """Paper order: fewer non-default components first, then registry order (sa, gisa, ...; region, dif)."""
    try:
        spec = parse_variant(variant)
    except UserError:
        return (99, variant)
    indices = [AXES[axis].names().index(getattr(spec, axis)) for axis in AXES]
    return (sum(getattr(spec, axis) != AXES[axis].default for axis in AXES), *indices)


def load_ranks(run_id: str) -> dict[str, np.ndarray]:
    """The run's ``ranks.npz`` artifact (per-query ranks and probe outcomes)."""
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="ranks.npz")
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def dev_curve(run_id: str) -> pd.DataFrame:
    """Dev rSum by epoch, and the dev twin probes (per caption) where the run logged them: one column each."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    columns = {}
    for key in ("dev_rsum", *(f"dev_probe_{kind}" for kind in TWIN_KINDS)):
        if history := client.get_metric_history(run_id, key):
            columns[key] = pd.Series({m.step: m.value for m in history})
    return pd.DataFrame(columns).rename_axis("epoch").reset_index()


def sweep_studies(experiment: str) -> list:
    """The Optuna studies of the experiment's sweeps whose storage can be reopened from here."""
    import mlflow
    import optuna

    from benchmark.study_storage import is_url, open_storage

    parents = mlflow.search_runs(experiment_names=[experiment], filter_string="tags.`sweep.role` = 'parent'")
    studies = []
    for study, storage in dict.fromkeys(zip(parents.get("tags.sweep.study", []), parents.get("tags.sweep.storage", []), strict=True)):
        if "***" in storage or (not is_url(storage) and not Path(storage).is_file()):
            print(f"sweep '{study}': its storage {storage} cannot be reopened from here; no sweep figures for it")
            continue
        try:
            studies.append(optuna.load_study(study_name=study, storage=open_storage(storage)))
        except (KeyError, UserError) as exc:
            print(f"sweep '{study}': cannot load it from {storage} ({exc}); no sweep figures for it")
    return studies
