"""The one retrieval model: registered components composed by a variant spec.

image: regions -> linear projection -> relation encoder -> visual source -> mean pool (L2-normalised)
text:  tokens -> text encoder;  score: alignment(image, text)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from benchmark.config import ModelConfig
from benchmark.errors import UserError
from variants.base import (
    FeatureDims,
    ImageBatch,
    ImageEmbedding,
    TextBatch,
    TextEmbedding,
    l2norm,
)
from variants.registry import VariantSpec, parse_variant

INPUT_NAMES = {"boxes": "boxes", "grid": "grid features"}
INPUT_FILES = {"boxes": "{split}_boxes.npy (or GSMN's {split}_ims_bbx.npy + {split}_ims_size.npy)", "grid": "{split}_grid.npy"}


class RetrievalModel(nn.Module):
    """Encodes images and captions separately, then scores every pair with the alignment."""

    def __init__(self, spec: VariantSpec, cfg: ModelConfig, dims: FeatureDims):
        super().__init__()
        self.spec = spec
        relation, source, alignment, text = spec.components()
        self.region_proj = nn.Linear(dims.region_dim, cfg.embed_dim)
        self.relation = relation.factory(cfg, dims)
        self.source = source.factory(cfg, dims)
        self.alignment = alignment.factory(cfg, dims)
        self.text = text.factory(cfg, dims)

    def encode_images(self, batch: ImageBatch) -> ImageEmbedding:
        regions = self.relation(self.region_proj(batch.regions), batch)
        local = self.source(regions, batch)
        return ImageEmbedding(local=local, pooled=l2norm(local.mean(dim=1)))

    def tokenizer(self, vocab) -> Callable[[str], list[int]]:
        """How this model's text encoder turns a caption into token ids."""
        return self.text.tokenizer(vocab)

    def encode_texts(self, batch: TextBatch) -> TextEmbedding:
        return self.text(batch)

    def similarity(self, images: ImageEmbedding, texts: TextEmbedding) -> torch.Tensor:
        """(n_images, n_captions) scores."""
        return self.alignment(images, texts)


def build_model(cfg: ModelConfig, dims: FeatureDims, available: frozenset[str]) -> RetrievalModel:
    """Parse the spec, check the dataset has what its components need, and build it."""
    spec = parse_variant(cfg.variant)
    missing = spec.requires - available
    if missing:
        raise UserError(
            f"variant '{spec.name}' needs {', '.join(INPUT_NAMES[m] for m in sorted(missing))} but the dataset has none; "
            f"add {' and '.join(INPUT_FILES[m] for m in sorted(missing))} for every split (see README 'Real data')"
        )
    return RetrievalModel(spec, cfg, dims)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
