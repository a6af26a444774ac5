"""Dev selection: rSum plus the probes of the twin kinds in training, never a held-out kind."""

import numpy as np
import pytest

from benchmark.config import TrainConfig
from benchmark.evaluation import Evaluation
from benchmark.training import selection_score


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
