"""Twin probes against outcomes worked out by hand on small similarity matrices."""

from __future__ import annotations

import numpy as np

from benchmark.probes import probe_accuracy, probe_outcomes


def test_probe_outcomes_compare_each_base_caption_with_each_twin_exactly():
    # Two groups of four images ([base, layout, scene, attribute]) in an order that is not the identity,
    # so that rows and columns cannot be confused: group 0 is images 4..7, group 1 is images 0..3.
    twins = np.array([[4, 5, 6, 7], [0, 1, 2, 3]])
    sims = np.zeros((8, 40))
    own = {4: [0.9, 0.9, 0.9, 0.9, 0.9], 0: [0.5, 0.5, 0.5, 0.5, 0.5]}
    for image, scores in own.items():
        sims[image, image * 5:image * 5 + 5] = scores
    # Group 0's captions 20..24: the layout twin beats the base on captions 21 and 23, ties on 22 (a tie is a
    # failure: the base must score strictly higher); the scene twin loses everywhere; the attribute twin wins on 24.
    sims[5, 20:25] = [0.1, 0.95, 0.9, 0.99, 0.2]
    sims[6, 20:25] = 0.0
    sims[7, 20:25] = [0.0, 0.0, 0.0, 0.0, 1.0]
    # Group 1's captions 0..4: every twin loses except the scene twin on caption 0.
    sims[2, 0] = 0.7
    outcomes = probe_outcomes(sims, twins)
    assert outcomes["layout"].tolist() == [True, False, False, False, True] + [True] * 5
    assert outcomes["scene"].tolist() == [True] * 5 + [False, True, True, True, True]
    assert outcomes["attribute"].tolist() == [True, True, True, True, False] + [True] * 5
    assert probe_accuracy(outcomes) == {"probe_layout": 70.0, "probe_scene": 90.0, "probe_attribute": 90.0}


def test_a_model_that_cannot_tell_twins_apart_is_at_zero_not_at_chance():
    """Identical embeddings of base and twin give ties, and a tie never counts for the base."""
    twins = np.array([[0, 1, 2, 3]])
    sims = np.ones((4, 20))
    assert all(not hits.any() for hits in probe_outcomes(sims, twins).values())
