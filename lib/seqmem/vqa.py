r"""Visual question answering with question-guided spatial attention (after Xu and Saenko 2016).

The lecture's "attention to multi-modal inputs", for a picture and a question: the question is
the query, and the keys and values are the regions of the image. Xu and Saenko's network reads a
grid of convolutional features, lets the question's embedding weigh its cells, and answers from
the weighted evidence and the question together. Ours, in the lecture's notation:

- **Regions.** A small convolutional network gives each cell r = 1..R (R = G * G) of the image a
  feature vector, to which a learned position embedding p_r is added (without it, "on the left"
  could not be told from "on the right"): v_r = CNN(image)_r + p_r, (F,).
- **Question.** An embedding and a GRU read the question; its final state is q, (H,).
- **Attention.** The question scores every region, a(q, v_r) (``seqmem.attention.AdditiveScore``:
  w^T tanh(W_q q + W_v v_r)), and a softmax over the regions gives the attention map alpha (R,):
  c = sum_r alpha_r v_r.
- **Answer.** The evidence and the question meet in a product, z = (W_c c + b_c) ⊙ a + a with
  a = W_a q + b_a, and a perceptron of z (ReLU, a hidden layer of A, ReLU) gives the logits of no and yes.

``pooling`` chooses what reads the image, so that the comparison is one switch: ``"attention"``
as above; ``"mean"`` the mean of the regions (alpha = 1/R: no question guides the look); ``"none"``
nothing (c = 0, alpha = 0: the question alone).

Dimensions: B batch, 3 colour channels, P pixels a side, G cells a side, R = G * G regions,
F region features, Lq question words, E embedding size, H the question's hidden size, A the score's.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .attention import AdditiveScore, attend
from .core import check_positive_int, check_shape
from .gru import GRU
from .hierarchical import encode_padded

__all__ = ["VQAOutput", "SpatialAttentionVQA", "POOLINGS"]

#: What reads the image: question-guided attention, the mean of the regions, or nothing.
POOLINGS = ("attention", "mean", "none")


class VQAOutput(NamedTuple):
    """What ``SpatialAttentionVQA`` returns: logits (B, 2) of no and yes, and the attention map
    alpha (B, G, G) over the grid's cells (1/R everywhere for mean pooling, 0 for none)."""

    logits: torch.Tensor
    attention: torch.Tensor


class SpatialAttentionVQA(nn.Module):
    """Question-guided spatial attention over a grid of region features (see the module docstring).

    Args:
        vocab_size: V of the questions (id 0 pads them).
        grid: G, cells a side; cell: pixels a side of a cell (the image is G * cell a side).
        features: F; embedding_dim: E; hidden_size: H; attention_size: A (also the answer's hidden layer).
        pooling: one of ``POOLINGS``.

    Submodules: ``cnn`` (two convolutions: one filter of cell x cell pixels per cell, stride cell,
    then 1 x 1), ``position`` (R, F), ``embedding`` (V, E), ``question_encoder`` a ``seqmem.GRU``
    (E -> H), ``score`` an ``AdditiveScore(H, F, A)``, ``W_c`` (A, F), ``W_a`` (A, H), ``answer`` (A -> A -> 2).

    Shape:
        images (B, 3, P, P) with P = G * cell; questions (B, Lq) ids; lengths (B,) in [1, Lq]
        -> ``VQAOutput(logits (B, 2), attention (B, G, G))``.
    """

    def __init__(self, vocab_size: int, grid: int = 4, cell: int = 8, features: int = 32, embedding_dim: int = 32,
                 hidden_size: int = 32, attention_size: int = 32, pooling: str = "attention"):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("grid", grid), ("cell", cell), ("features", features),
                            ("embedding_dim", embedding_dim), ("hidden_size", hidden_size),
                            ("attention_size", attention_size)):
            check_positive_int(name, value)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.grid, self.cell, self.pooling = grid, cell, pooling
        self.cnn = nn.Sequential(nn.Conv2d(3, features, cell, stride=cell), nn.ReLU(),  # one vector per cell
                                 nn.Conv2d(features, features, 1), nn.ReLU())  # (B, F, G, G)
        self.position = nn.Parameter(0.1 * torch.randn(grid * grid, features))  # p_r: (R, F)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)  # (V, E)
        self.question_encoder = GRU(embedding_dim, hidden_size, batch_first=True)
        self.score = AdditiveScore(hidden_size, features, attention_size)
        self.W_c = nn.Linear(features, attention_size)  # the evidence, (A, F)
        self.W_a = nn.Linear(hidden_size, attention_size)  # the question, (A, H)
        self.answer = nn.Sequential(nn.ReLU(), nn.Linear(attention_size, attention_size), nn.ReLU(),
                                    nn.Linear(attention_size, 2))

    def regions(self, images: torch.Tensor) -> torch.Tensor:
        """v_r = CNN(image)_r + p_r: (B, 3, P, P) -> (B, R, F), the cells in row-major order."""
        v = self.cnn(images).flatten(2).transpose(1, 2)  # (B, F, G, G) -> (B, R, F)
        return v + self.position  # (B, R, F)

    def question(self, questions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """q, the GRU's state after each question's last word: (B, Lq) -> (B, H)."""
        h = encode_padded(self.question_encoder, self.embedding(questions), lengths)  # (B, Lq, H)
        return h[torch.arange(len(h), device=h.device), lengths - 1]  # (B, H)

    def look(self, q: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The evidence c (B, F) and the map alpha (B, R) that ``pooling`` reads from the regions v."""
        B, R, _ = v.shape
        if self.pooling == "attention":
            return attend(q, v, v, self.score)  # alpha_r = softmax_r a(q, v_r), c = sum_r alpha_r v_r
        if self.pooling == "mean":
            return v.mean(1), v.new_full((B, R), 1.0 / R)
        return v.new_zeros(B, v.shape[-1]), v.new_zeros(B, R)

    def forward(self, images: torch.Tensor, questions: torch.Tensor, lengths: torch.Tensor) -> VQAOutput:
        self._check(images, questions, lengths)
        v, q = self.regions(images), self.question(questions, lengths)  # (B, R, F), (B, H)
        c, alpha = self.look(q, v)  # (B, F), (B, R)
        a = self.W_a(q)  # the question in the answer's space: (B, A)
        logits = self.answer(self.W_c(c) * a + a)  # (B, 2): the product lets the question choose what counts
        return VQAOutput(logits, alpha.reshape(-1, self.grid, self.grid))  # (B, 2), (B, G, G)

    def _check(self, images, questions, lengths) -> None:
        P = self.grid * self.cell
        B = check_shape(images, ("B", 3, P, P), "images")["B"]
        if not images.dtype.is_floating_point:
            raise ValueError(f"images must be floating point, got dtype {images.dtype}")
        Lq = check_shape(questions, (B, "Lq"), "questions")["Lq"]
        check_shape(lengths, (B,), "lengths")
        for name, x in (("questions", questions), ("lengths", lengths)):
            if x.dtype.is_floating_point or x.dtype == torch.bool:
                raise ValueError(f"{name} must be an integer tensor, got dtype {x.dtype}")
        if lengths.min() < 1 or lengths.max() > Lq:
            raise ValueError(f"lengths must lie in [1, Lq = {Lq}], got values from {lengths.min().item()} to "
                             f"{lengths.max().item()}")

    def extra_repr(self) -> str:
        return f"grid={self.grid}, cell={self.cell}, pooling={self.pooling!r}"
