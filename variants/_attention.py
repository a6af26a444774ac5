"""A transformer block over a set of features, with an optional additive bias on the attention logits.

Vanilla self-attention (Vaswani et al. 2017) is this block with no bias. Geometry-aware encoders
(Relation Networks, Object Relation Transformer, NG-SAN) add a per-head ``(B, H, R, R)`` bias to
the logits; a bias that depends on the queries (NG-SAN's ``q_i^T G_ij``) is passed as a function
of them. So every relation encoder shares this block and differs only in the bias it passes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

Bias = Callable[[torch.Tensor], torch.Tensor]  # queries (B, H, R, d) -> logit bias (B, H, R, R)


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

    def forward(self, x: torch.Tensor, bias: Bias | None = None) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if self.query_norm is not None:
            q = self.query_norm(q.transpose(1, 2)).transpose(1, 2)
        q, k, v = (self.split_heads(t) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=None if bias is None else bias(q).to(q.dtype))
        attended = attended.transpose(1, 2).reshape(x.shape)
        x = self.norm1(x + self.dropout(self.out(attended)))
        return self.norm2(x + self.dropout(self.ffn(x)))
