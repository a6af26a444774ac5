"""Construction guarantees of the twin probes: each probe's blind control cannot tell the base from its twin.

For every probe, the blind control named in ``probes.PROBES`` embeds base and twin identically (its
inputs do not differ, or differ only in a way it pools away linearly), so it scores exact ties and sits
at chance. The same check on the positive control's inputs shows that the pair does differ for a model
that has the capability, so these tests could fail. Weights are random: the guarantee holds for every
weight, not for a trained model only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.config import EvalConfig, ModelConfig, SyntheticConfig
from benchmark.data.batches import image_batch
from benchmark.data.loader import load_split
from benchmark.data.synthetic import ensure_dataset
from benchmark.data.layout import CROWDED_PROBE, CROWDED_SPLIT, TWIN_KINDS
from benchmark.evaluation import encode_split, group_scores, similarity_matrix
from benchmark.probes import PROBES, captions_of
from variants import FeatureDims, build_model

SMALL = SyntheticConfig(train_groups=1, dev_groups=1, test_groups=6, crowded_groups=6)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return ensure_dataset(SMALL, tmp_path_factory.mktemp("probe-validity")) / "synthetic_precomp"


@pytest.fixture(scope="module")
def split(folder):
    return load_split(folder, "test")


@pytest.fixture(scope="module")
def crowded(folder):
    return load_split(folder, CROWDED_SPLIT)


def dims_of(split) -> FeatureDims:
    return FeatureDims(region_dim=split.regions.shape[2], n_regions=split.regions.shape[1], vocab_size=10,
                       grid_dim=split.grid.shape[2], grid_cells=split.grid.shape[1])


def pooled(variant: str, split, images: np.ndarray) -> torch.Tensor:
    torch.manual_seed(0)
    model = build_model(ModelConfig(variant=variant, embed_dim=32, word_dim=8, num_heads=2), dims_of(split)).eval()
    with torch.no_grad():
        return model.encode_images(image_batch(split, images)).pooled


def base_and_twin(variant: str, split, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    column = 1 + TWIN_KINDS.index(kind)
    return pooled(variant, split, split.twins[:, 0]), pooled(variant, split, split.twins[:, column])


@pytest.mark.parametrize("kind", TWIN_KINDS)
def test_the_blind_control_embeds_base_and_twin_identically(split, kind):
    base, twin = base_and_twin(PROBES[kind].blind, split, kind)
    torch.testing.assert_close(base, twin, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", TWIN_KINDS)
def test_the_positive_control_sees_a_difference(split, kind):
    base, twin = base_and_twin(PROBES[kind].positive, split, kind)
    assert (base - twin).abs().max() > 1e-3


def test_the_crowded_binding_probe_keeps_the_binding_probes_controls(crowded):
    """Among more distractors the swap still keeps the sum of region features: ``none`` stays blind, ``dsrln`` sees it."""
    probe = PROBES[CROWDED_PROBE]
    torch.testing.assert_close(*base_and_twin(probe.blind, crowded, "binding"), atol=1e-6, rtol=0)
    base, twin = base_and_twin(probe.positive, crowded, "binding")
    assert (base - twin).abs().max() > 1e-3


@pytest.mark.parametrize(("variant", "kind"), [
    ("sa", "layout"), ("none", "layout"), ("none+grid", "layout"),  # no boxes; the grid's mean is kept
    ("none", "binding"),  # linear pooling of class + colour: the sum is kept
    ("sa", "context"), ("gisa", "context"), ("gisa+concat", "context"), ("none+grid", "context"),
    ("sa", "scene"), ("gisa", "scene"), ("sa-pos", "scene"),
])
def test_every_control_that_is_blind_by_construction(split, variant, kind):
    base, twin = base_and_twin(variant, split, kind)
    torch.testing.assert_close(base, twin, atol=1e-6, rtol=0)


def test_group_scores_are_the_full_matrix_entries_of_each_group(split):
    """The probes score each group block by block; the numbers are those of the full image x caption matrix."""
    model = build_model(ModelConfig(variant="dsrln", embed_dim=32, word_dim=8, num_heads=2), dims_of(split)).eval()
    captions = captions_of(split.twins[:, 0]).ravel()
    tokens = [[1 + (c + i) % 9 for i in range(3 + c % 4)] for c in captions]  # any words; lengths differ
    images, texts = encode_split(model, split, tokens, EvalConfig(), torch.device("cpu"))
    full = similarity_matrix(model, images, texts, EvalConfig(), torch.device("cpu"))
    scores = group_scores(model, images, texts, split.twins, torch.device("cpu"), groups_per_block=4)
    expected = full[split.twins[:, :, None], captions_of(np.arange(len(split.twins)))[:, None, :]]
    np.testing.assert_allclose(scores, expected, atol=1e-6, rtol=0)


def test_the_twins_differ_from_the_base_in_their_one_factor_only(split):
    base = split.twins[:, 0]
    layout, binding, context, scene = (split.twins[:, i] for i in range(1, 5))
    regions = lambda images: split.image_regions(images)  # noqa: E731
    for twin in (layout, context, scene):  # regions hold neither surface nor background, and keep their order
        np.testing.assert_array_equal(regions(base), regions(twin))
    for twin in (binding, context, scene):
        np.testing.assert_array_equal(split.boxes[base], split.boxes[twin])
    assert not np.array_equal(split.boxes[base], split.boxes[layout])
    np.testing.assert_allclose(regions(base).sum(1), regions(binding).sum(1), atol=1e-4)  # colours swapped between objects
    assert not np.allclose(regions(base), regions(binding))
    for twin in (layout, binding, context):  # the grid's mean is kept (equal boxes, additive surfaces)
        np.testing.assert_allclose(split.grid[base].mean(1), split.grid[twin].mean(1), atol=1e-5)
    assert not np.allclose(split.grid[base], split.grid[context])
    np.testing.assert_array_equal(split.grid[base], split.grid[binding])
