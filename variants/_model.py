"""The one retrieval model: registered components composed by a variant spec.

image: regions -> linear projection -> relation encoder -> visual source -> mean pool (L2-normalised)
text:  tokens -> text encoder;  score: alignment(image, text)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from benchmark.errors import UserError
from variants._base import (
    FeatureDims,
    ImageBatch,
    ImageEmbedding,
    TextBatch,
    TextEmbedding,
    l2norm,
)
from variants._registry import AXES, VariantSpec, parse_variant

if TYPE_CHECKING:
    from benchmark.config import ModelConfig


class RetrievalModel(nn.Module):
    """Encodes images and captions separately, then scores every pair with the alignment."""

    def __init__(self, spec: VariantSpec, cfg: ModelConfig, dims: FeatureDims):
        super().__init__()
        self.spec = spec
        # Each part is initialised from its own seed, drawn once from the global generator: two variants that
        # differ in one component then start every other part from the same weights (otherwise the extra
        # parameters of, say, GISA would shift the random stream of everything built after them).
        base = int(torch.randint(0, 2**31 - 1, (1,)).item())
        factories = {"region_proj": lambda: nn.Linear(dims.region_dim, cfg.embed_dim)}
        factories |= {axis: (lambda c=component: c.factory(cfg, dims)) for axis, component in zip(AXES, spec.components(), strict=True)}
        for index, (name, build) in enumerate(factories.items()):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(base + index)
                setattr(self, name, build())

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


def check(cfg: ModelConfig) -> VariantSpec:
    """Check a model config without building anything (no weights loaded); returns its spec.

    The sizes every component shares are checked here (each size's own range is checked when the
    config is resolved: ``benchmark.config.VALID``); then each component's own check runs (a
    ``dif_gate`` that does not exist, a missing pretrained text model: its folder is found, its weights
    are not loaded). Whether the data has the inputs the spec ``requires`` is the harness's check.
    """
    if cfg.embed_dim % cfg.num_heads:
        raise UserError(f"model.embed_dim ({cfg.embed_dim}) must be a multiple of model.num_heads ({cfg.num_heads})")
    spec = parse_variant(cfg.variant)
    for component in spec.components():
        if component.check is not None:
            component.check(cfg)
    return spec


def build_model(cfg: ModelConfig, dims: FeatureDims) -> RetrievalModel:
    """Check the config and build the variant it names."""
    return RetrievalModel(check(cfg), cfg, dims)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
