"""Every registered variant trains and evaluates through the one harness; component behaviour."""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import tiny_config

from benchmark.data.datasets import check_inputs, train_feature_noise
from benchmark.data.layout import DATASETS, TWIN_KINDS
from benchmark.data.loader import load_splits
from benchmark.data.synthetic import ensure_dataset
from benchmark.data.vocab import Vocabulary
from benchmark.errors import UserError
from benchmark.evaluation import evaluate
from benchmark.reproducibility import seed_everything
from benchmark.runner import feature_dims
from benchmark.training import TrainingData, fit
from variants import AXES, FeatureDims, ImageBatch, alignment_graph, build_model, parse_variant
from variants.alignment_local import local_similarity
from variants.relation_gisa import relative_geometry

def _valid(spec: str) -> bool:
    try:
        return bool(parse_variant(spec))
    except UserError:  # e.g. a relation encoder on the grid-only source
        return False


ALL_SPECS = [s for s in ("+".join(combo) for combo in itertools.product(*(registry.names() for registry in AXES.values()))) if _valid(s)]
# A pretrained encoder makes a combination ~10x slower, and the text encoder is independent of the other axes
# (it only produces word and caption embeddings): the full model runs by default, one other combination with
# -m slow, and the rest of the BERT combinations not at all.
FAST_BERT, SLOW_BERT = "gisa+dif+hier+bert", "none+grid+local+bert"
SPEC_PARAMS = [s for s in ALL_SPECS if not s.endswith("+bert")] + [FAST_BERT, pytest.param(SLOW_BERT, marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def tiny_splits(tmp_path_factory):
    cfg = tiny_config()
    root = ensure_dataset(cfg.data.synthetic, tmp_path_factory.mktemp("data"))
    return load_splits(DATASETS["synthetic"], root / "synthetic_precomp")


@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_every_variant_trains_one_epoch_and_evaluates(spec, tiny_splits, tmp_path):
    cfg = tiny_config(model={"variant": spec}, train={"epochs": 1, "batch_size": 20})
    seed_everything(0)
    train, dev, test = tiny_splits["train"], tiny_splits["dev"], tiny_splits["test"]
    vocab = Vocabulary.build(train.captions)
    model = build_model(cfg.model, feature_dims(train, len(vocab)))
    tokenize = model.tokenizer(vocab)
    data = TrainingData(train, [tokenize(c) for c in train.captions], dev, [tokenize(c) for c in dev.captions],
                        train_feature_noise(cfg.data))
    progress = fit(model, data, cfg, torch.device("cpu"), tmp_path, meta={})
    assert progress.epoch == 1 and np.isfinite(progress.best_score)
    result = evaluate(model, test, [tokenize(c) for c in test.captions], cfg.eval, torch.device("cpu"))
    assert len(result.ranks["i2t"]) == len(test.twins) and len(result.ranks["t2i"]) == 5 * len(test.twins)  # the bases
    assert np.isfinite(result.metrics["rsum"])
    for kind in blind_by_construction(spec):  # a trained model that cannot tell a twin apart scores ties: chance
        assert result.metrics[f"probe_{kind}"] == 50.0, (kind, result.metrics)
        assert result.metrics[f"probe_{kind}_group"] == pytest.approx(100 * 0.5**5)


def blind_by_construction(spec: str) -> set[str]:
    """The twins a variant cannot tell from their base, whatever its weights (see benchmark/data/synthetic.py)."""
    parsed = parse_variant(spec)
    blind = set()
    if parsed.source == "region":  # no grid: surfaces and background are invisible
        blind |= {"context", "scene"}
        if parsed.relation in ("sa", "none"):  # boxes unused: the layout twin's regions are the base's
            blind.add("layout")
        if parsed.relation == "none" and parsed.alignment == "global":  # a linear pool of class + colour
            blind.add("binding")
    if parsed.source == "grid":  # no regions: colours are invisible
        blind.add("binding")
        if parsed.alignment == "global":  # a linear pool of cells whose mean the layout and context twins keep
            blind |= {"layout", "context"}
    return blind


def test_a_source_without_regions_takes_no_relation_encoder():
    assert parse_variant("grid").name == "none+grid" == parse_variant("none+grid").name
    with pytest.raises(UserError, match="the 'grid' source uses no regions, so it takes no relation encoder; write 'none\\+grid'"):
        parse_variant("gisa+grid")


def test_the_dsrln_alias_and_defaults():
    assert parse_variant("dsrln") == parse_variant("gisa+dif+hier+bigru")
    assert parse_variant("gisa+dif").alignment == "global"
    assert [parse_variant(v).name for v in ("sa+dif", "sa", "dsrln")] == ["dif", "sa", "gisa+dif+hier"]
    assert [parse_variant(v).display for v in ("dif", "sa", "dsrln", "none+hier")] == ["sa+dif", "sa", "gisa+dif+hier", "none+hier"]


def test_variants_whose_inputs_are_missing_fail_fast():
    def split(**inputs):
        return SimpleNamespace(**({"boxes": None, "grid": None} | inputs))

    with pytest.raises(UserError, match="'gisa' needs boxes .*_boxes.npy"):
        check_inputs(parse_variant("gisa"), split())
    with pytest.raises(UserError, match="needs grid features .*_grid.npy"):
        check_inputs(parse_variant("sa+dif"), split(boxes=np.zeros(1)))
    with pytest.raises(UserError, match="needs boxes, grid features"):
        check_inputs(parse_variant("sa+dif"), split())
    check_inputs(parse_variant("sa+dif"), split(boxes=np.zeros(1), grid=np.zeros(1)))


def _relation(spec: str, **model):
    seed_everything(0)
    cfg = tiny_config(model={"variant": spec, "dropout": 0.0, **model}).model
    return build_model(cfg, FeatureDims(region_dim=6, n_regions=4, vocab_size=10)).eval()


def test_swapping_two_boxes_changes_gisa_and_not_vanilla_sa():
    regions = torch.randn(1, 4, 6)
    boxes = torch.tensor([[[0.0, 0.0, 0.3, 0.3], [0.6, 0.0, 0.9, 0.3], [0.1, 0.5, 0.4, 0.9], [0.5, 0.6, 0.7, 0.8]]])
    swapped = boxes[:, [1, 0, 2, 3]]
    for spec, should_change in (("gisa", True), ("sa", False)):
        model = _relation(spec)
        before = model.encode_images(ImageBatch(regions, boxes)).local
        after = model.encode_images(ImageBatch(regions, swapped)).local
        assert (not torch.allclose(before, after, atol=1e-6)) == should_change, spec
    for aspect in ("gisa_geometry", "gisa_interaction"):  # each aspect alone is geometry-aware
        model = _relation("gisa", **{aspect: False})
        assert not torch.allclose(model.encode_images(ImageBatch(regions, boxes)).local,
                                  model.encode_images(ImageBatch(regions, swapped)).local, atol=1e-6)


def test_relative_geometry_keeps_direction():
    boxes = torch.tensor([[[0.0, 0.0, 0.2, 0.2], [0.5, 0.0, 0.7, 0.2]]])
    geometry = relative_geometry(boxes)[0]
    assert geometry[0, 1, 0] > 0 > geometry[1, 0, 0]  # right of vs left of
    assert geometry[0, 1, 0] == pytest.approx(-geometry[1, 0, 0])


def test_dif_regions_attend_to_themselves_and_no_cell_outside_their_box():
    seed_everything(0)
    boxes = torch.tensor([[[0.0, 0.0, 0.3, 0.3], [0.4, 0.4, 0.6, 0.6], [0.5, 0.5, 0.5, 0.5]]])  # last: empty box
    dims = FeatureDims(region_dim=6, n_regions=3, vocab_size=10, grid_dim=5, grid_cells=9)
    regions, grid = torch.randn(1, 3, 6), torch.randn(1, 9, 5)
    model = build_model(tiny_config(model={"variant": "sa+dif", "dropout": 0.0}).model, dims).eval()
    model.encode_images(ImageBatch(regions, boxes, grid))
    weights = model.source.region_to_grid.last_weights[0]  # (H, regions, 1 + cells): the region itself first
    links = alignment_graph(boxes, 9)[0]
    assert links[0].nonzero().flatten().tolist() == [0] and links[1].nonzero().flatten().tolist() == [4]
    assert torch.all(weights[..., 1:][:, ~links] == 0) and torch.all(weights[:, :, 0] > 0)  # DLCT: the query is a key too
    assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:2]))
    assert torch.all(weights[:, 2, 1:] == 0)  # a region with no linked cell attends to itself alone, without NaN
    cells = model.source.grid_to_region.last_weights[0]
    assert torch.all(cells[..., 1:][:, ~links.T] == 0)
    covered_by_none = ~links.any(0)  # a cell no region covers keeps a context of its own, not a constant
    assert covered_by_none.any() and torch.allclose(cells[:, covered_by_none, 0], torch.ones(1))
    unmasked = build_model(tiny_config(model={"variant": "sa+dif-unmasked", "dropout": 0.0}).model, dims).eval()
    unmasked.load_state_dict(model.state_dict())  # the same parameters: only the mask differs
    unmasked.encode_images(ImageBatch(regions, None, grid))  # reads no boxes
    assert torch.all(unmasked.source.region_to_grid.last_weights > 0)


def test_the_average_dif_gate_mixes_half_and_half_and_a_bad_gate_is_a_clear_error():
    from variants.source_dif import GateFusion

    x, context = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    assert torch.allclose(GateFusion(4, adaptive=False)(x, context), (x + context) / 2)
    dims = FeatureDims(region_dim=6, n_regions=3, vocab_size=10, grid_dim=5, grid_cells=9)
    with pytest.raises(UserError, match="model.dif_gate 'learned' is not one of: adaptive, average"):
        build_model(tiny_config(model={"variant": "sa+dif", "dif_gate": "learned"}).model, dims)


def naive_local(regions, words, mask, temperature, norm):
    """SCAN's t2i scoring spelled out, one image and one caption (its real words only) at a time."""
    scores = torch.zeros(len(regions), len(words), dtype=regions.dtype)
    for i, image in enumerate(regions):
        v = torch.nn.functional.normalize(image, dim=-1)
        for t, caption in enumerate(words):
            w = torch.nn.functional.normalize(caption[mask[t]], dim=-1)
            logits = v @ w.T  # (regions, words)
            if norm == "scan":  # LeakyReLU(0.1), then each region's scores L2-normalised over the words
                logits = torch.nn.functional.leaky_relu(logits, 0.1)
                logits = logits / (logits.norm(dim=1, keepdim=True) + 1e-8)
            cosines = []
            for index, word in enumerate(w):
                attention = torch.softmax(temperature * logits[:, index], dim=0)
                context = (attention[:, None] * v).sum(0)
                cosines.append(torch.nn.functional.cosine_similarity(word, context, dim=0))
            scores[i, t] = torch.stack(cosines).mean()
    return scores


@pytest.mark.parametrize("norm", ["scan", "none"])
def test_batched_local_similarity_equals_a_naive_per_pair_loop(norm):
    torch.manual_seed(0)
    regions, words = torch.randn(3, 5, 8, dtype=torch.float64), torch.randn(4, 6, 8, dtype=torch.float64)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] * 1 + [0] * 5, [1] * 5 + [0]], dtype=torch.bool)
    got = local_similarity(regions, words, mask, 9.0, norm)
    torch.testing.assert_close(got, naive_local(regions, words, mask, 9.0, norm), atol=1e-10, rtol=1e-10)
    if norm == "scan":  # the normalisation changes the scores: the two forms are not the same model
        assert not torch.allclose(got, local_similarity(regions, words, mask, 9.0, "none"))


def test_local_similarity_in_many_chunks_equals_one_chunk_with_and_without_gradients(monkeypatch):
    import variants.alignment_local as local

    torch.manual_seed(0)
    regions, words = torch.randn(3, 5, 8, dtype=torch.float64), torch.randn(7, 6, 8, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(7, 6) > 0.3
    mask[:, 0] = True
    whole = local.local_similarity(regions, words, mask, 9.0)
    (grad_whole,) = torch.autograd.grad(whole.sum(), words)
    monkeypatch.setattr(local, "_BLOCK_ELEMENTS", 3 * 6 * 5 * 2)  # two captions per chunk: 4 chunks, the last one short
    monkeypatch.setattr(local, "_EVAL_BLOCK_ELEMENTS", 3 * 6 * 5)  # one caption per chunk
    chunked = local.local_similarity(regions, words, mask, 9.0)
    (grad_chunked,) = torch.autograd.grad(chunked.sum(), words)
    with torch.no_grad():
        evaluated = local.local_similarity(regions, words, mask, 9.0)
    torch.testing.assert_close(chunked, whole, atol=1e-12, rtol=0)
    torch.testing.assert_close(evaluated, whole, atol=1e-12, rtol=0)
    torch.testing.assert_close(grad_chunked, grad_whole, atol=1e-12, rtol=0)


def test_the_trainers_foreach_updates_give_the_bits_of_the_per_parameter_loop():
    from benchmark.config import TrainConfig
    from benchmark.training import Trainer

    def trained(foreach: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.GELU(), torch.nn.Linear(5, 3))
        cfg = TrainConfig()
        trainer = Trainer(model, cfg, torch.device("cpu"))
        if not foreach:
            trainer.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)
        for step in range(5):
            loss = model(torch.randn(4, 6, generator=torch.Generator().manual_seed(step))).pow(2).sum() * 50
            trainer.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0, foreach=foreach)
            trainer.optimizer.step()
        return [p.detach().clone() for p in model.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(trained(True), trained(False), strict=True))


@pytest.mark.parametrize("lengths", [[18, 18, 18, 18], [18, 16, 16, 9, 3, 1, 1, 12]])
def test_packed_bigru_and_its_unpacking_give_the_bits_of_torchs_forward_and_backward(lengths):
    from torch.nn.utils.rnn import pack_padded_sequence

    from torch.nn.utils.rnn import pad_packed_sequence

    from variants.text_bigru import packed_bigru, padded_batch_first

    torch.manual_seed(0)
    gru = torch.nn.GRU(16, 8, batch_first=True, bidirectional=True)
    words = torch.randn(len(lengths), max(lengths), 16, requires_grad=True)
    loss_weights = torch.randn(len(lengths), max(lengths) + 2, 16)

    def outputs_and_gradients(encode) -> list[torch.Tensor]:
        gru.zero_grad()
        words.grad = None
        states = encode(pack_padded_sequence(words, torch.tensor(lengths), batch_first=True, enforce_sorted=False))
        (states * loss_weights).sum().backward()
        return [states.detach(), words.grad] + [parameter.grad for parameter in gru.parameters()]

    total_length = max(lengths) + 2
    native = outputs_and_gradients(lambda packed: pad_packed_sequence(gru(packed)[0], batch_first=True, total_length=total_length)[0])
    replica = outputs_and_gradients(lambda packed: padded_batch_first(packed_bigru(gru, packed), total_length))
    assert all(torch.equal(a, b) for a, b in zip(native, replica, strict=True))


def test_hier_is_the_weighted_sum_of_local_and_global():
    seed_everything(0)
    cfg = tiny_config(model={"variant": "sa+hier", "hier_weight": 0.3}).model
    model = build_model(cfg, FeatureDims(region_dim=6, n_regions=4, vocab_size=10)).eval()
    from variants import TextBatch

    images = model.encode_images(ImageBatch(torch.randn(2, 4, 6)))
    texts = model.encode_texts(TextBatch(torch.randint(1, 10, (3, 5)), torch.tensor([5, 2, 4])))
    expected = 0.3 * local_similarity(images.local, texts.words, texts.mask, 9.0) + 0.7 * images.pooled @ texts.pooled.T
    torch.testing.assert_close(model.similarity(images, texts), expected)


def test_bert_loads_offline_and_its_weights_get_the_lr_multiplier():
    from benchmark.training import parameter_groups

    cfg = tiny_config(model={"variant": "sa+bert"})
    model = build_model(cfg.model, FeatureDims(region_dim=6, n_regions=4, vocab_size=10))
    ids = model.tokenizer(None)("a red dog left of a cat")
    assert ids[0] == model.text.hf_tokenizer.cls_token_id and len(ids) == 9
    groups = parameter_groups(model, cfg.train)
    assert [g["lr"] for g in groups] == [cfg.train.lr, cfg.train.lr * 0.1]
    assert sum(p.numel() for p in groups[1]["params"]) > 20_000_000  # the real MiniLM, not a stub


def test_a_missing_bert_model_says_how_to_provide_one(tmp_path):
    cfg = tiny_config(model={"variant": "sa+bert", "bert_path": str(tmp_path / "nothing")}).model
    with pytest.raises(UserError, match="no pretrained text model.*model.bert_path"):
        build_model(cfg, FeatureDims(region_dim=6, n_regions=4, vocab_size=10))
