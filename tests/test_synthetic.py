"""The synthetic diagnostic dataset: deterministic, twins built as designed."""

import numpy as np

from benchmark.config import SyntheticConfig
from benchmark.data.loader import load_split
from benchmark.data.synthetic import INVERSE, ensure_dataset

RELATION_WORDS = {"left": "left", "right": "right", "above": "above", "over": "above",
                  "below": "below", "under": "below", "beneath": "below"}


def relation_of(caption: str) -> str:
    return next(RELATION_WORDS[word] for word in caption.split() if word in RELATION_WORDS)


SMALL = dict(train_groups=3, dev_groups=2, test_groups=2, n_regions=10, region_dim=12, grid_size=3, grid_dim=6)


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



def test_groups_of_four_with_the_designed_twins(tmp_path):
    split = load(tmp_path, noise=0.0)
    base, layout, scene, attribute = split.twins[0]
    caption = split.captions[base * 5]
    # layout twin: the relation inverts; features are the same set (noise 0), only boxes moved
    assert relation_of(split.captions[layout * 5]) == INVERSE[relation_of(caption)]
    sort = lambda x: np.sort(x.reshape(len(x), -1), axis=0)  # noqa: E731
    np.testing.assert_allclose(sort(split.image_regions([base])[0]), sort(split.image_regions([layout])[0]), atol=1e-6)
    # scene twin: region features identical as a set (no background in regions), grid differs
    np.testing.assert_allclose(sort(split.image_regions([base])[0]), sort(split.image_regions([scene])[0]), atol=1e-6)
    assert not np.allclose(split.grid[base], split.grid[scene])
    assert caption.split()[-1] != split.captions[scene * 5].split()[-1]  # the background word changed
    # attribute twin: one colour word changed
    assert not np.allclose(sort(split.image_regions([base])[0]), sort(split.image_regions([attribute])[0]))


def test_captions_name_colours_classes_relation_and_background(tmp_path):
    split = load(tmp_path)
    words = set(" ".join(split.captions[:5]).split())
    assert words & {"left", "right", "above", "below", "over", "under", "beneath"}
    assert len(split.captions) == 5 * split.n_images


def test_entanglement_mixes_overlapping_regions(tmp_path):
    clean, mixed = load(tmp_path, "clean", noise=0.0), load(tmp_path, "mixed", noise=0.0, entangle=0.5)
    assert not np.allclose(clean.regions, mixed.regions)
