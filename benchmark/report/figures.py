"""The report's figures (seaborn/matplotlib), each saved as PNG and PDF with no timestamp inside."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.layout import benchmarks
from benchmark.metrics import DIRECTIONS
from benchmark.report.collect import dev_curve
from benchmark.report.data import ReportData, benchmarks_of, direction_ranks

MAX_K = 50


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _save(figure, folder: Path, stem: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.png", folder / f"{stem}.pdf"]
    figure.savefig(paths[0], dpi=150, bbox_inches="tight", metadata={"Software": None})
    figure.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None, "Producer": None, "Creator": None})
    _pyplot().close(figure)
    return paths


def seed_rsum(data: ReportData, datasets: list[str], folder: Path) -> list[Path]:
    """Per-seed test rSum per variant: one dot per seed, a bar for the mean."""
    import seaborn as sns

    plt = _pyplot()
    panels = benchmarks_of(datasets)
    figure, axes = plt.subplots(1, len(panels), figsize=(max(4.5, 1.2 * len(data.runs["label"].unique())) * len(panels), 4), squeeze=False)
    for ax, (dataset, benchmark) in zip(axes[0], panels, strict=True):
        runs = data.runs[data.runs["dataset"] == dataset]
        order = data.labels(dataset)
        column = benchmark.test_key("rsum")
        sns.stripplot(data=runs, x="label", y=column, order=order, ax=ax, size=7, jitter=False, color="C0", alpha=0.7)
        sns.pointplot(data=runs, x="label", y=column, order=order, ax=ax, linestyles="none", markers="_",
                      markersize=25, errorbar=None, color="black")
        ax.set(title=f"{benchmark.title}: test rSum per seed", xlabel="variant", ylabel="rSum (sum of six R@K, %)")
        ax.tick_params(axis="x", rotation=30)
    return _save(figure, folder, "seed_rsum")


def recall_curves(data: ReportData, datasets: list[str], folder: Path) -> list[Path]:
    """R@K for K = 1..50 in both directions, mean over seeds, one line per variant."""
    plt = _pyplot()
    paths = []
    ks = np.arange(1, MAX_K + 1)
    for dataset in datasets:
        for benchmark in benchmarks(dataset):
            figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
            for label in data.labels(dataset):
                n_seeds = len(data.runs_of(dataset, label))
                for ax, stratum, name in ((axes[0], 0, "image → text"), (axes[1], 1, "text → image")):
                    curves = []
                    for run in data.runs_of(dataset, label).itertuples():
                        ranks = direction_ranks(data.ranks(run.run_id), benchmark, DIRECTIONS[stratum])
                        curves.append([(ranks <= k).mean() * 100 for k in ks])
                    ax.plot(ks, np.mean(curves, axis=0), label=f"{label} (n={n_seeds})")
                    ax.set(title=f"{benchmark.title}, {name}", xlabel="K", xscale="log")
            axes[0].set_ylabel("R@K (% of queries)")
            axes[1].legend(loc="lower right", fontsize="small")
            for ax in axes:
                ax.grid(alpha=0.3)
            paths += _save(figure, folder, f"recall_at_k_{_slug(benchmark.title)}")
    return paths


def training_curves(data: ReportData, datasets: list[str], folder: Path) -> list[Path]:
    """Dev rSum by epoch and, beside it, each dev twin probe by epoch: mean over seeds with a ±1 std band."""
    import seaborn as sns

    plt = _pyplot()
    paths = []
    for dataset in datasets:
        curves = []
        for run in data.runs[data.runs["dataset"] == dataset].itertuples():
            curve = dev_curve(run.run_id)
            curves.append(curve.assign(variant=run.label, seed=run.seed))
        if not curves:
            continue
        frame = pd.concat(curves, ignore_index=True)
        panels = [c for c in frame.columns if c.startswith("dev_") and frame[c].notna().any()]
        if not panels:  # no run logged a dev curve
            continue
        figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
        for index, (ax, column) in enumerate(zip(axes[0], panels, strict=True)):
            sns.lineplot(data=frame, x="epoch", y=column, hue="variant", hue_order=data.labels(dataset), errorbar="sd",
                         marker="o", ax=ax, legend=index == len(panels) - 1)
            name = "rSum" if column == "dev_rsum" else f"{column.removeprefix('dev_probe_')} probe"
            ax.set(title=f"dev {name}", xlabel="epoch", ylabel=f"dev {name} (%)")
            ax.grid(alpha=0.3)
        if len(panels) > 1:
            axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
        figure.suptitle(f"{dataset}: training curves (mean ± std over seeds)")
        paths += _save(figure, folder, f"training_curves_{_slug(dataset)}")
    return paths


def sweep_figures(study, folder: Path) -> list[Path]:
    """Optuna's optimisation history and parameter importances (fANOVA, seeded)."""
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    plt = _pyplot()
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return []
    paths = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        ax = optuna_plots.plot_optimization_history(study, target_name="dev score")
        ax.set(xlabel="trial", ylabel="dev score")
        paths += _save(ax.figure, folder, f"sweep_{_slug(study.study_name)}_history")
        if len(complete) >= 2 and len(complete[0].params) >= 1:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            ax = optuna_plots.plot_param_importances(study, evaluator=evaluator, target_name="dev score")
            ax.set(xlabel="importance for dev score (fANOVA)")
            paths += _save(ax.figure, folder, f"sweep_{_slug(study.study_name)}_importances")
    plt.close("all")
    return paths
