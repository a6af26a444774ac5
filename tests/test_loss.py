"""The VSE++ triplet loss against a naive per-pair loop."""

import torch

from benchmark.loss import triplet_loss


def naive_loss(sims, ids, margin, hardest):
    n = len(ids)
    total = 0.0
    for i in range(n):
        row = [max(0.0, margin + sims[i, j] - sims[i, i]) for j in range(n) if ids[j] != ids[i]]
        col = [max(0.0, margin + sims[j, i] - sims[i, i]) for j in range(n) if ids[j] != ids[i]]
        total += (max(row, default=0.0) + max(col, default=0.0)) if hardest else (sum(row) + sum(col))
    return total


def test_matches_naive_loop_and_never_uses_same_image_captions_as_negatives():
    torch.manual_seed(0)
    sims = torch.randn(6, 6)
    ids = torch.tensor([0, 0, 1, 2, 2, 3])  # captions 0,1 and 3,4 share an image
    for hardest in (True, False):
        got = triplet_loss(sims, ids, 0.2, hardest).item()
        assert abs(got - naive_loss(sims, ids.tolist(), 0.2, hardest)) < 1e-5


def test_a_batch_of_one_image_has_no_negatives():
    assert triplet_loss(torch.randn(3, 3), torch.zeros(3, dtype=torch.long), 0.2, True).item() == 0.0
