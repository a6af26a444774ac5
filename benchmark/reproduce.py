"""``reproduce RUN``: run a finished run's saved config again and compare every number it logged.

The original is a run folder (``results/runs/<run>``) or an MLflow run id, whose logged artifacts
(``config.toml``, ``environment.json``, ``metrics.json``) are read from the store. Before training,
everything the numbers depend on is compared with the present: the git commit (and uncommitted
changes), package versions, Python, torch threads, the CPU, the device and the dataset digest. Each
difference is printed; ``strict`` refuses to run when there is one. The reproduction is a new MLflow
run tagged ``reproduces=<original id>``; both runs get ``reproduced_exactly``.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark import config as configuration
from benchmark import runner, tracking
from benchmark.data.datasets import open_dataset
from benchmark.data.digest import dataset_digest
from benchmark.errors import UserError
from benchmark.reproducibility import resolve_device

COMPARED = ("best_epoch", "best_dev_score")  # from metrics.json beside its "test" metrics (not wall time or RSS)


@dataclass
class Original:
    run_id: str
    cfg: configuration.RunConfig
    environment: dict[str, Any]
    numbers: dict[str, float]  # every compared number: test metrics, best epoch, best dev score
    tags: dict[str, str]


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {f"test_{k}": float(v) for k, v in metrics["test"].items()} | {k: float(metrics[k]) for k in COMPARED}


def load_original(ref: str, results: Path) -> Original:
    """The run folder ``ref``, or the MLflow run with id ``ref`` (a run's artifacts, or a sweep trial's params);
    it must have finished."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    tracking.setup(results)
    folder = Path(ref)
    run_id = json.loads((folder / "run.json").read_text())["mlflow_run_id"] if (folder / "run.json").is_file() else ref
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException:
        what = "its run" if run_id != ref else f"'{ref}' is neither a run folder (with run.json) nor a run id that"
        raise UserError(f"{what} is not in the MLflow store {tracking.tracking_uri(results)}; pass the --results-dir it ran "
                        "with, and results/runs/<run> or an id from `python -m benchmark ui`") from None
    if run.data.tags.get("sweep.role") == "trial":
        return _trial(run)
    if run_id == ref:  # by id: the run's files as it logged them
        with tempfile.TemporaryDirectory() as scratch:
            for name in ("config.toml", "environment.json", "metrics.json"):
                with contextlib.suppress(MlflowException):  # metrics.json is logged only when the run finished
                    MlflowClient().download_artifacts(run_id, name, scratch)
            return _from_files(run, Path(scratch))
    return _from_files(run, folder)


def _from_files(run, folder: Path) -> Original:
    if not (folder / "metrics.json").is_file():
        raise UserError(f"run {run.info.run_id} has not finished (no metrics.json); finish it with run --resume before reproducing it")
    return Original(run.info.run_id, configuration.resolve(folder / "config.toml"), json.loads((folder / "environment.json").read_text()),
                    _numbers(json.loads((folder / "metrics.json").read_text())), run.data.tags)


def _trial(run) -> Original:
    """A sweep trial writes no files: its config is its params, its environment its tags, its numbers its dev selection."""
    if run.info.status != "FINISHED":
        raise UserError(f"sweep trial {run.info.run_id} did not finish ({run.data.tags.get('sweep.state', run.info.status)}); "
                        "only a finished trial can be reproduced")
    booleans = {"True": True, "False": False}  # MLflow logged str(value)
    values = {key: booleans[text] if text in booleans else configuration.parse_value(text) for key, text in run.data.params.items()}
    cfg = configuration.with_values(configuration.RunConfig(), values)
    tags = run.data.tags
    environment = {"git_commit": tags.get("git_commit", "unknown"), "lock": {"lock_digest": tags.get("lock_digest", "none")},
                   "packages": {k.removeprefix("version."): v for k, v in tags.items() if k.startswith("version.")}}
    return Original(run.info.run_id, cfg, environment, {k: run.data.metrics[k] for k in COMPARED}, tags)


def differences(original: Original, results: Path) -> list[str]:
    """What differs between the original's circumstances and the present ones, one line each."""
    now = tracking.environment()
    then = original.environment
    lines = []
    if then["git_commit"] != now["git_commit"]:
        lines.append(f"git commit: {then['git_commit']} then, {now['git_commit']} now")
    elif now["git_commit"].endswith("+dirty"):
        lines.append("uncommitted changes: the tree was and is dirty, so the code may differ")
    for name in sorted(set(then["packages"]) | set(now["packages"])):
        old, new = then["packages"].get(name, "absent"), now["packages"].get(name, "absent")
        if old != new:
            lines.append(f"package {name}: {old} then, {new} now")
    old_lock, new_lock = then.get("lock", {}).get("lock_digest", "none"), now["lock"]["lock_digest"]
    if old_lock != new_lock:
        lines.append(f"requirements.lock: digest {old_lock} then, {new_lock} now")
    if now["lock"]["matches_lock"] == "false":
        lines.append(f"this environment does not match requirements.lock ({'; '.join(now['lock']['lock_mismatches'][:3])})")
    for key, what in (("python", "Python"), ("torch_threads", "torch threads (floats sum in another order)"),
                      ("cpu", "CPU (its kernels sum in another order)")):
        if key in then and then[key] != now[key]:  # a sweep trial's tags do not hold these
            lines.append(f"{what}: {then[key]} then, {now[key]} now")
    device = str(resolve_device(original.cfg.device))
    if original.tags.get("device", device) != device:
        lines.append(f"device: {original.tags['device']} then, {device} now")
    _, splits = open_dataset(original.cfg.data, results)
    digest = dataset_digest(splits)
    if "dataset_digest" not in original.tags:
        lines.append("dataset digest: the original logged none (a run from before digests), so the data cannot be compared")
    elif original.tags["dataset_digest"] != digest:
        lines.append(f"dataset digest: {original.tags['dataset_digest']} then, {digest} now (the data differs)")
    return lines


def comparison(original: dict[str, float], reproduced: dict[str, float]) -> tuple[list[str], str, bool]:
    """Side-by-side lines, the summary line, and whether every number the original logged came back identical."""
    names = sorted(original)
    width = max(len(n) for n in names)
    lines = [f"{'metric':{width}}  {'original':>12}  {'reproduced':>12}  {'difference':>11}"]
    differing = []
    for name in names:
        a, b = original.get(name, math.nan), reproduced.get(name, math.nan)
        same = a == b or (math.isnan(a) and math.isnan(b))
        if not same:
            differing.append((abs(b - a) if math.isfinite(a) and math.isfinite(b) else math.inf, name, a, b))
        lines.append(f"{name:{width}}  {a:12.6g}  {b:12.6g}  {'' if same else f'{b - a:+11.3g}'}")
    if not differing:
        return lines, f"reproduced exactly ({len(names)} metrics identical)", True
    _, name, a, b = max(differing)
    return lines, f"{len(differing)} of {len(names)} metrics differ (largest: {name} {a:.6g} -> {b:.6g})", False


def reproduce(ref: str, results: Path, strict: bool = False, echo=print) -> tuple[runner.RunResult, bool]:
    """Check, re-run and compare; returns the reproduction and whether it matched exactly."""
    import mlflow

    original = load_original(ref, results)
    found = differences(original, results)
    echo(f"reproducing MLflow run {original.run_id} ({original.cfg.model.variant}, {original.cfg.data.dataset}, seed {original.cfg.seed})")
    for line in found:
        echo(f"  differs: {line}")
    if not found:
        echo("  same commit, packages, lock, Python, threads, CPU, device and data")
    if found and strict:
        raise UserError(f"--strict: {len(found)} difference(s) from the original run (listed above); reproduce on its "
                        "checkout and environment, or drop --strict")
    result = runner.run(original.cfg, results, tags={"reproduces": original.run_id})
    reproduced = _numbers({"test": result.metrics, "best_epoch": result.best_epoch, "best_dev_score": result.best_dev_score})
    lines, summary, exact = comparison(original.numbers, reproduced)
    for line in lines:
        echo(line)
    echo(summary)
    client = mlflow.tracking.MlflowClient()
    client.set_tag(result.run_id, "reproduced_exactly", str(exact).lower())
    client.set_tag(original.run_id, "reproduced_by", result.run_id)
    client.set_tag(original.run_id, "reproduced_exactly", str(exact).lower())
    return result, exact
