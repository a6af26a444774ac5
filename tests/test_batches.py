"""Each epoch's training order: every caption once, twin groups together, held-out twins never."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from benchmark.data.batches import epoch_batches, training_groups
from benchmark.data.layout import CAPTIONS_PER_IMAGE, TWIN_KINDS

# 4 groups of five images, interleaved so that a group's images are not neighbours, plus 3 loose images
TWINS = np.arange(20).reshape(5, 4).T
SPLIT = SimpleNamespace(n_images=23, twins=TWINS)


def epoch(held_out: list[str], group_batches: bool = True, batch_size: int = 16) -> np.ndarray:
    batches = epoch_batches(training_groups(SPLIT, group_batches, held_out), batch_size, np.random.default_rng(0))
    return np.concatenate(batches)


def test_every_caption_is_trained_once_per_epoch():
    assert sorted(epoch([])) == list(range(23 * CAPTIONS_PER_IMAGE))


def test_held_out_twins_and_their_captions_are_never_trained_on():
    binding = TWINS[:, 1 + TWIN_KINDS.index("binding")]
    for group_batches in (True, False):
        images = epoch(["binding"], group_batches) // CAPTIONS_PER_IMAGE
        assert not np.isin(images, binding).any()
        assert sorted(images) == sorted(np.repeat(np.setdiff1d(np.arange(23), binding), CAPTIONS_PER_IMAGE))


def test_a_group_is_visited_together_in_each_round():
    """In each of the five rounds (one caption per image), a group's kept images are consecutive."""
    order = epoch(["binding"], batch_size=1000) // CAPTIONS_PER_IMAGE
    kept = 23 - len(TWINS)
    for round_images in order.reshape(CAPTIONS_PER_IMAGE, kept):
        for group in TWINS:
            where = np.flatnonzero(np.isin(round_images, group))
            assert len(where) == 4 and np.ptp(where) == 3
