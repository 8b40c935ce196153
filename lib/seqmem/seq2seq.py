r"""Sequence to sequence: an encoder reads the source into a context, a decoder writes the target.

The lectures' encoder-decoder (Sutskever et al., 2014; Cho et al., 2014). The encoder, any
recurrent layer, reads the source x_1 ... x_S; its final state is the context c, a summary of the
whole source. The decoder is a cell, the lecture's f, whose state starts from c and which
generates the target one token at a time, from ``<bos>`` until it emits ``<eos>``:

.. math::

    c = \mathrm{enc}(x_1, \dots, x_S), \qquad s_0 = \mathrm{bridge}(c), \qquad
    s_t, o_t = f(s_{t-1}, E\, y_{t-1}), \qquad p(y_t \mid y_{<t}, x) = \mathrm{softmax}(W^o o_t)

with y_0 = ``<bos>``. Training maximises log p(y | x) = sum_t log p(y_t | y_{<t}, x) over the
target's real steps (padding masked out).

What the decoder reads as y_{t-1} while training is a choice (``Seq2Seq.forward``'s
``teacher_forcing``): the true previous token (teacher forcing, 1.0), its own previous guess (free
running, 0.0, as at test time), or the truth with probability p per sample and step (scheduled
sampling, Bengio et al., 2015, with p decaying over training: ``inverse_sigmoid_schedule``, ...).

Every model of the later chapters (attention, the Transformer, pointer networks) keeps the same
decoding protocol, which ``seqmem.decoding``'s greedy and beam search read:

- ``state = model.start(source_ids, lengths)``: encode; the state is batch first, a NamedTuple of
  tensors, so that ``map_state(lambda t: t.index_select(0, idx), state)`` reorders or repeats
  samples (beam search does).
- ``state, logits = model.step(state, tokens)``: one decoder step, tokens (B,), logits (B, V).

Inside ``Seq2Seq`` a decoder keeps a protocol of its own, which chapter 5's attentional decoder
shares: ``decoder.start(context, memory, mask)`` gives its initial state and
``decoder.step(state, tokens, memory, mask)`` its next state and logits; the plain ``Decoder``
reads only the context (through its bridge) and ignores the memory.

The special ids default to the library's: padding 0, ``<bos>`` 1, ``<eos>`` 2 (``seqmem.text``'s
``PAD_ID``, ``BOS_ID``, ``EOS_ID``), the defaults of every ``pad_id``, ``bos_id``, ``eos_id`` here.

Dimensions: B batch, S source length, T target length, E embedding size, H hidden size,
D directions of the encoder, V vocabulary size.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .core import check_positive_int, check_shape
from .heads import cross_entropy, output_size
from .layers import RecurrentLayer, Stacked, length_mask
from .lstm import LSTMState
from .metrics import accuracy
from .text import BOS_ID, PAD_ID

__all__ = ["Encoder", "Decoder", "Bridge", "Seq2Seq", "Seq2SeqState", "seq2seq_loss", "ScheduledSampling",
           "inverse_sigmoid_schedule", "linear_schedule", "exponential_schedule"]

def check_ids(ids, name: str, batch_size: int | None = None) -> tuple[int, int]:
    """ids must be an integer tensor (B, T); returns (B, T)."""
    if isinstance(ids, torch.Tensor) and (ids.dtype.is_floating_point or ids.dtype == torch.bool):
        raise ValueError(f"{name} must hold integer token ids, got dtype {ids.dtype}")
    sizes = check_shape(ids, ("B", "T"), name)
    if batch_size is not None and sizes["B"] != batch_size:
        raise ValueError(f"{name} must have the source's batch size {batch_size}, got shape {tuple(ids.shape)}")
    return sizes["B"], sizes["T"]


class Encoder(nn.Module):
    """An embedding and a recurrent layer: the source (B, S) becomes a memory and a context.

    ``layer`` is any sequence layer of the library: a ``Stacked`` (batch first) or a drop-in
    ``seqmem.RNN``, ``LSTM``, ``GRU`` (torch's layers work too), stacked and bidirectional as you
    like; its input size must be ``embedding_dim``. Padding never enters a state: ``Stacked``
    gets the lengths, a drop-in layer a ``PackedSequence``.

    The context is the last layer's final state, both directions concatenated (forward first):
    a tensor (B, D * H), or an ``LSTMState(h, c)`` of such tensors for an LSTM. The forward
    direction's final state is that after each sequence's last real token; the backward
    direction's that after reading back to the first token.

    Shape:
        source_ids: (B, S) token ids, padded with ``pad_id``; lengths: (B,) ints in [1, S], or
        ``None`` for no padding.
        returns ``(memory, context)``: memory (B, S, D * H), the last layer's outputs, 0 at the
        padding (what chapter 5's attention reads), and the context as above.
    """

    def __init__(self, vocab_size: int, embedding_dim: int, layer: nn.Module, pad_id: int = PAD_ID):
        super().__init__()
        if not isinstance(layer, (Stacked, RecurrentLayer, nn.RNNBase)):
            raise ValueError(f"layer must be a seqmem.Stacked or a recurrent layer (seqmem.RNN, LSTM, GRU), "
                             f"got {type(layer).__name__}")
        if layer.input_size != embedding_dim:
            raise ValueError(f"the layer must read embedding_dim={embedding_dim} features, got input_size="
                             f"{layer.input_size}")
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)  # (V, E)
        self.layer = layer
        self.directions = 2 if layer.bidirectional else 1
        self.context_size = self.directions * layer.hidden_size  # each part of the context: (B, D * H)
        self.output_size = output_size(layer)  # the memory's last dimension

    def forward(self, source_ids: torch.Tensor, lengths: torch.Tensor | None = None):
        B, S = check_ids(source_ids, "source_ids")
        if lengths is None:
            lengths = torch.full((B,), S, dtype=torch.long, device=source_ids.device)
        length_mask(lengths, B, S, source_ids.device)  # checks the lengths
        if lengths.min() < 1:
            raise ValueError(f"every source must have at least one token, got lengths {lengths.tolist()}")
        x = self.embedding(source_ids)  # (B, S, E)
        if isinstance(self.layer, Stacked):
            memory, finals = self.layer(x, lengths=lengths)  # (B, S, D * H), L * D cell states
            return memory, self._context_of_cells(finals)
        return self._forward_packed(x, lengths)

    def _forward_packed(self, x: torch.Tensor, lengths: torch.Tensor):
        """A drop-in layer reads the batch packed: its h_n is then at each source's true end."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.layer(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, S, D * H)
        parts = (state,) if isinstance(state, torch.Tensor) else tuple(state)  # each (L * D, B, H)
        D = self.directions
        last = [p[-D:].transpose(0, 1).reshape(x.shape[0], -1) for p in parts]  # the last layer's: (B, D * H)
        if len(last) == 1:
            return memory, last[0]
        return memory, (getattr(self.layer, "_state_type", None) or LSTMState)(*last)

    def _context_of_cells(self, finals: list):
        """The last layer's D cell states, each part concatenated over the directions: (B, D * H)."""
        last = finals[-self.directions:]
        if isinstance(last[0], torch.Tensor):
            return torch.cat(last, dim=-1)
        return type(last[0])(*(torch.cat(parts, dim=-1) for parts in zip(*last)))


class Bridge(nn.Module):
    """The encoder's context to the decoder's initial state, part by part.

    Each part of the decoder's state (h; or h and c for an LSTM) comes from the context's part of
    the same position (h from h, c from c), or from the context's first part (h) where the context
    has fewer parts (a GRU encoder under an LSTM decoder). A part whose size differs from the
    context's goes through tanh(W c + b); one of the same size is copied (the identity).

    Shape:
        context: a tensor (B, C) or a NamedTuple of them (C = ``context_size``); returns the state.
    """

    def __init__(self, context_size: int, state_sizes: tuple[int, ...], state_type: type | None = None):
        super().__init__()
        check_positive_int("context_size", context_size)
        self.context_size, self.state_type = context_size, state_type
        self.maps = nn.ModuleList(nn.Identity() if size == context_size else
                                  nn.Sequential(nn.Linear(context_size, size), nn.Tanh()) for size in state_sizes)

    def forward(self, context):
        parts = (context,) if isinstance(context, torch.Tensor) else tuple(context)
        for k, part in enumerate(parts):
            check_shape(part, (None, self.context_size), f"context part {k}")
        state = [m(parts[min(k, len(parts) - 1)]) for k, m in enumerate(self.maps)]  # each (B, size)
        return state[0] if self.state_type is None else self.state_type(*state)


class Decoder(nn.Module):
    """An embedding, a cell (the lecture's f) and an output layer: one target token per step.

    ``cell`` is any cell of the library (``RNNCell``, ``GRUCell``, ``LSTMCell``, ...) reading
    ``embedding_dim`` features. With ``context_size`` (the encoder's) a ``Bridge`` maps the
    context to the cell's initial state; without, the decoder starts from the zero state.

    Shape:
        ``step(state, tokens)``: tokens (B,) ids; returns ``(state, logits)``, logits (B, V).
    """

    def __init__(self, vocab_size: int, embedding_dim: int, cell: nn.Module, context_size: int | None = None,
                 pad_id: int = PAD_ID):
        super().__init__()
        if getattr(cell, "input_size", None) != embedding_dim:
            raise ValueError(f"the cell must read embedding_dim={embedding_dim} features, got input_size="
                             f"{getattr(cell, 'input_size', None)}")
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)  # (V, E)
        self.cell = cell
        self.out = nn.Linear(getattr(cell, "output_size", cell.hidden_size), vocab_size)  # W^o: (V, H)
        self.bridge = None if context_size is None else Bridge(context_size, cell.state_sizes(), cell.state_type)

    def initial_state(self, context, batch_size: int):
        """s_0: the bridged context, or the cell's zero state without a bridge."""
        return self.cell.initial_state(batch_size) if self.bridge is None else self.bridge(context)

    def start(self, context, memory: torch.Tensor, mask: torch.Tensor):
        """s_0 for ``Seq2Seq``: the memory (B, S, D * H) and mask (B, S) are not read here."""
        return self.initial_state(context, memory.shape[0])

    def step(self, state, tokens: torch.Tensor, memory: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """One step from tokens (B,): ``(state, logits (B, V))``; memory and mask are ignored."""
        x = self.embedding(tokens)  # (B, E)
        state, o = self.cell(state, x)  # o: (B, H)
        return state, self.out(o)  # (B, V)


class Seq2SeqState(NamedTuple):
    """What decoding needs, batch first: the decoder's state and the encoder's memory and mask."""

    decoder: object  # the decoder's: its cell's state, a tensor (B, H) or an LSTMState (an AttentionState in ch. 5)
    memory: torch.Tensor  # (B, S, D * H), 0 at the padding
    mask: torch.Tensor  # (B, S) bool, True at the source's real tokens


class Seq2Seq(nn.Module):
    """The encoder-decoder of Sutskever et al. (2014): ``start`` encodes, ``step`` decodes one token.

    Shape:
        ``start(source_ids (B, S), lengths (B,))`` returns a ``Seq2SeqState``.
        ``step(state, tokens (B,))`` returns ``(state, logits (B, V))``.
        ``forward(source_ids, lengths, target_ids (B, T), teacher_forcing, generator)`` returns
        the logits (B, T, V) of every target step.

    ``decoder`` is a ``Decoder``, or anything with its ``start`` and ``step`` (chapter 5's
    ``seqmem.attention.AttentionDecoder``).
    """

    def __init__(self, encoder: Encoder, decoder: Decoder, bos_id: int = BOS_ID):
        super().__init__()
        self.encoder, self.decoder, self.bos_id = encoder, decoder, bos_id

    def start(self, source_ids: torch.Tensor, lengths: torch.Tensor | None = None) -> Seq2SeqState:
        memory, context = self.encoder(source_ids, lengths)  # (B, S, D * H), the context
        B, S = source_ids.shape
        mask = length_mask(lengths, B, S, memory.device) if lengths is not None else \
            torch.ones(B, S, dtype=torch.bool, device=memory.device)  # (B, S)
        return Seq2SeqState(self.decoder.start(context, memory, mask), memory, mask)

    def step(self, state: Seq2SeqState, tokens: torch.Tensor):
        check_shape(tokens, (state.memory.shape[0],), "tokens")
        decoder, logits = self.decoder.step(state.decoder, tokens, state.memory, state.mask)
        return state._replace(decoder=decoder), logits  # (B, V)

    def _begin_forward(self, source_ids: torch.Tensor, lengths: torch.Tensor | None, target_ids: torch.Tensor,
                       teacher_forcing: float):
        """``forward``'s start, shared by its subclasses (``seqmem.copy.CopySeq2Seq``): check the
        ids (B, S) and (B, T) and ``teacher_forcing``, encode the source; returns ``(state, tokens, T)``,
        tokens (B,) all ``<bos>``, the decoder's first input."""
        B, _ = check_ids(source_ids, "source_ids")
        _, T = check_ids(target_ids, "target_ids", B)
        if isinstance(teacher_forcing, bool) or not 0.0 <= float(teacher_forcing) <= 1.0:
            raise ValueError(f"teacher_forcing must be a probability in [0, 1], got {teacher_forcing!r}")
        state = self.start(source_ids, lengths)
        tokens = torch.full((B,), self.bos_id, dtype=torch.long, device=target_ids.device)  # y_0 = <bos>: (B,)
        return state, tokens, T

    def forward(self, source_ids: torch.Tensor, lengths: torch.Tensor | None, target_ids: torch.Tensor,
                teacher_forcing: float = 1.0, generator: torch.Generator | None = None,
                return_weights: bool = False):
        """The logits (B, T, V) of every target step, y_{t-1} chosen by ``teacher_forcing``.

        The decoder reads ``<bos>`` at t = 0; at t > 0 the true y_{t-1} (``target_ids[:, t - 1]``)
        with probability ``teacher_forcing``, else its own greedy guess argmax(logits_{t-1})
        (no gradient flows through a guess). Between 0 and 1, one ``torch.rand(B)`` per step
        t > 0 (from ``generator``, on its device) decides each sample: the truth where it is
        below ``teacher_forcing``. Under teacher forcing the logits at the target's real steps do
        not depend on what its padding holds.

        With ``return_weights`` (a decoder whose state has ``weights``, such as chapter 5's
        ``AttentionDecoder``) returns ``(logits, weights)``, weights (B, T, S) the attention of
        every step over the source: the alignment.
        """
        state, tokens, T = self._begin_forward(source_ids, lengths, target_ids, teacher_forcing)
        if return_weights and not hasattr(state.decoder, "weights"):
            raise ValueError(f"return_weights needs a decoder whose state has attention weights (an AttentionDecoder), "
                             f"got {type(self.decoder).__name__}")
        logits, weights = [], []
        for t in range(T):
            state, logits_t = self.step(state, tokens)  # (B, V)
            logits.append(logits_t)
            if return_weights:
                weights.append(state.decoder.weights)  # (B, S)
            tokens = _next_inputs(target_ids[:, t], logits_t, float(teacher_forcing), generator)
        if return_weights:
            return torch.stack(logits, dim=1), torch.stack(weights, dim=1)  # (B, T, V), (B, T, S)
        return torch.stack(logits, dim=1)  # (B, T, V)


def _next_inputs(truth: torch.Tensor, logits: torch.Tensor, p: float, generator) -> torch.Tensor:
    """The decoder's next input (B,): the truth with probability p, else the greedy guess."""
    if p >= 1.0:
        return truth
    guess = logits.detach().argmax(-1)  # (B,)
    if p <= 0.0:
        return guess
    where = generator.device if generator is not None else truth.device
    coin = torch.rand(truth.shape, generator=generator, device=where).to(truth.device) < p  # (B,)
    return torch.where(coin, truth, guess)


# -- training --------------------------------------------------------------------------------------


def seq2seq_loss(model: Seq2Seq, batch, teacher_forcing: float | Callable[[], float] = 1.0):
    """``fit``'s loss for a sequence-to-sequence model: the masked cross-entropy, accuracy logged.

    Args:
        batch: ``(source, target)``, two ``seqmem.text.Padded`` (more items after them are
            ignored, so a ``Pairs`` of source, target and texts will do). The target's ids end
            with ``<eos>``, without ``<bos>``; its mask leaves the padding out of the loss.
        teacher_forcing: a probability, or a function of no arguments called once per batch for
            it (a ``ScheduledSampling``); with a function the probability is logged too.

    Returns:
        ``(loss, logs)``: the mean cross-entropy over the target's real tokens, and the token
        accuracy of the model's argmax there (``"accuracy"``).

    Bind the options with ``functools.partial``:
    ``fit(model, batches, partial(seq2seq_loss, teacher_forcing=ScheduledSampling(inverse_sigmoid_schedule, k=50)))``.
    """
    source, target = batch[0], batch[1]
    p = teacher_forcing() if callable(teacher_forcing) else teacher_forcing
    logits = model(source.ids, source.lengths, target.ids, teacher_forcing=p)  # (B, T, V)
    loss = cross_entropy(logits, target.ids, target.mask)
    logs = {"accuracy": accuracy(logits.detach(), target.ids, target.mask)}
    if callable(teacher_forcing):
        logs["teacher_forcing"] = p
    return loss, logs


def inverse_sigmoid_schedule(step: int, k: float) -> float:
    """Bengio et al.'s inverse sigmoid decay: ε_i = k / (k + exp(i / k)), k >= 1 (larger: slower)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k!r}")
    return k / (k + math.exp(min(step / k, 700.0)))  # exp's argument capped: no overflow far out


def linear_schedule(step: int, slope: float, start: float = 1.0, floor: float = 0.0) -> float:
    """Bengio et al.'s linear decay: ε_i = max(floor, start - slope * i)."""
    return max(floor, start - slope * step)


def exponential_schedule(step: int, k: float) -> float:
    """Bengio et al.'s exponential decay: ε_i = k^i, 0 < k < 1."""
    if not 0 < k < 1:
        raise ValueError(f"k must lie in (0, 1), got {k!r}")
    return k ** step


class ScheduledSampling:
    """A teacher forcing probability that decays with the number of calls: scheduled sampling.

    ``ScheduledSampling(inverse_sigmoid_schedule, k=50)()`` returns ``schedule(i, k=50)`` at its
    i-th call (i = 0, 1, ...): as ``seq2seq_loss``'s ``teacher_forcing`` it is called once per
    training batch, so i counts the batches seen.
    """

    def __init__(self, schedule: Callable[..., float], **options):
        self.schedule, self.options, self.step = schedule, options, 0

    def __call__(self) -> float:
        p = self.schedule(self.step, **self.options)
        self.step += 1
        return p

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"ScheduledSampling({self.schedule.__name__}, {options}, step={self.step})"
