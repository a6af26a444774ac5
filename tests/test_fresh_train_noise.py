"""Fresh training noise: the synthetic train split is written clean and each training batch draws its noise anew."""

import dataclasses

import numpy as np
import torch

from benchmark import config, runner
from benchmark.config import SyntheticConfig
from benchmark.data.datasets import train_feature_noise
from benchmark.data.inspection import generate
from benchmark.data.loader import load_split
from benchmark.data.synthetic import ensure_dataset
from benchmark.training import fit, with_feature_noise
from variants import ImageBatch

SMALL = dict(train_groups=3, dev_groups=2, test_groups=2, n_regions=10, region_dim=12, grid_size=3, grid_dim=6)


def test_noise_is_fresh_each_batch_on_regions_and_grid_and_leaves_boxes_alone():
    images = ImageBatch(regions=torch.zeros(400, 10, 16), boxes=torch.rand(400, 10, 4), grid=torch.zeros(400, 9, 8))
    torch.manual_seed(0)
    first, second = with_feature_noise(images, 0.5), with_feature_noise(images, 0.5)
    assert abs(first.regions.std().item() - 0.5) < 0.01 and abs(first.grid.std().item() - 0.5) < 0.01
    assert not torch.equal(first.regions, second.regions) and not torch.equal(first.grid, second.grid)
    assert first.boxes is images.boxes
    assert images.regions.abs().sum() == 0  # the batch itself is not changed
    assert with_feature_noise(images, 0.0) is images
    assert with_feature_noise(ImageBatch(regions=torch.zeros(2, 3, 4)), 1.0).grid is None


def _splits(tmp_path, fresh: bool):
    root = ensure_dataset(SyntheticConfig(**SMALL, fresh_train_noise=fresh), tmp_path / str(fresh))
    return {name: load_split(root / "synthetic_precomp", name) for name in ("train", "test")}


def test_only_the_train_split_is_written_without_noise_and_its_scenes_stay_the_same(tmp_path):
    fresh, fixed = _splits(tmp_path, True), _splits(tmp_path, False)
    clutter = lambda split: split.regions[np.abs(split.regions).sum(axis=2) < 1e-6]  # object-free regions, noise-free
    assert len(clutter(fresh["train"])) == fresh["train"].n_images * (10 - 3 * 3) and len(clutter(fixed["train"])) == 0
    np.testing.assert_array_equal(fresh["test"].regions, fixed["test"].regions)  # dev and test keep their draws
    np.testing.assert_array_equal(fresh["test"].grid, fixed["test"].grid)
    assert fresh["train"].captions == fixed["train"].captions  # one random stream: the same scenes, boxes and words
    np.testing.assert_array_equal(fresh["train"].boxes, fixed["train"].boxes)


def test_the_noise_drawn_is_the_datasets_on_synthetic_data_only():
    synthetic = config.resolve(None)
    assert synthetic.data.synthetic.fresh_train_noise and train_feature_noise(synthetic.data) == synthetic.data.synthetic.noise
    assert train_feature_noise(config.resolve(None, {"data": {"synthetic": {"fresh_train_noise": False}}}).data) == 0.0
    for preset in ("f30k", "coco"):
        assert train_feature_noise(config.resolve(preset).data) == 0.0, preset


def _one_epoch(tiny, tmp_path, with_noise: bool) -> dict[str, torch.Tensor]:
    cfg = tiny(model={"variant": "gisa+dif", "dropout": 0.0}, train={"epochs": 1})
    prepared = runner.prepare(cfg, tmp_path)
    data = prepared.training_data()
    assert data.train_noise == cfg.data.synthetic.noise
    torch.manual_seed(0)
    fit(prepared.model, data if with_noise else dataclasses.replace(data, train_noise=0.0), cfg, prepared.device,
        tmp_path / f"checkpoints-{with_noise}", meta={})
    return prepared.model.state_dict()


def test_training_draws_the_noise_and_the_same_seed_draws_the_same(tiny, tmp_path):
    clean, noisy, again = (_one_epoch(tiny, tmp_path, noise) for noise in (False, True, True))
    assert any(not torch.equal(clean[name], noisy[name]) for name in clean)
    assert all(torch.equal(noisy[name], again[name]) for name in noisy)


def test_data_generate_says_how_the_noise_is_drawn(tmp_path):
    assert "drawn afresh for each training batch" in generate(SyntheticConfig(**SMALL), tmp_path)
    assert "one draw per group in every split" in generate(SyntheticConfig(**SMALL, fresh_train_noise=False), tmp_path)
