"""Feature noise: an optional training augmentation of region and grid features (off by default)."""

import numpy as np
import torch

from benchmark import config, runner
from benchmark.data.batches import CaptionPairs, epoch_batches, training_groups
from benchmark.training import Trainer, with_feature_noise
from variants import ImageBatch


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


def test_it_is_off_unless_asked_for():
    for preset in (None, "f30k", "coco"):
        assert config.resolve(preset).train.feature_noise == 0.0, preset


def _one_epoch(tiny, tmp_path, noise: float) -> dict[str, torch.Tensor]:
    cfg = tiny(model={"variant": "gisa+dif", "dropout": 0.0}, train={"feature_noise": noise})
    prepared = runner.prepare(cfg, tmp_path)
    data = prepared.training_data()
    batches = epoch_batches(training_groups(data.train, True, []), cfg.train.batch_size, np.random.default_rng(0))
    torch.manual_seed(0)
    Trainer(prepared.model, cfg.train, prepared.device).train_epoch(CaptionPairs(data.train, data.train_tokens), batches, 1, 1)
    return prepared.model.state_dict()


def test_training_sees_the_noise_and_the_same_seed_draws_the_same(tiny, tmp_path):
    clean, noisy, again = (_one_epoch(tiny, tmp_path, noise) for noise in (0.0, 1.0, 1.0))
    assert any(not torch.equal(clean[name], noisy[name]) for name in clean)
    assert all(torch.equal(noisy[name], again[name]) for name in noisy)
