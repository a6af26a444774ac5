"""``gisa``: geometry-sensitive interactive self-attention over regions.

DSRLN's abstract says GISA "extends the vanilla self-attention network from two aspects"; its
full text is not available to us, so the two aspects are built from the prior work it cites, and
each can be switched off for ablation (``model.gisa_geometry``, ``model.gisa_interaction``; with
both off, and ``gisa_values`` off, GISA is vanilla SA, parameter for parameter):

1. **Geometry** (Relation Networks, Hu et al. CVPR 2018; Object Relation Transformer, Herdade et
   al. NeurIPS 2019). For boxes m, n with centres (x, y) and sizes (w, h), the relative geometry
   ``(s((x_n-x_m)/w_m), s((y_n-y_m)/h_m), log(w_n/w_m), log(h_n/h_m))`` is embedded sinusoidally
   and mapped per head to ``w_G``; the logits become ``QK^T/sqrt(d) + log(softplus(w_G))`` (ORT:
   ``log(max(relu(w_G), 1e-6))``; see below).
   Unlike the papers' ``log|x_m-x_n|``, ``s(v) = sign(v) log(1+|v|)`` **keeps the sign**, so
   "left of" and "right of" differ (geometry-*sensitive*).
2. **Interaction** (NG-SAN, Guo et al. CVPR 2020): the content-dependent, query-dependent geometry
   term ``q_i^T G_ij / sqrt(d)``, ``G_ij = W e_ij`` a linear map of the geometry embedding (NG-SAN's
   best GSA form). ``G_ij`` has no bias: ``q_i^T b`` is the same for every key j, so it would cancel
   in the softmax.

What is *not* part of GISA, so that ``sa -> gisa`` changes geometry alone:

- NG-SAN's other half, instance-normalised queries (NSA), is ``model.query_norm``: a setting of
  every self-attention encoder (``sa``, ``sa-pos``, ``gisa``), off by default.

Three departures from ORT, each checked by a test:

- **The embedding's scale.** ORT multiplies its coordinates by 100 before frequencies from 1 down to
  1/1000. On a signed coordinate that wraps the high bands many times, so their sign no longer
  follows the sign of the offset, and a linear map cannot read "left of" from them. Here every band
  keeps ``|angle| < pi`` over the whole coordinate range (``GEOMETRY_RANGE``), so ``sin`` has the
  sign of the offset in every band; band k has frequency ``FREQUENCY_SPREAD ** (-k / bands)``.
- **softplus, not ReLU.** ORT's ``log(max(relu(w_G), 1e-6))`` has no gradient wherever
  ``w_G <= 1e-6``: a head whose ``w_G`` starts negative for every pair never learns geometry. With the
  smooth embedding above that happened to 24 of 80 freshly initialised heads on the synthetic boxes
  (0 of 80 with ORT's wrapped, hash-like bands). ``log(softplus(w_G))`` equals ORT's term for large
  ``w_G`` and keeps a gradient everywhere.
- **Geometry in the values** (``model.gisa_values``, our interpretation of "geometry-sensitive";
  off by default, chosen by measurement: see README). A logit bias changes *how much* of each
  neighbour a region reads, not *where* the neighbour is, so direction reaches the mean-pooled image
  only at second order. With the option on, each value also gets a relative vector
  ``r_ij = W_V e_ij`` (Shaw et al., NAACL 2018), and the output ``sum_j a_ij (v_j + r_ij)`` carries
  direction at first order. It costs no ``(R, R, d)`` tensor: ``sum_j a_ij W_V e_ij = W_V sum_j a_ij e_ij``.
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
GEOMETRY_RANGE = math.log1p(1000.0)  # every coordinate's bound: box sizes are clamped at 1e-3 of the image
FREQUENCY_SPREAD = 8.0  # the highest band's frequency over the lowest's


def relative_geometry(boxes: torch.Tensor) -> torch.Tensor:
    """(B, R, 4) boxes ``[x1, y1, x2, y2]`` -> (B, R, R, 4): entry [m, n] is n relative to m, signed."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    size = (boxes[..., 2:] - boxes[..., :2]).clamp(min=1e-3)
    offset = (centre[:, None, :, :] - centre[:, :, None, :]) / size[:, :, None, :]
    scale = torch.log(size[:, None, :, :] / size[:, :, None, :])
    return torch.cat([torch.sign(offset) * torch.log1p(offset.abs()), scale], dim=-1)


def sinusoidal_embedding(geometry: torch.Tensor, dim: int = GEOMETRY_DIM) -> torch.Tensor:
    """(..., 4) -> (..., dim): sin and cos of each coordinate at dim/8 frequencies, every angle within (-pi, pi)."""
    bands = dim // 8
    frequencies = FREQUENCY_SPREAD ** (-torch.arange(bands, device=geometry.device, dtype=geometry.dtype) / bands)
    coordinates = geometry.clamp(-GEOMETRY_RANGE, GEOMETRY_RANGE)[..., None]
    angles = (0.9 * math.pi / GEOMETRY_RANGE) * coordinates * frequencies
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


class GeometryBias(nn.Module):
    """One layer's additive logit bias from the geometry embedding (either aspect, or both)."""

    def __init__(self, dim: int, heads: int, geometry: bool, interaction: bool):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.weights = nn.Linear(GEOMETRY_DIM, heads) if geometry else None  # ORT's W_G
        self.keys = nn.Linear(GEOMETRY_DIM, dim, bias=False) if interaction else None  # NG-SAN's G_ij, per head

    def forward(self, embedding: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """``embedding`` (B, R, R, G), ``queries`` (B, H, R, d) -> bias (B, H, R, R)."""
        bias = torch.zeros(queries.shape[:-1] + queries.shape[-2:-1], device=queries.device, dtype=queries.dtype)
        if self.weights is not None:
            bias = bias + torch.log(F.softplus(self.weights(embedding)).clamp(min=1e-30)).permute(0, 3, 1, 2)
        if self.keys is not None:  # q_i^T W e_ij without materialising W e_ij: (B, H, R, G) x (B, R, R, G)
            weight = self.keys.weight.view(self.heads, self.head_dim, GEOMETRY_DIM)
            projected = torch.einsum("bhid,hdg->bhig", queries, weight)
            bias = bias + torch.einsum("bhig,bijg->bhij", projected, embedding) / math.sqrt(self.head_dim)
        return bias


class RelativeValues(nn.Module):
    """``sum_j a_ij r_ij`` with ``r_ij = W_V e_ij`` per head (Shaw et al. 2018), as ``W_V (sum_j a_ij e_ij)``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.values = nn.Linear(GEOMETRY_DIM, dim, bias=False)

    def forward(self, embedding: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``embedding`` (B, R, R, G), ``weights`` (B, H, R, R) -> (B, H, R, d)."""
        pooled = torch.einsum("bhij,bijg->bhig", weights, embedding)
        return torch.einsum("bhig,hdg->bhid", pooled, self.values.weight.view(self.heads, self.head_dim, GEOMETRY_DIM))


class GeometryAwareEncoder(nn.Module):
    def __init__(self, dim: int, heads: int, layers: int, dropout: float, geometry: bool, interaction: bool,
                 values: bool = False, query_norm: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList(AttentionBlock(dim, heads, dropout, query_norm=query_norm) for _ in range(layers))
        self.biases = nn.ModuleList(GeometryBias(dim, heads, geometry, interaction) for _ in range(layers))
        self.values = nn.ModuleList(RelativeValues(dim, heads) for _ in range(layers)) if values else None
        self.uses_geometry = geometry or interaction or values

    def forward(self, regions: torch.Tensor, batch: ImageBatch) -> torch.Tensor:
        if not self.uses_geometry:
            for block in self.blocks:
                regions = block(regions)
            return regions
        embedding = sinusoidal_embedding(relative_geometry(batch.boxes))
        for index, (block, bias) in enumerate(zip(self.blocks, self.biases, strict=True)):
            values = None if self.values is None else (lambda w, r=self.values[index]: r(embedding, w))
            regions = block(regions, lambda q, b=bias: b(embedding, q), values)
        return regions


@RELATION.register("gisa", description="geometry-sensitive interactive self-attention (signed box geometry bias + query-dependent geometry)",
                   source="DSRLN (Wu et al., TMM 2025) after Herdade et al. 2019 and NG-SAN, Guo et al. CVPR 2020",
                   requires=("boxes",))
def gisa(cfg, dims: FeatureDims) -> nn.Module:
    return GeometryAwareEncoder(cfg.embed_dim, cfg.num_heads, cfg.num_layers, cfg.dropout, cfg.gisa_geometry,
                                cfg.gisa_interaction, cfg.gisa_values, cfg.query_norm)
