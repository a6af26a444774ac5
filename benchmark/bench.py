"""``bench``: how fast the alignments score a test set on this machine (figures, not assertions).

Scores a sample of random unit-norm embeddings at the field's sizes (36 regions, d=1024, 12 words
by default), block by block exactly as evaluation does, and extrapolates to the Flickr30K 1K test
(1,000 x 5,000 pairs) and COCO 5K (5,000 x 25,000). For ``local`` it also times the naive
formulation that materialises each word's attended context, on a smaller sample.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from variants import l2norm
from variants.alignment_local import attention_logits, local_similarity


@dataclass
class BenchResult:
    alignment: str
    pairs_per_s: float

    def line(self) -> str:
        f30k, coco = 1_000 * 5_000 / self.pairs_per_s, 5_000 * 25_000 / self.pairs_per_s
        return f"{self.alignment:22} {self.pairs_per_s:12,.0f} pairs/s   1K test {f30k / 60:6.1f} min   COCO 5K {coco / 60:7.1f} min"


def naive_local(regions: torch.Tensor, words: torch.Tensor, mask: torch.Tensor, temperature: float,
                norm: str = "scan") -> torch.Tensor:
    """Materialises every word's context: the straightforward batched einsum the identity avoids."""
    v, w = l2norm(regions), l2norm(words)
    maskf = mask.to(v.dtype)
    logits = attention_logits(torch.einsum("ike,tle->iktl", v, w), maskf, norm)
    attention = torch.softmax(temperature * logits, dim=1)
    context = l2norm(torch.einsum("iktl,ike->itle", attention, v))
    cosines = (context * w[None]).sum(-1)
    return (cosines * maskf).sum(-1) / maskf.sum(-1).clamp(min=1.0)


def _time(fn, pairs: int, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return pairs * repeats / (time.perf_counter() - start)


@torch.no_grad()
def run_bench(images: int = 32, captions: int = 5_000, regions: int = 36, dim: int = 1024, words: int = 12,
              temperature: float = 9.0, repeats: int = 2, seed: int = 0) -> list[BenchResult]:
    torch.manual_seed(seed)
    v = torch.randn(images, regions, dim)
    w = torch.randn(captions, words, dim)
    mask = torch.ones(captions, words, dtype=torch.bool)
    pooled_v, pooled_w = l2norm(v.mean(1)), l2norm(w.mean(1))
    pairs = images * captions
    results = [
        BenchResult("global", _time(lambda: pooled_v @ pooled_w.T, pairs, repeats)),
        BenchResult("local (Gram identity)", _time(lambda: local_similarity(v, w, mask, temperature), pairs, repeats)),
    ]
    small = min(captions, 500)
    results.append(BenchResult("local (naive context)", _time(lambda: naive_local(v[:8], w[:small], mask[:small], temperature), 8 * small, 1)))
    return results


def report(results: list[BenchResult], threads: int) -> str:
    lines = [f"scoring throughput on {threads} torch threads (extrapolated to full test sets):"]
    lines += [r.line() for r in results]
    return "\n".join(lines)
