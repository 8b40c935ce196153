"""Read-outs on top of a sequence layer, and the per-step loss the chapters share.

A sequence layer (``seqmem.RNN``, ``LSTM``, ``GRU`` with ``batch_first=True``, ``seqmem.Stacked``,
or torch's layers) maps a batch-first sequence x (B, T, I) to outputs (B, T, H') and a state. A
head turns those outputs into the answers a task asks for (the lecture's output layer y = g(W^o h),
with g left to the loss):

- ``Tagger``: a linear read-out at every step, (B, T, O): tagging, language models, CTC's frames.
- ``LastStep``: a linear read-out of the output after the last step, (B, O): many to one (of
  each sequence's own last step, for a padded batch with ``lengths``).
- ``cross_entropy(logits, targets, mask)``: the mean cross-entropy over the labelled steps of a
  batch of sequences (steps labelled ``IGNORE_INDEX``, or outside ``mask``, left out);
  ``tagging_loss(model, batch)`` is it as a ``fit`` loss, the accuracy logged beside it.

Both heads keep the layers' contract, ``output, state = head(x, state)``, so one model serves
training, evaluation and truncated BPTT (which carries the state from chunk to chunk). With an
``embedding`` (``torch.nn.Embedding(V, E)``) a head reads token ids (B, T) instead of vectors.

Dimensions: B batch, T time, I input size, H' the layer's output size, O outputs (classes), V vocabulary.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .core import IGNORE_INDEX
from .metrics import accuracy

__all__ = ["Tagger", "LastStep", "cross_entropy", "tagging_loss", "output_size"]


def output_size(layer: nn.Module) -> int:
    """The last dimension of a sequence layer's output: its ``output_size``, else D * ``hidden_size``."""
    size = getattr(layer, "output_size", None)
    if size is None:  # a torch layer
        size = layer.hidden_size * (2 if getattr(layer, "bidirectional", False) else 1)
    return size


class _Head(nn.Module):
    """An optional embedding, a batch-first sequence layer and a linear read-out (H', O)."""

    def __init__(self, rnn: nn.Module, out_features: int, embedding: nn.Module | None = None):
        super().__init__()
        if not getattr(rnn, "batch_first", True):
            raise ValueError(f"{type(self).__name__} reads (B, T, I) batches: build the sequence layer "
                             "with batch_first=True")
        self.embedding, self.rnn = embedding, rnn
        self.head = nn.Linear(output_size(rnn), out_features)  # W^o: (O, H')

    def _outputs(self, x: torch.Tensor, state):
        if self.embedding is not None:
            x = self.embedding(x)  # (B, T) ids -> (B, T, E)
        return self.rnn(x, state)  # (B, T, H'), the final state


class Tagger(_Head):
    """A sequence layer with a linear read-out at every step: the per-step tagger.

    Shape:
        x: (B, T, I), or (B, T) token ids with an ``embedding``; state: the layer's, or None.
        returns ``(logits, state)``: logits (B, T, O) at every step, the layer's final state.
    """

    def forward(self, x: torch.Tensor, state=None):
        out, state = self._outputs(x, state)
        return self.head(out), state  # (B, T, O)


class LastStep(_Head):
    """A many-to-one model: a sequence layer, then a linear read-out of its output after the last step.

    With ``lengths`` (B,) the read-out is at each sequence's own last step, ``lengths[b] - 1``, so
    that the padding after it is never read (the layer still runs over it: its final state is the
    one after the padding).

    Shape:
        x: (B, T, I), or (B, T) token ids with an ``embedding``; state: the layer's, or None.
        returns ``(y, state)``: y (B, O), the layer's final state.
    """

    def forward(self, x: torch.Tensor, state=None, lengths: torch.Tensor | None = None):
        out, state = self._outputs(x, state)  # (B, T, H')
        if lengths is None:
            last = out[:, -1]
        else:
            last = out[torch.arange(out.shape[0], device=out.device), lengths.to(out.device) - 1]
        return self.head(last), state  # (B, O): the answer after the last step


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The mean cross-entropy over the labelled steps of a batch of sequences.

    Args:
        logits: (B, T, C) scores (any leading dimensions: (..., C)).
        targets: (B, T) class ids; steps labelled ``IGNORE_INDEX`` do not count.
        mask: (B, T) bool, True where a step counts (default: every labelled step).

    Returns:
        the mean over the steps that count of -log softmax(logits)[target]: a scalar.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits (..., C) and targets (...) must share their leading dimensions, got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    if mask is not None:
        targets = targets.masked_fill(~mask, IGNORE_INDEX)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX)


def tagging_loss(model: nn.Module, batch) -> tuple:
    """``fit``'s loss for a tagger: ``cross_entropy`` of ``model(x)`` against y, the accuracy logged.

    ``batch`` is ``(x, y)`` with y (B, T) class ids; the model returns ``(logits, state)``.
    """
    x, y = batch
    logits, _ = model(x)  # (B, T, C)
    return cross_entropy(logits, y), {"accuracy": accuracy(logits.detach(), y)}
