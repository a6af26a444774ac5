"""Evaluating a model on a split with the field's protocol: encode once, score in chunks, rank.

Images and captions are encoded once; the ``(n_images, 5 n_images)`` similarity matrix is then
filled block by block (``eval.image_chunk`` images against all captions), so that COCO 5K
(5,000 x 25,000) and heavier alignments stay within memory. Per-query ranks are kept for paired
significance tests.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from benchmark.config import EvalConfig
from benchmark.data.batches import image_batch, text_batch
from benchmark.data.layout import CAPTIONS_PER_IMAGE
from benchmark.data.loader import Split
from benchmark.metrics import (
    QueryRanks,
    fold_ranks,
    mean_metrics,
    metrics_from_ranks,
    query_ranks,
)
from benchmark.probes import probe_accuracy, probe_outcomes
from variants.base import ImageEmbedding, TextEmbedding
from variants.model import RetrievalModel


@dataclass
class Evaluation:
    """Metrics (flat, MLflow-ready names) and the per-query arrays behind them."""

    metrics: dict[str, float]
    ranks: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. 'i2t', 't2i', '1k_fold0_i2t'
    probes: dict[str, np.ndarray] = field(default_factory=dict)  # per-caption outcomes per twin kind


def autocast(device: torch.device, amp: bool):
    """bfloat16 autocast on CUDA when ``amp``; a no-op on CPU, which stays in fp32."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def encode_split(model: RetrievalModel, split: Split, token_ids: list[list[int]], cfg: EvalConfig,
                 device: torch.device, amp: bool = False) -> tuple[ImageEmbedding, TextEmbedding]:
    """Every image and caption of the split, embedded (kept on ``device``); progress when large."""
    model.eval()
    length = max(len(ids) for ids in token_ids)
    image_starts = range(0, split.n_images, cfg.batch_size)
    caption_starts = range(0, len(token_ids), cfg.batch_size)
    with autocast(device, amp), tqdm(total=len(image_starts) + len(caption_starts), desc=f"encoding {split.name}",
                                     unit="batch", disable=len(caption_starts) < 40, leave=False) as bar:
        images = []
        for i in image_starts:
            images.append(model.encode_images(image_batch(split, np.arange(i, min(i + cfg.batch_size, split.n_images))).to(device)))
            bar.update()
        texts = []
        for i in caption_starts:
            texts.append(model.encode_texts(text_batch(token_ids[i:i + cfg.batch_size], length).to(device)))
            bar.update()
    return ImageEmbedding.cat(images), TextEmbedding.cat(texts)


@torch.no_grad()
def similarity_matrix(model: RetrievalModel, images: ImageEmbedding, texts: TextEmbedding, cfg: EvalConfig,
                      device: torch.device, amp: bool = False, desc: str = "scoring") -> np.ndarray:
    """The full (n_images, n_captions) float32 matrix, computed ``image_chunk`` images at a time."""
    n_images = len(images)
    sims = np.empty((n_images, len(texts)), dtype=np.float32)
    chunks = range(0, n_images, cfg.image_chunk)
    with autocast(device, amp):
        for start in tqdm(chunks, desc=desc, unit="chunk", disable=len(chunks) < 8, leave=False):
            rows = slice(start, min(start + cfg.image_chunk, n_images))
            sims[rows] = model.similarity(images[rows], texts).float().cpu().numpy()
    return sims


def _ranked(prefix: str, ranks: QueryRanks) -> dict[str, np.ndarray]:
    return {f"{prefix}i2t": ranks.i2t, f"{prefix}t2i": ranks.t2i}


def score(sims: np.ndarray, folds: int = 1, twins: np.ndarray | None = None) -> Evaluation:
    """Protocol metrics for a similarity matrix; with ``folds`` > 1 also the fold mean (COCO 1K/5K)."""
    full = query_ranks(sims)
    if folds > 1:
        per_fold = fold_ranks(sims, folds)
        metrics = {f"5k_{k}": v for k, v in metrics_from_ranks(full).items()}
        metrics |= {f"1k_{k}": v for k, v in mean_metrics([metrics_from_ranks(r) for r in per_fold]).items()}
        ranks = _ranked("5k_", full)
        for k, fold in enumerate(per_fold):
            ranks |= _ranked(f"1k_fold{k}_", fold)
    else:
        metrics, ranks = metrics_from_ranks(full), _ranked("", full)
    probes = probe_outcomes(sims, twins) if twins is not None and len(twins) else {}
    return Evaluation(metrics=metrics | probe_accuracy(probes), ranks=ranks, probes=probes)


@torch.no_grad()
def foil_outcomes(model: RetrievalModel, images: ImageEmbedding, sims: np.ndarray, caption_index: np.ndarray,
                  foil_tokens: list[list[int]], cfg: EvalConfig, device: torch.device, amp: bool = False) -> np.ndarray:
    """Per foiled caption: True when its image scores the true caption strictly above the foil."""
    outcomes = np.zeros(len(caption_index), dtype=bool)
    if not len(caption_index):
        return outcomes
    length = max(len(ids) for ids in foil_tokens)
    owners = caption_index // CAPTIONS_PER_IMAGE
    with autocast(device, amp):
        for start in range(0, len(caption_index), cfg.batch_size):
            rows = slice(start, start + cfg.batch_size)
            texts = model.encode_texts(text_batch(foil_tokens[rows], length).to(device))
            block_images, position = np.unique(owners[rows], return_inverse=True)
            block = model.similarity(images[torch.as_tensor(block_images, device=images.pooled.device)], texts).float().cpu().numpy()
            foil_scores = block[position, np.arange(len(position))]
            outcomes[rows] = sims[owners[rows], caption_index[rows]] > foil_scores
    return outcomes


def evaluate(model: RetrievalModel, split: Split, token_ids: list[list[int]], cfg: EvalConfig,
             device: torch.device, folds: int = 1, amp: bool = False,
             foils: dict[str, tuple[np.ndarray, list[list[int]]]] | None = None) -> Evaluation:
    """Encode, score and rank one split; with ``foils`` (kind -> caption indices, foil token ids),
    also the caption-foil probes ``probe_foil_<kind>`` and the share of captions foiled."""
    images, texts = encode_split(model, split, token_ids, cfg, device, amp)
    sims = similarity_matrix(model, images, texts, cfg, device, amp, desc=f"scoring {split.name}")
    result = score(sims, folds, split.twins)
    for kind, (index, foil_tokens) in (foils or {}).items():
        outcomes = foil_outcomes(model, images, sims, index, foil_tokens, cfg, device, amp)
        result.metrics[f"foiled_{kind}"] = float(100.0 * len(index) / len(token_ids))
        if len(outcomes):  # a rule that foiled no caption has no accuracy
            result.probes[f"foil_{kind}"] = outcomes
            result.metrics[f"probe_foil_{kind}"] = float(100.0 * outcomes.mean())
    return result
