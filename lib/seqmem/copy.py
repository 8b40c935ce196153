r"""Copying: a decoder that can write a source word its vocabulary does not hold.

A decoder's softmax ranges over a fixed vocabulary of V words, so a name it never saw in training
("please call Zorbu tomorrow" -> "call Zorbu") is beyond it: the best it can write is ``<unk>``.
The lecture's answer is copying (CopyNet, Gu et al., 2016): the attention weights alpha_t already
point at source positions, so they can serve as a distribution over the source's words. The
pointer-generator (See et al., 2017) mixes the two distributions with a learned switch p_gen:

.. math::

    p_\mathrm{gen} = \sigma(w_c^\top c_t + w_s^\top s_t + w_x^\top x_t + b), \qquad
    P(w) = p_\mathrm{gen}\, P_\mathrm{vocab}(w) + (1 - p_\mathrm{gen}) \sum_{j:\, x_j = w} \alpha_{tj}

with c_t the context, s_t the decoder state, x_t the decoder's input (the embedding of y_{t-1}).
P(w) ranges over the **extended vocabulary**: the V words and then each example's own
out-of-vocabulary (OOV) source words, ids V, V + 1, ... in order of first appearance; P_vocab is
zero on those, and the copy sum is zero on a word absent from the source. A word that occurs
twice in the source gets the attention of both positions.

The pieces, in that order:

- ``copy_vocab``: a ``seq2seq_vocab`` with ``<unk>`` (id 3) for what it does not hold;
  ``extend_source``, ``extend_target``: one example's extended ids and its OOV list;
  ``encode_copy_pairs``: a batch of them (``CopyPairs``); ``decode_extended``: ids back to words;
  ``to_fixed``: extended ids as the fixed vocabulary sees them (OOV -> ``<unk>``), what an
  embedding reads.
- ``copy_distribution``: the mixture P(w) above, (B, V + n_oov); ``copy_nll``: the loss on it.
- ``CopyDecoder``: ``seqmem.attention.AttentionDecoder`` plus p_gen and the mixture, in either
  style; ``CopySeq2Seq``: ``seqmem.seq2seq.Seq2Seq`` for it, whose source ids are the extended
  ones; ``copy_loss``: ``fit``'s loss. ``step`` returns log P(w) (B, V + n_oov) in place of the
  logits, so ``seqmem.greedy`` and ``seqmem.beam_search`` decode a copy model unchanged (an
  argmax, and a log-softmax that leaves log-probabilities as they are); an OOV id fed back as
  the next input becomes ``<unk>``.

Dimensions: B batch, S source length, T target length, V the fixed vocabulary's size, n_oov the
most OOV words of any example in the batch, V' = V + n_oov the extended size, M memory size, H the
decoder's hidden size, E embedding size.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .attention import AttentionDecoder, AttentionState, Score, _hidden
from .core import IGNORE_INDEX
from .layers import length_mask
from .metrics import accuracy
from .seq2seq import Encoder, Seq2Seq, Seq2SeqState, _next_inputs, check_ids
from .text import BOS_ID, EOS_ID, PAD_ID, Padded, Vocab, pad, seq2seq_vocab

__all__ = ["UNK", "UNK_ID", "copy_vocab", "extend_source", "extend_target", "CopyPairs", "encode_copy_pairs",
           "decode_extended", "to_fixed", "copy_distribution", "copy_nll", "CopyState", "CopyDecoder",
           "CopySeq2Seq", "copy_loss"]

#: The token of the fixed vocabulary for every word it does not hold, and its id in a ``copy_vocab``.
UNK = "<unk>"
UNK_ID = 3
#: Added to P(w) before the log: a target the model gives probability 0 costs -log(eps), not inf.
EPS = 1e-10


def _shape(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


# -- the extended vocabulary -----------------------------------------------------------------------


def copy_vocab(tokens) -> Vocab:
    """A closed ``seq2seq_vocab`` with ``<unk>``: PAD 0, BOS 1, EOS 2, UNK 3, then ``tokens``."""
    tokens = list(tokens)
    if UNK in tokens:
        raise ValueError(f"tokens must not include {UNK!r}: copy_vocab adds it as id {UNK_ID}")
    return seq2seq_vocab([UNK, *tokens])


def _check_copy_vocab(vocab) -> None:
    if not isinstance(vocab, Vocab) or len(vocab) <= UNK_ID or vocab.tokens[UNK_ID] != UNK:
        raise ValueError(f"vocab must be a copy_vocab (token {UNK!r} at id {UNK_ID}), got {vocab!r}")


def extend_source(tokens: Sequence, vocab: Vocab) -> tuple[list[int], list]:
    """One source's extended ids and its OOV words.

    A token of the vocabulary keeps its id; the others are numbered V, V + 1, ... in order of
    first appearance (a repeated OOV word gets the same id). Returns ``(ids, oovs)``: ids (S,)
    as a list, oovs the OOV words, so that id V + k is ``oovs[k]``.
    """
    _check_copy_vocab(vocab)
    V, oovs, ids = len(vocab), [], []
    for token in tokens:
        if token in vocab:
            ids.append(vocab.index(token))
        else:
            if token not in oovs:
                oovs.append(token)
            ids.append(V + oovs.index(token))
    return ids, oovs


def extend_target(tokens: Sequence, vocab: Vocab, oovs: Sequence) -> list[int]:
    """A target's extended ids: the vocabulary's id, else V + k for the source's k-th OOV word,
    else ``<unk>`` (a word neither in the vocabulary nor in the source cannot be written)."""
    _check_copy_vocab(vocab)
    V, oovs = len(vocab), list(oovs)
    return [vocab.index(t) if t in vocab else V + oovs.index(t) if t in oovs else UNK_ID for t in tokens]


class CopyPairs(NamedTuple):
    """A batch of B source-target pairs over the extended vocabulary, padded with ``PAD_ID``.

    ``source`` (B, S) holds extended ids (OOV words >= V), ``target`` (B, T) too, then ``<eos>``;
    ``oovs[b]`` is example b's OOV list (id V + k is ``oovs[b][k]``).
    """

    source: Padded
    target: Padded
    oovs: list
    source_text: list[str]
    target_text: list[str]


def encode_copy_pairs(pairs: Sequence[tuple[Sequence, Sequence]], vocab: Vocab, device=None) -> CopyPairs:
    """Encode B (source tokens, target tokens) pairs with one shared ``copy_vocab``."""
    _check_copy_vocab(vocab)
    pairs = list(pairs)
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError(f"pairs must be a non-empty list of (source, target) pairs, got {len(pairs)} items")
    sources, targets, oovs = [], [], []
    for source, target in pairs:
        ids, oov = extend_source(source, vocab)
        sources.append(ids)
        targets.append(extend_target(target, vocab, oov) + [EOS_ID])
        oovs.append(oov)
    texts = [" ".join(map(str, s)) for s, _ in pairs], [" ".join(map(str, t)) for _, t in pairs]
    return CopyPairs(pad(sources, PAD_ID, device), pad(targets, PAD_ID, device), oovs, *texts)


def decode_extended(ids: Sequence[int] | torch.Tensor, vocab: Vocab, oovs: Sequence) -> list:
    """The words of extended ids (T,): the vocabulary's, or ``oovs[id - V]`` from V on."""
    ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    V = len(vocab)
    for i in ids:
        if not 0 <= i < V + len(oovs):
            raise ValueError(f"ids must lie in [0, V + n_oov) = [0, {V + len(oovs)}), got {i}")
    return [vocab.tokens[i] if i < V else oovs[i - V] for i in ids]


def to_fixed(ids: torch.Tensor, vocab_size: int, unk_id: int = UNK_ID) -> torch.Tensor:
    """Extended ids (any shape) as the fixed vocabulary sees them: every id >= V becomes ``<unk>``."""
    if not isinstance(ids, torch.Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise ValueError(f"ids must be an integer tensor, got {_shape(ids)}")
    return ids.masked_fill(ids >= vocab_size, unk_id)


# -- the mixture -----------------------------------------------------------------------------------


def _check_mixture(p_vocab, attention, source_ext_ids, p_gen, extended_size, pad_id):
    """ValueErrors, naming the expected shape or value, for every input the mixture cannot take."""
    if not isinstance(p_vocab, torch.Tensor) or p_vocab.dim() != 2 or not p_vocab.dtype.is_floating_point:
        raise ValueError(f"p_vocab must be floating probabilities of shape (B, V), got {_shape(p_vocab)}")
    B, V = p_vocab.shape
    if not isinstance(attention, torch.Tensor) or attention.dim() != 2 or attention.shape[0] != B:
        raise ValueError(f"attention must have shape (B, S) with B = {B}, got {_shape(attention)}")
    if not isinstance(source_ext_ids, torch.Tensor) or source_ext_ids.shape != attention.shape or \
            source_ext_ids.dtype.is_floating_point or source_ext_ids.dtype == torch.bool:
        raise ValueError(f"source_ext_ids must be integer ids of the attention's shape {_shape(attention)}, "
                         f"got {_shape(source_ext_ids)}"
                         f"{' of dtype ' + str(source_ext_ids.dtype) if isinstance(source_ext_ids, torch.Tensor) else ''}")
    if not isinstance(p_gen, torch.Tensor) or tuple(p_gen.shape) not in ((B,), (B, 1)):
        raise ValueError(f"p_gen must have shape (B, 1) or (B,) with B = {B}, got {_shape(p_gen)}")
    for name, t in (("attention", attention), ("p_gen", p_gen)):
        if t.dtype != p_vocab.dtype or t.device != p_vocab.device:
            raise ValueError(f"{name} must share p_vocab's dtype and device ({p_vocab.dtype} on {p_vocab.device}), "
                             f"got {t.dtype} on {t.device}")
    if source_ext_ids.device != p_vocab.device:
        raise ValueError(f"source_ext_ids is on {source_ext_ids.device} but p_vocab is on {p_vocab.device}")
    if isinstance(extended_size, bool) or not isinstance(extended_size, int) or extended_size < V:
        raise ValueError(f"extended_size must be an int >= V = {V}, got {extended_size!r}")
    if source_ext_ids.numel() and (source_ext_ids.min() < 0 or source_ext_ids.max() >= extended_size):
        raise ValueError(f"source_ext_ids must lie in [0, extended_size) = [0, {extended_size}), got values from "
                         f"{int(source_ext_ids.min())} to {int(source_ext_ids.max())}")
    if pad_id is not None and (attention.detach()[source_ext_ids == pad_id] != 0).any():
        raise ValueError(f"attention must be 0 at the source's padding (id {pad_id}): mask it before the softmax")


def copy_distribution(p_vocab: torch.Tensor, attention: torch.Tensor, source_ext_ids: torch.Tensor,
                      p_gen: torch.Tensor, extended_size: int, pad_id: int | None = PAD_ID) -> torch.Tensor:
    r"""The pointer-generator's P(w) over the extended vocabulary (See et al., 2017, eq. (9)).

    P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{j: x_j = w} alpha_j, mixed in probability space.

    Args:
        p_vocab: (B, V) the decoder's softmax over the fixed vocabulary.
        attention: (B, S) the step's attention weights alpha over the source, 0 at its padding
            (a ``ValueError`` otherwise: the copy part would put mass on the padding's id).
        source_ext_ids: (B, S) the source's extended ids in [0, extended_size) (``extend_source``).
        p_gen: (B, 1) or (B,), the probability of generating from the vocabulary.
        extended_size: V' = V + n_oov, at least V.
        pad_id: the padding's id (``None``: do not check the padding's attention).

    Returns:
        (B, V') probabilities; each row sums to one when p_vocab's and attention's rows do.
    """
    _check_mixture(p_vocab, attention, source_ext_ids, p_gen, extended_size, pad_id)
    B, V = p_vocab.shape
    p_gen = p_gen.reshape(B, 1)  # (B, 1)
    generate = F.pad(p_gen * p_vocab, (0, extended_size - V))  # (B, V'): 0 on the OOV ids
    # the copy part: each position's weight added to its word's id; repeated words accumulate
    return generate.scatter_add(1, source_ext_ids.long(), (1 - p_gen) * attention)  # (B, V')


def copy_nll(probs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None,
             eps: float = EPS) -> torch.Tensor:
    """The mean of -log(P(y) + eps) over the target steps that count.

    Args:
        probs: (B, T, V') probabilities over the extended vocabulary (any leading dims: (..., V')).
        targets: (B, T) extended ids; ``IGNORE_INDEX`` steps do not count.
        mask: (B, T) bool, True where a step counts (default: every labelled step).
        eps: keeps log finite where P(y) = 0 (an OOV target with p_gen = 1): the loss is then
            -log(eps), and the gradient 1 / (P + eps) stays finite.
    """
    if not isinstance(probs, torch.Tensor) or probs.shape[:-1] != getattr(targets, "shape", None):
        raise ValueError(f"probs (..., V') and targets (...) must share their leading dimensions, got "
                         f"{_shape(probs)} and {_shape(targets)}")
    return _nll(torch.log(probs + eps), targets, mask)


def _nll(log_probs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is not None:
        targets = targets.masked_fill(~mask, IGNORE_INDEX)
    flat = targets.reshape(-1)
    if flat.numel() and flat.max() >= log_probs.shape[-1]:
        raise ValueError(f"targets must be extended ids below V' = {log_probs.shape[-1]}, got {int(flat.max())}")
    return F.nll_loss(log_probs.reshape(-1, log_probs.shape[-1]), flat, ignore_index=IGNORE_INDEX)


# -- the decoder -----------------------------------------------------------------------------------


class CopyState(NamedTuple):
    """A ``CopyDecoder``'s state: the attention decoder's, the source's extended ids, the step's p_gen."""

    attention: AttentionState  # the AttentionDecoder's state; its weights are the copy distribution's alpha
    source: torch.Tensor  # (B, S) the source's extended ids, never changed
    p_gen: torch.Tensor  # (B, 1) the last step's p_gen; zeros before the first step
    extended_size: int  # V' = V + n_oov for this batch

    @property
    def weights(self) -> torch.Tensor:
        """The last step's attention weights alpha_t (B, S) (what ``return_weights`` collects)."""
        return self.attention.weights


class CopyDecoder(AttentionDecoder):
    r"""An ``AttentionDecoder`` that can copy: the pointer-generator (See et al., 2017).

    Each step runs the attention decoder's step (either style; its equations are in
    ``AttentionDecoder``) for the logits, the context c_t and the state s_t, then

    .. math::

        p_\mathrm{gen} = \sigma(w_c^\top c_t + w_s^\top s_t + w_x^\top x_t + b), \qquad
        P(w) = p_\mathrm{gen} \mathrm{softmax}(\mathrm{logits})_w + (1 - p_\mathrm{gen}) \textstyle\sum_{j: x_j = w} \alpha_{tj}

    with x_t = e(y_{t-1}) the input's embedding (an OOV y_{t-1} is read as ``<unk>``) and s_t the
    cell's hidden state (Luong's h_t). Parameters besides the attention decoder's: ``w_c`` (1, M),
    ``w_s`` (1, H), ``w_x`` (1, E) (as ``nn.Linear`` weights) and ``b`` (1,).

    The protocol of ``CopySeq2Seq``: ``start(context, memory, mask, source_ext_ids)`` gives a
    ``CopyState``; ``step(state, tokens, memory, mask)`` gives ``(state, log P(w) (B, V'))``.
    """

    def __init__(self, vocab_size: int, embedding_dim: int, cell: nn.Module, memory_size: int, score: Score,
                 style: str = "bahdanau", context_size: int | None = None, unk_id: int = UNK_ID,
                 pad_id: int = PAD_ID):
        super().__init__(vocab_size, embedding_dim, cell, memory_size, score, style, context_size, pad_id)
        if not 0 <= unk_id < vocab_size:
            raise ValueError(f"unk_id must be an id of the vocabulary, in [0, {vocab_size}), got {unk_id!r}")
        self.vocab_size, self.unk_id, self.pad_id = vocab_size, unk_id, pad_id
        self.w_c = nn.Linear(memory_size, 1, bias=False)  # (1, M)
        self.w_s = nn.Linear(cell.hidden_size, 1, bias=False)  # (1, H)
        self.w_x = nn.Linear(embedding_dim, 1, bias=False)  # (1, E)
        self.b = nn.Parameter(torch.zeros(1))

    def start(self, context, memory: torch.Tensor, mask: torch.Tensor, source_ext_ids: torch.Tensor) -> CopyState:
        """The state before the first step; V' = max(V, the largest source id + 1)."""
        if not isinstance(source_ext_ids, torch.Tensor) or source_ext_ids.shape != mask.shape:
            raise ValueError(f"source_ext_ids must have the mask's shape (B, S) = {_shape(mask)}, "
                             f"got {_shape(source_ext_ids)}")
        extended = max(self.vocab_size, int(source_ext_ids.max()) + 1) if source_ext_ids.numel() else self.vocab_size
        inner = super().start(context, memory, mask)
        return CopyState(inner, source_ext_ids, memory.new_zeros(memory.shape[0], 1), extended)

    def step(self, state: CopyState, tokens: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor):
        """One step from the previous tokens (B,), extended ids: ``(state, log P(w) (B, V'))``."""
        x = self.embedding(to_fixed(tokens, self.vocab_size, self.unk_id))  # x_t = e(y_{t-1}): (B, E)
        step = self._bahdanau_step if self.style == "bahdanau" else self._luong_step
        inner, logits = step(state.attention, x, memory, mask)  # (B, V)
        s = _hidden(inner.cell)  # s_t: (B, H)
        p_gen = torch.sigmoid(self.w_c(inner.context) + self.w_s(s) + self.w_x(x) + self.b)  # See et al. eq. (8): (B, 1)
        P = copy_distribution(torch.softmax(logits, -1), inner.weights, state.source, p_gen,
                              state.extended_size, self.pad_id)  # eq. (9): (B, V')
        return CopyState(inner, state.source, p_gen, state.extended_size), torch.log(P + EPS)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, unk_id={self.unk_id}"


class CopySeq2Seq(Seq2Seq):
    """A ``Seq2Seq`` whose decoder copies: source and target ids are extended ids.

    Encoder and decoder share one vocabulary (a ``copy_vocab``); the encoder reads the source
    with its OOV words as ``<unk>``, the decoder's copy distribution scatters onto the extended
    ids. ``step`` returns log P(w) (B, V') where ``Seq2Seq``'s returns logits, so
    ``seqmem.greedy`` and ``seqmem.beam_search`` decode it unchanged; their ids >= V are the
    example's OOV words (``decode_extended``).

    Shape:
        ``start(source_ids (B, S), lengths (B,))``, ``step(state, tokens (B,))`` as ``Seq2Seq``'s;
        ``forward(source_ids, lengths, target_ids (B, T), ...)`` gives log P (B, T, V'), and with
        ``return_weights`` / ``return_p_gen`` also the attention (B, T, S) / p_gen (B, T).
    """

    def __init__(self, encoder: Encoder, decoder: CopyDecoder, bos_id: int = BOS_ID):
        if not isinstance(decoder, CopyDecoder):
            raise ValueError(f"decoder must be a CopyDecoder, got {type(decoder).__name__}")
        if encoder.embedding.num_embeddings != decoder.vocab_size:
            raise ValueError(f"encoder and decoder must share one vocabulary, got sizes "
                             f"{encoder.embedding.num_embeddings} and {decoder.vocab_size}")
        super().__init__(encoder, decoder, bos_id)

    def start(self, source_ids: torch.Tensor, lengths: torch.Tensor | None = None) -> Seq2SeqState:
        B, S = check_ids(source_ids, "source_ids")
        fixed = to_fixed(source_ids, self.decoder.vocab_size, self.decoder.unk_id)  # OOV -> <unk>: (B, S)
        memory, context = self.encoder(fixed, lengths)  # (B, S, M), the context
        mask = length_mask(lengths, B, S, memory.device) if lengths is not None else \
            torch.ones(B, S, dtype=torch.bool, device=memory.device)  # (B, S)
        source = source_ids.masked_fill(~mask, self.decoder.pad_id)  # nothing is copied from the padding
        return Seq2SeqState(self.decoder.start(context, memory, mask, source), memory, mask)

    def forward(self, source_ids: torch.Tensor, lengths: torch.Tensor | None, target_ids: torch.Tensor,
                teacher_forcing: float = 1.0, generator: torch.Generator | None = None,
                return_weights: bool = False, return_p_gen: bool = False):
        """log P (B, T, V') of every target step, y_{t-1} chosen as in ``Seq2Seq.forward``."""
        state, tokens, T = self._begin_forward(source_ids, lengths, target_ids, teacher_forcing)
        log_probs, weights, p_gen = [], [], []
        for t in range(T):
            state, log_p = self.step(state, tokens)  # (B, V')
            log_probs.append(log_p)
            weights.append(state.decoder.weights)  # (B, S)
            p_gen.append(state.decoder.p_gen[:, 0])  # (B,)
            tokens = _next_inputs(target_ids[:, t], log_p, float(teacher_forcing), generator)
        out = [torch.stack(log_probs, dim=1)]  # (B, T, V')
        if return_weights:
            out.append(torch.stack(weights, dim=1))  # (B, T, S)
        if return_p_gen:
            out.append(torch.stack(p_gen, dim=1))  # (B, T)
        return out[0] if len(out) == 1 else tuple(out)


def copy_loss(model: CopySeq2Seq, batch, teacher_forcing: float = 1.0):
    """``fit``'s loss for a copy model: the mean -log P(y_t) over the target's real tokens.

    ``batch`` is a ``CopyPairs`` (or any ``(source, target, ...)`` of two ``Padded`` with extended
    ids). Logs the token accuracy of the argmax of P (``"accuracy"``).
    """
    source, target = batch[0], batch[1]
    log_probs = model(source.ids, source.lengths, target.ids, teacher_forcing=teacher_forcing)  # (B, T, V')
    loss = _nll(log_probs, target.ids, target.mask)
    return loss, {"accuracy": accuracy(log_probs.detach(), target.ids, target.mask)}
