"""A transformer block over a set of regions, with an optional additive bias on the attention logits.

Vanilla self-attention (Vaswani et al. 2017) is this block with no bias. Geometry-aware encoders
(Relation Networks, Object Relation Transformer, NG-SAN) add a per-head ``(B, H, R, R)`` bias to
the logits, so they reuse the block and differ only in the bias they pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AttentionBlock(nn.Module):
    """Post-norm multi-head attention + feed-forward block, like ``nn.TransformerEncoderLayer``."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        return x.view(batch, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = (self.split_heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        attended = attended.transpose(1, 2).reshape(x.shape)
        x = self.norm1(x + self.dropout(self.out(attended)))
        return self.norm2(x + self.dropout(self.ffn(x)))
