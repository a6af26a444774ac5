"""``bigru``: word embeddings over the train vocabulary and a bidirectional GRU (SCAN, Lee et al. 2018).

Each word's embedding is the mean of the two directions' states, as in SCAN; the caption is the
mean over its words. On CPU the GRU runs as ``packed_bigru``: PyTorch's own CPU algorithm, op for op,
without its per-step cost in the backward pass; ``padded_batch_first`` unpacks its states.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from variants._base import FeatureDims, TextBatch, TextEmbedding, l2norm, masked_mean
from variants._registry import TEXT


def _gru_cell(input_gates: torch.Tensor, hidden: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """One GRU step from precomputed input gates, with the ops of ATen's CPU ``GRUCell``, in its order."""
    input_reset, input_update, input_new = input_gates.unsafe_chunk(3, 1)
    hidden_reset, hidden_update, hidden_new = F.linear(hidden, w_hh, b_hh).unsafe_chunk(3, 1)
    reset = hidden_reset.add_(input_reset).sigmoid_()
    update = hidden_update.add_(input_update).sigmoid_()
    new = input_new.add(hidden_new.mul_(reset)).tanh_()
    return (hidden - new).mul_(update).add_(new)


def _gru_direction(data: torch.Tensor, sizes: list[int], h0: torch.Tensor, weights: list[torch.Tensor],
                   reverse: bool) -> torch.Tensor:
    """One direction over a packed sequence's data (``sizes``: its batch sizes), as ATen's CPU ``PackedLayer`` or
    ``ReversedPackedLayer``: input gates for all steps in one GEMM, then one cell per step. ATen slices each
    step's gates with ``narrow``, whose backward writes a zero-filled copy of all steps' gates; ``split`` hands
    every step its rows and assembles the gradient once, with the same values."""
    w_ih, w_hh, b_ih, b_hh = weights
    steps = F.linear(data, w_ih, b_ih).split(sizes)
    outputs = []
    if not reverse:  # sequences end as the batch shrinks: keep the first rows of the hidden state
        hidden, last = h0, sizes[0]
        for size, gates in zip(sizes, steps):
            if size < last:
                hidden = hidden.narrow(0, 0, size)
            hidden = _gru_cell(gates, hidden, w_hh, b_hh)
            outputs.append(hidden)
            last = size
        return torch.cat(outputs, 0)
    last = sizes[-1]  # from the last step back: sequences start as the batch grows, from h0's rows
    hidden = h0.narrow(0, 0, last)
    for size, gates in zip(reversed(sizes), reversed(steps)):
        if size > last:
            hidden = torch.cat([hidden, h0.narrow(0, last, size - last)], 0)
        hidden = _gru_cell(gates, hidden, w_hh, b_hh)
        outputs.append(hidden)
        last = size
    return torch.cat(outputs[::-1], 0)


def _direction_weights(gru: nn.GRU, suffix: str) -> list[torch.Tensor]:
    return [getattr(gru, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


def packed_bigru(gru: nn.GRU, packed: PackedSequence) -> PackedSequence:
    """``gru(packed)[0]`` for a one-layer bidirectional GRU on CPU, with the same bits forward and backward
    (``tests/test_variants.py``), and without ATen's per-step zero-filled gradients (README, Performance)."""
    sizes = packed.batch_sizes.tolist()
    h0 = packed.data.new_zeros(sizes[0], gru.hidden_size)
    forward = _gru_direction(packed.data, sizes, h0, _direction_weights(gru, ""), reverse=False)
    backward = _gru_direction(packed.data, sizes, h0, _direction_weights(gru, "_reverse"), reverse=True)
    return packed._replace(data=torch.cat([forward, backward], -1))


def padded_batch_first(packed: PackedSequence, total_length: int) -> torch.Tensor:
    """``pad_packed_sequence(packed, batch_first=True, total_length=total_length)[0]``: the same tensor, zeros past
    each length, with one ``index_copy`` (whose backward is one gather) in place of a copy per step (8x faster)."""
    sizes = packed.batch_sizes
    steps = torch.repeat_interleave(torch.arange(len(sizes)), sizes)  # each packed row's time step
    batch_rows = torch.arange(len(steps)) - (torch.cumsum(sizes, 0) - sizes)[steps]  # its row in the sorted batch
    rows = packed.sorted_indices[batch_rows] * total_length + steps  # its row in (batch, time), batch in input order
    padded = packed.data.new_zeros(int(sizes[0]) * total_length, packed.data.shape[-1]).index_copy(0, rows, packed.data)
    return padded.view(int(sizes[0]), total_length, -1)


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
        if words.device.type == "cpu":
            states = padded_batch_first(packed_bigru(self.gru, packed), batch.tokens.shape[1])
        else:
            states, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=batch.tokens.shape[1])
        forward_states, backward_states = states.chunk(2, dim=-1)
        words = (forward_states + backward_states) / 2
        mask = torch.arange(words.shape[1], device=words.device)[None, :] < batch.lengths.to(words.device)[:, None]
        return TextEmbedding(words=words, mask=mask, pooled=l2norm(masked_mean(words, mask)))


@TEXT.register("bigru", description="BiGRU over word embeddings of the train vocabulary", source="SCAN, Lee et al., ECCV 2018")
def bigru(cfg, dims: FeatureDims) -> nn.Module:
    return BiGRUEncoder(dims.vocab_size, cfg.word_dim, cfg.embed_dim, cfg.dropout)
