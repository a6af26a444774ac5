"""Fairness as a test: every one-component pair of the default ablation grid changes exactly one thing.

Both models of each pair are built, and their parameters (names and shapes) may differ only inside
the module of the component under test; the pairs that isolate one design choice differ nowhere else.
"""

from __future__ import annotations

import pytest
from conftest import tiny_config

from benchmark.ablate.grid import load_grid
from benchmark.cli import main
from benchmark.reproducibility import seed_everything
from benchmark.variant_catalogue import grid_pairs, parameter_difference
from variants import FeatureDims, build_model, one_component_pairs, parse_variant

DIMS = FeatureDims(region_dim=16, n_regions=10, vocab_size=30, grid_dim=8, grid_cells=9)


@pytest.fixture(scope="module")
def pairs():
    return {(p.baseline, p.variant): p for p in grid_pairs("dsrln", tiny_config().model, DIMS)}


def test_every_pair_of_the_default_grid_differs_only_inside_its_component(pairs):
    assert len(pairs) >= 15
    for pair in pairs.values():
        assert all(name.startswith(f"{pair.axis}.") for name in pair.differing), (pair.baseline, pair.variant, pair.modules)


@pytest.mark.parametrize("query_norm", [False, True])
def test_sa_to_gisa_adds_the_geometry_parameters_and_nothing_else(query_norm):
    cfg = tiny_config(model={"query_norm": query_norm}).model
    pair = parameter_difference("sa", "gisa", "relation", cfg, DIMS)
    assert pair.modules == ["relation.biases"]
    geometry = 64 * cfg.num_heads + cfg.num_heads + 64 * cfg.embed_dim  # W_G (with bias) and NG-SAN's G (no bias)
    assert pair.variant_count - pair.baseline_count == cfg.num_layers * geometry
    with_values = parameter_difference("sa", "gisa", "relation", tiny_config(model={"gisa_values": True}).model, DIMS)
    assert with_values.modules == ["relation.biases", "relation.values"]


def test_the_controls_isolate_one_design_choice(pairs):
    assert pairs[("sa", "sa-pos")].modules == ["relation.position"]  # absolute position: one box embedding
    unmasked = pairs[("gisa+dif-unmasked", "gisa+dif")]
    assert unmasked.differing == ()  # the box mask alone
    matched = pairs[("gisa+concat-matched", "gisa+dif")]
    assert matched.baseline_count == matched.variant_count  # the interaction alone, at equal capacity
    assert matched.modules == ["source.grid_mixer", "source.grid_to_region", "source.region_mixer", "source.region_to_grid"]
    assert pairs[("gisa+dif", "gisa+dif+hier")].differing == ()  # alignment has no parameters


def test_every_pair_starts_its_shared_parameters_from_the_same_weights_under_one_seed():
    """Each part is initialised from its own seed, so GISA's extra parameters do not shift the text encoder's."""
    labels = [parse_variant(v).display for v in load_grid("dsrln").variants]
    for baseline, variant, _ in one_component_pairs(labels):
        weights = []
        for spec in (baseline, variant):
            seed_everything(0)
            weights.append(dict(build_model(tiny_config(model={"variant": spec}).model, DIMS).named_parameters()))
        shared = weights[0].keys() & weights[1].keys()
        assert shared and all(weights[0][n].equal(weights[1][n]) for n in shared if weights[0][n].shape == weights[1][n].shape), \
            (baseline, variant)


def test_variants_details_prints_each_pairs_difference(capsys, tmp_path):
    assert main(["variants", "--details", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sa -> gisa (relation)" in out and "differ in relation.biases" in out
    assert "gisa+dif-unmasked -> gisa+dif (source)" in out and "the same parameters" in out
    assert not any(tmp_path.iterdir())  # the synthetic dims are computed: no dataset is generated
