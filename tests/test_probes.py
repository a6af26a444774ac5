"""Twin probes against outcomes worked out by hand on small similarity matrices."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.probes import GROUP_CHANCE, PROBES, group_outcomes, informative, probe_accuracy, probe_outcomes


def test_probe_outcomes_compare_each_base_caption_with_each_twin_exactly():
    # Two groups of five images ([base, layout, binding, context, scene]) in an order that is not the identity,
    # so that rows and columns cannot be confused: group 0 is images 5..9, group 1 is images 0..4. Columns are
    # the base captions only: group 0's are 0..4, group 1's are 5..9.
    twins = np.array([[5, 6, 7, 8, 9], [0, 1, 2, 3, 4]])
    sims = np.zeros((10, 10))
    sims[5, 0:5] = 0.9
    sims[0, 5:10] = 0.5
    # Group 0: the layout twin beats the base on captions 1 and 3 and ties on 2; the binding twin loses everywhere;
    # the context twin ties within float rounding everywhere; the scene twin wins on caption 4.
    sims[6, 0:5] = [0.1, 0.95, 0.9, 0.99, 0.2]
    sims[8, 0:5] = 0.9 + 1e-7
    sims[9, 0:5] = [0.0, 0.0, 0.0, 0.0, 1.0]
    # Group 1: every twin loses except the scene twin on its caption 0.
    sims[4, 5] = 0.7
    outcomes = probe_outcomes(sims, twins)
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
    twins = np.array([[0, 1, 2, 3, 4]])
    accuracy = probe_accuracy(probe_outcomes(np.ones((5, 5)), twins))
    for kind in PROBES:
        assert accuracy[f"probe_{kind}"] == 50.0
        assert accuracy[f"probe_{kind}_group"] == pytest.approx(GROUP_CHANCE)


def test_group_score_needs_every_caption():
    assert group_outcomes(np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0.0])).tolist() == [1.0, 0.0]


@pytest.mark.parametrize(("accuracies", "expected"), [
    ({"a": (100.0, 99.0), "b": (96.0, 94.0)}, False),  # saturated: everyone passes
    ({"a": (52.0, 49.0), "b": (50.0, 50.0)}, False),  # dead: no one is above chance
    ({"a": (100.0, 99.0), "b": (50.0, 50.0)}, True),
    ({"a": (60.0, 55.0), "b": (50.0, 48.0)}, True),
    ({}, False),
])
def test_informative_needs_headroom_and_someone_above_chance(accuracies, expected):
    assert informative(accuracies) is expected
