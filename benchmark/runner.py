"""``run``: train one variant on one dataset and seed, evaluate it on test, track it all in MLflow.

Outputs go to ``results/runs/<time>-<variant>-<dataset>-seed<seed>/``; the MLflow run holds the
same numbers. A run that fails or is interrupted ends FAILED or KILLED, never RUNNING, and can
be continued with ``resume_dir``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark import config as configuration
from benchmark import allocator, distributed, tracking
from benchmark.checkpoint import load_checkpoint, load_weights
from benchmark.config import RunConfig
from benchmark.data.datasets import check_inputs, dataset_root, open_dataset, train_feature_noise
from benchmark.data.digest import dataset_digest
from benchmark.data.layout import CROWDED_SPLIT, TEST_PREFIX, WHOLE_SPLIT, Benchmark, DatasetSpec
from benchmark.data.loader import Split, dataset_folder, dataset_spec
from benchmark.data.vocab import Vocabulary
from benchmark.errors import RankFailure, UserError
from benchmark.processes import peak_rss_mb, signals_deferred
from benchmark.evaluation import Evaluation, evaluate
from benchmark.foils import make_foils
from benchmark.reproducibility import resolve_device, seed_everything
from benchmark.summary import run_note
from benchmark.training import EpochRecord, TrainingData, fit
from variants import FeatureDims, RetrievalModel, build_model, count_parameters
from variants import check as check_variant

RESULTS_ENV = "ITR_BENCH_RESULTS"


def results_dir(path: str | os.PathLike | None = None) -> Path:
    """``--results-dir``, else ``$ITR_BENCH_RESULTS``, else ``./results``: created, and checked writable."""
    folder = Path(path or os.environ.get(RESULTS_ENV) or "results")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"cannot write to the results folder {folder} ({exc.strerror}); pass a writable --results-dir") from None
    return folder


@dataclass
class RunResult:
    run_dir: Path
    run_id: str
    test: Evaluation
    best_epoch: int
    best_dev_score: float  # the dev selection score of the best epoch (training.selection_score)
    seconds: float
    peak_rss_mb: float

    @property
    def metrics(self) -> dict[str, float]:
        return self.test.metrics


def feature_dims(split: Split, vocab_size: int) -> FeatureDims:
    grid = split.grid
    return FeatureDims(
        region_dim=split.regions.shape[2], n_regions=split.regions.shape[1], vocab_size=vocab_size,
        grid_dim=0 if grid is None else grid.shape[2], grid_cells=0 if grid is None else grid.shape[1],
    )


def split_benchmarks(spec: DatasetSpec, split: Split) -> tuple[Benchmark, ...]:
    """How a split is scored: the test split by the dataset's benchmarks (checked), any other as one set."""
    if split.name != spec.test_split:
        return (WHOLE_SPLIT,)
    for benchmark in spec.benchmarks:
        if split.n_images % benchmark.folds:
            raise UserError(f"{spec.name} {split.name} has {split.n_images} images, which do not split into {benchmark.folds} folds "
                            f"for {benchmark.title}")
    return spec.benchmarks


def _new_run_dir(base: Path, cfg: RunConfig) -> Path:
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model.variant}-{cfg.data.dataset}-seed{cfg.seed}"
    for suffix in ("", *(f"-{i}" for i in range(2, 1000))):
        path = base / "runs" / (stem + suffix)
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise UserError(f"cannot create a run folder under {base / 'runs'}; clean it up")


def _check_resumable(run_dir: Path) -> None:
    if not (run_dir / "run.json").is_file():
        raise UserError(f"{run_dir} is not a run folder (no run.json); pass results/runs/<run>")
    if (run_dir / "metrics.json").is_file():
        raise UserError(f"{run_dir} already finished; start a new run instead of --resume")


def _open_resume(run_dir: Path) -> tuple[RunConfig, dict[str, Any] | None, str]:
    """The saved config, last checkpoint (None if no epoch finished) and MLflow run id."""
    cfg = configuration.resolve(run_dir / "config.toml")
    last = run_dir / "checkpoints" / "last.pt"
    checkpoint = load_checkpoint(last) if last.is_file() else None
    return cfg, checkpoint, json.loads((run_dir / "run.json").read_text())["mlflow_run_id"]


def _check_same_data(run_id: str, digest: str) -> None:
    """Refuse to resume on other data than the run started with (a default that changed since can change the data
    a saved config resolves to, e.g. ``data.synthetic.fresh_train_noise``, added after such runs)."""
    started = tracking.existing_run(run_id).data.tags.get("dataset_digest")
    if started not in (None, digest):
        raise UserError(f"this run started on other data (dataset digest {started}, now {digest}): its config resolves to "
                        "another dataset today; start a new run instead of --resume")


def _save_outputs(run_dir: Path, test: Evaluation, summary: dict[str, Any]) -> None:
    np.savez_compressed(run_dir / "ranks.npz", **test.ranks, **{f"probe_{k}": v for k, v in test.probes.items()})
    (run_dir / "metrics.json").write_text(json.dumps(summary | {"test": test.metrics}, indent=2))


@dataclass
class Prepared:
    """A config's data, vocabulary and freshly built model: what training needs."""

    cfg: RunConfig
    device: Any
    dataset: DatasetSpec
    splits: dict[str, Split]
    vocab: Vocabulary
    dims: FeatureDims
    model: RetrievalModel
    tokens: dict[str, list[list[int]]]

    def training_data(self) -> TrainingData:
        train, dev = (self.splits[name] for name in self.dataset.splits[:2])
        return TrainingData(train, self.tokens[train.name], dev, self.tokens[dev.name], train_feature_noise(self.cfg.data))

    def crowded(self) -> tuple[Split, list[list[int]]] | None:
        """The synthetic crowded split and its token ids, for the ``crowded_binding`` probe (None on real data)."""
        return (self.splits[CROWDED_SPLIT], self.tokens[CROWDED_SPLIT]) if CROWDED_SPLIT in self.splits else None

    def meta(self) -> dict[str, Any]:
        """What every checkpoint stores so that it is self-contained."""
        return {"config": configuration.to_dict(self.cfg), "vocab": self.vocab.words, "dims": vars(self.dims).copy()}


def check(cfg: RunConfig, results: Path) -> None:
    """What ``prepare`` checks, without building the model or loading weights: the device (its index too),
    the model's shared sizes and each component's settings, the data (every split; synthetic data is
    generated and cached) and the inputs the variant needs. Not checked: that a pretrained text model's
    weights load (its folder is found, the weights are read only when the model is built)."""
    resolve_device(cfg.device)
    spec = check_variant(cfg.model)  # the cheap checks first
    dataset, splits = open_dataset(cfg.data, results)
    check_inputs(spec, splits[dataset.splits[0]])


def rank_device(name: str, ctx: distributed.Context) -> torch.device:
    """The device ``name`` resolves to; under torchrun each rank takes its own GPU (``cuda:LOCAL_RANK``) and joins
    the job's process group."""
    device = resolve_device(name)
    if ctx.distributed and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    distributed.join(ctx, device)
    return device


def prepare(cfg: RunConfig, results: Path, vocab_words: list[str] | None = None,
            ctx: distributed.Context = distributed.Context()) -> Prepared:
    """Open and check the data, build the vocabulary (from train) and the seeded model (on ``rank_device``)."""
    device = rank_device(cfg.device, ctx)
    spec = check_variant(cfg.model)
    dataset, splits = open_dataset(cfg.data, results)
    train = splits[dataset.splits[0]]
    check_inputs(spec, train)
    seed_everything(cfg.seed)  # before the model is built; it costs ~2 s, so after the data checks
    allocator.keep_freed_memory()
    vocab = Vocabulary(vocab_words) if vocab_words else Vocabulary.build(train.captions, cfg.data.vocab_min_count)
    dims = feature_dims(train, len(vocab))
    model = build_model(cfg.model, dims).to(device)
    distributed.reseed(cfg.seed, ctx)
    tokenize = model.tokenizer(vocab)
    tokens = {name: [tokenize(c) for c in split.captions] for name, split in splits.items()}
    return Prepared(cfg, device, dataset, splits, vocab, dims, model, tokens)


def foil_tokens(captions: list[str], tokenize) -> dict[str, tuple[np.ndarray, list[list[int]]]]:
    """Caption foils of a real test set (no twin images), tokenized: the inputs of the foil probes."""
    return {kind: (index, [tokenize(f) for f in foils]) for kind, (index, foils) in make_foils(captions).items()}


def run(cfg: RunConfig, results: Path, resume_dir: Path | None = None, on_epoch=None,
        tags: dict[str, str] | None = None) -> RunResult | None:
    """Train, select on dev, evaluate the best checkpoint on test; everything tracked in MLflow. Under torchrun,
    rank 0 does all of that and returns the result; the other ranks train their shards and return None.

    ``on_epoch`` (optional) is called with each ``EpochRecord`` after its checkpoint is written: a
    public hook for Python users (progress, custom stopping); the tests interrupt runs with it.
    ``tags`` are added to the MLflow run's own (a new run only). The run folder is locked
    (``live_lock``) while the run is live, so it cannot be resumed twice.
    """
    ctx = distributed.context()
    try:
        with contextlib.ExitStack() as live:
            if resume_dir is not None:
                _check_resumable(Path(resume_dir))
                if ctx.main:
                    live.enter_context(live_lock(Path(resume_dir)))
            if not ctx.main:
                return _follow(cfg, results, resume_dir, ctx)
            return _run(cfg, results, resume_dir, on_epoch, live, tags or {}, ctx)
    except RuntimeError as exc:  # the run is already marked FAILED; say why in one line
        if distributed.peer_failed(exc, ctx):
            raise RankFailure(distributed.STOPPED) from None
        raise
    finally:
        distributed.leave(ctx)


def _follow(cfg: RunConfig, results: Path, resume_dir: Path | None, ctx: distributed.Context) -> None:
    """A rank other than 0 under torchrun: prepare after rank 0 has (it may generate the synthetic data), then
    train its shards; rank 0 tracks, checkpoints and evaluates."""
    checkpoint = None
    if resume_dir is not None:
        cfg, checkpoint, _ = _open_resume(Path(resume_dir))
    rank_device(cfg.device, ctx)
    distributed.barrier(ctx)
    prepared = prepare(cfg, results, checkpoint["vocab"] if checkpoint else None, ctx)
    fit(prepared.model, prepared.training_data(), cfg, prepared.device, Path(resume_dir or results) / "checkpoints",
        prepared.meta(), resume=checkpoint, ctx=ctx)


@contextlib.contextmanager
def live_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<run_dir>/live.lock`` (holding this process's id) while a run is
    live; the operating system drops it when the process ends, however it ends."""
    with open(run_dir / "live.lock", "a+") as handle:
        if not _locked(handle):
            handle.seek(0)
            raise UserError(f"{run_dir} is live in process {handle.read().strip() or '(unknown)'}; "
                            "let it finish, or stop it (Ctrl-C) before --resume")
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def _locked(handle) -> bool:
    """Take the exclusive lock on ``handle`` without waiting; False when another process holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def is_live(run_dir: Path) -> bool:
    """Whether a process holds ``run_dir``'s live lock now (the lock file is read, never written)."""
    with open(run_dir / "live.lock", "a+") as handle:
        return not _locked(handle)


def _run(cfg: RunConfig, results: Path, resume_dir: Path | None, on_epoch, live: contextlib.ExitStack,
         tags: dict[str, str], ctx: distributed.Context) -> RunResult:
    started = time.perf_counter()
    checkpoint, run_id = None, None
    if resume_dir is not None:
        cfg, checkpoint, run_id = _open_resume(Path(resume_dir))
    prepared = prepare(cfg, results, checkpoint["vocab"] if checkpoint else None, ctx)
    distributed.barrier(ctx)  # the other ranks prepare now, from the data this one checked (and generated)
    model, device, vocab = prepared.model, prepared.device, prepared.vocab
    test = prepared.splits[prepared.dataset.test_split]
    benchmarks = split_benchmarks(prepared.dataset, test)

    import mlflow  # after the data and model checks: user mistakes surface without this 2 s import

    tracking.setup(results)
    experiment = tracking.experiment_id(cfg.experiment, results)
    run_dir = Path(resume_dir) if resume_dir is not None else _new_run_dir(results, cfg)
    if resume_dir is None:
        live.enter_context(live_lock(run_dir))
    env = tracking.environment()
    digest = dataset_digest(prepared.splits)
    if run_id is not None:
        _check_same_data(run_id, digest)
    else:
        configuration.save_toml(cfg, run_dir / "config.toml")
        vocab.save(run_dir / "vocab.json")
        (run_dir / "environment.json").write_text(json.dumps(env, indent=2))
    with tracking.tracked_run(cfg, experiment, str(device), run_id=run_id, run_name=None if run_id else run_dir.name,
                              tags={"run_dir": str(run_dir.resolve()), "dataset_digest": digest, "world_size": str(ctx.world)} | tags,
                              env=env, record=checkpoint is None) as tracked:
        if checkpoint is None:
            tracking.log_dataset(cfg.data.dataset, dataset_folder(prepared.dataset, dataset_root(cfg.data, results)), digest)
        (run_dir / "run.json").write_text(json.dumps({"mlflow_run_id": tracked.run_id, "experiment_id": experiment}))
        ranks = f" x {ctx.world} ranks (torchrun)" if ctx.distributed else ""
        print(f"run {run_dir.name}: variant {cfg.model.variant}, {count_parameters(model):,} parameters, device {device}{ranks}, "
              f"MLflow run {tracked.run_id}", flush=True)

        def on_epoch_end(record: EpochRecord) -> None:
            with signals_deferred():  # Ctrl-C lands after the epoch's MLflow writes, not inside one
                tracked.log_epoch(record, cfg.train.epochs)
            if on_epoch is not None:
                on_epoch(record)

        progress = fit(model, prepared.training_data(), cfg, device, run_dir / "checkpoints", prepared.meta(), on_epoch_end, checkpoint,
                       ctx)
        best = run_dir / "checkpoints" / "best.pt"
        load_weights(model, load_checkpoint(best), best)
        result = evaluate(model, test, prepared.tokens[test.name], cfg.eval, device, benchmarks, amp=cfg.train.amp,
                          foils=None if test.twins is not None else foil_tokens(test.captions, model.tokenizer(vocab)),
                          crowded=prepared.crowded())
        seconds = time.perf_counter() - started
        summary = {"best_epoch": progress.best_epoch, "best_dev_score": progress.best_score,
                   "wall_seconds": seconds, "peak_rss_mb": peak_rss_mb()}
        mlflow.log_metrics({TEST_PREFIX + k: v for k, v in result.metrics.items()} | summary)
        mlflow.set_tag("mlflow.note.content", run_note(cfg, result, progress.best_epoch, progress.best_score))
        _save_outputs(run_dir, result, summary)
        for name in ("config.toml", "vocab.json", "environment.json", "metrics.json", "ranks.npz"):
            mlflow.log_artifact(str(run_dir / name))
        if cfg.log_checkpoint:
            mlflow.log_artifact(str(run_dir / "checkpoints" / "best.pt"), artifact_path="checkpoints")
    return RunResult(run_dir, tracked.run_id, result, progress.best_epoch, progress.best_score, seconds, summary["peak_rss_mb"])


@dataclass
class LoadedCheckpoint:
    """A saved model, ready to score a split of its dataset (or of another with the same feature dims)."""

    cfg: RunConfig
    model: RetrievalModel
    spec: DatasetSpec
    split: Split
    tokenize: Any
    device: torch.device
    crowded: Split | None = None  # the synthetic crowded split, beside its test split

    def token_ids(self, split: Split | None = None) -> list[list[int]]:
        return [self.tokenize(c) for c in (split or self.split).captions]


def load_for_evaluation(path: Path, results: Path, dataset: str | None = None, data_root: str | None = None,
                        split: str | None = None, device: str = "auto") -> LoadedCheckpoint:
    """A checkpoint's model with its weights, and the split to score (the dataset's test split by default)."""
    checkpoint = load_checkpoint(path)
    cfg = configuration.from_dict(checkpoint["config"])
    if dataset:
        cfg.data.dataset = dataset
    if data_root:
        cfg.data.data_root = data_root
    torch_device = resolve_device(device)
    spec_dataset = dataset_spec(cfg.data.dataset)
    split_name = split or spec_dataset.test_split
    if split_name not in spec_dataset.splits:
        raise UserError(f"{spec_dataset.name} has no split '{split_name}'; choose one of: {', '.join(spec_dataset.splits)}")
    with_crowded = split_name == spec_dataset.test_split and CROWDED_SPLIT in spec_dataset.splits
    _, splits = open_dataset(cfg.data, results, splits=(split_name, CROWDED_SPLIT) if with_crowded else (split_name,))
    target = splits[split_name]
    vocab = Vocabulary(checkpoint["vocab"])
    dims = FeatureDims(**checkpoint["dims"])
    if feature_dims(target, len(vocab)) != dims:
        raise UserError(f"{split_name} features have dims {feature_dims(target, len(vocab))} but the checkpoint was trained on {dims}")
    check_inputs(check_variant(cfg.model), target)
    seed_everything(cfg.seed)
    model: RetrievalModel = build_model(cfg.model, dims).to(torch_device)
    load_weights(model, checkpoint, path)
    return LoadedCheckpoint(cfg, model, spec_dataset, target, model.tokenizer(vocab), torch_device, splits.get(CROWDED_SPLIT))


def evaluate_checkpoint(path: Path, results: Path, dataset: str | None = None, data_root: str | None = None,
                        split: str | None = None, device: str = "auto") -> tuple[str, Evaluation]:
    """Evaluate a saved checkpoint on a split (the dataset's test split by default)."""
    loaded = load_for_evaluation(path, results, dataset, data_root, split, device)
    target = loaded.split
    foils = None if target.twins is not None else foil_tokens(target.captions, loaded.tokenize)
    crowded = None if loaded.crowded is None else (loaded.crowded, loaded.token_ids(loaded.crowded))
    return target.name, evaluate(loaded.model, target, loaded.token_ids(), loaded.cfg.eval, loaded.device,
                                 split_benchmarks(loaded.spec, target), loaded.cfg.train.amp, foils, crowded)
