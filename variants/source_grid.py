"""``grid``, ``concat`` and ``concat-matched``: the baselines of DIF.

``grid`` uses grid features alone (so it takes no relation encoder: there are no regions to relate);
``concat`` keeps both streams side by side with no interaction (naive fusion); ``concat-matched`` is
naive fusion with DIF's exact parameter count and depth: each region and each cell goes through four
``dim x dim`` layers (where DIF has its cross-attention's query, key, value and output maps) and DIF's
gate, but never sees the other stream. Against ``dif`` they show whether a gain comes from DIF's
box-masked interaction, merely from having grid features, or from the extra capacity.
"""

from __future__ import annotations

import torch
from torch import nn

from variants._base import FeatureDims, ImageBatch
from variants._registry import SOURCE
from variants.source_dif import GateFusion, check_gate


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


def token_mixer(dim: int) -> nn.Sequential:
    """Four ``dim x dim`` layers with GELUs: the parameters of one DIF cross-attention, applied token by token."""
    return nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU(),
                         nn.Linear(dim, dim))


class MatchedConcatSource(GridSource):
    """Naive fusion with DIF's capacity: every token transformed on its own, then gated with itself."""

    def __init__(self, grid_dim: int, dim: int, adaptive_gate: bool = True):
        super().__init__(grid_dim, dim)
        self.region_mixer, self.grid_mixer = token_mixer(dim), token_mixer(dim)
        self.region_gate, self.grid_gate = GateFusion(dim, adaptive_gate), GateFusion(dim, adaptive_gate)

    def forward(self, regions: torch.Tensor, batch: ImageBatch) -> torch.Tensor:
        cells = self.grid_proj(batch.grid)
        return torch.cat([self.region_gate(regions, self.region_mixer(regions)), self.grid_gate(cells, self.grid_mixer(cells))], dim=1)


@SOURCE.register("grid", description="grid features only (no regions, so no relation encoder)", source="grid features, DSRAN (Wen et al. TCSVT 2020)",
                 requires=("grid",), uses_regions=False)
def grid_source(cfg, dims: FeatureDims) -> nn.Module:
    return GridSource(dims.grid_dim, cfg.embed_dim)


@SOURCE.register("concat", description="naive fusion: regions and grid cells side by side, no interaction", source="control for DIF", requires=("grid",))
def concat_source(cfg, dims: FeatureDims) -> nn.Module:
    return ConcatSource(dims.grid_dim, cfg.embed_dim)


@SOURCE.register("concat-matched", description="naive fusion with DIF's parameter count: token-wise layers and gates, no interaction",
                 source="control for DIF (capacity)", requires=("grid",), check=check_gate)
def matched_concat_source(cfg, dims: FeatureDims) -> nn.Module:
    return MatchedConcatSource(dims.grid_dim, cfg.embed_dim, adaptive_gate=cfg.dif_gate == "adaptive")
