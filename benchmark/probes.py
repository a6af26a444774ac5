"""Twin probes on the synthetic data: does a base image outscore its twin for the base's captions?

Pure functions over the scores of each group's images (the base and its twins) against the
**base's captions**. Per caption, a win scores 1, a tie ½ and a loss 0: a model that cannot tell the pair apart
scores ties (equal up to float rounding, ``TIE``), so it sits at chance, not at 0. The **group** score of a base is the product of
its five captions' outcomes: 1 when every caption prefers the base (Winoground's group score, What's
Up's set accuracy); its chance is ½⁵ ≈ 3.1%. Outcomes are kept per caption and per group for paired tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.data.layout import CAPTIONS_PER_IMAGE, CROWDED_PROBE, PROBE_KINDS, TWIN_KINDS

CAPTION_CHANCE = 50.0  # % of captions that prefer the base, for a model that cannot tell the pair apart
GROUP_CHANCE = 100.0 * 0.5**CAPTIONS_PER_IMAGE  # % of bases all of whose captions prefer it, by chance
TIE = 1e-5  # scores closer than this are equal (float rounding of identical embeddings summed in another order)
SATURATED = 95.0  # a probe every variant passes at this accuracy or more is not informative


@dataclass(frozen=True)
class Probe:
    """What one twin probe measures, and the controls that make it valid."""

    kind: str
    capability: str
    twin: str  # what differs between the base and its twin
    blind: str  # a variant that cannot tell the pair apart by construction (tested), so sits at chance
    positive: str  # the variant that has the capability and should solve it


PROBES = {probe.kind: probe for probe in (
    Probe("layout", "relation direction (GISA)", "the mentioned objects swap boxes", "sa", "gisa"),
    Probe("binding", "word-region binding (local + global alignment)", "the mentioned objects swap colours", "none", "dsrln"),
    Probe("context", "region-grid correspondence (DIF)", "the mentioned objects swap surfaces (grid only)", "gisa+concat", "gisa+dif"),
    Probe("scene", "global context (grid vs region)", "the background changes (grid only)", "gisa", "gisa+dif"),
    Probe(CROWDED_PROBE, "word-region binding among distractors (local + global alignment)",
          "the mentioned objects swap colours, among as many objects as the regions hold", "none", "dsrln"),
)}
assert tuple(PROBES) == PROBE_KINDS


def captions_of(images: np.ndarray) -> np.ndarray:
    """(len(images), 5) caption indices of the given images (image ``i`` owns captions ``5 i .. 5 i + 4``)."""
    return np.asarray(images)[:, None] * CAPTIONS_PER_IMAGE + np.arange(CAPTIONS_PER_IMAGE)


def probe_outcomes(scores: np.ndarray) -> dict[str, np.ndarray]:
    """Per twin kind, per base caption (group-major): 1 (base scores higher), ½ (tie) or 0.

    ``scores`` is ``(n_groups, 1 + len(TWIN_KINDS), 5)``: each image of a group (the base first, then its
    twins in ``TWIN_KINDS`` order) scored against the base's five captions."""
    margins = scores[:, :1] - scores[:, 1:]
    return {kind: np.where(np.abs(margin) <= TIE, 0.5, (margin > 0).astype(float)).ravel()
            for kind, margin in zip(TWIN_KINDS, margins.transpose(1, 0, 2), strict=True)}


def group_outcomes(outcomes: np.ndarray) -> np.ndarray:
    """Per base: the product of its five captions' outcomes (1 only when every caption prefers the base)."""
    return outcomes.reshape(-1, CAPTIONS_PER_IMAGE).prod(axis=1)


def probe_accuracy(outcomes: dict[str, np.ndarray]) -> dict[str, float]:
    """``probe_<kind>`` (per caption, chance 50) and ``probe_<kind>_group`` (per base, chance 3.1), in %."""
    out = {}
    for kind, hits in outcomes.items():
        out[f"probe_{kind}"] = float(100.0 * hits.mean())
        if kind in PROBES:
            out[f"probe_{kind}_group"] = float(100.0 * group_outcomes(hits).mean())
    return out


def informative(accuracies: dict[str, tuple[float, ...]]) -> bool:
    """Whether a probe can separate the variants of a grid: ``accuracies`` maps each variant to its
    per-caption accuracy as (mean, lower 95% bound, ...). Not when every variant reaches ``SATURATED``,
    nor when none is above chance (its lower bound above ``CAPTION_CHANCE``)."""
    if not accuracies:
        return False
    saturated = all(values[0] >= SATURATED for values in accuracies.values())
    above_chance = any(values[1] > CAPTION_CHANCE for values in accuracies.values())
    return above_chance and not saturated
