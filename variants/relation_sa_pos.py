"""``sa-pos``: vanilla self-attention over regions that each know where they are (absolute position).

The control for GISA's *relative* geometry. Many vision-language models add a learned embedding of
each box's absolute position to its region feature (ViLBERT's 5-d ``[x1, y1, x2, y2, area]``; UNITER
uses a 7-d variant) and leave the attention vanilla. If ``sa-pos`` matches ``gisa`` on the
layout probe, knowing where each region is suffices and relative geometry adds nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from variants._base import FeatureDims, ImageBatch
from variants._registry import RELATION
from variants.relation_sa import SelfAttentionEncoder


def box_features(boxes: torch.Tensor) -> torch.Tensor:
    """(B, R, 4) normalised ``[x1, y1, x2, y2]`` -> (B, R, 5): the box and its area."""
    area = (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    return torch.cat([boxes, area[..., None]], dim=-1)


class AbsolutePositionEncoder(SelfAttentionEncoder):
    """Regions plus a learned embedding of their boxes, then vanilla self-attention (``sa``'s own blocks)."""

    def __init__(self, dim: int, heads: int, layers: int, dropout: float, query_norm: bool = False):
        super().__init__(dim, heads, layers, dropout, query_norm)
        self.position = nn.Linear(5, dim)

    def forward(self, regions: torch.Tensor, batch: ImageBatch) -> torch.Tensor:
        return super().forward(regions + self.position(box_features(batch.boxes)), batch)


@RELATION.register("sa-pos", description="vanilla self-attention over regions plus a learned embedding of each box (absolute position)",
                   source="control for GISA: absolute box position, as ViLBERT's box encoding", requires=("boxes",))
def self_attention_with_position(cfg, dims: FeatureDims) -> nn.Module:
    return AbsolutePositionEncoder(cfg.embed_dim, cfg.num_heads, cfg.num_layers, cfg.dropout, cfg.query_norm)
