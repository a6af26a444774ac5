"""``gisa``: geometry-sensitive interactive self-attention over regions.

DSRLN's abstract says GISA "extends the vanilla self-attention network from two aspects"; its
full text is not available to us, so the two aspects are built from the prior work it cites, and
each can be switched off for ablation (``model.gisa_geometry``, ``model.gisa_interaction``; with
both off GISA is vanilla SA):

1. **Geometry** (Relation Networks, Hu et al. CVPR 2018; Object Relation Transformer, Herdade et
   al. NeurIPS 2019). For boxes m, n with centres (x, y) and sizes (w, h), the relative geometry
   ``(s((x_n-x_m)/w_m), s((y_n-y_m)/h_m), log(w_n/w_m), log(h_n/h_m))`` is embedded sinusoidally
   and mapped per head to ``w_G``; the logits become ``QK^T/sqrt(d) + log(max(w_G, 1e-6))``.
   Unlike the papers' ``log|x_m-x_n|``, ``s(v) = sign(v) log(1+|v|)`` **keeps the sign**, so
   "left of" and "right of" differ (geometry-*sensitive*).
2. **Interaction** (NG-SAN, Guo et al. CVPR 2020): a content-dependent geometry term, the query-
   dependent ``q_i^T G_ij / sqrt(d)`` with ``G_ij`` a linear map of the geometry embedding (NG-SAN's
   best GSA form), plus instance normalisation of the queries (NG-SAN's NSA).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from variants._attention import AttentionBlock
from variants._base import FeatureDims, ImageBatch
from variants._registry import RELATION

GEOMETRY_DIM = 64  # sinusoidal embedding size of the 4-d relative geometry (as in ORT)


def relative_geometry(boxes: torch.Tensor) -> torch.Tensor:
    """(B, R, 4) boxes ``[x1, y1, x2, y2]`` -> (B, R, R, 4): entry [m, n] is n relative to m, signed."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    size = (boxes[..., 2:] - boxes[..., :2]).clamp(min=1e-3)
    offset = (centre[:, None, :, :] - centre[:, :, None, :]) / size[:, :, None, :]
    scale = torch.log(size[:, None, :, :] / size[:, :, None, :])
    return torch.cat([torch.sign(offset) * torch.log1p(offset.abs()), scale], dim=-1)


def sinusoidal_embedding(geometry: torch.Tensor, dim: int = GEOMETRY_DIM, wave_length: float = 1000.0) -> torch.Tensor:
    """(..., 4) -> (..., dim): sin and cos of each coordinate at dim/8 frequencies (Herdade et al.)."""
    frequencies = wave_length ** (-torch.arange(dim // 8, device=geometry.device, dtype=geometry.dtype) / (dim // 8))
    angles = 100.0 * geometry[..., None] * frequencies
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


class GeometryBias(nn.Module):
    """One layer's additive logit bias from the geometry embedding (either aspect, or both)."""

    def __init__(self, dim: int, heads: int, geometry: bool, interaction: bool):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.weights = nn.Linear(GEOMETRY_DIM, heads) if geometry else None  # ORT's W_G
        self.keys = nn.Linear(GEOMETRY_DIM, dim) if interaction else None  # NG-SAN's G_ij, per head

    def forward(self, embedding: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """``embedding`` (B, R, R, G), ``queries`` (B, H, R, d) -> bias (B, H, R, R)."""
        bias = torch.zeros(queries.shape[:-1] + queries.shape[-2:-1], device=queries.device, dtype=queries.dtype)
        if self.weights is not None:
            bias = bias + torch.log(F.relu(self.weights(embedding)).clamp(min=1e-6)).permute(0, 3, 1, 2)
        if self.keys is not None:  # q_i^T (W e_ij + b) without materialising W e_ij: (B, H, R, G) x (B, R, R, G)
            weight = self.keys.weight.view(self.heads, self.head_dim, GEOMETRY_DIM)
            projected = torch.einsum("bhid,hdg->bhig", queries, weight)
            term = torch.einsum("bhig,bijg->bhij", projected, embedding)
            term = term + torch.einsum("bhid,hd->bhi", queries, self.keys.bias.view(self.heads, self.head_dim))[..., None]
            bias = bias + term / math.sqrt(self.head_dim)
        return bias


class GeometryAwareEncoder(nn.Module):
    def __init__(self, dim: int, heads: int, layers: int, dropout: float, geometry: bool, interaction: bool):
        super().__init__()
        self.blocks = nn.ModuleList(AttentionBlock(dim, heads, dropout, query_norm=interaction) for _ in range(layers))
        self.biases = nn.ModuleList(GeometryBias(dim, heads, geometry, interaction) for _ in range(layers))
        self.uses_geometry = geometry or interaction

    def forward(self, regions: torch.Tensor, batch: ImageBatch) -> torch.Tensor:
        embedding = sinusoidal_embedding(relative_geometry(batch.boxes)) if self.uses_geometry else None
        for block, bias in zip(self.blocks, self.biases):
            regions = block(regions, (lambda q, b=bias: b(embedding, q)) if self.uses_geometry else None)
        return regions


@RELATION.register("gisa", description="geometry-sensitive interactive self-attention (signed box geometry bias + query-dependent geometry, NSA)",
                   source="DSRLN (Wu et al., TMM 2025) after Herdade et al. 2019 and NG-SAN, Guo et al. CVPR 2020",
                   requires=("boxes",))
def gisa(cfg, dims: FeatureDims) -> nn.Module:
    return GeometryAwareEncoder(cfg.embed_dim, cfg.num_heads, cfg.num_layers, cfg.dropout, cfg.gisa_geometry, cfg.gisa_interaction)
