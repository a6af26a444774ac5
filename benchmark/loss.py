"""The VSE++ hinge triplet loss (Faghri et al., BMVC 2018), with vse_infty's sum-over-negatives warm-up.

On data with twin groups (synthetic), a twin is a negative that never competes for VSE++'s
hardest-negative slot: that slot is taken over the negatives outside the query's group, and every
twin's violation is added on its own, with its own (smaller) margin. Two measured reasons:

- A twin that a variant's inputs cannot tell from the base by construction (the scene twin for a
  region-only model) has the largest violation in every batch, so it took the slot, and its
  gradient is zero, since base and twin embed identically: such a variant stopped learning after
  the warm-up (`sa`'s best dev epoch was epoch 1).
- A minimal pair needs to be ranked, not pushed a full retrieval margin apart. With the 0.2
  margin, `gisa` learned the layout twins (dev probe 95-99%) but its dev rSum fell by 25-30
  points as it did, so dev-rSum selection kept the epoch before; with 0.1 it learns them and
  keeps its rSum, and selection keeps the layout.

On real data every group is one image, and this is VSE++ exactly.
"""

from __future__ import annotations

import torch


def _violations(sims: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hinge violations with each negative caption of an image query (rows) and each negative image of a caption query (columns)."""
    true_scores = sims.diagonal()
    return (margin + sims - true_scores[:, None]).clamp(min=0), (margin + sims - true_scores[None, :]).clamp(min=0)


def triplet_loss(sims: torch.Tensor, image_ids: torch.Tensor, margin: float, hardest: bool,
                 group_ids: torch.Tensor | None = None, twin_margin: float | None = None) -> torch.Tensor:
    """Hinge loss over a batch of (image, caption) pairs; ``sims[i, j]`` scores image i with caption j.

    Pair i is the positive of row i and column i. Any caption of the same image (same
    ``image_ids``) is also a positive, never a negative. ``hardest`` keeps only the hardest
    negative per query in each direction (VSE++ max-violation); otherwise all negatives are summed.
    With ``group_ids``, negatives of the query's own group (twins) are always summed, with
    ``twin_margin`` (default ``margin``), and the retrieval term covers the other negatives only.
    """
    positives = image_ids[:, None] == image_ids[None, :]
    twins = torch.zeros_like(positives) if group_ids is None else (group_ids[:, None] == group_ids[None, :]) & ~positives
    wrong_caption, wrong_image = (v.masked_fill(positives | twins, 0.0) for v in _violations(sims, margin))
    if hardest:
        loss = wrong_caption.max(dim=1).values.sum() + wrong_image.max(dim=0).values.sum()
    else:
        loss = wrong_caption.sum() + wrong_image.sum()
    if group_ids is None:
        return loss
    twin_caption, twin_image = (v.masked_fill(~twins, 0.0) for v in _violations(sims, margin if twin_margin is None else twin_margin))
    return loss + twin_caption.sum() + twin_image.sum()
