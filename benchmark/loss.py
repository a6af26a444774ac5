"""The VSE++ hinge triplet loss (Faghri et al., BMVC 2018), with vse_infty's sum-over-negatives warm-up.

On data with twin groups (synthetic), a twin is a negative like any other, but it does not compete
for VSE++'s hardest-negative slot: that slot is taken over the negatives outside the query's group,
and every twin's violation is added on its own. Otherwise a twin that a variant's inputs cannot tell
from the base by construction (the scene twin for a region-only model) has the largest violation in
every batch and takes the slot, and its gradient is zero, since base and twin embed identically: such
a variant stops learning after the warm-up (measured: `sa`'s best dev epoch was epoch 1). On real
data every group is one image, and this is VSE++ exactly.
"""

from __future__ import annotations

import torch


def triplet_loss(sims: torch.Tensor, image_ids: torch.Tensor, margin: float, hardest: bool,
                 group_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Hinge loss over a batch of (image, caption) pairs; ``sims[i, j]`` scores image i with caption j.

    Pair i is the positive of row i and column i. Any caption of the same image (same
    ``image_ids``) is also a positive, never a negative. ``hardest`` keeps only the hardest
    negative per query in each direction (VSE++ max-violation); otherwise all negatives are summed.
    With ``group_ids``, negatives of the query's own group (twins) are always summed, and the
    hardest negative is taken over the others.
    """
    positives = image_ids[:, None] == image_ids[None, :]
    true_scores = sims.diagonal()
    wrong_caption = (margin + sims - true_scores[:, None]).clamp(min=0).masked_fill(positives, 0.0)
    wrong_image = (margin + sims - true_scores[None, :]).clamp(min=0).masked_fill(positives, 0.0)
    if not hardest:
        return wrong_caption.sum() + wrong_image.sum()
    twins = torch.zeros_like(positives) if group_ids is None else (group_ids[:, None] == group_ids[None, :]) & ~positives
    twin_terms = wrong_caption.masked_fill(~twins, 0.0).sum() + wrong_image.masked_fill(~twins, 0.0).sum()
    others_caption, others_image = wrong_caption.masked_fill(twins, 0.0), wrong_image.masked_fill(twins, 0.0)
    return others_caption.max(dim=1).values.sum() + others_image.max(dim=0).values.sum() + twin_terms
