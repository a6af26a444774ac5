"""Turning a split into model inputs: tensor batches and each epoch's (image, caption) order."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from benchmark.data.layout import CAPTIONS_PER_IMAGE, TWIN_KINDS
from benchmark.data.loader import Split
from variants import ImageBatch, TextBatch


def image_batch(split: Split, images: np.ndarray) -> ImageBatch:
    """The inputs of the given image indices (boxes and grid when the split has them)."""
    return ImageBatch(
        regions=torch.from_numpy(split.image_regions(images)),
        boxes=None if split.boxes is None else torch.from_numpy(split.boxes[images]),
        grid=None if split.grid is None else torch.from_numpy(split.image_grid(images)),
    )


def text_batch(token_ids: list[list[int]], length: int | None = None) -> TextBatch:
    """0-padded token ids, to ``length`` or to the longest caption."""
    length = length or max(len(ids) for ids in token_ids)
    tokens = torch.zeros(len(token_ids), length, dtype=torch.long)
    for row, ids in enumerate(token_ids):
        tokens[row, : len(ids)] = torch.tensor(ids[:length])
    return TextBatch(tokens=tokens, lengths=torch.tensor([min(len(ids), length) for ids in token_ids]))


class CaptionPairs(Dataset):
    """A split's (image, caption) training pairs; indexed by a whole batch of caption indices.

    An item is (images, captions, image ids, group ids): the group of each image (its twin group,
    ``image_groups``) tells the loss which negatives are twins.
    """

    def __init__(self, split: Split, token_ids: list[list[int]]):
        self.split, self.token_ids = split, token_ids
        self.group_of = group_ids(image_groups(split.n_images, split.twins), split.n_images)

    def __len__(self) -> int:
        return self.split.n_captions

    def __getitem__(self, captions: np.ndarray) -> tuple[ImageBatch, TextBatch, torch.Tensor, torch.Tensor]:
        images = captions // CAPTIONS_PER_IMAGE
        return (image_batch(self.split, images), text_batch([self.token_ids[c] for c in captions]),
                torch.from_numpy(images), torch.from_numpy(self.group_of[images]))


def image_groups(n_images: int, twins: np.ndarray | None) -> list[np.ndarray]:
    """Images that should share a batch: twin groups, and every other image on its own."""
    if twins is None:
        return list(np.arange(n_images)[:, None])
    loose = np.setdiff1d(np.arange(n_images), twins.ravel())
    return list(twins) + list(loose[:, None])


def training_groups(split: Split, group_batches: bool, held_out: list[str]) -> list[np.ndarray]:
    """``image_groups`` of the train split without the twins of the ``held_out`` kinds: those images (and
    their captions) are never trained on, so their probe asks what a variant picks up from the captions."""
    groups = image_groups(split.n_images, split.twins if group_batches else None)
    if split.twins is None or not held_out:
        return groups
    left_out = split.twins[:, [1 + TWIN_KINDS.index(kind) for kind in held_out]].ravel()
    return [kept for group in groups if len(kept := group[~np.isin(group, left_out)])]


def group_ids(groups: list[np.ndarray], n_images: int) -> np.ndarray:
    """(n_images,) the index of each image's group."""
    out = np.empty(n_images, dtype=np.int64)
    for index, members in enumerate(groups):
        out[members] = index
    return out


def epoch_batches(groups: list[np.ndarray], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Caption indices of each batch of one epoch; every caption once.

    The epoch runs in ``CAPTIONS_PER_IMAGE`` rounds; each round visits every image once with one
    of its captions, groups kept together in a shuffled order. A batch thus holds whole twin
    groups (hard negatives) and rarely two captions of one image.
    """
    n_images = 1 + max(int(g.max()) for g in groups)  # every image of the split, when none is held out
    caption_slot = rng.permuted(np.tile(np.arange(CAPTIONS_PER_IMAGE), (n_images, 1)), axis=1)
    rounds = []
    for r in range(CAPTIONS_PER_IMAGE):
        images = np.concatenate([groups[g] for g in rng.permutation(len(groups))])
        rounds.append(images * CAPTIONS_PER_IMAGE + caption_slot[images, r])
    order = np.concatenate(rounds)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
