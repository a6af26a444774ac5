"""Evaluating a model on a split with the field's protocol: encode once, score in chunks, rank.

Images and captions are encoded once; the ``(n_images, 5 n_images)`` similarity matrix is then
filled block by block (``eval.image_chunk`` images against all captions), so that COCO 5K
(5,000 x 25,000) and heavier alignments stay within memory. Per-query ranks are kept for paired
significance tests.

A split with twins (synthetic) is scored twin-free: only the base images and their captions form
the retrieval pool, so no rank depends on a pair that a variant's inputs cannot tell apart by
construction. For the probes, each group's images are scored against its base's five captions only
(a block diagonal, linear in the number of groups); the captions of twins are never encoded at evaluation.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from benchmark.config import EvalConfig
from benchmark.data.batches import image_batch, text_batch
from benchmark.data.layout import CAPTIONS_PER_IMAGE, CROWDED_PROBE, WHOLE_SPLIT, Benchmark
from benchmark.data.loader import Split
from benchmark.metrics import (
    DIRECTIONS,
    fold_ranks,
    mean_metrics,
    metrics_from_ranks,
    query_ranks,
)
from benchmark.probes import captions_of, probe_accuracy, probe_outcomes
from variants import ImageEmbedding, RetrievalModel, TextEmbedding


@dataclass
class Evaluation:
    """Metrics (flat, MLflow-ready names) and the per-query arrays behind them."""

    metrics: dict[str, float]
    ranks: dict[str, np.ndarray] = field(default_factory=dict)  # keys named by Benchmark.ranks_keys: 'i2t', '1k_fold0_i2t'
    probes: dict[str, np.ndarray] = field(default_factory=dict)  # per-caption outcomes per twin kind
    benchmarks: tuple[Benchmark, ...] = (WHOLE_SPLIT,)  # how the split was scored


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


def encode_pool(model: RetrievalModel, split: Split, token_ids: list[list[int]], cfg: EvalConfig, device: torch.device,
                amp: bool = False) -> tuple[ImageEmbedding, TextEmbedding, ImageEmbedding]:
    """Every image, the pool's captions, and the retrieval pool's images: with twins, only the bases and their captions."""
    twins = split.twins
    if twins is not None:  # twin-free pool: only the bases' captions are ever queries
        token_ids = [token_ids[c] for c in captions_of(twins[:, 0]).ravel()]
    images, texts = encode_split(model, split, token_ids, cfg, device, amp)
    pool = images if twins is None else images[torch.as_tensor(twins[:, 0], device=images.pooled.device)]
    return images, texts, pool


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


def score(sims: np.ndarray, benchmarks: tuple[Benchmark, ...] = (WHOLE_SPLIT,),
          probes: dict[str, np.ndarray] | None = None) -> Evaluation:
    """Protocol metrics and per-query ranks of a similarity matrix for each benchmark (COCO: 1K and 5K),
    with the accuracies of ``probes`` (per-caption outcomes by kind) when given."""
    probes = probes or {}
    metrics, ranks = {}, {}
    for benchmark in benchmarks:
        parts = fold_ranks(sims, benchmark.folds) if benchmark.folds > 1 else [query_ranks(sims)]
        values = mean_metrics([metrics_from_ranks(r) for r in parts]) if len(parts) > 1 else metrics_from_ranks(parts[0])
        metrics |= {benchmark.key(k): v for k, v in values.items()}
        for direction in DIRECTIONS:
            ranks |= dict(zip(benchmark.ranks_keys(direction), (getattr(r, direction) for r in parts), strict=True))
    return Evaluation(metrics=metrics | probe_accuracy(probes), ranks=ranks, probes=probes, benchmarks=benchmarks)


@torch.no_grad()
def group_scores(model: RetrievalModel, images: ImageEmbedding, texts: TextEmbedding, twins: np.ndarray,
                 device: torch.device, amp: bool = False, groups_per_block: int = 8) -> np.ndarray:
    """``(n_groups, twins.shape[1], 5)``: every image of a group scored against its base's five captions
    (``texts`` holds the base captions, group-major), a few groups at a time."""
    n_groups, width = twins.shape
    out = np.empty((n_groups, width, CAPTIONS_PER_IMAGE), dtype=np.float32)
    with autocast(device, amp):
        for start in range(0, n_groups, groups_per_block):
            groups = np.arange(start, min(start + groups_per_block, n_groups))
            block = model.similarity(images[torch.as_tensor(twins[groups].ravel(), device=images.pooled.device)],
                                     texts[torch.as_tensor(captions_of(groups).ravel(), device=texts.pooled.device)])
            block = block.float().cpu().numpy().reshape(len(groups), width, len(groups), CAPTIONS_PER_IMAGE)
            out[groups] = block[np.arange(len(groups)), :, np.arange(len(groups)), :]  # each group's own captions
    return out


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


def crowded_probe(model: RetrievalModel, split: Split, token_ids: list[list[int]], cfg: EvalConfig, device: torch.device,
                  amp: bool = False) -> dict[str, np.ndarray]:
    """``crowded_binding``: the binding twins of the synthetic crowded split, per base caption 1, ½ or 0."""
    images, texts, _ = encode_pool(model, split, token_ids, cfg, device, amp)
    return {CROWDED_PROBE: probe_outcomes(group_scores(model, images, texts, split.twins, device, amp))["binding"]}


def evaluate(model: RetrievalModel, split: Split, token_ids: list[list[int]], cfg: EvalConfig,
             device: torch.device, benchmarks: tuple[Benchmark, ...] = (WHOLE_SPLIT,), amp: bool = False,
             foils: dict[str, tuple[np.ndarray, list[list[int]]]] | None = None,
             crowded: tuple[Split, list[list[int]]] | None = None) -> Evaluation:
    """Encode, score and rank one split; with ``foils`` (kind -> caption indices, foil token ids),
    also the caption-foil probes ``probe_foil_<kind>`` and the share of captions foiled; with ``crowded``
    (the synthetic crowded split and its token ids), also its ``crowded_binding`` probe."""
    twins = split.twins
    images, texts, pool = encode_pool(model, split, token_ids, cfg, device, amp)
    sims = similarity_matrix(model, pool, texts, cfg, device, amp, desc=f"scoring {split.name}")
    probes = {} if twins is None or not len(twins) else probe_outcomes(group_scores(model, images, texts, twins, device, amp))
    if crowded is not None:
        probes |= crowded_probe(model, *crowded, cfg, device, amp)
    result = score(sims, benchmarks, probes)
    for kind, (index, foil_tokens) in (foils or {}).items():
        outcomes = foil_outcomes(model, images, sims, index, foil_tokens, cfg, device, amp)
        result.metrics[f"foiled_{kind}"] = float(100.0 * len(index) / len(token_ids))
        if len(outcomes):  # a rule that foiled no caption has no accuracy
            result.probes[f"foil_{kind}"] = outcomes
            result.metrics[f"probe_foil_{kind}"] = float(100.0 * outcomes.mean())
    return result
