"""The VSE++ triplet loss against a naive per-pair loop."""

import pytest
import torch

from benchmark.loss import triplet_loss


def naive_loss(sims, ids, margin, hardest, groups=None, twin_margin=None):
    """Per query: the hardest negative outside its group (or all of them summed) plus every twin (same group,
    other image) with the twin margin."""
    n = len(ids)
    groups = groups or list(ids)
    total = 0.0
    for i in range(n):
        for twin in (False, True):
            m = twin_margin if twin and twin_margin is not None else margin
            negatives = [j for j in range(n) if ids[j] != ids[i] and (groups[j] == groups[i]) == twin]
            row = [max(0.0, m + sims[i, j] - sims[i, i]) for j in negatives]
            col = [max(0.0, m + sims[j, i] - sims[i, i]) for j in negatives]
            total += (max(row, default=0.0) + max(col, default=0.0)) if hardest and not twin else (sum(row) + sum(col))
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


def test_twins_are_summed_and_never_take_the_hardest_negative_slot():
    torch.manual_seed(1)
    sims = torch.randn(7, 7)
    ids = torch.tensor([0, 0, 1, 2, 3, 4, 5])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 2])  # images 0-2 and 3-4 are twin groups; 5 stands alone
    for hardest in (True, False):
        for twin_margin in (None, 0.05):
            got = triplet_loss(sims, ids, 0.2, hardest, groups, twin_margin).item()
            assert abs(got - naive_loss(sims, ids.tolist(), 0.2, hardest, groups.tolist(), twin_margin)) < 1e-5
    assert triplet_loss(sims, ids, 0.2, False, groups).item() == pytest.approx(triplet_loss(sims, ids, 0.2, False).item())


def test_a_twin_the_model_cannot_tell_apart_leaves_the_other_negatives_their_gradient():
    """Base and twin embed identically (a blind model): the twin's violation is a constant, and the hardest
    other negative still trains. Letting twins take the hardest slot (before v2) gave no gradient at all."""
    true = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # images 0, 1 identical; 2 another
    sims = (true * 0.5 + torch.tensor([[0.0, 0.0, 0.45], [0.0, 0.0, 0.45], [0.45, 0.45, 0.0]])).requires_grad_()
    ids, groups = torch.tensor([0, 1, 2]), torch.tensor([0, 0, 1])
    triplet_loss(sims, ids, 0.2, True, groups).backward()
    assert sims.grad[1, 2] > 0  # for image 1, the other group's caption 2 is pushed down
    sims.grad = None
    triplet_loss(sims, ids, 0.2, True).backward()
    assert sims.grad[1, 2] == 0  # before v2, the twin's caption 0 (violation 0.2) took image 1's slot
