"""``local``: SCAN-style text-to-region attention (Lee et al., ECCV 2018), batched.

Each word w attends over the image's regions (or cells) with ``a = softmax(lambda * s~)``; the
attended context is ``ctx = sum_r a_r v_r``; the score is the mean over words of ``cos(w, ctx)``.
The attention logits ``s~`` follow SCAN's released t2i code by default (``model.local_norm = "scan"``):
the word-region cosines ``s`` go through LeakyReLU(0.1), then each region's scores are L2-normalised
over the caption's (real) words, so ``lambda = 9`` is SCAN's temperature. ``local_norm = "none"``
uses the raw cosines (``s~ = s``), the form of SCAN's paper equations.

The context is never materialised. With unit-norm words and regions,
``w . ctx = sum_r a_r s_r`` and ``|ctx|^2 = a^T G a`` with ``G`` the image's region Gram matrix,
so a block of (images x captions) costs one large product for ``s`` plus small per-pair
reductions (about 9x faster than materialising ``ctx``; same result to float precision).
Captions are processed in chunks so memory stays bounded (smaller ones without gradients); there is no loop over single captions.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmark.errors import UserError
from variants._base import FeatureDims, ImageEmbedding, TextEmbedding, l2norm
from variants._registry import ALIGNMENT

NORMS = ("scan", "none")  # model.local_norm
_BLOCK_ELEMENTS = 1 << 23  # images x captions x words x regions per chunk in training (~32 MB per float tensor)
# Without gradients nothing is kept from one chunk to the next, so evaluation takes smaller chunks: they bound
# its peak memory (the default run's dev evaluation peaked 490 MB above training with the training chunks).
_EVAL_BLOCK_ELEMENTS = 1 << 21


def attention_logits(cosines: torch.Tensor, mask: torch.Tensor, norm: str) -> torch.Tensor:
    """SCAN's t2i attention logits from (..., L) word-region cosines and the (..., L) word mask."""
    if norm == "none":
        return cosines
    scores = torch.nn.functional.leaky_relu(cosines, 0.1) * mask
    return scores / (scores.pow(2).sum(-1, keepdim=True).sqrt() + 1e-8)


def local_similarity(regions: torch.Tensor, words: torch.Tensor, mask: torch.Tensor, temperature: float,
                     norm: str = "scan") -> torch.Tensor:
    """(I, K, E) regions, (T, L, E) words, (T, L) word mask -> (I, T) scores."""
    v, w = l2norm(regions), l2norm(words)
    gram = v @ v.transpose(1, 2)  # (I, K, K)
    n_images, n_regions, dim = v.shape
    length = w.shape[1]
    budget = _BLOCK_ELEMENTS if torch.is_grad_enabled() else _EVAL_BLOCK_ELEMENTS
    chunk = max(1, budget // max(1, n_images * length * n_regions))
    flat_regions = v.reshape(n_images * n_regions, dim)
    # Written in place, chunk by chunk: a small result kept per chunk would sit between the freed chunk
    # temporaries on the heap, and the heap would grow by about a chunk's temporaries every chunk.
    scores = v.new_empty(n_images, w.shape[0])
    for start in range(0, w.shape[0], chunk):
        words_chunk, mask_chunk = w[start:start + chunk], mask[start:start + chunk].to(v.dtype)
        n_captions = words_chunk.shape[0]
        # One GEMM for every word-region cosine, laid out (I, K, T, L) so no permute is needed.
        cosines = (flat_regions @ words_chunk.reshape(-1, dim).T).view(n_images, n_regions, n_captions, length)
        attention = torch.softmax(temperature * attention_logits(cosines, mask_chunk, norm), dim=1)
        dot = (attention * cosines).sum(1)  # w . ctx, (I, T, L)
        spread = torch.bmm(gram, attention.flatten(2)).view_as(attention)  # G a
        norm_sq = (spread * attention).sum(1)  # |ctx|^2 = a^T G a
        word_scores = dot / norm_sq.clamp(min=1e-12).sqrt()
        scores[:, start:start + n_captions] = (word_scores * mask_chunk).sum(-1) / mask_chunk.sum(-1).clamp(min=1.0)
    return scores


def check_norm(cfg) -> None:
    if cfg.local_norm not in NORMS:
        raise UserError(f"model.local_norm '{cfg.local_norm}' is not one of: {', '.join(NORMS)}")


class LocalAlignment(nn.Module):
    def __init__(self, temperature: float, norm: str = "scan"):
        super().__init__()
        self.temperature, self.norm = temperature, norm

    def forward(self, images: ImageEmbedding, texts: TextEmbedding) -> torch.Tensor:
        return local_similarity(images.local, texts.words, texts.mask, self.temperature, self.norm)


@ALIGNMENT.register("local", description="SCAN text-to-region attention (temperature model.local_lambda, SCAN's t2i logits), mean word-context cosine",
                    source="SCAN, Lee et al., ECCV 2018", check=check_norm)
def local_alignment(cfg, dims: FeatureDims) -> nn.Module:
    return LocalAlignment(cfg.local_lambda, cfg.local_norm)
