r"""Hierarchical attention networks (Yang et al. 2016): attention over words, then over sentences.

The lecture's "hierarchical structures": encode each sentence with attention over its words, then
the document with attention over its sentences. For a document of sentences i = 1..N, sentence i
of words w_it, t = 1..T_i, embedded as x_it = W_e w_it:

- **Word encoder.** A bidirectional GRU reads each sentence on its own:
  h_it = [GRU_fwd(x_i1..x_it); GRU_bwd(x_iT_i..x_it)], (2H,).
- **Word attention.** A one-layer MLP gives each word a hidden representation, and a learned
  **word context vector** u_w asks "is this an informative word?":

  .. math::

      u_{it} = \tanh(W_w h_{it} + b_w), \qquad
      \alpha_{it} = \frac{\exp(u_{it}^\top u_w)}{\sum_t \exp(u_{it}^\top u_w)}, \qquad
      s_i = \sum_t \alpha_{it} h_{it}

  the softmax over the real words of sentence i (padding gets weight 0).
- **Sentence encoder.** A second bidirectional GRU reads the sentence vectors: h_i = [..; ..], (2H,).
- **Sentence attention.** The same form with a **sentence context vector** u_s:
  u_i = tanh(W_s h_i + b_s), alpha_i = softmax_i(u_i^T u_s) over the real sentences,
  v = sum_i alpha_i h_i, the document vector.
- **Classifier.** p = softmax(W_c v + b_c).

A context vector is the query of an attention whose keys are the u's and whose values are the h's,
scored by a dot product: ``ContextAttention`` is ``seqmem.attention.attend`` with ``DotScore``.

Dimensions: B documents, N sentences, L words per sentence, E embedding size, H each GRU
direction's hidden size, A the attention's size, C classes.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .attention import DotScore, attend
from .core import check_positive_int, check_shape
from .gru import GRU

__all__ = ["ContextAttention", "HierarchicalAttention", "HierarchicalOutput", "encode_padded"]


class HierarchicalOutput(NamedTuple):
    """What ``HierarchicalAttention`` returns: logits (B, C), the word weights alpha_it (B, N, L) and
    the sentence weights alpha_i (B, N), each 0 at the padding."""

    logits: torch.Tensor
    word_weights: torch.Tensor
    sentence_weights: torch.Tensor


class ContextAttention(nn.Module):
    """Attention with a learned context vector: u_t = tanh(W h_t + b), alpha = softmax(u_t^T u_ctx).

    Parameters: ``W.weight`` (A, D), ``W.bias`` (A,), ``context`` (A,): u_w or u_s.

    Shape:
        h (B, T, D), mask (B, T) bool (True at the real steps) -> ``(s, alpha)``: s (B, D) =
        sum_t alpha_t h_t and alpha (B, T), summing to 1 over the mask (all 0 for a row with none).
    """

    def __init__(self, input_size: int, attention_size: int):
        super().__init__()
        check_positive_int("input_size", input_size)
        check_positive_int("attention_size", attention_size)
        self.input_size, self.attention_size = input_size, attention_size
        self.W = nn.Linear(input_size, attention_size)  # W_w (A, D), b_w (A,)
        self.context = nn.Parameter(torch.randn(attention_size) / attention_size ** 0.5)  # u_w (A,)
        self.score = DotScore()

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = check_shape(h, ("B", "T", self.input_size), "h").values()
        check_shape(mask, (B, T), "mask")
        u = torch.tanh(self.W(h))  # u_t = tanh(W h_t + b): (B, T, A)
        query = self.context.expand(B, self.attention_size)  # u_ctx for every sample: (B, A)
        return attend(query, u, h, self.score, mask)  # (B, D), (B, T): alpha_t = softmax_t(u_t^T u_ctx)

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, attention_size={self.attention_size}"


def encode_padded(layer: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """A batch-first recurrent layer's outputs over padded sequences, each read to its own end.

    x (S, T, I), lengths (S,) ints in [0, T]: the sequences of length 0 are not run at all and
    get zero outputs; the others are packed, so that no padding enters a state (the backward
    direction starts at each sequence's last real step). Returns (S, T, D * H), 0 at the padding.
    """
    out = x.new_zeros(x.shape[0], x.shape[1], layer.hidden_size * (2 if layer.bidirectional else 1))
    real = (lengths > 0).nonzero(as_tuple=True)[0]  # the sequences with a step
    if len(real) == 0:
        return out
    packed = pack_padded_sequence(x[real], lengths[real].cpu(), batch_first=True, enforce_sorted=False)
    h, _ = layer(packed)
    out[real] = pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])[0]  # (S', T, D * H)
    return out


class HierarchicalAttention(nn.Module):
    """Yang et al.'s hierarchical attention network: a document classifier (see the module docstring).

    Args:
        vocab_size: V (id ``pad_id`` pads sentences); num_classes: C.
        embedding_dim: E; hidden_size: H of each GRU direction; attention_size: A of both levels.

    Submodules: ``embedding`` (V, E); ``word_encoder`` a bidirectional ``seqmem.GRU`` (E -> 2H);
    ``word_attention`` a ``ContextAttention`` (2H, A); ``sentence_encoder`` (2H -> 2H);
    ``sentence_attention`` (2H, A); ``classifier`` (C, 2H).

    Shape:
        ids (B, N, L) word ids; lengths (B, N) ints: the real words of each sentence, which come
        first in it, and 0 for a padded sentence; a document's real sentences come first and it
        has at least one. Returns ``HierarchicalOutput(logits (B, C), word_weights (B, N, L),
        sentence_weights (B, N))``.
    """

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int = 32, hidden_size: int = 32,
                 attention_size: int = 32, pad_id: int = 0):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("num_classes", num_classes),
                            ("embedding_dim", embedding_dim), ("hidden_size", hidden_size),
                            ("attention_size", attention_size)):
            check_positive_int(name, value)
        D = 2 * hidden_size  # both directions
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)  # W_e (V, E)
        self.word_encoder = GRU(embedding_dim, hidden_size, batch_first=True, bidirectional=True)
        self.word_attention = ContextAttention(D, attention_size)  # W_w, b_w, u_w
        self.sentence_encoder = GRU(D, hidden_size, batch_first=True, bidirectional=True)
        self.sentence_attention = ContextAttention(D, attention_size)  # W_s, b_s, u_s
        self.classifier = nn.Linear(D, num_classes)  # W_c (C, 2H), b_c

    def sentences(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The word level: sentence vectors s_i (B, N, 2H) and word weights alpha_it (B, N, L)."""
        B, N, L = ids.shape
        x = self.embedding(ids.reshape(B * N, L))  # every sentence on its own: (B * N, L, E)
        h = encode_padded(self.word_encoder, x, lengths.reshape(B * N))  # h_it: (B * N, L, 2H)
        words = torch.arange(L, device=ids.device) < lengths.reshape(B * N, 1)  # (B * N, L)
        s, alpha = self.word_attention(h, words)  # (B * N, 2H), (B * N, L); a padded sentence: s = 0
        return s.reshape(B, N, -1), alpha.reshape(B, N, L)

    def document(self, s: torch.Tensor, n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sentence level: s (B, N, 2H) of n (B,) real sentences -> v (B, 2H), alpha_i (B, N)."""
        h = encode_padded(self.sentence_encoder, s, n)  # h_i: (B, N, 2H)
        real = torch.arange(s.shape[1], device=s.device) < n[:, None]  # (B, N)
        return self.sentence_attention(h, real)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> HierarchicalOutput:
        n = self._check(ids, lengths)
        s, word_weights = self.sentences(ids, lengths)
        v, sentence_weights = self.document(s, n)
        return HierarchicalOutput(self.classifier(v), word_weights, sentence_weights)  # (B, C), (B, N, L), (B, N)

    def _check(self, ids, lengths) -> torch.Tensor:
        """The inputs checked; the number of real sentences of each document (B,)."""
        B, N, L = check_shape(ids, ("B", "N", "L"), "ids").values()
        check_shape(lengths, (B, N), "lengths")
        for name, x in (("ids", ids), ("lengths", lengths)):
            if x.dtype.is_floating_point or x.dtype == torch.bool:
                raise ValueError(f"{name} must be an integer tensor, got dtype {x.dtype}")
        if lengths.device != ids.device:
            raise ValueError(f"lengths must be on the ids' device {ids.device}, got {lengths.device}")
        if lengths.numel() and (lengths.min() < 0 or lengths.max() > L):
            raise ValueError(f"lengths must lie in [0, L = {L}], got values from {lengths.min().item()} "
                             f"to {lengths.max().item()}")
        real = lengths > 0  # (B, N)
        n = real.sum(1)  # (B,)
        if not torch.equal(real, torch.arange(N, device=ids.device) < n[:, None]):
            raise ValueError("each document's real sentences (lengths > 0) must come first, padded sentences after")
        if n.numel() and n.min() < 1:
            raise ValueError("every document must have at least one sentence (a positive length)")
        return n
