"""What flows between components: input batches, embeddings, and the dims a factory builds from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class FeatureDims:
    """Sizes of a dataset's inputs, fixed at model build time."""

    region_dim: int
    n_regions: int
    vocab_size: int
    grid_dim: int = 0  # 0 when the dataset has no grid features
    grid_cells: int = 0


class _Tensors:
    """Dataclass helpers: move, slice and concatenate every tensor field at once."""

    def _map(self, fn):
        return dataclasses.replace(
            self, **{f.name: fn(v) for f in dataclasses.fields(self) if isinstance(v := getattr(self, f.name), torch.Tensor)}
        )

    def to(self, device):
        return self._map(lambda t: t.to(device, non_blocking=True))

    def __getitem__(self, rows):
        return self._map(lambda t: t[rows])

    def __len__(self) -> int:
        return len(next(getattr(self, f.name) for f in dataclasses.fields(self)))

    @classmethod
    def cat(cls, parts: list):
        return cls(**{
            f.name: torch.cat([getattr(p, f.name) for p in parts]) if getattr(parts[0], f.name) is not None else None
            for f in dataclasses.fields(cls)
        })


@dataclass
class ImageBatch(_Tensors):
    regions: torch.Tensor  # (B, R, region_dim)
    boxes: torch.Tensor | None = None  # (B, R, 4) normalised [x1, y1, x2, y2]
    grid: torch.Tensor | None = None  # (B, G, grid_dim), cells row-major from the top-left


@dataclass
class TextBatch(_Tensors):
    tokens: torch.Tensor  # (B, L) word ids, 0-padded
    lengths: torch.Tensor  # (B,)


@dataclass
class ImageEmbedding(_Tensors):
    local: torch.Tensor  # (B, K, E) region (or cell) embeddings
    pooled: torch.Tensor  # (B, E) L2-normalised


@dataclass
class TextEmbedding(_Tensors):
    words: torch.Tensor  # (B, L, E)
    mask: torch.Tensor  # (B, L) True for real words
    pooled: torch.Tensor  # (B, E) L2-normalised


def l2norm(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return F.normalize(x, dim=dim, eps=1e-8)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of ``x`` (B, L, E) where ``mask`` (B, L) is True."""
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class Unchanged(torch.nn.Module):
    """A component that passes the regions through as they are (``none`` relation, ``region`` source)."""

    def forward(self, regions: torch.Tensor, batch: ImageBatch) -> torch.Tensor:
        return regions
