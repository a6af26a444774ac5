"""A transformer block over a set of features, with optional geometry terms in its attention.

Vanilla self-attention (Vaswani et al. 2017) is this block with neither term. Geometry-aware encoders
(Relation Networks, Object Relation Transformer, NG-SAN) add a per-head ``(B, H, R, R)`` bias to the
logits; a bias that depends on the queries (NG-SAN's ``q_i^T G_ij``) is passed as a function of them.
Relative-position encoders in the manner of Shaw et al. (2018) also add a vector ``r_ij`` to each value,
so that the output ``sum_j a_ij (v_j + r_ij)`` carries geometry itself; that term is passed as a function
of the attention weights. Every relation encoder shares this block and differs only in these terms.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

Bias = Callable[[torch.Tensor], torch.Tensor]  # queries (B, H, R, d) -> logit bias (B, H, R, R)
RelativeValues = Callable[[torch.Tensor], torch.Tensor]  # weights (B, H, R, R) -> sum_j a_ij r_ij (B, H, R, d)


class AttentionBlock(nn.Module):
    """Post-norm multi-head attention + feed-forward block, like ``nn.TransformerEncoderLayer``."""

    def __init__(self, dim: int, heads: int, dropout: float, query_norm: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))
        self.dropout = nn.Dropout(dropout)
        # NG-SAN's normalised self-attention: instance-normalise the queries over the set.
        self.query_norm = nn.InstanceNorm1d(dim, affine=True) if query_norm else None

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        return x.view(batch, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, bias: Bias | None = None, relative_values: RelativeValues | None = None) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if self.query_norm is not None:
            q = self.query_norm(q.transpose(1, 2)).transpose(1, 2)
        q, k, v = (self.split_heads(t) for t in (q, k, v))
        mask = None if bias is None else bias(q).to(q.dtype)
        if relative_values is None:
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:  # the weights are needed for the value term, so attention is spelled out
            logits = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
            weights = torch.softmax(logits if mask is None else logits + mask, dim=-1)
            attended = weights @ v + relative_values(weights)
        attended = attended.transpose(1, 2).reshape(x.shape)
        x = self.norm1(x + self.dropout(self.out(attended)))
        return self.norm2(x + self.dropout(self.ffn(x)))
