"""``bigru``: word embeddings over the train vocabulary and a bidirectional GRU (SCAN, Lee et al. 2018).

Each word's embedding is the mean of the two directions' states, as in SCAN; the caption is the
mean over its words.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from variants._base import FeatureDims, TextBatch, TextEmbedding, l2norm, masked_mean
from variants._registry import TEXT


class BiGRUEncoder(nn.Module):
    def __init__(self, vocab_size: int, word_dim: int, dim: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, dim, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)

    def tokenizer(self, vocab) -> Callable[[str], list[int]]:
        """Word ids from the train vocabulary."""
        return vocab.encode

    def forward(self, batch: TextBatch) -> TextEmbedding:
        words = self.dropout(self.embed(batch.tokens))
        packed = pack_padded_sequence(words, batch.lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=batch.tokens.shape[1])
        forward_states, backward_states = states.chunk(2, dim=-1)
        words = (forward_states + backward_states) / 2
        mask = torch.arange(words.shape[1], device=words.device)[None, :] < batch.lengths.to(words.device)[:, None]
        return TextEmbedding(words=words, mask=mask, pooled=l2norm(masked_mean(words, mask)))


@TEXT.register("bigru", description="BiGRU over word embeddings of the train vocabulary", source="SCAN, Lee et al., ECCV 2018")
def bigru(cfg, dims: FeatureDims) -> nn.Module:
    return BiGRUEncoder(dims.vocab_size, cfg.word_dim, cfg.embed_dim, cfg.dropout)
