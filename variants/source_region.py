"""``region``: the image is its (relation-encoded) region features alone (BUTD, Anderson et al. 2018)."""

from __future__ import annotations

from torch import nn

from variants._base import FeatureDims, Unchanged
from variants._registry import SOURCE


@SOURCE.register("region", description="region features only", source="BUTD regions, Anderson et al., CVPR 2018")
def region_source(cfg, dims: FeatureDims) -> nn.Module:
    return Unchanged()
