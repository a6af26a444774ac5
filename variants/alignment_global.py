"""``global``: cosine similarity of the pooled image and caption embeddings (VSE++, Faghri et al. 2018)."""

from __future__ import annotations

import torch
from torch import nn

from variants._base import FeatureDims, ImageEmbedding, TextEmbedding
from variants._registry import ALIGNMENT


class GlobalAlignment(nn.Module):
    def forward(self, images: ImageEmbedding, texts: TextEmbedding) -> torch.Tensor:
        return images.pooled @ texts.pooled.T


@ALIGNMENT.register("global", description="cosine of pooled image and caption embeddings", source="VSE++, Faghri et al., BMVC 2018")
def global_alignment(cfg, dims: FeatureDims) -> nn.Module:
    return GlobalAlignment()
