"""The synthetic diagnostic dataset: deterministic, twins built as designed."""

import dataclasses

import numpy as np

from benchmark.config import SyntheticConfig
from benchmark.data.loader import load_split
from benchmark.data.synthetic import CLASSES, COLOURS, INVERSE, SCENES, SURFACES, crowded_objects, ensure_dataset, feature_dims
from benchmark.data.vocab import Vocabulary

RELATION_WORDS = {"left": "left", "right": "right", "above": "above", "over": "above",
                  "below": "below", "under": "below", "beneath": "below"}


def relation_of(caption: str) -> str:
    return next(RELATION_WORDS[word] for word in caption.split() if word in RELATION_WORDS)


WORDS = {"class": set(CLASSES), "colour": set(COLOURS), "surface": set(SURFACES), "scene": set(SCENES)}
SMALL = dict(train_groups=3, dev_groups=2, test_groups=2, crowded_groups=2, n_regions=10, region_dim=12, grid_size=3, grid_dim=6)


def load(tmp_path, name="a", **overrides):
    root = ensure_dataset(SyntheticConfig(**SMALL | overrides), tmp_path / name)
    return load_split(root / "synthetic_precomp", "test")


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a, b, c = load(tmp_path, "a"), load(tmp_path, "b"), load(tmp_path, "c", seed=1)
    np.testing.assert_array_equal(a.regions, b.regions)
    assert a.captions == b.captions
    assert not np.array_equal(a.regions, c.regions)


def test_generation_is_cached(tmp_path):
    cfg = SyntheticConfig(**SMALL)
    root = ensure_dataset(cfg, tmp_path)
    stamp = (root / "synthetic_precomp" / "test_ims.npy").stat().st_mtime_ns
    assert ensure_dataset(cfg, tmp_path) == root
    assert (root / "synthetic_precomp" / "test_ims.npy").stat().st_mtime_ns == stamp



def test_groups_of_five_whose_captions_change_in_the_twins_factor_only(tmp_path):
    split = load(tmp_path)
    for base, layout, binding, context, scene in split.twins:
        caption = split.captions[base * 5].split()
        assert relation_of(split.captions[layout * 5]) == INVERSE[relation_of(" ".join(caption))]
        for twin, changed in ((binding, {"colour"}), (context, {"surface"}), (scene, {"scene"})):
            other = split.captions[twin * 5].split()
            kinds = {kind for kind, words in WORDS.items() if [w for w in caption if w in words] != [w for w in other if w in words]}
            assert kinds == changed, (caption, other)


def test_captions_name_colours_classes_relation_and_background(tmp_path):
    split = load(tmp_path)
    words = set(" ".join(split.captions[:5]).split())
    assert words & {"left", "right", "above", "below", "over", "under", "beneath"}
    assert len(split.captions) == 5 * split.n_images


def test_entanglement_mixes_overlapping_regions(tmp_path):
    clean, mixed = load(tmp_path, "clean", noise=0.0), load(tmp_path, "mixed", noise=0.0, entangle=0.5, fresh_train_noise=False)
    assert not np.allclose(clean.regions, mixed.regions)


def test_the_computed_feature_dims_are_those_of_a_generated_train_split(tmp_path):
    """`variants --details` counts parameters from dims it computes; a train split that holds every word agrees."""
    from benchmark.runner import feature_dims as dims_of_split

    cfg = SyntheticConfig(**SMALL | dict(train_groups=60))
    train = load_split(ensure_dataset(cfg, tmp_path) / "synthetic_precomp", "train")
    assert feature_dims(cfg) == dims_of_split(train, len(Vocabulary.build(train.captions)))


def test_the_crowded_split_fills_every_region_slot_with_an_object_and_leaves_the_other_splits_alone(tmp_path):
    cfg = SyntheticConfig(**SMALL | dict(n_regions=16, noise=0.0))
    roots = [ensure_dataset(c, tmp_path / name) / "synthetic_precomp"
             for name, c in (("a", cfg), ("b", dataclasses.replace(cfg, crowded_groups=5)))]
    for split in ("train", "dev", "test"):
        a, b = (load_split(root, split) for root in roots)
        np.testing.assert_array_equal(a.regions, b.regions)
        np.testing.assert_array_equal(a.grid, b.grid)
        assert a.captions == b.captions
    crowded = load_split(roots[0], "crowded")
    assert crowded_objects(cfg) == 5 > cfg.objects_per_image
    object_regions = (np.abs(crowded.regions).sum(axis=-1) > 0).sum(axis=1)  # noise 0: clutter regions are zero
    assert (object_regions == 5 * cfg.regions_per_object).all()
    assert crowded.twins.shape == (cfg.crowded_groups, 5)
