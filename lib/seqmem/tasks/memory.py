r"""The memory tasks of the Neural Turing Machine (Graves et al. 2014, section 4), and their score.

Each episode is a sequence of binary vectors; the network reads a presentation phase, then,
with **no input** (all-zero steps), must write an answer in the recall phase. Only the recall
steps are scored: ``mask`` (B, T) is True exactly there. Episodes of different lengths in one
batch are padded at the end with all-zero inputs, targets and mask; ``lengths`` (B,) counts each
episode's real steps.

- ``copy_sequences``: a sequence of L random n_bits-vectors (L uniform in min_len..max_len), a
  delimiter (its own input channel), then L recall steps that reproduce the sequence (section 4.1).
- ``copy_series``: several copy episodes back to back, for a memory that must free and reuse its
  slots (the DNC paper's test of dynamic allocation).
- ``repeat_copy``: a sequence, the delimiter, then the number of repeats R on its own channel
  (normalised, see below), then L * R recall steps that reproduce the sequence R times and one
  more step for the end marker (its own output channel): the network must count (section 4.2).
- ``associative_recall``: n items (each ``item_len`` vectors, each item opened by an item
  delimiter), then a query item between two query delimiters; the recall phase is the item that
  followed the query in the list (section 4.3).

The layouts (t: step, L: the sequence's length):

====================  =============================================  ==========================
task                  inputs (channels)                               recall steps
====================  =============================================  ==========================
copy                  bits 0..n-1, delimiter n (at t = L)              t = L + 1 ... 2L
repeat copy           bits, delimiter n (t = L), repeats n + 1         t = L + 2 ... L + 2 + L R
                      (t = L + 1)                                      (the last: end marker n)
associative recall    bits, item delimiter n, query delimiter n + 1    the item_len steps after
                                                                       the query's closing delimiter
====================  =============================================  ==========================

The repeat number is normalised to mean 0 and variance 1 over the training range
(``repeat_norm``: the paper's 1..10 by default), a uniform distribution of integers, so that
numbers outside it (the generalisation test) are encoded on the same scale.

The score: ``bit_errors`` counts, per episode, the recall bits a thresholded output gets wrong;
``sequence_cost`` is the binary cross-entropy summed over an episode's recall bits, in bits
(log base 2): the paper's "cost per sequence", and, with ``bits=False`` (nats) and a mean over
the batch, the training loss.

Every generator takes a ``torch.Generator`` (``None``: torch's global one) and returns tensors on
``device``, drawn on the generator's device then moved (the same seed gives the same data on
every device). Dimensions: B batch, T steps (the longest episode of the batch), I input
channels, O output channels.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.nn import functional as F

from ._common import check_sizes, gen_device

__all__ = ["MemoryBatch", "copy_sequences", "copy_series", "repeat_copy", "associative_recall", "repeat_encoding", "bit_errors",
           "sequence_cost"]


class MemoryBatch(NamedTuple):
    """A batch of memory-task episodes, padded to the longest.

    inputs (B, T, I) float; targets (B, T, O) float bits (zero outside the recall phase); mask
    (B, T) bool, True at the scored (recall) steps; lengths (B,) int64, each episode's real steps;
    sizes (B,) int64, each episode's size (the sequence's length L, or the number of items);
    repeats (B,) int64, each episode's number of copies (1 for copy and associative recall).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    sizes: torch.Tensor
    repeats: torch.Tensor


def _range(name: str, lo: int, hi: int) -> None:
    check_sizes(**{f"min_{name}": lo, f"max_{name}": hi})
    if lo > hi:
        raise ValueError(f"min_{name} must be <= max_{name}, got {lo} > {hi}")


def _uniform(lo: int, hi: int, B: int, generator, gdev) -> torch.Tensor:
    """B integers uniform in lo..hi (both included), (B,) int64."""
    return torch.randint(lo, hi + 1, (B,), generator=generator, device=gdev)


def _bits(B: int, L: int, n_bits: int, generator, gdev) -> torch.Tensor:
    """Random bits (B, L, n_bits), each 0 or 1 with probability 1/2, as floats."""
    return torch.randint(0, 2, (B, L, n_bits), generator=generator, device=gdev).float()


def _pick(seq: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """seq (B, L, C) at per-step positions index (B, T) (clamped into 0..L-1) -> (B, T, C)."""
    idx = index.clamp(0, seq.shape[1] - 1)
    return seq.gather(1, idx.unsqueeze(-1).expand(-1, -1, seq.shape[2]))


def _batch(inputs, targets, mask, lengths, sizes, repeats, device) -> MemoryBatch:
    return MemoryBatch(*(t.to(device or t.device) for t in (inputs, targets, mask, lengths, sizes, repeats)))


def copy_sequences(batch_size: int, min_len: int = 1, max_len: int = 20, n_bits: int = 8,
                   generator: torch.Generator | None = None, device=None) -> MemoryBatch:
    """The copy task (section 4.1): L random vectors, a delimiter, then the L vectors back.

    Inputs (B, T, n_bits + 1): the vectors on channels 0..n_bits-1 at t < L, the delimiter on
    channel n_bits at t = L, zeros after. Targets (B, T, n_bits): the vectors at t = L + 1 ... 2L.
    T = 2 * max(L) + 1; each episode has 2L + 1 steps.
    """
    check_sizes(batch_size=batch_size, n_bits=n_bits)
    _range("len", min_len, max_len)
    gdev = gen_device(generator)
    L = _uniform(min_len, max_len, batch_size, generator, gdev)  # (B,)
    seq = _bits(batch_size, max_len, n_bits, generator, gdev)  # (B, max_len, n_bits)
    T = 2 * int(L.max()) + 1
    t = torch.arange(T, device=gdev).unsqueeze(0)  # (1, T)
    Lc = L.unsqueeze(1)  # (B, 1)
    inputs = torch.zeros(batch_size, T, n_bits + 1, device=gdev)
    inputs[..., :n_bits] = _pick(seq, t.expand(batch_size, T)) * (t < Lc).unsqueeze(-1)
    inputs[..., n_bits] = (t == Lc).float()  # the delimiter
    mask = (t > Lc) & (t <= 2 * Lc)  # (B, T): the recall phase
    targets = _pick(seq, (t - Lc - 1).expand(batch_size, T)) * mask.unsqueeze(-1)  # (B, T, n_bits)
    return _batch(inputs, targets, mask, 2 * L + 1, L, torch.ones_like(L), device)


def copy_series(batch_size: int, n_sequences: int = 3, min_len: int = 1, max_len: int = 10, n_bits: int = 8,
                generator: torch.Generator | None = None, device=None) -> MemoryBatch:
    """Several copy episodes back to back in one episode: what a memory must free to reuse.

    Each of the ``n_sequences`` parts is a copy episode of its own length L_k (uniform in
    min_len..max_len): L_k vectors, the delimiter, then L_k recall steps; the next part starts
    right after, with no padding between parts (only at the end of the batch). A sequence is never
    needed again once it has been recalled, so a memory of fewer slots than the series' sum of
    lengths can do it only by releasing and reusing slots: the DNC paper's test of dynamic
    allocation and free gates (Graves et al. 2016, Extended Data Figure 1).

    Inputs (B, T, n_bits + 1) and targets (B, T, n_bits) laid out as ``copy_sequences``'s, part
    after part; the mask is True at every part's recall steps; lengths (B,) = sum of 2 L_k + 1;
    sizes (B,) = the number of vectors to copy, sum of L_k; repeats (B,) = ``n_sequences``.
    """
    check_sizes(batch_size=batch_size, n_sequences=n_sequences, n_bits=n_bits)
    _range("len", min_len, max_len)
    gdev = gen_device(generator)
    B = batch_size
    Ls = [_uniform(min_len, max_len, B, generator, gdev) for _ in range(n_sequences)]  # each (B,)
    seqs = [_bits(B, max_len, n_bits, generator, gdev) for _ in range(n_sequences)]  # each (B, max_len, n_bits)
    lengths = sum(2 * L + 1 for L in Ls)  # (B,)
    T = int(lengths.max())
    t = torch.arange(T, device=gdev).unsqueeze(0)  # (1, T)
    inputs = torch.zeros(B, T, n_bits + 1, device=gdev)
    targets = torch.zeros(B, T, n_bits, device=gdev)
    mask = torch.zeros(B, T, dtype=torch.bool, device=gdev)
    start = torch.zeros(B, 1, dtype=torch.long, device=gdev)  # (B, 1): where the part begins
    for L, seq in zip(Ls, seqs):
        Lc, local = L.unsqueeze(1), t - start  # (B, 1), (B, T): the step within this part
        shown = (local >= 0) & (local < Lc)
        recall = (local > Lc) & (local <= 2 * Lc)
        inputs[..., :n_bits] += _pick(seq, local) * shown.unsqueeze(-1)
        inputs[..., n_bits] += (local == Lc).float()  # this part's delimiter
        targets += _pick(seq, local - Lc - 1) * recall.unsqueeze(-1)
        mask |= recall
        start = start + 2 * Lc + 1
    return _batch(inputs, targets, mask, lengths, sum(Ls), torch.full_like(lengths, n_sequences), device)


def repeat_encoding(repeats: torch.Tensor, repeat_norm: tuple[int, int] = (1, 10)) -> torch.Tensor:
    """The repeat channel's value: (R - mean) / std of the integers uniform in repeat_norm = (lo, hi).

    mean = (lo + hi) / 2 and variance ((hi - lo + 1)^2 - 1) / 12 (a discrete uniform); a range of
    one number has variance 0 and is encoded as R - lo (0).
    """
    lo, hi = repeat_norm
    mean, var = (lo + hi) / 2, ((hi - lo + 1) ** 2 - 1) / 12
    return (repeats.float() - mean) / (math.sqrt(var) if var > 0 else 1.0)


def repeat_copy(batch_size: int, min_len: int = 1, max_len: int = 10, min_repeats: int = 1, max_repeats: int = 10,
                n_bits: int = 8, repeat_norm: tuple[int, int] = (1, 10), generator: torch.Generator | None = None,
                device=None) -> MemoryBatch:
    """The repeat copy task (section 4.2): a sequence, then copy it R times and mark the end.

    Inputs (B, T, n_bits + 2): the vectors at t < L, the delimiter on channel n_bits at t = L,
    the normalised repeat number (``repeat_encoding``) on channel n_bits + 1 at t = L + 1, zeros
    after. Targets (B, T, n_bits + 1): the sequence R times at t = L + 2 ... L + 1 + L R, then the
    end marker on channel n_bits at t = L + 2 + L R. Each episode has L + 3 + L R steps, of which
    L R + 1 are scored. L is uniform in min_len..max_len, R in min_repeats..max_repeats.
    """
    check_sizes(batch_size=batch_size, n_bits=n_bits)
    _range("len", min_len, max_len)
    _range("repeats", min_repeats, max_repeats)
    gdev = gen_device(generator)
    L = _uniform(min_len, max_len, batch_size, generator, gdev)  # (B,)
    R = _uniform(min_repeats, max_repeats, batch_size, generator, gdev)  # (B,)
    seq = _bits(batch_size, max_len, n_bits, generator, gdev)  # (B, max_len, n_bits)
    lengths = L + 3 + L * R
    T = int(lengths.max())
    t = torch.arange(T, device=gdev).unsqueeze(0)  # (1, T)
    Lc, Rc = L.unsqueeze(1), R.unsqueeze(1)  # (B, 1)
    inputs = torch.zeros(batch_size, T, n_bits + 2, device=gdev)
    inputs[..., :n_bits] = _pick(seq, t.expand(batch_size, T)) * (t < Lc).unsqueeze(-1)
    inputs[..., n_bits] = (t == Lc).float()  # the delimiter
    inputs[..., n_bits + 1] = torch.where(t == Lc + 1, repeat_encoding(Rc, repeat_norm), 0.0)  # the repeats
    u = t - Lc - 2  # (B, T): the step of the recall phase
    copying = (u >= 0) & (u < Lc * Rc)  # (B, T)
    end = u == Lc * Rc  # (B, T): the end marker's step
    targets = torch.zeros(batch_size, T, n_bits + 1, device=gdev)
    targets[..., :n_bits] = _pick(seq, u.clamp(min=0) % Lc) * copying.unsqueeze(-1)
    targets[..., n_bits] = end.float()
    return _batch(inputs, targets, copying | end, lengths, L, R, device)


def _distinct_items(B: int, n: int, item_len: int, n_bits: int, generator, gdev) -> torch.Tensor:
    """(B, n, item_len, n_bits) random items, the n of each episode all different (redrawn until so)."""
    items = _bits(B, n, item_len * n_bits, generator, gdev)  # (B, n, item_len * n_bits)
    for _ in range(100):
        same = (items.unsqueeze(1) == items.unsqueeze(2)).all(-1)  # (B, n, n)
        same &= ~torch.eye(n, dtype=torch.bool, device=gdev)
        clash = same.any(-1)  # (B, n): an item equal to another of its episode
        if not clash.any():
            break
        items[clash] = _bits(1, int(clash.sum()), item_len * n_bits, generator, gdev)[0]
    else:
        raise ValueError(f"could not draw {n} distinct items of {item_len * n_bits} bits")
    return items.view(B, n, item_len, n_bits)


def associative_recall(batch_size: int, min_items: int = 2, max_items: int = 6, item_len: int = 3, n_bits: int = 6,
                       generator: torch.Generator | None = None, device=None) -> MemoryBatch:
    """Associative recall (section 4.3): a list of items, a query item, then the item after it.

    Each of the n items (n uniform in min_items..max_items; distinct within an episode) is
    ``item_len`` vectors of ``n_bits`` bits, opened by a step with the item delimiter (channel
    n_bits): n (item_len + 1) steps. Then the query, one of the first n - 1 items, between two
    steps with the query delimiter (channel n_bits + 1): item_len + 2 steps. Then item_len recall
    steps of zero input whose targets (B, T, n_bits) are the item that followed the query. Each
    episode has n (item_len + 1) + 2 item_len + 2 steps.
    """
    check_sizes(batch_size=batch_size, item_len=item_len, n_bits=n_bits)
    _range("items", min_items, max_items)
    if min_items < 2:
        raise ValueError(f"associative recall needs min_items >= 2 (a query and the item after it), got {min_items}")
    if 2 ** (item_len * n_bits) < max_items:
        raise ValueError(f"{max_items} distinct items need more than {item_len} x {n_bits} bits each")
    B, gdev = batch_size, gen_device(generator)
    n = _uniform(min_items, max_items, B, generator, gdev)  # (B,)
    items = _distinct_items(B, max_items, item_len, n_bits, generator, gdev)  # (B, max_items, item_len, n_bits)
    q = (torch.rand(B, generator=generator, device=gdev) * (n - 1)).long()  # (B,) uniform in 0..n-2
    flat = items.reshape(B, max_items * item_len, n_bits)  # (B, max_items * item_len, n_bits): vector by vector
    span = item_len + 1
    start_q = n.unsqueeze(1) * span  # (B, 1): the query's opening delimiter
    start_r = start_q + item_len + 2  # (B, 1): the first recall step
    lengths = n * span + 2 * item_len + 2
    T = int(lengths.max())
    t = torch.arange(T, device=gdev).unsqueeze(0).expand(B, T)  # (B, T)
    qc = q.unsqueeze(1)  # (B, 1)
    inputs = torch.zeros(B, T, n_bits + 2, device=gdev)
    listing = t < start_q  # (B, T): the list of items
    slot, pos = t // span, t % span  # which item, which step of it (0: its delimiter)
    in_item = listing & (pos > 0)
    inputs[..., :n_bits] = _pick(flat, slot * item_len + pos - 1) * in_item.unsqueeze(-1)
    inputs[..., n_bits] = (listing & (pos == 0)).float()  # item delimiters
    v = t - start_q  # (B, T): the step of the query phase
    in_query = (v >= 1) & (v <= item_len)
    inputs[..., :n_bits] += _pick(flat, qc * item_len + v - 1) * in_query.unsqueeze(-1)
    inputs[..., n_bits + 1] = ((v == 0) | (v == item_len + 1)).float()  # query delimiters
    r = t - start_r  # (B, T): the step of the recall phase
    mask = (r >= 0) & (r < item_len)
    targets = _pick(flat, (qc + 1) * item_len + r) * mask.unsqueeze(-1)  # the item after the query
    return _batch(inputs, targets, mask, lengths, n, torch.ones_like(n), device)


def _check_scored(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> None:
    if outputs.dim() != 3 or outputs.shape != targets.shape:
        raise ValueError(f"outputs and targets must both be (B, T, O), got shapes {tuple(outputs.shape)} "
                         f"and {tuple(targets.shape)}")
    if tuple(mask.shape) != tuple(outputs.shape[:2]) or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (B, T) = {tuple(outputs.shape[:2])}, "
                         f"got {mask.dtype} of shape {tuple(mask.shape)}")


def bit_errors(logits_or_probs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
               from_logits: bool = True) -> torch.Tensor:
    """Per episode, the number of recall bits that the thresholded output gets wrong, (B,) float.

    logits_or_probs (B, T, O): logits (``from_logits=True``, thresholded at 0) or probabilities
    (``from_logits=False``, thresholded at 0.5); targets (B, T, O) bits; mask (B, T) the scored steps.
    """
    _check_scored(logits_or_probs, targets, mask)
    bits = logits_or_probs > (0.0 if from_logits else 0.5)  # (B, T, O)
    wrong = (bits != (targets > 0.5)) & mask.unsqueeze(-1)
    return wrong.sum(dim=(1, 2)).to(logits_or_probs.dtype)


def sequence_cost(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, bits: bool = True) -> torch.Tensor:
    """Per episode, the binary cross-entropy summed over its recall bits, (B,): in bits by default.

    logits (B, T, O), targets (B, T, O) in [0, 1], mask (B, T). The paper's "cost per sequence";
    ``sequence_cost(..., bits=False).mean()`` is a training loss (nats, the scale of the gradients).
    """
    _check_scored(logits, targets, mask)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # (B, T, O)
    cost = (ce * mask.unsqueeze(-1)).sum(dim=(1, 2))  # (B,)
    return cost / math.log(2) if bits else cost
