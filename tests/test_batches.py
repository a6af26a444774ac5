"""Model inputs and each epoch's training order: every caption once, twin groups together, held-out twins never."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from benchmark.data.batches import CaptionPairs, epoch_batches, group_ids, image_groups, text_batch, training_groups
from benchmark.data.layout import CAPTIONS_PER_IMAGE, TWIN_KINDS
from benchmark.data.loader import Split

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


def test_captions_are_zero_padded_to_the_longest_or_cut_to_a_length():
    batch = text_batch([[5, 6, 7], [8], [9, 10]])
    assert batch.tokens.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]] and batch.tokens.dtype == torch.long
    assert batch.lengths.tolist() == [3, 1, 2]
    cut = text_batch([[5, 6, 7], [8]], length=2)
    assert cut.tokens.tolist() == [[5, 6], [8, 0]] and cut.lengths.tolist() == [2, 1]


def test_groups_are_the_twin_groups_and_every_other_image_alone():
    twins = np.array([[4, 0], [1, 5]])
    groups = image_groups(7, twins)
    assert [g.tolist() for g in groups] == [[4, 0], [1, 5], [2], [3], [6]]
    ids = group_ids(groups, 7)
    assert ids.tolist() == [0, 1, 2, 3, 0, 1, 4] and ids.dtype == np.int64
    assert [g.tolist() for g in image_groups(3, None)] == [[0], [1], [2]]


def _split(rows_per_image: int, with_grid: bool) -> Split:
    """Six images whose features encode their index (region rows, boxes, grid cells); image 2 has no twins."""
    regions = np.repeat(np.arange(6, dtype=np.float64), rows_per_image)[:, None, None] * np.ones((1, 3, 2))
    boxes = np.arange(6, dtype=np.float32)[:, None, None] * np.ones((1, 3, 4), np.float32) / 10
    grid = np.arange(6, dtype=np.float16)[:, None, None] * np.ones((1, 9, 5), np.float16) if with_grid else None
    return Split("train", regions, rows_per_image, [f"caption {c}" for c in range(30)], boxes, grid,
                 twins=np.array([[5, 0, 1, 3, 4]]))


def test_a_batch_of_captions_brings_its_images_inputs_and_groups():
    for rows_per_image, with_grid in ((1, True), (5, False)):  # releases that repeat each image's row per caption
        split = _split(rows_per_image, with_grid)
        pairs = CaptionPairs(split, [[c + 1] * (1 + c % 3) for c in range(30)])
        images, texts, image_ids, groups = pairs[np.array([7, 29, 10])]
        assert image_ids.tolist() == [1, 5, 2] and groups.tolist() == [0, 0, 1]
        assert images.regions.dtype == torch.float32 and images.regions[:, 0, 0].tolist() == [1.0, 5.0, 2.0]
        assert torch.allclose(images.boxes[:, 0, 0], torch.tensor([0.1, 0.5, 0.2]))
        if with_grid:
            assert images.grid.dtype == torch.float32 and images.grid[:, 0, 0].tolist() == [1.0, 5.0, 2.0]
        else:
            assert images.grid is None
        assert texts.tokens[:, 0].tolist() == [8, 30, 11] and texts.lengths.tolist() == [2, 3, 2]
        assert len(pairs) == 30
    no_boxes = Split("train", np.zeros((2, 3, 2)), 1, ["a"] * 10)
    images, *_ = CaptionPairs(no_boxes, [[1]] * 10)[np.array([0, 9])]
    assert images.boxes is None and images.grid is None


def test_without_group_batches_or_twins_every_image_is_its_own_group():
    assert [g.tolist() for g in training_groups(SPLIT, False, [])] == [[i] for i in range(23)]
    no_twins = SimpleNamespace(n_images=4, twins=None)  # real data: nothing to hold out, even when asked
    assert [g.tolist() for g in training_groups(no_twins, True, ["binding"])] == [[0], [1], [2], [3]]
