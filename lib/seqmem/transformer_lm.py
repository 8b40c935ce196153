r"""A decoder-only Transformer language model: the Transformer's self-attention stack under a causal mask.

The lecture's "ImageNet moment of NLP" is the language model built from the Transformer's decoder
side alone (GPT): no encoder and no cross-attention, only masked self-attention
MultiHead(X_d, X_d, X_d) and the FFN, N times, then a softmax over the vocabulary:

.. math::

    x_t = \sqrt{d_{model}}\, E[w_t] + PE_t, \qquad
    h = \mathrm{Stack}_N(x_1, \dots, x_T) \text{ (position } t \text{ attends to } 1 \dots t\text{)}, \qquad
    P(w_{t+1} \mid w_1, \dots, w_t) = \mathrm{softmax}(W^o h_t + b^o)

The stack is ``seqmem.TransformerEncoder`` of ``seqmem.TransformerEncoderLayer`` (the decoder layer
without its second attention) called with the causal mask; pre-norm (``norm_first=True``) adds the
final LayerNorm such stacks need. ``tie_weights`` shares E with W^o (section 3.4 of the paper).

**The call convention of ``seqmem.lm.CharRNNLM``**: ``logits, state = model(x, state)``, so that
``seqmem.lm.next_token_loss``, ``seqmem.fit``, ``seqmem.metrics.perplexity`` and
``seqmem.lm.sample`` work unchanged. A Transformer has no recurrent state; its "state" is the
text it has read, the last ``max_len - 1`` token ids, which the next call reads as context. A
position sees at most ``max_len`` tokens (its own and ``max_len - 1`` before it): a longer text is
read in windows of ``max_len`` tokens that overlap by ``max_len - stride``, so that every token
past the first window has at least ``max_len - stride`` tokens of context.

Dimensions: B batch, T time (new tokens), P context tokens from the state, V vocabulary size,
D = d_model, h heads, L = max_len.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .core import check_positive_int
from .transformer import PositionalEncoding, TransformerEncoder, TransformerEncoderLayer

__all__ = ["TransformerLM"]


def _ids(name: str, x, B: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.dtype.is_floating_point or x.dtype == torch.bool:
        got = (tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be token ids of shape (B, T) and an integer dtype, got {got}")
    if B is not None and x.shape[0] != B:
        raise ValueError(f"state must be the context ids (B, P) with the batch size B = {B} of x, "
                         f"got {tuple(x.shape)}")


class TransformerLM(nn.Module):
    """A character (or token) language model: embedding, positions, a causal Transformer stack, a head.

    Args:
        vocab_size: V. d_model: D. nhead: h (D must be divisible by h). num_layers: N.
        dim_feedforward: the FFN's hidden size F. dropout: P_drop, everywhere the layers have it,
            and on the embeddings plus positions.
        max_len: L, the most tokens a position can see (the positional table's length).
        norm_first: pre-norm layers, x + Sublayer(LayerNorm(x)), and a final LayerNorm; the
            paper's post-norm when False.
        learned_positions: a learned table instead of the sinusoids.
        tie_weights: the head's weight W^o is the embedding E (V, D).
        stride: how many new tokens each window scores when a text is longer than L; L // 2 when
            omitted (each of them then sees at least L - L // 2 tokens).

    The embedding is drawn from N(0, 1 / D), so that sqrt(D) E[w] has entries of unit variance.

    Shape:
        x: (B, T) int64 ids; state: None or the context (B, P) ids, as the previous call returned.
        returns logits (B, T, V), and the new state, the last min(P + T, L - 1) ids of the context
        and x (B, ·).
    """

    def __init__(self, vocab_size: int, d_model: int = 128, nhead: int = 4, num_layers: int = 2,
                 dim_feedforward: int = 512, dropout: float = 0.1, max_len: int = 128, norm_first: bool = True,
                 learned_positions: bool = False, tie_weights: bool = False, activation="gelu",
                 stride: int | None = None):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("d_model", d_model), ("max_len", max_len)):
            check_positive_int(name, value)
        stride = max(1, max_len // 2) if stride is None else stride
        check_positive_int("stride", stride)
        if stride > max_len:
            raise ValueError(f"stride must be at most max_len = {max_len}, got {stride}")
        self.vocab_size, self.d_model, self.max_len, self.stride = vocab_size, d_model, max_len, stride
        self.embedding = nn.Embedding(vocab_size, d_model)  # E: (V, D)
        nn.init.normal_(self.embedding.weight, std=d_model ** -0.5)
        self.positions = PositionalEncoding(d_model, max_len, dropout, learned=learned_positions)
        layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation,
                                        batch_first=True, norm_first=norm_first)
        self.encoder = TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model) if norm_first else None)
        self.head = nn.Linear(d_model, vocab_size)  # W^o: (V, D), b^o: (V,)
        if tie_weights:
            self.head.weight = self.embedding.weight  # one matrix, read in and written out
        self.register_buffer("mask", torch.ones(max_len, max_len, dtype=torch.bool).triu(1), persistent=False)

    @property
    def tied(self) -> bool:
        return self.head.weight is self.embedding.weight

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """sqrt(D) E[w_t] + PE_t, then dropout: (B, T) ids, T <= L -> (B, T, D)."""
        return self.positions(self.embedding(x) * math.sqrt(self.d_model))  # section 3.4

    def causal_mask(self, T: int) -> torch.Tensor:
        """(T, T) bool, True above the diagonal: position t may not attend to the positions after it."""
        return self.mask[:T, :T]

    def window(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of every position of one window (B, T) ids, T <= L, each from the tokens up to it: (B, T, V)."""
        T = x.shape[1]
        h = self.encoder(self.embed(x), mask=self.causal_mask(T), is_causal=True)  # (B, T, D)
        return self.head(h)  # (B, T, V)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        _ids("x", x)
        if state is not None:
            _ids("state", state, x.shape[0])
        if x.shape[1] == 0:
            raise ValueError("x must hold at least one token, got (B, 0)")
        z = x if state is None else torch.cat([state.to(x.device), x], 1)  # (B, P + T): context, then x
        n, L, T = z.shape[1], self.max_len, x.shape[1]
        if (z.max() >= self.vocab_size) or (z.min() < 0):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got {int(z.min())} to {int(z.max())}")
        logits, first = [], n - T  # score positions first ... n - 1
        while first < n:
            end = min(n, max(first + self.stride, L))  # the window [end - L, end) scores [first, end)
            start = max(0, end - L)
            logits.append(self.window(z[:, start:end])[:, first - start:])  # (B, end - first, V)
            first = end
        return torch.cat(logits, 1), z[:, max(0, n - (L - 1)):]  # (B, T, V); the last L - 1 ids at most

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, layer: int = 0) -> torch.Tensor:
        """What each head of one layer attends to over a window x (B, T) ids, T <= L: (B, h, T, T).

        Row t of head i is softmax(q_t K^T / sqrt(d_k)) over the positions 1 ... t (zero after t):
        the weights the layer's self-attention uses, at its input (after norm1 if pre-norm).
        """
        _ids("x", x)
        if not 0 < x.shape[1] <= self.max_len:
            raise ValueError(f"x must have 1 to max_len = {self.max_len} tokens, got {tuple(x.shape)}")
        if not isinstance(layer, int) or not 0 <= layer < len(self.encoder.layers):
            raise ValueError(f"layer must be an int in [0, {len(self.encoder.layers)}), got {layer!r}")
        mask, h = self.causal_mask(x.shape[1]), self.embed(x)  # (T, T), (B, T, D)
        for i, lay in enumerate(self.encoder.layers):
            if i == layer:
                q = lay.norm1(h) if lay.norm_first else h
                _, w = lay.self_attn(q, q, q, attn_mask=mask, need_weights=True, average_attn_weights=False)
                return w  # (B, h, T, T)
            h = lay(h, src_mask=mask, is_causal=True)  # (B, T, D)
