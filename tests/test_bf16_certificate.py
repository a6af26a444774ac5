"""The bf16 score bound holds every fp32 score, has teeth, flags ties as undecided, and runs on a checkpoint."""

import pytest
import torch

from benchmark import bf16_certificate as certificate
from benchmark.bf16_certificate import cosine_bounds, local_score_bounds, undecided
from tests.test_cli import one_error_line
from variants.alignment_local import local_similarity


def _inputs(seed: int, near_tied: bool = False):
    generator = torch.Generator().manual_seed(seed)
    regions = torch.randn(6, 5, 32, generator=generator)
    words = torch.randn(30, 4, 32, generator=generator)
    if near_tied:  # every region a tiny nudge of one vector, every caption's words of another: all scores nearly equal
        regions = regions[:1, :1] + 1e-4 * regions
        words = words[:1, :1] + 1e-4 * words
    lengths = torch.randint(1, 5, (30,), generator=generator)
    return regions, words, (torch.arange(4)[None] < lengths[:, None]).float()


@pytest.mark.parametrize("near_tied", [False, True])
@pytest.mark.parametrize("norm", ["scan", "none"])
def test_every_fp32_local_score_lies_in_its_bf16_interval(norm, near_tied):
    for seed in range(3):
        regions, words, mask = _inputs(seed, near_tied)
        scores = local_similarity(regions, words, mask, 9.0, norm)
        low, high = local_score_bounds(regions, words, mask, 9.0, norm)
        assert bool(((low <= scores + 1e-6) & (scores <= high + 1e-6)).all())
        assert bool((high - low < 2.0).any())  # not the trivial [-1, 1]


def test_without_the_rounding_bound_the_interval_misses_fp32(monkeypatch):
    regions, words, mask = _inputs(0)
    scores = local_similarity(regions, words, mask, 9.0)
    bf16_only = cosine_bounds
    monkeypatch.setattr(certificate, "cosine_bounds", lambda a, b: (bf16_only(a, b)[0], torch.zeros(len(a), len(b))))
    low, high = local_score_bounds(regions, words, mask, 9.0)
    assert not bool(((low <= scores) & (scores <= high)).all())


def test_the_cosine_bound_covers_the_bf16_error_and_is_tight_within_the_rounding():
    a, b = torch.nn.functional.normalize(torch.randn(50, 256), dim=1), torch.nn.functional.normalize(torch.randn(40, 256), dim=1)
    dots, error = cosine_bounds(a, b)
    exact = (a.double() @ b.double().T).float()
    assert bool(((dots - exact).abs() <= error).all()) and float(error.max()) < 2 * 2.0 ** -8 + 256 * 2.0 ** -23


def test_pairs_tied_with_the_ground_truth_are_undecided_and_clear_ones_are_not():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.1], [0.1, 0.2, 0.5, 0.4]])  # 2 images, 2 captions each
    low, high = scores - 0.05, scores + 0.05
    assert undecided(low, high, scores, captions_per_image=2) == (0.0, 0.0, 0.0)  # every negative far from its ground truth
    high[1, 1] = 0.8  # image 1 might tie caption 1's ground truth (0.8), and a tie ranks against the model
    assert undecided(low, high, scores, 2) == (0.25, 0.25, 0.25)  # and might beat image 1's best caption (0.5)
    low[1, 1] = 0.8  # certainly at least 0.8: ahead of both ground truths, decided
    assert undecided(low, high, scores, 2) == (0.0, 0.0, 0.0)


def test_bench_certifies_a_trained_checkpoint(results, tiny, capsys):
    from benchmark import runner
    from benchmark.cli import main

    for variant in ("sa", "gisa+dif+hier"):
        run = runner.run(tiny(model={"variant": variant}), results)
        capsys.readouterr()
        assert main(["bench", "--bf16-certificate", str(run.run_dir / "checkpoints" / "best.pt"), "--results-dir", str(results)]) == 0
        out = capsys.readouterr().out
        assert f"{variant}: 4 images x 20 captions" in out and "fp32 scores inside their bf16 interval: 100.00%" in out
    line = one_error_line(capsys, ["bench", "--bf16-certificate", "missing.pt"])
    assert "missing.pt does not exist" in line
