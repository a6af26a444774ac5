"""Dev selection: rSum plus the probes of the twin kinds in training, never a held-out kind; the latest
epoch within noise of the peak is kept."""

import numpy as np
import pytest

from benchmark.config import TrainConfig
from benchmark.evaluation import Evaluation, score
from benchmark.training import EpochRecord, Progress, select, selection_score, selection_shares


def dev(probes: dict[str, float]) -> Evaluation:
    metrics = {"rsum": 500.0} | {f"probe_{k}": v for k, v in probes.items()} | {f"probe_{k}_group": 0.0 for k in probes}
    return Evaluation(metrics, probes={k: np.ones(5, bool) for k in probes})


def test_the_score_adds_the_probes_of_trained_kinds_only():
    evaluation = dev({"layout": 90.0, "binding": 70.0, "context": 60.0})
    assert selection_score(evaluation, TrainConfig(held_out_twins=["binding"])) == 500.0 + 90.0 + 60.0
    assert selection_score(evaluation, TrainConfig(held_out_twins=[])) == 500.0 + 90.0 + 70.0 + 60.0


@pytest.mark.parametrize("evaluation, cfg", [
    (dev({"layout": 90.0}), TrainConfig(select_on_probes=False)),  # the rSum-only rule, by choice
    (dev({}), TrainConfig()),  # real data: no twins
])
def test_without_probes_the_score_is_rsum(evaluation, cfg):
    assert selection_score(evaluation, cfg) == 500.0


def test_each_dev_images_shares_average_to_the_selection_score():
    rng = np.random.default_rng(0)
    n_images = 12
    probes = {kind: rng.choice([0.0, 0.5, 1.0], 5 * n_images) for kind in ("layout", "binding", "context")}
    evaluation = score(rng.normal(size=(n_images, 5 * n_images)), probes=probes)
    cfg = TrainConfig(held_out_twins=["binding"])
    assert selection_shares(evaluation, cfg).mean() == pytest.approx(selection_score(evaluation, cfg), abs=1e-9)


def peak_then(score_after: float, spread: float, tolerance_se: float = 1.0) -> Progress:
    """Selection after epoch 1 scores 100 on 100 dev images, and epoch 2 ``score_after`` with a
    paired per-image difference of standard deviation ``spread`` (standard error ``spread / 10``)."""
    shares = np.full(100, 100.0)
    progress = select(Progress(), 1, 100.0, shares, tolerance_se)
    noise = np.tile([spread, -spread], 50) * np.sqrt(99 / 100)  # sample std (ddof 1) exactly `spread`
    return select(progress, 2, score_after, shares + (score_after - 100.0) + noise, tolerance_se)


@pytest.mark.parametrize("score_after, spread, tolerance_se, kept", [
    (101.0, 0.0, 1.0, 2),  # a new peak
    (99.0, 20.0, 1.0, 2),  # 1 below the peak, standard error 2: noise, the later epoch is kept
    (99.0, 20.0, 0.4, 1),  # ... unless the tolerance is under half an error
    (95.0, 20.0, 1.0, 1),  # 5 below, 2.5 errors: worse, the peak stays
    (99.0, 0.0, 1.0, 1),  # every image lower by 1: no noise, worse
    (100.0, 0.0, 0.0, 2),  # tolerance 0: a tie with the peak still keeps the later epoch
])
def test_selection_keeps_the_latest_epoch_within_noise_of_the_peak(score_after, spread, tolerance_se, kept):
    progress = peak_then(score_after, spread, tolerance_se)
    assert progress.best_epoch == kept and progress.best_score == (100.0 if kept == 1 else score_after)
    assert progress.peak_epoch == (2 if score_after > 100.0 else 1) and progress.epoch == 2


def test_a_later_epoch_is_tested_against_the_peak_not_against_the_epoch_kept_last():
    shares = np.full(100, 100.0)
    noise = np.tile([20.0, -20.0], 50) * np.sqrt(99 / 100)
    progress = select(Progress(), 1, 100.0, shares, 1.0)
    progress = select(progress, 2, 99.0, shares - 1.0 + noise, 1.0)  # kept: within 1 error (2) of the peak
    progress = select(progress, 3, 97.5, shares - 2.5 + noise, 1.0)  # within 2 of epoch 2, but 2.5 below the peak
    assert (progress.best_epoch, progress.peak_epoch) == (2, 1)


@pytest.mark.parametrize("epoch, is_best, peak_epoch, note", [
    (3, True, 3, "(best)"),
    (5, True, 3, "(kept: within noise of epoch 3)"),
    (4, False, 3, ""),
])
def test_the_epoch_line_says_whether_selection_kept_the_epoch_and_why(epoch, is_best, peak_epoch, note):
    record = EpochRecord(epoch, 1.0, 1.0, 1.0, 1e-3, dev({}), 500.0, is_best, peak_epoch)
    assert record.selection_note() == note
