"""The one training loop for every variant: VSE++ loss, AdamW, step schedule, dev selection.

Each epoch trains on the train split, evaluates on **dev** (never test), writes ``last.pt`` and,
when selection keeps the epoch, ``best.pt``. The score is what the loss trains: dev rSum, plus the
dev probe accuracy of every twin kind in training (on real data, rSum alone). Selection keeps the
latest epoch whose score is within ``selection_tolerance_se`` standard errors of the peak (the
highest score so far), the error being that of the paired per-image difference on the same dev
queries (``within_noise``). A resumed run restores the model, optimiser, schedule, the peak and the
torch RNG state, and draws each epoch's batch order from ``(seed, epoch)``, so it continues
exactly as an uninterrupted run would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from benchmark import distributed
from benchmark.checkpoint import load_weights, save_checkpoint
from benchmark.config import RunConfig, TrainConfig
from benchmark.data.batches import CaptionPairs, epoch_batches, training_groups
from benchmark.data.layout import CAPTIONS_PER_IMAGE
from benchmark.data.loader import Split
from benchmark.errors import UserError
from benchmark.evaluation import Evaluation, autocast, evaluate
from benchmark.loss import triplet_loss
from benchmark.metrics import RECALL_KS
from variants import ImageBatch, RetrievalModel


@dataclass
class TrainingData:
    train: Split
    train_tokens: list[list[int]]
    dev: Split
    dev_tokens: list[list[int]]
    train_noise: float  # std of the noise training draws afresh each step (``benchmark.data.datasets.train_feature_noise``)


@dataclass
class EpochRecord:
    """What one finished epoch reports to the tracker."""

    epoch: int
    train_loss: float
    seconds: float
    samples_per_s: float
    lr: float
    dev: Evaluation
    score: float  # the dev selection score (selection_score)
    is_best: bool  # selection kept this epoch (best.pt written)
    peak_epoch: int  # the epoch of the highest score so far (this one, or an earlier one it is within noise of)

    def selection_note(self) -> str:
        """How the epoch line marks selection: '(best)' for a new peak, '(kept: ...)' for an epoch within noise of it."""
        if not self.is_best:
            return ""
        return "(best)" if self.peak_epoch == self.epoch else f"(kept: within noise of epoch {self.peak_epoch})"


@dataclass
class Progress:
    epoch: int = 0  # epochs completed
    best_score: float = -math.inf  # the dev selection score of the epoch selection keeps (best.pt)
    best_epoch: int = 0
    peak_score: float = -math.inf  # the highest dev selection score so far
    peak_epoch: int = 0
    peak_shares: np.ndarray | None = None  # the peak's selection_shares, to test later epochs against


def _trained_probes(dev: Evaluation, cfg: TrainConfig) -> list[str]:
    return [kind for kind in dev.probes if cfg.select_on_probes and kind not in cfg.held_out_twins]


def selection_score(dev: Evaluation, cfg: TrainConfig) -> float:
    """Dev rSum plus, with ``select_on_probes``, the dev accuracy (%) of each twin probe whose kind
    is trained on: the twins are hard negatives of the loss, so selection scores both of its
    terms. Held-out kinds never count; twin-free (real) data scores rSum alone."""
    return dev.metrics["rsum"] + sum(dev.metrics[f"probe_{kind}"] for kind in _trained_probes(dev, cfg))


def selection_shares(dev: Evaluation, cfg: TrainConfig) -> np.ndarray:
    """Each dev image's share of ``selection_score``, whose mean is the score: its image query's
    recall hits, the mean of its five caption queries' hits and of their trained probe outcomes, in %."""
    i2t = dev.ranks["i2t"]
    t2i = dev.ranks["t2i"].reshape(len(i2t), CAPTIONS_PER_IMAGE)
    shares = sum(100.0 * (i2t <= k) + 100.0 * (t2i <= k).mean(axis=1) for k in RECALL_KS)
    for kind in _trained_probes(dev, cfg):
        shares = shares + 100.0 * dev.probes[kind].reshape(len(i2t), CAPTIONS_PER_IMAGE).mean(axis=1)
    return shares


def within_noise(score: float, shares: np.ndarray, peak_score: float, peak_shares: np.ndarray, tolerance_se: float) -> bool:
    """Whether a score is at most ``tolerance_se`` standard errors below the peak's, the error being
    that of the mean paired difference of the two epochs' ``selection_shares`` (the same dev images)."""
    se = float(np.std(shares - peak_shares, ddof=1) / math.sqrt(len(shares))) if len(shares) > 1 else 0.0
    return peak_score - score <= tolerance_se * se


def parameter_groups(model: RetrievalModel, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Pretrained weights (any module named ``pretrained``) train at ``pretrained_lr_scale`` x lr."""
    pretrained, fresh = [], []
    for name, parameter in model.named_parameters():
        (pretrained if ".pretrained." in f".{name}." else fresh).append(parameter)
    groups = [{"params": fresh, "lr": cfg.lr}]
    if pretrained:
        groups.append({"params": pretrained, "lr": cfg.lr * cfg.pretrained_lr_scale})
    return groups


def with_feature_noise(images: ImageBatch, std: float, row_groups: np.ndarray, batch_groups: np.ndarray,
                       seed: tuple[int, ...]) -> ImageBatch:
    """A training step's images with fresh Gaussian noise of ``std`` on every region and grid feature (boxes unchanged).

    The synthetic train split is written without noise and draws it here, so that no model can memorise an image's
    one draw (``data.synthetic.fresh_train_noise``, README). As in the files, a twin group shares one draw, so twins
    stay minimal pairs: one draw per group of the global batch (``batch_groups``, sorted and unique), given to each
    row by its group (``row_groups``: this rank's rows). The draws depend on ``seed`` (run seed, epoch, step) alone,
    so a torchrun rank draws what one process would and a resumed run what an uninterrupted one did. ``std`` 0
    returns the batch itself."""
    if std == 0:
        return images
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
    rows = torch.from_numpy(np.searchsorted(batch_groups, row_groups))

    def noisy(features: torch.Tensor) -> torch.Tensor:
        return features + std * torch.randn((len(batch_groups), *features.shape[1:]), generator=generator)[rows]

    return replace(images, regions=noisy(images.regions), grid=None if images.grid is None else noisy(images.grid))


class PairScores(torch.nn.Module):
    """A training step's forward: this rank's images and captions encoded, every rank's embeddings gathered with
    their gradients (under torchrun, see ``distributed``), and all pairs of the global batch scored. Under torchrun
    DistributedDataParallel wraps this module, so its gradient averaging covers every parameter the step uses."""

    def __init__(self, model: RetrievalModel):
        super().__init__()
        self.model = model

    def forward(self, images, texts, gather: bool) -> torch.Tensor:
        encoded_images, encoded_texts = self.model.encode_images(images), self.model.encode_texts(texts)
        if gather:
            encoded_images, encoded_texts = distributed.gather_embedding(encoded_images), distributed.gather_embedding(encoded_texts)
        return self.model.similarity(encoded_images, encoded_texts)


class Trainer:
    """Optimiser, schedule and one epoch of updates (on this rank's shard of each batch under torchrun)."""

    def __init__(self, model: RetrievalModel, cfg: TrainConfig, device: torch.device, ctx: distributed.Context = distributed.Context(),
                 feature_noise: float = 0.0, seed: int = 0):
        """``feature_noise``: the std of the noise each step draws (``with_feature_noise``, seeded by ``seed``)."""
        self.model, self.cfg, self.device, self.ctx = model, cfg, device, ctx
        self.feature_noise, self.seed = feature_noise, seed
        self.scores = PairScores(model)
        if ctx.distributed:
            # Some variants own parameters that no step uses (none+grid's region projection, BERT's pooler): DDP must
            # look for them each step, or it waits for their gradients and fails at the next. Their grads stay None,
            # as in one process, so AdamW leaves them alone there too.
            self.scores = torch.nn.parallel.DistributedDataParallel(
                self.scores, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=True)
        # foreach: one multi-tensor kernel per update step instead of a loop over parameters (on CPU too, where
        # it is not the default); it gives the same bits as the loop, as does clipping with foreach.
        self.optimizer = torch.optim.AdamW(parameter_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, cfg.lr_milestones, cfg.lr_gamma)
        self.amp = cfg.amp and device.type == "cuda"

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def train_epoch(self, pairs: CaptionPairs, batches: list[np.ndarray], epoch: int, total: int) -> tuple[float, float, float]:
        """Returns (mean loss per batch, seconds, pairs per second), over the global batches."""
        self.model.train()
        hardest = epoch > self.cfg.warmup_epochs
        shards = [distributed.shard(batch, self.ctx) for batch in batches]
        loader = DataLoader(pairs, sampler=[captions for captions, _ in shards], batch_size=None)
        n_pairs = sum(len(batch) for batch in batches)
        bar = tqdm(total=n_pairs, desc=f"epoch {epoch}/{total}", unit="pair", leave=False, dynamic_ncols=True,
                   disable=not self.ctx.main)
        start, loss_sum = time.perf_counter(), 0.0
        for step, (batch, (_, gather), (images, texts, _, row_groups)) in enumerate(zip(batches, shards, loader), start=1):
            image_ids = batch // CAPTIONS_PER_IMAGE  # the global batch's: the loss sees all of it
            batch_groups = pairs.group_of[image_ids]
            images = with_feature_noise(images, self.feature_noise, row_groups.numpy(), np.unique(batch_groups), (self.seed, epoch, step))
            with autocast(self.device, self.amp):
                sims = self.scores(images.to(self.device), texts.to(self.device), gather)
                groups = None if self.cfg.twins_in_hardest else torch.from_numpy(batch_groups).to(self.device)
                loss = triplet_loss(sims.float(), torch.from_numpy(image_ids).to(self.device), self.cfg.margin, hardest, groups,
                                    self.cfg.twin_margin)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=True)
            self.optimizer.step()
            loss_sum += loss.item()
            bar.update(len(batch))
            bar.set_postfix(loss=f"{loss_sum / step:.3f}", refresh=False)
        bar.close()
        self.scheduler.step()
        seconds = time.perf_counter() - start
        return loss_sum / max(len(batches), 1), seconds, n_pairs / seconds


def fit(model: RetrievalModel, data: TrainingData, cfg: RunConfig, device: torch.device, checkpoint_dir: Path,
        meta: dict[str, Any], on_epoch: Callable[[EpochRecord], None] | None = None,
        resume: dict[str, Any] | None = None, ctx: distributed.Context = distributed.Context()) -> Progress:
    """Train ``cfg.train.epochs`` epochs (continuing from ``resume``), selecting on ``selection_score``.

    ``meta`` (config, vocabulary, dims) is stored in every checkpoint so that each one is
    self-contained for ``benchmark eval``. Under torchrun every rank trains; rank 0 alone evaluates dev,
    writes the checkpoints and calls ``on_epoch`` while the others wait, and only its progress is meaningful.
    """
    trainer = Trainer(model, cfg.train, device, ctx, data.train_noise, cfg.seed)
    progress = Progress()
    if resume is not None:
        load_weights(model, resume, checkpoint_dir / "last.pt")
        trainer.load_state_dict(resume)
        progress = _resumed_progress(resume, checkpoint_dir / "last.pt")
        torch.set_rng_state(resume["torch_rng"])
        distributed.reseed(cfg.seed, ctx, progress.epoch)
    groups = training_groups(data.train, cfg.train.group_batches, cfg.train.held_out_twins)
    pairs = CaptionPairs(data.train, data.train_tokens)
    for epoch in range(progress.epoch + 1, cfg.train.epochs + 1):
        lr = trainer.optimizer.param_groups[0]["lr"]
        batches = epoch_batches(groups, cfg.train.batch_size, np.random.default_rng([cfg.seed, epoch]))
        trained = trainer.train_epoch(pairs, batches, epoch, cfg.train.epochs)
        if ctx.main:
            progress = _end_epoch(model, data, cfg, device, trainer, progress, checkpoint_dir, meta, on_epoch, epoch, trained, lr)
        distributed.barrier(ctx)
    return progress


def _resumed_progress(resume: dict[str, Any], path: Path) -> Progress:
    if "peak_shares" not in resume:
        raise UserError(f"{path} predates selection within noise of the peak, so this run cannot continue as it would "
                        "have run; start a new run instead of --resume")
    return Progress(resume["epoch"], resume["best_score"], resume["best_epoch"], resume["peak_score"], resume["peak_epoch"],
                    resume["peak_shares"].numpy())


def select(progress: Progress, epoch: int, score: float, shares: np.ndarray, tolerance_se: float) -> Progress:
    """Progress after an epoch: a new peak is kept; so is an epoch within noise of the peak (``within_noise``),
    so selection keeps the latest epoch not measurably worse than the best, not one that led it by chance."""
    if score > progress.peak_score:
        return Progress(epoch, score, epoch, score, epoch, shares)
    if within_noise(score, shares, progress.peak_score, progress.peak_shares, tolerance_se):
        return replace(progress, epoch=epoch, best_score=score, best_epoch=epoch)
    return replace(progress, epoch=epoch)


def _end_epoch(model: RetrievalModel, data: TrainingData, cfg: RunConfig, device: torch.device, trainer: Trainer,
               progress: Progress, checkpoint_dir: Path, meta: dict[str, Any], on_epoch: Callable[[EpochRecord], None] | None,
               epoch: int, trained: tuple[float, float, float], lr: float) -> Progress:
    """Evaluate dev, select, write the checkpoints and report the epoch (``trained``: ``train_epoch``'s figures)."""
    dev = evaluate(model, data.dev, data.dev_tokens, cfg.eval, device, amp=trainer.amp)
    score = selection_score(dev, cfg.train)
    progress = select(progress, epoch, score, selection_shares(dev, cfg.train), cfg.train.selection_tolerance_se)
    is_best = progress.best_epoch == epoch
    payload = meta | trainer.state_dict() | {
        "model": model.state_dict(), "epoch": epoch, "best_score": progress.best_score, "best_epoch": progress.best_epoch,
        "peak_score": progress.peak_score, "peak_epoch": progress.peak_epoch,
        "peak_shares": torch.from_numpy(progress.peak_shares), "torch_rng": torch.get_rng_state(),
    }
    if is_best:  # best.pt first: the last.pt on disk never names a best epoch whose best.pt is missing
        save_checkpoint(payload, checkpoint_dir / "best.pt")
    save_checkpoint(payload, checkpoint_dir / "last.pt")
    if on_epoch is not None:
        on_epoch(EpochRecord(epoch, *trained, lr, dev, score, is_best, progress.peak_epoch))
    return progress
