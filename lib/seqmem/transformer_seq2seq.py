r"""The Transformer as a sequence-to-sequence model over tokens, and label smoothing (Vaswani et al., 2017).

``seqmem.Transformer`` maps vectors to vectors; ``TransformerSeq2Seq`` puts around it what a
translation model needs (section 3.4 and 3.5 of the paper): token embeddings scaled by
sqrt(d_model), ``seqmem.PositionalEncoding`` on both sides, and a generator, the linear layer from
the decoder's outputs to the logits of the target vocabulary,

.. math::

    X_e = \sqrt{d}\, E_s[x] + PE, \qquad X_d = \sqrt{d}\, E_t[y_{<t}] + PE, \qquad
    p(y_t \mid y_{<t}, x) = \mathrm{softmax}(W^g\, \mathrm{Dec}(X_d, \mathrm{Enc}(X_e))_t + b^g)

with the source's padding masked in the encoder's self-attention and in the decoder's attention
over the memory, and the causal mask in the decoder's self-attention (position t reads positions
0 ... t of its input, which is ``<bos>`` y_1 ... y_{T-1}: the target shifted right).

It keeps chapter 4's conventions (``seqmem.seq2seq``), so the library's helpers work unchanged:

- ``forward(source_ids, lengths, target_ids)`` takes the target as ``seqmem.text.Pairs`` holds it
  (the tokens and ``<eos>``, no ``<bos>``) and shifts it itself, so ``seqmem.seq2seq_loss`` and
  ``smoothed_seq2seq_loss`` train it; ``logits(source_ids, lengths, target_in_ids)`` takes the
  decoder's input (``<bos>`` first) as it is.
- ``start`` / ``step``: the decoding protocol, so ``seqmem.greedy`` and ``seqmem.beam_search``
  decode it. The state keeps the encoder's memory and the tokens read so far; every step reruns
  the decoder over the whole prefix (no key-value cache: simple, and cheap at the book's lengths).
- the special ids of ``seqmem.text.seq2seq_vocab``: padding 0, ``<bos>`` 1, ``<eos>`` 2.

**Label smoothing** (section 5.4): the target distribution puts 1 - epsilon on the true token and
spreads epsilon uniformly over all V tokens, q = (1 - epsilon) 1[y] + epsilon / V, and the loss
is the cross-entropy against q,

.. math::

    \ell = -(1 - \epsilon) \log p_y - \frac{\epsilon}{V} \sum_{c=1}^{V} \log p_c

torch's ``cross_entropy(..., label_smoothing=epsilon)``. ``label_smoothing_loss`` computes it so
that it stays finite: a logit of -inf (a token ruled out) makes log p_c = -inf and torch's loss
inf; here every log p_c is floored at a large finite negative number, and a batch with nothing
to count gives 0, not 0 / 0.

Dimensions: B batch, S source length, T target length, D = d_model, V target vocabulary size.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .core import IGNORE_INDEX, check_positive_int
from .layers import length_mask
from .metrics import accuracy
from .seq2seq import check_ids
from .text import BOS_ID, EOS_ID, PAD_ID
from .transformer import PositionalEncoding, Transformer, _check_dropout

__all__ = ["TransformerSeq2Seq", "TransformerState", "label_smoothing_loss", "smoothed_seq2seq_loss"]


class TransformerState(NamedTuple):
    """What decoding needs, batch first: the encoder's memory, the source mask and the tokens read so far."""

    memory: torch.Tensor  # (B, S, D), the encoder's outputs
    mask: torch.Tensor  # (B, S) bool, True at the source's real tokens
    tokens: torch.Tensor  # (B, t) the decoder's inputs so far, <bos> first; (B, 0) before the first step


class TransformerSeq2Seq(nn.Module):
    """Embeddings, positional encodings, ``seqmem.Transformer`` (batch first) and a generator.

    Args:
        source_vocab_size, target_vocab_size: the vocabularies (``seq2seq_vocab``s: id 0 pads).
        d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward, dropout,
        norm_first: ``seqmem.Transformer``'s (``norm_first=True`` is the pre-LN variant).
        max_len: the longest source or target the positional encodings cover.
        share_embeddings: one embedding table for source and target (both vocabularies must
            have the same size), as the paper's shared BPE vocabulary does.
        tie_generator: the generator's weight is the target embedding's (section 3.4).
        learned_positions: ``PositionalEncoding(learned=True)`` instead of the sinusoids.

    Weights: every matrix Xavier-uniform (as the Annotated Transformer; ``seqmem.Transformer``
    does so for its own), the padding's embedding row 0.

    Shape:
        ``forward(source_ids (B, S), lengths (B,) or None, target_ids (B, T))``: logits (B, T, V);
        ``logits(source_ids, lengths, target_in_ids (B, T))``: the same for the shifted input;
        ``start(source_ids, lengths)``: a ``TransformerState``; ``step(state, tokens (B,))``:
        ``(state, logits (B, V))``. ``lengths=None`` means no padding.
    """

    def __init__(self, source_vocab_size: int, target_vocab_size: int, d_model: int = 128, nhead: int = 4,
                 num_encoder_layers: int = 2, num_decoder_layers: int = 2, dim_feedforward: int = 512,
                 dropout: float = 0.1, max_len: int = 256, norm_first: bool = False,
                 share_embeddings: bool = False, tie_generator: bool = False, learned_positions: bool = False,
                 pad_id: int = PAD_ID, bos_id: int = BOS_ID, eos_id: int = EOS_ID):
        super().__init__()
        for name, value in (("source_vocab_size", source_vocab_size), ("target_vocab_size", target_vocab_size),
                            ("d_model", d_model), ("nhead", nhead), ("num_encoder_layers", num_encoder_layers),
                            ("num_decoder_layers", num_decoder_layers), ("dim_feedforward", dim_feedforward),
                            ("max_len", max_len)):
            check_positive_int(name, value)
        _check_dropout(dropout)
        if d_model % nhead:
            raise ValueError(f"d_model must be divisible by nhead, got d_model={d_model} and nhead={nhead}")
        if share_embeddings and source_vocab_size != target_vocab_size:
            raise ValueError(f"share_embeddings needs vocabularies of one size, got source {source_vocab_size} "
                             f"and target {target_vocab_size}")
        for name, i in (("pad_id", pad_id), ("bos_id", bos_id), ("eos_id", eos_id)):
            if not isinstance(i, int) or not 0 <= i < target_vocab_size:
                raise ValueError(f"{name} must be an id in [0, {target_vocab_size}), got {i!r}")
        self.d_model, self.max_len = d_model, max_len
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.target_embedding = nn.Embedding(target_vocab_size, d_model, padding_idx=pad_id)  # (V, D)
        self.source_embedding = self.target_embedding if share_embeddings else \
            nn.Embedding(source_vocab_size, d_model, padding_idx=pad_id)  # (V_s, D)
        self.positions = PositionalEncoding(d_model, max_len, dropout, learned=learned_positions)
        self.transformer = Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward,
                                       dropout, batch_first=True, norm_first=norm_first)
        self.generator = nn.Linear(d_model, target_vocab_size)  # W^g: (V, D)
        for table in (self.source_embedding, self.target_embedding, self.generator):
            nn.init.xavier_uniform_(table.weight)
        with torch.no_grad():
            self.source_embedding.weight[pad_id].zero_()
            self.target_embedding.weight[pad_id].zero_()
        if tie_generator:
            self.generator.weight = self.target_embedding.weight

    def _embed(self, table: nn.Embedding, ids: torch.Tensor, name: str) -> torch.Tensor:
        if ids.shape[1] > self.max_len:
            raise ValueError(f"{name} has {ids.shape[1]} positions, more than max_len={self.max_len}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= table.num_embeddings):
            raise ValueError(f"{name} must hold ids in [0, {table.num_embeddings}), got values from "
                             f"{ids.min().item()} to {ids.max().item()}")
        return self.positions(table(ids) * math.sqrt(self.d_model))  # (B, T, D)

    def encode(self, source_ids: torch.Tensor, lengths: torch.Tensor | None = None):
        """The encoder's memory (B, S, D) and the source mask (B, S), True at the real tokens."""
        B, S = check_ids(source_ids, "source_ids")
        if lengths is None:
            mask = torch.ones(B, S, dtype=torch.bool, device=source_ids.device)
        else:
            mask = length_mask(lengths, B, S, source_ids.device)
            if B and lengths.min() < 1:
                raise ValueError(f"every source must have at least one token, got lengths {lengths.tolist()}")
        x = self._embed(self.source_embedding, source_ids, "source_ids")  # (B, S, D)
        memory = self.transformer.encoder(x, src_key_padding_mask=~mask)  # (B, S, D)
        return memory, mask

    def decode(self, target_in_ids: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The logits (B, T, V) of the next token after each prefix of target_in_ids (B, T), causal."""
        B, T = check_ids(target_in_ids, "target_in_ids", memory.shape[0])
        y = self._embed(self.target_embedding, target_in_ids, "target_in_ids")  # (B, T, D)
        causal = Transformer.generate_square_subsequent_mask(T, device=y.device, dtype=y.dtype)  # (T, T)
        out = self.transformer.decoder(y, memory, tgt_mask=causal, tgt_is_causal=True,
                                       memory_key_padding_mask=~mask)  # (B, T, D)
        return self.generator(out)  # (B, T, V)

    def logits(self, source_ids: torch.Tensor, lengths: torch.Tensor | None,
               target_in_ids: torch.Tensor) -> torch.Tensor:
        """Teacher forcing with the decoder's input given: ``<bos>`` y_1 ... y_{T-1} (B, T) -> (B, T, V)."""
        B, _ = check_ids(source_ids, "source_ids")
        check_ids(target_in_ids, "target_in_ids", B)
        memory, mask = self.encode(source_ids, lengths)
        return self.decode(target_in_ids, memory, mask)

    def shift_right(self, target_ids: torch.Tensor) -> torch.Tensor:
        """The decoder's input for a target (B, T): ``<bos>`` then target_ids[:, :-1]."""
        bos = torch.full_like(target_ids[:, :1], self.bos_id)  # (B, 1)
        return torch.cat([bos, target_ids[:, :-1]], dim=1)  # (B, T)

    def forward(self, source_ids: torch.Tensor, lengths: torch.Tensor | None, target_ids: torch.Tensor,
                teacher_forcing: float = 1.0) -> torch.Tensor:
        """The logits (B, T, V) of every target step, chapter 4's ``Seq2Seq.forward`` for a Transformer.

        target_ids (B, T) as ``Pairs`` holds them (the tokens then ``<eos>``, no ``<bos>``); the
        decoder reads them shifted right. Only teacher forcing (1.0): all steps are computed at
        once, which is the point of the architecture. The logits at the target's real steps do not
        depend on its padding (the causal mask), nor on the source's (the padding mask).
        """
        if isinstance(teacher_forcing, bool) or float(teacher_forcing) != 1.0:
            raise ValueError(f"TransformerSeq2Seq trains with teacher forcing only (1.0), got {teacher_forcing!r}")
        B, _ = check_ids(source_ids, "source_ids")
        check_ids(target_ids, "target_ids", B)
        return self.logits(source_ids, lengths, self.shift_right(target_ids))

    def start(self, source_ids: torch.Tensor, lengths: torch.Tensor | None = None) -> TransformerState:
        memory, mask = self.encode(source_ids, lengths)
        return TransformerState(memory, mask, source_ids.new_zeros(source_ids.shape[0], 0))

    def step(self, state: TransformerState, tokens: torch.Tensor):
        """Read tokens (B,) after the prefix: ``(state, logits (B, V))`` of the token that comes next."""
        B = state.memory.shape[0]
        if not isinstance(tokens, torch.Tensor) or tuple(tokens.shape) != (B,):
            raise ValueError(f"tokens must be a tensor of shape ({B},), got "
                             f"{tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__}")
        prefix = torch.cat([state.tokens, tokens[:, None].to(state.tokens.dtype)], dim=1)  # (B, t + 1)
        logits = self.decode(prefix, state.memory, state.mask)[:, -1]  # (B, V)
        return state._replace(tokens=prefix), logits


# -- label smoothing -------------------------------------------------------------------------------


def label_smoothing_loss(logits: torch.Tensor, targets: torch.Tensor, epsilon: float = 0.1,
                         ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    r"""The mean label-smoothed cross-entropy over the targets that count; always finite.

    Args:
        logits: (N, V) or (B, T, V) scores; -inf entries are allowed (tokens ruled out), NaN and
            +inf are errors.
        targets: (N,) or (B, T) class ids in [0, V), or ``ignore_index`` where a step does not count.
        epsilon: the mass spread uniformly over the V classes, in [0, 1); 0 is plain cross-entropy.

    Returns:
        mean over counted steps of -(1 - eps) log p_y - (eps / V) sum_c log p_c: torch's
        ``F.cross_entropy(logits, targets, ignore_index=..., label_smoothing=eps)`` wherever that
        is finite. Each log p_c is floored at finfo.min / (2 V N) (N the counted steps), so a -inf
        logit costs a large finite amount instead of inf and the sum cannot overflow; 0 when no
        step counts (torch gives NaN).
    """
    if not isinstance(logits, torch.Tensor) or not logits.dtype.is_floating_point or logits.dim() < 2:
        raise ValueError(f"logits must be a floating tensor (N, V) or (B, T, V), got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    if not isinstance(targets, torch.Tensor) or targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise ValueError(f"targets must be an integer tensor of class ids, got "
                         f"{targets.dtype if isinstance(targets, torch.Tensor) else type(targets).__name__}")
    if tuple(logits.shape[:-1]) != tuple(targets.shape):
        raise ValueError(f"logits (..., V) and targets (...) must share their leading dimensions, got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0.0 <= epsilon < 1.0:
        raise ValueError(f"epsilon must be a number in [0, 1), got {epsilon!r}")
    if torch.isnan(logits).any() or torch.isposinf(logits).any():
        raise ValueError("logits must not hold NaN or +inf (-inf is allowed: a token ruled out)")
    V = logits.shape[-1]
    logits, targets = logits.reshape(-1, V), targets.reshape(-1)  # (N, V), (N,)
    counted = targets != ignore_index  # (N,)
    if ((targets < 0) | (targets >= V))[counted].any():
        raise ValueError(f"targets must be class ids in [0, {V}) or ignore_index={ignore_index}, got values "
                         f"from {targets[counted].min().item()} to {targets[counted].max().item()}")
    n = max(int(counted.sum()), 1)
    floor = torch.finfo(logits.dtype).min / (2 * V * n)
    finite = logits.clamp(min=torch.finfo(logits.dtype).min)  # -inf -> the lowest float: a row of -inf is uniform
    log_p = F.log_softmax(finite, dim=-1).clamp(min=floor)  # (N, V), finite
    nll = -log_p.gather(1, torch.where(counted, targets, 0)[:, None])[:, 0]  # (N,)
    smooth = -log_p.mean(-1)  # (N,): -(1 / V) sum_c log p_c
    per_step = (1.0 - epsilon) * nll + epsilon * smooth if epsilon else nll  # (N,)
    return torch.where(counted, per_step / n, torch.zeros_like(per_step)).sum()


def smoothed_seq2seq_loss(model: nn.Module, batch, epsilon: float = 0.1):
    """``fit``'s loss for a sequence-to-sequence model with label smoothing: ``seq2seq_loss`` with eps.

    ``batch`` is ``(source, target)``, two ``Padded`` (a ``Pairs`` will do); the model is called
    as ``model(source.ids, source.lengths, target.ids)`` (any model of chapters 4-6). Returns
    ``(loss, logs)``: the smoothed loss over the target's real tokens, and ``"accuracy"`` (the
    argmax's token accuracy) and ``"nll"`` (the plain cross-entropy, comparable across epsilon).
    Bind epsilon with ``functools.partial(smoothed_seq2seq_loss, epsilon=0.1)``.
    """
    source, target = batch[0], batch[1]
    logits = model(source.ids, source.lengths, target.ids)  # (B, T, V)
    labels = target.ids.masked_fill(~target.mask, IGNORE_INDEX)  # (B, T)
    loss = label_smoothing_loss(logits, labels, epsilon)
    with torch.no_grad():
        nll = label_smoothing_loss(logits, labels, 0.0)
    return loss, {"accuracy": accuracy(logits.detach(), target.ids, target.mask), "nll": float(nll)}
