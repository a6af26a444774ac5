"""Twin probes against outcomes worked out by hand on small similarity matrices."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data.layout import TWIN_KINDS
from benchmark.probes import GROUP_CHANCE, TIE, captions_of, group_outcomes, informative, probe_accuracy, probe_outcomes


def test_probe_outcomes_compare_each_base_caption_with_each_twin_exactly():
    # scores[g, i, c]: image i of group g ([base, layout, binding, context, scene]) against the base's caption c.
    scores = np.zeros((2, 5, 5))
    scores[0, 0] = 0.9
    scores[1, 0] = 0.5
    # Group 0: the layout twin beats the base on captions 1 and 3 and ties on 2; the binding twin loses everywhere;
    # the context twin ties within float rounding everywhere; the scene twin wins on caption 4.
    scores[0, 1] = [0.1, 0.95, 0.9, 0.99, 0.2]
    scores[0, 3] = 0.9 + 1e-7
    scores[0, 4] = [0.0, 0.0, 0.0, 0.0, 1.0]
    # Group 1: every twin loses except the scene twin on its caption 0.
    scores[1, 4, 0] = 0.7
    outcomes = probe_outcomes(scores)
    assert outcomes["layout"].tolist() == [1, 0, 0.5, 0, 1] + [1] * 5
    assert outcomes["binding"].tolist() == [1] * 10
    assert outcomes["context"].tolist() == [0.5] * 5 + [1] * 5
    assert outcomes["scene"].tolist() == [1, 1, 1, 1, 0] + [0, 1, 1, 1, 1]
    assert probe_accuracy(outcomes) == {
        "probe_layout": 75.0, "probe_layout_group": 50.0, "probe_binding": 100.0, "probe_binding_group": 100.0,
        "probe_context": 75.0, "probe_context_group": 100 * (0.5**5 + 1) / 2, "probe_scene": 80.0, "probe_scene_group": 0.0,
    }


def test_a_model_that_cannot_tell_twins_apart_sits_exactly_at_chance():
    """Identical embeddings of base and twin give ties, and a tie counts ½: chance per caption and per group."""
    accuracy = probe_accuracy(probe_outcomes(np.ones((1, 5, 5))))
    for kind in TWIN_KINDS:
        assert accuracy[f"probe_{kind}"] == 50.0
        assert accuracy[f"probe_{kind}_group"] == pytest.approx(GROUP_CHANCE)


def test_a_margin_of_exactly_the_tie_tolerance_is_a_tie_and_just_above_it_is_not():
    scores = np.zeros((1, 5, 5))
    scores[0, 1] = TIE  # the layout twin ahead by exactly TIE: a tie
    scores[0, 2] = 2 * TIE  # the binding twin ahead by more: a loss
    outcomes = probe_outcomes(scores)
    assert outcomes["layout"].tolist() == [0.5] * 5 and outcomes["binding"].tolist() == [0.0] * 5


def test_captions_of_an_image_are_its_five_rows():
    assert captions_of(np.array([0, 2])).tolist() == [[0, 1, 2, 3, 4], [10, 11, 12, 13, 14]]


def test_group_score_needs_every_caption():
    assert group_outcomes(np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0.0])).tolist() == [1.0, 0.0]


@pytest.mark.parametrize(("accuracies", "expected"), [
    ({"a": (100.0, 99.0), "b": (96.0, 94.0)}, False),  # saturated: everyone passes
    ({"a": (100.0, 99.0), "b": (95.0, 94.0)}, False),  # 95 is saturated too
    ({"a": (52.0, 49.0), "b": (50.0, 50.0)}, False),  # dead: no one is above chance
    ({"a": (100.0, 99.0), "b": (50.0, 50.0)}, True),
    ({"a": (60.0, 55.0), "b": (50.0, 48.0)}, True),
    ({}, False),
])
def test_informative_needs_headroom_and_someone_above_chance(accuracies, expected):
    assert informative(accuracies) is expected


def test_scores_missing_a_twin_kind_are_refused_not_read_as_fewer_probes():
    with pytest.raises(ValueError):  # e.g. a twins file from before a kind was added
        probe_outcomes(np.zeros((2, 4, 5)))
