"""Could evaluation score in bf16 and still rank exactly as fp32 does? A rigorous bound, measured.

The plan the performance issue asks for: compute every word-region cosine with a bf16 GEMM, bound the
rounding error, carry the bound through SCAN's attention to an interval ``[lo, hi]`` that holds each
pair's exact score, and re-score in fp32 only the pairs whose interval contains their query's
ground-truth score. Every other pair's side of the ground truth is then certain, so ranks, and every
metric, would equal fp32 evaluation's.

- **Cosines.** With ``b(x)`` the bf16 rounding, ``v.w - b(v).b(w) = b(v).(w - b(w)) + (v - b(v)).w``, so
  by Cauchy-Schwarz the error is at most ``|b(v)| |w - b(w)| + |v - b(v)| |w|`` (per vector norms, exact
  in fp32), plus fp32 accumulation, ``d 2^-24 |b(v)| |b(w)|``, plus the rounding of the result to bf16 (on the
  CPU a bf16 matmul returns bf16), ``2^-8`` of it.
- **SCAN's logits** ``x_l / |x|`` (``x`` the LeakyReLU'd cosines over the caption's words): each is
  monotone in its own ``x_l`` and falls as the others grow, so its extremes over the box are exact.
- **Softmax** over regions: a weight is lowest with its own logit low and the others high, and
  conversely (exact over the box).
- **Word score** ``w.ctx / |ctx|``: the numerator by interval products; ``|ctx| = |sum_r a_r v_r|``
  moves by at most ``sum_r |a_r - m_r|`` from the midpoint weights ``m`` (triangle inequality, unit regions).
- **Global** cosines (``hier``'s second term): the cosine bound above.

The interval holds the exact score; ``REFERENCE_SLACK`` widens it to hold fp32's own rounding too (the
fp32 scores differ from SCAN's loop by about 2e-7 in ``bench``). ``bench --bf16-certificate CHECKPOINT``
measures, on a trained model's test split: whether every fp32 score lies in its interval, the share of
pairs the bound leaves undecided, and the time of the bounded bf16 pass against fp32 scoring.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from variants import ImageEmbedding, RetrievalModel, TextEmbedding, l2norm
from variants.alignment_global import GlobalAlignment
from variants.alignment_hier import HierarchicalAlignment
from variants.alignment_local import LocalAlignment

REFERENCE_SLACK = 1e-5
_OUTPUT_ROUNDING = 1.01 * 2.0 ** -8  # the product comes back in bf16 (CPU matmul has no fp32 output): one more rounding
_BLOCK_ELEMENTS = 1 << 20  # images x captions x words x regions per chunk: the bound keeps about 12 such tensors


def cosine_bounds(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, d) and (M, d) rows -> their (N, M) dot products from a bf16 GEMM, and a bound on each one's error."""
    a16, b16 = a.bfloat16(), b.bfloat16()
    dots = (a16 @ b16.T).float()
    a_norm, b_norm = a16.float().norm(dim=1), b16.float().norm(dim=1)
    a_err, b_err = (a - a16.float()).norm(dim=1), (b - b16.float()).norm(dim=1)
    # |b(a)| |b - b(b)| + |a - b(a)| |b| + accumulation |b(a)| |b(b)| (one rank-2 product) + output rounding |dots|
    per_b = b_err + 1.01 * a.shape[1] * 2.0 ** -24 * b_norm
    error = torch.addmm(dots.abs().mul_(_OUTPUT_ROUNDING), torch.stack([a_norm, a_err], 1), torch.stack([per_b, b.norm(dim=1)]))
    return dots, error


def _normalised_logits(low: torch.Tensor, high: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Extremes of SCAN's ``x_l / (|x| + 1e-8)`` (over words, last dim) for cosines in ``[low, high]``."""
    x_low, x_high = F.leaky_relu(low, 0.1) * mask, F.leaky_relu(high, 0.1) * mask
    square_high = torch.maximum(x_low * x_low, x_high * x_high)
    square_low = torch.minimum(x_low * x_low, x_high * x_high).masked_fill((x_low < 0) & (x_high > 0), 0.0)
    others_low = (square_low.sum(-1, keepdim=True) - square_low).clamp(min=0)
    others_high = square_high.sum(-1, keepdim=True) - square_high

    def ratio(x, others_when_positive, others_when_negative):
        others = torch.where(x >= 0, others_when_positive, others_when_negative)
        return (x / ((x * x + others).sqrt() + 1e-8)).clamp(-1, 1)

    return ratio(x_low, others_high, others_low), ratio(x_high, others_low, others_high)


def _softmax_bounds(low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Extremes of softmax over dim 1 for logits in ``[low, high]``."""
    shift = high.amax(1, keepdim=True)
    e_low, e_high = torch.exp(low - shift), torch.exp(high - shift)
    sum_low, sum_high = e_low.sum(1, keepdim=True), e_high.sum(1, keepdim=True)
    return e_low / (e_low + (sum_high - e_high).clamp(min=0)), e_high / (e_high + (sum_low - e_low).clamp(min=0))


def _divide(low: torch.Tensor, high: torch.Tensor, den_low: torch.Tensor, den_high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[low, high] / [den_low, den_high]`` for a positive denominator."""
    return (torch.where(low >= 0, low / den_high, low / den_low).clamp(-1, 1),
            torch.where(high >= 0, high / den_low, high / den_high).clamp(-1, 1))


def local_score_bounds(regions: torch.Tensor, words: torch.Tensor, mask: torch.Tensor, temperature: float,
                       norm: str = "scan") -> tuple[torch.Tensor, torch.Tensor]:
    """(I, K, E) regions, (T, L, E) words, (T, L) word mask -> (I, T) intervals holding each exact local score
    (``variants.alignment_local.local_similarity``) when the cosines come from a bf16 GEMM."""
    v, w = l2norm(regions), l2norm(words)
    n_images, n_regions, dim = v.shape
    length = w.shape[1]
    gram = v @ v.transpose(1, 2)
    chunk = max(1, _BLOCK_ELEMENTS // max(1, n_images * length * n_regions))
    low_scores, high_scores = v.new_empty(n_images, len(w)), v.new_empty(n_images, len(w))
    for start in range(0, len(w), chunk):
        words_chunk, mask_chunk = w[start:start + chunk], mask[start:start + chunk].to(v.dtype)
        shape = (n_images, n_regions, len(words_chunk), length)
        cosines, error = cosine_bounds(v.reshape(-1, dim), words_chunk.reshape(-1, dim))
        low = (cosines - error).clamp(-1, 1).view(shape)
        high = (cosines + error).clamp(-1, 1).view(shape)
        if norm == "scan":
            logit_low, logit_high = _normalised_logits(low, high, mask_chunk)
        else:
            logit_low, logit_high = low, high
        weight_low, weight_high = _softmax_bounds(temperature * logit_low, temperature * logit_high)
        dot_low = torch.minimum(weight_low * low, weight_high * low).sum(1)  # w . ctx
        dot_high = torch.maximum(weight_low * high, weight_high * high).sum(1)
        middle, radius = (weight_low + weight_high) / 2, ((weight_high - weight_low) / 2).sum(1)
        spread = torch.bmm(gram, middle.flatten(2)).view_as(middle)
        context = (spread * middle).sum(1).clamp(min=0).sqrt()  # |ctx| at the midpoint weights
        word_low, word_high = _divide(dot_low, dot_high, (context - radius - 1e-6).clamp(min=1e-6),
                                      (context + radius + 1e-6).clamp(max=1.0))
        count = mask_chunk.sum(-1).clamp(min=1.0)
        low_scores[:, start:start + len(words_chunk)] = (word_low * mask_chunk).sum(-1) / count
        high_scores[:, start:start + len(words_chunk)] = (word_high * mask_chunk).sum(-1) / count
    return low_scores, high_scores


@torch.no_grad()
def score_bounds(model: RetrievalModel, images: ImageEmbedding, texts: TextEmbedding) -> tuple[torch.Tensor, torch.Tensor]:
    """Intervals holding the model's fp32 scores, from bf16 GEMMs (local, global and hier alignments)."""
    alignment = model.alignment
    if isinstance(alignment, LocalAlignment):
        local_weight = 1.0
    elif isinstance(alignment, HierarchicalAlignment):
        local_weight = alignment.local_weight
    elif isinstance(alignment, GlobalAlignment):
        local_weight = 0.0
    else:
        raise ValueError(f"no bf16 bound for the alignment {type(alignment).__name__}")
    low = high = torch.zeros(len(images), len(texts))
    if local_weight:
        local_low, local_high = local_score_bounds(images.local, texts.words, texts.mask, alignment.temperature, alignment.norm)
        low, high = local_weight * local_low, local_weight * local_high
    if local_weight < 1:
        cosines, error = cosine_bounds(images.pooled, texts.pooled)
        low, high = low + (1 - local_weight) * (cosines - error), high + (1 - local_weight) * (cosines + error)
    return low - REFERENCE_SLACK, high + REFERENCE_SLACK


def undecided(low: torch.Tensor, high: torch.Tensor, scores: torch.Tensor, captions_per_image: int = 5) -> tuple[float, float, float]:
    """Shares of the non-ground-truth pairs whose side of the ground truth (``scores``: fp32, ties counted
    against the model, as ``benchmark.metrics``) the intervals leave open: caption queries, image queries, either."""
    n_images, n_captions = scores.shape
    owner = torch.arange(n_captions) // captions_per_image
    is_gt = owner[None, :] == torch.arange(n_images)[:, None]
    gt = scores[owner, torch.arange(n_captions)]  # each caption's own image's score
    best = gt.view(n_images, captions_per_image).amax(1)  # an image query's best ground truth
    t2i = (low < gt[None, :]) & (gt[None, :] <= high) & ~is_gt
    i2t = (low < best[:, None]) & (best[:, None] <= high) & ~is_gt
    negatives = float((~is_gt).sum())
    return float(t2i.sum()) / negatives, float(i2t.sum()) / negatives, float((t2i | i2t).sum()) / negatives


@dataclass
class Certificate:
    """What the bound achieves on one model's test pool."""

    variant: str
    images: int
    captions: int
    enclosed: float  # share of pairs whose fp32 score lies in its interval (must be 1)
    median_width: float
    score_sd: float
    undecided_t2i: float
    undecided_i2t: float
    undecided_any: float
    fp32_seconds: float
    bound_seconds: float

    def report(self) -> str:
        return "\n".join([
            f"{self.variant}: {self.images} images x {self.captions} captions (test pool), {torch.get_num_threads()} torch threads",
            f"fp32 scores inside their bf16 interval: {self.enclosed:.2%}; median interval width {self.median_width:.4f} "
            f"(the scores' standard deviation: {self.score_sd:.4f})",
            f"pairs left undecided (fp32 re-scoring needed): caption queries {self.undecided_t2i:.2%}, image queries "
            f"{self.undecided_i2t:.2%}, either {self.undecided_any:.2%}",
            f"time: fp32 scoring {self.fp32_seconds * 1e3:,.1f} ms, bounded bf16 pass {self.bound_seconds * 1e3:,.1f} ms "
            f"({self.fp32_seconds / self.bound_seconds:.2f}x fp32's speed, before any re-scoring)",
        ])


def certify(model: RetrievalModel, images: ImageEmbedding, texts: TextEmbedding, variant: str) -> Certificate:
    """Bound, re-check and time the model's scores of ``images`` x ``texts`` (5 captions per image, in order)."""
    with torch.no_grad():
        start = time.perf_counter()
        scores = model.similarity(images, texts)
        fp32_seconds = time.perf_counter() - start
        start = time.perf_counter()
        low, high = score_bounds(model, images, texts)
        bound_seconds = time.perf_counter() - start
    enclosed = float(((low <= scores) & (scores <= high)).float().mean())
    return Certificate(variant, len(images), len(texts), enclosed, float((high - low).median()), float(scores.std()),
                       *undecided(low, high, scores), fp32_seconds, bound_seconds)
