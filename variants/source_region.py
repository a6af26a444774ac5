"""``region``: the image is its (relation-encoded) region features alone (BUTD, Anderson et al. 2018)."""

from __future__ import annotations

import torch
from torch import nn

from variants.base import FeatureDims, ImageBatch
from variants.registry import SOURCE


class RegionSource(nn.Module):
    def forward(self, regions: torch.Tensor, batch: ImageBatch) -> torch.Tensor:
        return regions


@SOURCE.register("region", description="region features only", source="BUTD regions, Anderson et al., CVPR 2018")
def region_source(cfg, dims: FeatureDims) -> nn.Module:
    return RegionSource()
