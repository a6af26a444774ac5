"""Twin probes on the synthetic data: does a base image outscore its twin for the base's captions?

Pure functions over a similarity matrix and the ``(n_groups, 4)`` twin table
``[base, layout, scene, attribute]``. Outcomes are kept per caption for paired tests.
"""

from __future__ import annotations

import numpy as np

from benchmark.data.layout import CAPTIONS_PER_IMAGE, TWIN_KINDS


def probe_outcomes(sims: np.ndarray, twins: np.ndarray) -> dict[str, np.ndarray]:
    """Per base caption and twin kind: True when the base image scores strictly higher."""
    base = twins[:, 0]
    captions = base[:, None] * CAPTIONS_PER_IMAGE + np.arange(CAPTIONS_PER_IMAGE)
    true_scores = sims[base[:, None], captions]
    return {
        kind: (true_scores > sims[twins[:, column][:, None], captions]).ravel()
        for column, kind in enumerate(TWIN_KINDS, start=1)
    }


def probe_accuracy(outcomes: dict[str, np.ndarray]) -> dict[str, float]:
    """``probe_<kind>``: percent of base captions that prefer the base image (chance is 50)."""
    return {f"probe_{kind}": float(100.0 * hits.mean()) for kind, hits in outcomes.items()}
