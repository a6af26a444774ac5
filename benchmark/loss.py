"""The VSE++ hinge triplet loss (Faghri et al., BMVC 2018), with vse_infty's sum-over-negatives warm-up."""

from __future__ import annotations

import torch


def triplet_loss(sims: torch.Tensor, image_ids: torch.Tensor, margin: float, hardest: bool) -> torch.Tensor:
    """Hinge loss over a batch of (image, caption) pairs; ``sims[i, j]`` scores image i with caption j.

    Pair i is the positive of row i and column i. Any caption of the same image (same
    ``image_ids``) is also a positive, never a negative. ``hardest`` keeps only the hardest
    negative per query in each direction (VSE++ max-violation); otherwise all negatives are summed.
    """
    positives = image_ids[:, None] == image_ids[None, :]
    true_scores = sims.diagonal()
    wrong_caption = (margin + sims - true_scores[:, None]).clamp(min=0).masked_fill(positives, 0.0)
    wrong_image = (margin + sims - true_scores[None, :]).clamp(min=0).masked_fill(positives, 0.0)
    if hardest:
        return wrong_caption.max(dim=1).values.sum() + wrong_image.max(dim=0).values.sum()
    return wrong_caption.sum() + wrong_image.sum()
