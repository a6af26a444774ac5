"""The field's retrieval protocol (SCAN / vse_infty), vectorised. Pure functions, no I/O.

Similarities are ``(n_images, captions_per_image * n_images)``; caption ``j`` belongs to image
``j // captions_per_image``.

- i2t: an image's rank is the best rank among its ground-truth captions.
- t2i: each caption is ranked among all images.
- R@K in percent; ``rsum`` is the sum of the six recalls; ``medr = floor(median rank)``
  (1-based); ``meanr`` is the mean 1-based rank.

A rank is ``1 +`` the number of wrong candidates that score **at least** as high as the ground
truth. This equals SCAN's argsort rank whenever scores are distinct, needs no sort (counting is
10-30x faster than argsort here), and resolves ties against the model, so a collapsed model that
scores everything equal gets the worst rank, not the best.

``fold_metrics`` is COCO 1K: the mean of each metric over 5 folds of 1,000 images. Its ``rsum`` is
the mean of per-fold rSums, which equals the sum of the six mean recalls. (SCAN, SGRAF and VSRN
print twice the i2t sum there instead; vsepp six times it.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RECALL_KS = (1, 5, 10)
DIRECTIONS = ("i2t", "t2i")
RECALL_KEYS = tuple(f"{direction}_r{k}" for direction in DIRECTIONS for k in RECALL_KS)
SUMMARY_KEYS = (*RECALL_KEYS, "rsum")  # what result tables show
METRIC_KEYS = (*SUMMARY_KEYS, *(f"{direction}_{rank}" for direction in DIRECTIONS for rank in ("medr", "meanr")))
_ROW_CHUNK = 512  # images per step of rank counting, to bound the boolean temporaries


@dataclass(frozen=True)
class QueryRanks:
    """1-based ranks: ``i2t[i]`` for image query i, ``t2i[j]`` for caption query j."""

    i2t: np.ndarray
    t2i: np.ndarray


def _as_numpy(sims) -> np.ndarray:
    if hasattr(sims, "detach"):  # a torch tensor
        sims = sims.detach().cpu().float().numpy()
    sims = np.asarray(sims)
    if sims.ndim != 2:
        raise ValueError(f"similarities must be 2-D (n_images, n_captions); got shape {sims.shape}")
    if not np.isfinite(sims).all():
        raise ValueError("similarities contain NaN or inf; the model has likely diverged")
    return sims


def _check_shape(sims: np.ndarray, captions_per_image: int) -> None:
    n_images, n_captions = sims.shape
    if n_captions != captions_per_image * n_images:
        raise ValueError(
            f"similarities of shape {sims.shape} need {captions_per_image} captions per image "
            f"({captions_per_image * n_images} columns)"
        )


def query_ranks(sims, captions_per_image: int = 5) -> QueryRanks:
    """Per-query 1-based ranks in both directions, by counting (no sort, no loop over queries)."""
    sims = _as_numpy(sims)
    _check_shape(sims, captions_per_image)
    n_images, n_captions = sims.shape
    owner = np.arange(n_captions) // captions_per_image
    gt_scores = sims[owner, np.arange(n_captions)]  # each caption's score with its own image
    best_gt = gt_scores.reshape(n_images, captions_per_image).max(axis=1)

    i2t = np.empty(n_images, dtype=np.int64)
    t2i_ahead = np.zeros(n_captions, dtype=np.int64)
    for start in range(0, n_images, _ROW_CHUNK):
        rows = slice(start, min(start + _ROW_CHUNK, n_images))
        block = sims[rows]
        is_gt = owner[None, :] == np.arange(rows.start, rows.stop)[:, None]
        i2t[rows] = ((block >= best_gt[rows, None]) & ~is_gt).sum(axis=1)
        t2i_ahead += ((block >= gt_scores[None, :]) & ~is_gt).sum(axis=0)
    return QueryRanks(i2t=i2t + 1, t2i=t2i_ahead + 1)


def metrics_from_ranks(ranks: QueryRanks) -> dict[str, float]:
    """R@1/5/10, rSum, median and mean rank from 1-based per-query ranks."""
    out: dict[str, float] = {}
    for direction in DIRECTIONS:
        values = getattr(ranks, direction)
        for k in RECALL_KS:
            out[f"{direction}_r{k}"] = float(100.0 * np.mean(values <= k))
        out[f"{direction}_medr"] = float(np.floor(np.median(values)))
        out[f"{direction}_meanr"] = float(np.mean(values))
    out["rsum"] = sum(out[key] for key in RECALL_KEYS)
    return {key: out[key] for key in METRIC_KEYS}


def retrieval_metrics(sims, captions_per_image: int = 5) -> dict[str, float]:
    """The protocol's metrics for one similarity matrix (numpy array or torch tensor).

    The suite itself scores through ``evaluation.score`` (which keeps per-query ranks); this is the
    one-call entry for a Python user who has a similarity matrix of their own.
    """
    return metrics_from_ranks(query_ranks(sims, captions_per_image))


def fold_ranks(sims, n_folds: int, captions_per_image: int = 5) -> list[QueryRanks]:
    """Per-fold ranks: fold k holds images [k*n/n_folds, (k+1)*n/n_folds) and their captions."""
    sims = _as_numpy(sims)
    _check_shape(sims, captions_per_image)
    n_images = sims.shape[0]
    if n_folds < 1 or n_images % n_folds:
        raise ValueError(f"{n_images} images do not split into {n_folds} equal folds")
    size = n_images // n_folds
    return [
        query_ranks(
            sims[k * size:(k + 1) * size, k * size * captions_per_image:(k + 1) * size * captions_per_image],
            captions_per_image,
        )
        for k in range(n_folds)
    ]


def mean_metrics(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean of per-fold metric dicts."""
    return {key: float(np.mean([fold[key] for fold in per_fold])) for key in METRIC_KEYS}


def fold_metrics(sims, n_folds: int = 5, captions_per_image: int = 5) -> dict[str, float]:
    """COCO 1K: the mean of each metric over ``n_folds`` folds (correct rSum, see module doc)."""
    return mean_metrics([metrics_from_ranks(r) for r in fold_ranks(sims, n_folds, captions_per_image)])
