"""``dif``: Dual Information Fusion of regions and grid cells.

DSRLN's abstract: grid features are fused with regions through "a masked cross-attention module
and an adaptive gate fusion module". Built here from the prior work it names:

- **Masked cross-attention** over DLCT's alignment graph (Luo et al. AAAI 2021): region i and grid
  cell j are linked when the cell intersects the region's box. Each region attends to **itself and**
  its linked cells, each cell to itself and the regions covering it; non-links are masked to -inf.
  Keeping the query among its own keys is DLCT's choice too; it also means no row is ever empty: a
  region with no linked cell (a degenerate box), or a cell no region covers, attends to itself
  alone, and its context is its own value, never a constant.
- **Adaptive gate fusion** (DSRAN, Wen et al. TCSVT 2020): ``g = sigmoid(W [r; r~])``,
  ``r' = g * r + (1 - g) * r~``, for both streams. ``model.dif_gate = "average"`` fixes g = 0.5,
  to measure what the adaptive gate adds.

The image is the set of fused regions and fused cells.

``dif-unmasked`` is the same module with every region-cell link allowed: against ``dif`` it
isolates the box-to-cell mask (same parameters, no boxes read).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from benchmark.errors import UserError
from variants._base import FeatureDims, ImageBatch
from variants._grid import alignment_graph
from variants._registry import SOURCE

GATES = ("adaptive", "average")  # model.dif_gate


class MaskedCrossAttention(nn.Module):
    """Multi-head cross-attention in which each query sees itself and the keys its mask allows."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.query, self.key, self.value, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.dropout = nn.Dropout(dropout)
        self.last_weights: torch.Tensor | None = None  # (B, H, Q, 1 + K): the query itself first; kept for inspection

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(queries)), self._split(self.key(keys)), self._split(self.value(keys))
        own_key, own_value = self._split(self.key(queries)), self._split(self.value(queries))
        own = (q * own_key).sum(-1, keepdim=True)  # (B, H, Q, 1)
        others = (q @ k.transpose(-1, -2)).masked_fill(~mask[:, None], float("-inf"))  # (B, H, Q, K)
        weights = torch.softmax(torch.cat([own, others], dim=-1) / math.sqrt(self.head_dim), dim=-1)
        self.last_weights = weights.detach()
        weights = self.dropout(weights)
        attended = weights[..., :1] * own_value + weights[..., 1:] @ v
        return self.out(attended.transpose(1, 2).reshape(queries.shape))


class GateFusion(nn.Module):
    """``g = sigmoid(W [x; context])``, ``x' = g * x + (1 - g) * context``; ``adaptive=False`` fixes g = 0.5."""

    def __init__(self, dim: int, adaptive: bool = True):
        super().__init__()
        self.gate = nn.Linear(2 * dim, dim) if adaptive else None

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            return (x + context) / 2
        gate = torch.sigmoid(self.gate(torch.cat([x, context], dim=-1)))
        return gate * x + (1 - gate) * context


def check_gate(cfg) -> None:
    if cfg.dif_gate not in GATES:
        raise UserError(f"model.dif_gate '{cfg.dif_gate}' is not one of: {', '.join(GATES)}")


class DualInformationFusion(nn.Module):
    def __init__(self, grid_dim: int, grid_cells: int, dim: int, heads: int, dropout: float, adaptive_gate: bool = True,
                 masked: bool = True):
        super().__init__()
        self.grid_cells, self.masked = grid_cells, masked
        self.grid_proj = nn.Linear(grid_dim, dim)
        self.region_to_grid = MaskedCrossAttention(dim, heads, dropout)
        self.grid_to_region = MaskedCrossAttention(dim, heads, dropout)
        self.region_gate, self.grid_gate = GateFusion(dim, adaptive_gate), GateFusion(dim, adaptive_gate)

    def links(self, regions: torch.Tensor, batch: ImageBatch) -> torch.Tensor:
        """(B, R, G): which region-cell pairs may attend to each other."""
        if self.masked:
            return alignment_graph(batch.boxes, self.grid_cells)
        return torch.ones(regions.shape[0], regions.shape[1], self.grid_cells, dtype=torch.bool, device=regions.device)

    def forward(self, regions: torch.Tensor, batch: ImageBatch) -> torch.Tensor:
        cells = self.grid_proj(batch.grid)
        links = self.links(regions, batch)
        region_context = self.region_to_grid(regions, cells, links)
        cell_context = self.grid_to_region(cells, regions, links.transpose(1, 2))
        return torch.cat([self.region_gate(regions, region_context), self.grid_gate(cells, cell_context)], dim=1)


def _fusion(cfg, dims: FeatureDims, masked: bool) -> nn.Module:
    return DualInformationFusion(dims.grid_dim, dims.grid_cells, cfg.embed_dim, cfg.num_heads, cfg.dropout,
                                 adaptive_gate=cfg.dif_gate == "adaptive", masked=masked)


@SOURCE.register("dif", description="dual information fusion: box-masked region<->grid cross-attention + adaptive gates",
                 source="DSRLN (Wu et al., TMM 2025) after DLCT (Luo et al. AAAI 2021) and DSRAN (Wen et al. 2020)",
                 requires=("boxes", "grid"), check=check_gate)
def dual_information_fusion(cfg, dims: FeatureDims) -> nn.Module:
    return _fusion(cfg, dims, masked=True)


@SOURCE.register("dif-unmasked", description="dif with every region-cell link allowed (no box mask): isolates the mask",
                 source="control for DIF", requires=("grid",), check=check_gate)
def unmasked_fusion(cfg, dims: FeatureDims) -> nn.Module:
    return _fusion(cfg, dims, masked=False)
