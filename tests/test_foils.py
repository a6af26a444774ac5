"""Caption foils: the rules on hand-written captions, and the probe against a brute-force scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config

from benchmark.config import EvalConfig
from benchmark.data.loader import Split
from benchmark.data.vocab import Vocabulary
from benchmark.evaluation import encode_split, foil_outcomes, similarity_matrix
from benchmark.foils import make_foils, shuffle_words, swap_nouns, swap_spatial
from benchmark.reproducibility import seed_everything
from variants import FeatureDims, build_model


@pytest.mark.parametrize("caption, foil", [
    ("a dog chasing a cat", "a cat chasing a dog"),
    ("A man sits on a bench", "A bench sits on a man"),
    ("A red dog left of a blue cat in the park .", "A red cat left of a blue dog in the park ."),
    # README: the heads of the first two determiner phrases; "shaggy hair" has no determiner, so it is not one
    ("Two young guys with shaggy hair look at their hands .", "Two young hands with shaggy hair look at their guys ."),
    ("a dog and a dog", None),  # the same noun twice: nothing to swap
    ("people walking", None),  # no determiner phrase
])
def test_noun_swaps(caption, foil):
    assert swap_nouns(caption) == foil


@pytest.mark.parametrize("caption, foil", [
    ("a cup on a table", "a cup under a table"),
    ("the dog is left of the cat", "the dog is right of the cat"),
    ("A bird above the water .", "A bird below the water ."),
    ("a dog chasing a cat", None),
])
def test_spatial_swaps(caption, foil):
    assert swap_spatial(caption) == foil


def test_shuffles_are_deterministic_and_differ():
    caption = "a brown dog runs across the green grass"
    assert shuffle_words(caption) == shuffle_words(caption) != caption
    assert sorted(shuffle_words(caption).split()) == sorted(caption.split())
    assert shuffle_words("dogs") is None and shuffle_words("dog dog") is None


def test_make_foils_reports_which_captions_each_rule_foiled():
    foils = make_foils(["a dog chasing a cat", "dogs", "a cup on a table"])
    assert foils["nouns"][0].tolist() == [0, 2] and foils["spatial"][0].tolist() == [2]
    assert foils["shuffle"][0].tolist() == [0, 2]


def test_foil_outcomes_match_brute_force_scoring():
    seed_everything(0)
    captions = [f"a {a} near a {b}" for a, b in [("dog", "cat"), ("cup", "table"), ("man", "horse"), ("bird", "tree"),
                                                  ("car", "bus")] for _ in range(2)] * 2  # 4 images x 5 captions
    vocab = Vocabulary.build(captions + ["a cat near a dog"], 1)
    regions = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
    split = Split("test", regions, 1, captions)
    model = build_model(tiny_config(model={"variant": "sa+local"}).model,
                        FeatureDims(region_dim=6, n_regions=5, vocab_size=len(vocab))).eval()
    tokenize = model.tokenizer(vocab)
    cfg, device = EvalConfig(batch_size=3, image_chunk=2), torch.device("cpu")
    images, texts = encode_split(model, split, [tokenize(c) for c in captions], cfg, device)
    sims = similarity_matrix(model, images, texts, cfg, device)
    index, foil_text = make_foils(captions)["nouns"]
    foil_ids = [tokenize(f) for f in foil_text]
    outcomes = foil_outcomes(model, images, sims, index, foil_ids, cfg, device)
    _, foil_embedding = encode_split(model, Split("foils", regions, 1, foil_text + [""] * (20 - len(foil_text))),
                                     foil_ids + [[0]] * (20 - len(foil_ids)), cfg, device)
    foil_sims = similarity_matrix(model, images, foil_embedding, cfg, device)
    expected = sims[index // 5, index] > foil_sims[index // 5, np.arange(len(index))]
    assert len(index) == 20 and np.array_equal(outcomes, expected)
