"""``sa``: vanilla multi-head self-attention over regions (Vaswani et al., NeurIPS 2017).

The baseline that GISA extends: regions exchange content only, with no notion of where they are.
"""

from __future__ import annotations

import torch
from torch import nn

from variants._attention import AttentionBlock
from variants._base import FeatureDims, ImageBatch
from variants._registry import RELATION


class SelfAttentionEncoder(nn.Module):
    def __init__(self, dim: int, heads: int, layers: int, dropout: float, query_norm: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList(AttentionBlock(dim, heads, dropout, query_norm=query_norm) for _ in range(layers))

    def forward(self, regions: torch.Tensor, batch: ImageBatch) -> torch.Tensor:
        for block in self.blocks:
            regions = block(regions)
        return regions


@RELATION.register("sa", description="vanilla multi-head self-attention over regions", source="Vaswani et al., NeurIPS 2017")
def self_attention(cfg, dims: FeatureDims) -> nn.Module:
    return SelfAttentionEncoder(cfg.embed_dim, cfg.num_heads, cfg.num_layers, cfg.dropout, cfg.query_norm)
