"""``none``: no relation encoder; regions stay independent (the control for any relation modelling)."""

from __future__ import annotations

import torch
from torch import nn

from variants.base import FeatureDims, ImageBatch
from variants.registry import RELATION


class NoRelation(nn.Module):
    def forward(self, regions: torch.Tensor, batch: ImageBatch) -> torch.Tensor:
        return regions


@RELATION.register("none", description="no relation encoder: regions stay independent", source="control (VSE++-style pooling)")
def no_relation(cfg, dims: FeatureDims) -> nn.Module:
    return NoRelation()
