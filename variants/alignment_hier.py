"""``hier``: hierarchical alignment, a weighted sum of local (SCAN) and global (pooled cosine) scores.

DSRLN's abstract names "local and global alignment"; the weight of the local score is
``model.hier_weight`` (global gets the rest).
"""

from __future__ import annotations

import torch
from torch import nn

from variants._base import FeatureDims, ImageEmbedding, TextEmbedding
from variants._registry import ALIGNMENT
from variants.alignment_local import check_norm, local_similarity


class HierarchicalAlignment(nn.Module):
    def __init__(self, temperature: float, local_weight: float, norm: str = "scan"):
        super().__init__()
        self.temperature, self.local_weight, self.norm = temperature, local_weight, norm

    def forward(self, images: ImageEmbedding, texts: TextEmbedding) -> torch.Tensor:
        local = local_similarity(images.local, texts.words, texts.mask, self.temperature, self.norm)
        return self.local_weight * local + (1 - self.local_weight) * (images.pooled @ texts.pooled.T)


@ALIGNMENT.register("hier", description="local + global: model.hier_weight * local + (1 - model.hier_weight) * global",
                    source="DSRLN (Wu et al., TMM 2025)", check=check_norm)
def hierarchical_alignment(cfg, dims: FeatureDims) -> nn.Module:
    return HierarchicalAlignment(cfg.local_lambda, cfg.hier_weight, cfg.local_norm)
