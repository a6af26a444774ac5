"""GISA against a naive reference, its embedding's direction on every band, and the position control."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_config

from benchmark.reproducibility import seed_everything
from variants import FeatureDims, ImageBatch, build_model
from variants.relation_gisa import (
    FREQUENCY_SPREAD,
    GEOMETRY_DIM,
    GEOMETRY_RANGE,
    relative_geometry,
    sinusoidal_embedding,
)

DIMS = FeatureDims(region_dim=6, n_regions=4, vocab_size=10)
BOXES = torch.tensor([[[0.0, 0.0, 0.3, 0.3], [0.6, 0.0, 0.9, 0.3], [0.1, 0.5, 0.4, 0.9], [0.5, 0.6, 0.7, 0.8]]])


def _sin_bands(coordinate: torch.Tensor) -> torch.Tensor:
    """The sin half of the embedding of an x-offset alone: (N, bands)."""
    geometry = torch.zeros(len(coordinate), 4, dtype=torch.float64)
    geometry[:, 0] = coordinate
    return sinusoidal_embedding(geometry).view(len(coordinate), 4, 2, GEOMETRY_DIM // 8)[:, 0, 0]


def test_every_band_of_the_geometry_embedding_tells_left_from_right():
    ratios = torch.logspace(-3, 3, 400, dtype=torch.float64)  # |dx| / w over every box the loader allows
    right, left = torch.log1p(ratios), -torch.log1p(ratios)  # the signed coordinate s(dx / w)
    assert torch.all(_sin_bands(right) > 0) and torch.all(_sin_bands(left) < 0)  # each band alone reads direction
    assert torch.all(right <= GEOMETRY_RANGE + 1e-9)
    # ORT's scale (100 x coordinate, frequencies down to 1/1000) wraps its high bands: their sign no longer
    # follows the offset's, which is why the embedding's scale was changed.
    ort = torch.sin(100 * right[:, None] * 1000.0 ** (-torch.arange(8, dtype=torch.float64) / 8))
    assert (ort <= 0).any(0).sum() >= 4
    assert FREQUENCY_SPREAD > 1


def naive_gisa(encoder, regions: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """One GISA layer spelled out pair by pair: logits q.k/sqrt(d) + log(softplus(W_G e_ij)) + q_i.W_K e_ij/sqrt(d),
    output sum_j a_ij (v_j + W_V e_ij), then the block's projection, residuals, norms and feed-forward."""
    block, bias = encoder.blocks[0], encoder.biases[0]
    values = encoder.values[0] if encoder.values is not None else None
    heads, d = block.heads, regions.shape[-1] // block.heads
    embedding = sinusoidal_embedding(relative_geometry(boxes))[0]  # (R, R, G)
    q, k, v = block.qkv(regions[0]).chunk(3, dim=-1)
    n = regions.shape[1]
    out = torch.zeros(n, heads * d, dtype=regions.dtype)
    for h in range(heads):
        part = slice(h * d, (h + 1) * d)
        for i in range(n):
            logits = torch.zeros(n, dtype=regions.dtype)
            for j in range(n):
                logits[j] = q[i, part] @ k[j, part] / math.sqrt(d)
                if bias.weights is not None:
                    logits[j] += torch.log(torch.nn.functional.softplus(bias.weights(embedding[i, j])[h]))
                if bias.keys is not None:
                    logits[j] += q[i, part] @ (bias.keys.weight[part] @ embedding[i, j]) / math.sqrt(d)
            weights = torch.softmax(logits, dim=0)
            for j in range(n):
                relative = values.values.weight[part] @ embedding[i, j] if values is not None else 0.0
                out[i, part] += weights[j] * (v[j, part] + relative)
    x = block.norm1(regions[0] + block.out(out))
    return block.norm2(x + block.ffn(x))[None]


@pytest.mark.parametrize("values", [False, True])
@pytest.mark.parametrize("aspects", [(True, True), (True, False), (False, True)])
def test_gisa_equals_a_naive_pair_by_pair_reference(values, aspects):
    seed_everything(0)
    geometry, interaction = aspects
    cfg = tiny_config(model={"variant": "gisa", "dropout": 0.0, "gisa_values": values, "gisa_geometry": geometry,
                             "gisa_interaction": interaction}).model
    model = build_model(cfg, DIMS).double().eval()
    regions = torch.randn(1, 4, cfg.embed_dim, dtype=torch.float64)
    got = model.relation(regions, ImageBatch(regions, BOXES.double()))
    torch.testing.assert_close(got, naive_gisa(model.relation, regions, BOXES.double()))


def test_the_geometry_weight_learns_even_where_it_starts_negative_for_every_pair():
    model = build_model(tiny_config(model={"variant": "gisa", "gisa_interaction": False}).model, DIMS)
    weights = model.relation.biases[0].weights
    with torch.no_grad():
        weights.bias.fill_(-5.0)  # w_G < 0 for every pair: ORT's relu-log would pass no gradient at all
    regions = torch.randn(2, 4, 6)
    model.encode_images(ImageBatch(regions, BOXES.expand(2, -1, -1))).pooled.sum().backward()
    assert weights.weight.grad.abs().sum() > 0


def test_the_interaction_term_has_no_bias_that_would_cancel_in_the_softmax():
    model = build_model(tiny_config(model={"variant": "gisa"}).model, DIMS)
    assert model.relation.biases[0].keys.bias is None


@pytest.mark.parametrize("spec", ["gisa", "sa-pos"])
def test_position_aware_encoders_see_a_box_swap(spec):
    seed_everything(0)
    model = build_model(tiny_config(model={"variant": spec, "dropout": 0.0}).model, DIMS).eval()
    regions = torch.randn(1, 4, 6)
    swapped = BOXES[:, [1, 0, 2, 3]]
    assert not torch.allclose(model.encode_images(ImageBatch(regions, BOXES)).local,
                              model.encode_images(ImageBatch(regions, swapped)).local, atol=1e-6)
