"""``bench``: how fast the alignments score a test set on this machine, against what the field runs.

Everything is measured in one process on the same random unit-norm embeddings at the field's sizes
(36 regions, d=1024, 12 words by default):

- **SCAN-style shard loop**: the baseline. SCAN's released evaluation (``shard_xattn_t2i`` calling
  ``xattn_score_t2i``) scores 128 x 128 shards, and inside a shard loops in Python over the captions,
  each caption's words attending over every image of the shard with two ``bmm`` calls.
- **local (Gram identity)**: this suite's scoring (``variants.alignment_local``), block by block as
  evaluation runs it. Its scores are compared with the loop's (max absolute difference).
- **global**: one GEMM of pooled embeddings.

Each line gives pairs/s, the ratio to the SCAN loop in the same run, the GEMM GFLOP/s it reaches and
that as a fraction of this machine's measured fp32 GEMM peak. The bf16 peak is measured too: where it beats
fp32's it bounds what any bf16 scoring could reach here; where it does not (bf16 emulated), the report says so and
bounds local scoring by the fp32 peak (figures, not assertions; ``--json`` writes them).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmark.tracking import cpu_name
from variants import l2norm
from variants.alignment_local import local_similarity

SHARD = 128  # SCAN's shard size at evaluation


@dataclass
class BenchResult:
    alignment: str
    pairs_per_s: float
    gemm_flops_per_pair: float  # the GEMM work one pair costs in this formulation
    max_abs_diff: float | None = None  # against the SCAN-style loop's scores, on the same inputs

    def gflops(self) -> float:
        return self.pairs_per_s * self.gemm_flops_per_pair / 1e9


def scan_shard_loop(regions: torch.Tensor, words: torch.Tensor, lengths: torch.Tensor, temperature: float) -> torch.Tensor:
    """(I, T) t2i scores as SCAN's released evaluation computes them (clipped_l2norm logits, mean over words)."""
    v, w = l2norm(regions), l2norm(words)
    scores = torch.empty(len(v), len(w), dtype=v.dtype)
    for i0 in range(0, len(v), SHARD):
        images = v[i0:i0 + SHARD]
        for t0 in range(0, len(w), SHARD):
            for t in range(t0, min(t0 + SHARD, len(w))):
                query = w[t, : int(lengths[t])].expand(len(images), -1, -1)  # (n, L, d)
                logits = F.leaky_relu(torch.bmm(images, query.transpose(1, 2)), 0.1)  # (n, K, L)
                logits = logits / (logits.norm(dim=2, keepdim=True) + 1e-8)
                attention = torch.softmax(temperature * logits.transpose(1, 2), dim=2)  # (n, L, K)
                context = torch.bmm(attention, images)  # (n, L, d)
                scores[i0:i0 + SHARD, t] = F.cosine_similarity(query, context, dim=2).mean(1)
    return scores


def gemm_peak(dtype: torch.dtype, size: int = 2048, seconds: float = 1.0) -> float:
    """GFLOP/s of a large square GEMM in ``dtype`` on the current torch threads: at ``size``, or at a smaller power
    of two when one GEMM would take more than a quarter of ``seconds`` (a dtype without fast kernels here, such as
    bf16 on a CPU with neither AVX-512 BF16 nor AMX, is emulated: one 2048 GEMM took a minute on such a CPU)."""
    n = 256
    while n < size:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        start = time.perf_counter()
        a @ b
        if 8 * (time.perf_counter() - start) > seconds / 4:  # the next size does 8 times the work
            break
        n *= 2
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or runs < 2:
        a @ b
        runs += 1
    return 2 * n**3 * runs / elapsed / 1e9


def _timed(fn, pairs: int, repeats: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return pairs * repeats / (time.perf_counter() - start), out


@dataclass
class Bench:
    """One bench run: sizes, machine, peaks and one result per formulation."""

    images: int
    captions: int
    regions: int
    dim: int
    words: int
    threads: int
    machine: str
    peak_fp32_gflops: float
    peak_bf16_gflops: float
    results: list[BenchResult]

    @property
    def scan(self) -> BenchResult:
        return self.results[0]

    def to_json(self) -> dict:
        rows = [asdict(r) | {"gflops": r.gflops(), "vs_scan_loop": r.pairs_per_s / self.scan.pairs_per_s,
                             "fraction_of_fp32_peak": r.gflops() / self.peak_fp32_gflops} for r in self.results]
        return {k: v for k, v in asdict(self).items() if k != "results"} | {
            "fast_bf16": self.fast_bf16, "ceiling_precision": self.ceiling()[0], "ceiling_pairs_per_s": self.ceiling()[1],
            "results": rows}

    @property
    def fast_bf16(self) -> bool:
        """Whether bf16 GEMMs beat fp32 here (AMX, AVX-512 BF16, tensor cores); elsewhere bf16 is emulated."""
        return self.peak_bf16_gflops > self.peak_fp32_gflops

    def ceiling(self) -> tuple[str, float]:
        """The faster precision here, and local scoring's pairs/s with every GEMM at its peak."""
        precision, peak = ("bf16", self.peak_bf16_gflops) if self.fast_bf16 else ("fp32", self.peak_fp32_gflops)
        return precision, peak * 1e9 / self.results[1].gemm_flops_per_pair

    def report(self) -> str:
        k, length, d = self.regions, self.words, self.dim
        lines = [
            f"{self.images} images x {self.captions} captions, {k} regions, d={d}, {length} words; {self.threads} torch threads; {self.machine}",
            f"GEMM peak here: fp32 {self.peak_fp32_gflops:,.0f} GFLOP/s, bf16 {self.peak_bf16_gflops:,.1f} GFLOP/s"
            + ("" if self.fast_bf16 else " (no fast bf16 here: emulated, slower than fp32, so scoring stays fp32)"),
            f"{'formulation':24} {'pairs/s':>11} {'vs SCAN':>8} {'GFLOP/s':>8} {'of fp32 peak':>12} {'max |diff|':>10}"
            f" {'1K test':>10} {'COCO 5K':>10}",
        ]
        for r in self.results:
            diff = "" if r.max_abs_diff is None else f"{r.max_abs_diff:.1e}"
            f30k, coco = 1_000 * 5_000 / r.pairs_per_s, 5_000 * 25_000 / r.pairs_per_s
            lines.append(f"{r.alignment:24} {r.pairs_per_s:11,.0f} {r.pairs_per_s / self.scan.pairs_per_s:7.1f}x {r.gflops():8.1f}"
                         f" {r.gflops() / self.peak_fp32_gflops:11.0%} {diff:>10} {f30k / 60:6.1f} min {coco / 60:6.1f} min")
        precision, ceiling = self.ceiling()
        lines.append(f"ceiling of local scoring with every GEMM at the {precision} peak: {ceiling:,.0f} pairs/s "
                     f"({ceiling / self.scan.pairs_per_s:.1f}x the SCAN loop)")
        return "\n".join(lines)


@torch.no_grad()
def run_bench(images: int = 128, captions: int = 1_280, regions: int = 36, dim: int = 1024, words: int = 12,
              temperature: float = 9.0, repeats: int = 2, seed: int = 0) -> Bench:
    generator = torch.Generator().manual_seed(seed)
    v = torch.randn(images, regions, dim, generator=generator)
    w = torch.randn(captions, words, dim, generator=generator)
    lengths = torch.randint(max(1, words // 2), words + 1, (captions,), generator=generator)
    lengths[0] = words
    mask = torch.arange(words)[None] < lengths[:, None]
    pooled_v, pooled_w = l2norm(v.mean(1)), l2norm(w.mean(1))
    pairs = images * captions
    scan_rate, reference = _timed(lambda: scan_shard_loop(v, w, lengths, temperature), pairs, 1)
    local_rate, local = _timed(lambda: local_similarity(v, w, mask, temperature), pairs, repeats)
    global_rate, _ = _timed(lambda: pooled_v @ pooled_w.T, pairs, repeats)
    mean_words = float(lengths.float().mean())
    results = [
        BenchResult("SCAN-style shard loop", scan_rate, 4 * regions * mean_words * dim),  # two bmm per pair
        BenchResult("local (Gram identity)", local_rate, 2 * regions * words * dim + 2 * regions * regions * words,
                    float((local - reference).abs().max())),
        BenchResult("global", global_rate, 2 * dim),
    ]
    machine = f"{cpu_name()}, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()})"
    return Bench(images, captions, regions, dim, words, torch.get_num_threads(), machine,
                 gemm_peak(torch.float32), gemm_peak(torch.bfloat16), results)


def write_json(bench: Bench, path: Path) -> None:
    path.write_text(json.dumps(bench.to_json(), indent=2))
