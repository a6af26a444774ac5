"""``grid`` and ``concat``: the baselines of DIF.

``grid`` uses grid features alone; ``concat`` keeps both streams side by side with no interaction
(naive fusion). Against ``dif`` they show whether a gain comes from DIF itself or merely from having
grid features.
"""

from __future__ import annotations

import torch
from torch import nn

from variants._base import FeatureDims, ImageBatch
from variants._registry import SOURCE


class GridSource(nn.Module):
    """Projected grid cells; the region stream is ignored."""

    def __init__(self, grid_dim: int, dim: int):
        super().__init__()
        self.grid_proj = nn.Linear(grid_dim, dim)

    def forward(self, regions: torch.Tensor, batch: ImageBatch) -> torch.Tensor:
        return self.grid_proj(batch.grid)


class ConcatSource(GridSource):
    """Regions and projected grid cells as one set."""

    def forward(self, regions: torch.Tensor, batch: ImageBatch) -> torch.Tensor:
        return torch.cat([regions, self.grid_proj(batch.grid)], dim=1)


@SOURCE.register("grid", description="grid features only (the region stream is unused)", source="grid features, DSRAN (Wen et al. TCSVT 2020)", requires=("grid",))
def grid_source(cfg, dims: FeatureDims) -> nn.Module:
    return GridSource(dims.grid_dim, cfg.embed_dim)


@SOURCE.register("concat", description="naive fusion: regions and grid cells side by side, no interaction", source="control for DIF", requires=("grid",))
def concat_source(cfg, dims: FeatureDims) -> nn.Module:
    return ConcatSource(dims.grid_dim, cfg.embed_dim)
