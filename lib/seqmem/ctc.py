r"""Connectionist temporal classification (CTC): training and decoding when the output is shorter.

Speech recognition reads T frames and writes a shorter label sequence **l** (|l| = U <= T), with
no frame-by-frame alignment given. CTC (Graves et al., 2006) lets the network emit, at every frame,
a distribution y_t over the C - 1 labels plus a *blank*; a path π (one symbol per frame) maps to a
labelling by the many-to-one map B: merge repeated symbols, then drop blanks (B(a a - a b -) = a a b).
The probability of a labelling sums over every path that maps to it (Graves et al., 2006, Sec. 3.1):

.. math::

    p(\mathbf{l} \mid \mathbf{x}) = \sum_{\pi \in B^{-1}(\mathbf{l})} \prod_{t=1}^{T} y^t_{\pi_t}

and the loss is -log p(l | x). The sum has exponentially many terms; the forward variable α makes
it O(T U). Write the *extended* labelling l' = (-, l_1, -, l_2, ..., l_U, -) of length S' = 2U + 1.
α_t(s) is the probability of the paths' first t frames that end at position s of l' (Sec. 4.1):

.. math::

    \alpha_t(s) = \bigl(\alpha_{t-1}(s) + \alpha_{t-1}(s-1)
                   + [\,l'_s \ne - \text{ and } l'_s \ne l'_{s-2}\,]\,\alpha_{t-1}(s-2)\bigr)\, y^t_{l'_s}

a path stays on its symbol, moves to the next, or skips a blank, which it may do only between two
*different* labels (between two equal ones the blank is what keeps them apart). Finally
p(l | x) = α_T(S') + α_T(S' - 1): a path ends on the last label or on the blank after it.
(The equations count frames and positions from 1, as the paper does; the code from 0.)

This module computes α in log space (products of many probabilities underflow), vectorised over
the batch and over s; ``ctc_loss`` has the signature and the semantics of
``torch.nn.functional.ctc_loss`` and is tested equal to it in values and gradients. Decoding:
``greedy_decode`` (best path: the most probable symbol at each frame, then B) and ``beam_search``
(prefix beam search, as in Hannun et al., 2014: it sums over the paths of each kept prefix and
can find a labelling that no single best path spells).

**Axes.** ``ctc_loss`` is a drop-in for torch's and reads its (T, N, C) by default; like the
drop-in layers it takes ``batch_first=True`` for the (N, T, C) that a model of the library
(``seqmem.heads.Tagger``) puts out. The decoders are the library's own and read (N, T, C), batch
first, as every library function does.

Dimensions: T frames, N batch, C classes (labels and the blank), S padded target length,
U one target's length, S' = 2U + 1 extended positions.
"""
from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch.nn import functional as F

from .core import check_positive_int

__all__ = ["ctc_loss", "collapse", "greedy_decode", "beam_search"]

_REDUCTIONS = ("none", "sum", "mean")
NEG_INF = float("-inf")  # log 0


# ------------------------------------------------------------------ the loss


def ctc_loss(log_probs: torch.Tensor, targets: torch.Tensor, input_lengths, target_lengths,
             blank: int = 0, reduction: str = "mean", zero_infinity: bool = False, *,
             batch_first: bool = False, fused: bool = False) -> torch.Tensor:
    """The CTC loss -log p(l | x), by the forward recursion in log space.

    Arguments and results are those of ``torch.nn.functional.ctc_loss``:

    Args:
        log_probs: (T, N, C) log-probabilities (a ``log_softmax`` over C), or (T, C) unbatched.
        targets: (N, S) padded labels, only the first ``target_lengths[n]`` of row n count; or the
            targets of the whole batch concatenated, 1-D of length sum(target_lengths); (S,)
            unbatched. Labels lie in [0, C) and are never ``blank``.
        input_lengths: (N,) frames per sequence, each at most T (a tensor, list or tuple; a
            single int unbatched).
        target_lengths: (N,) labels per sequence.
        blank: the index of the blank among the C classes.
        reduction: ``"none"`` gives the (N,) losses; ``"sum"`` their sum; ``"mean"`` divides each
            loss by its target length (at least 1), then averages over the batch (torch's rule).
        zero_infinity: an impossible alignment (an input too short for its target, counting the
            blank a repeated label needs in between) has loss inf; with ``zero_infinity`` it
            counts 0, and so does its gradient.
        batch_first: log_probs is (N, T, C) instead of torch's (T, N, C) (a batch of one: (T, C) either way).
        fused: call torch's fused kernel instead of the recursion (fast; cuDNN on a GPU where it
            applies). The two are tested equal.

    Gradients: autograd through the recursion gives d loss / d log_probs exactly. torch's kernel
    returns that plus exp(log_probs) (its gradient assumes ``log_probs`` came out of a
    ``log_softmax``, which removes the extra term); through a ``log_softmax`` the two agree. The
    gradient of an infinite loss is 0 here (torch's is NaN).
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if batch_first and isinstance(log_probs, torch.Tensor) and log_probs.dim() == 3:
        log_probs = log_probs.transpose(0, 1)  # (N, T, C) -> torch's (T, N, C)
    if fused:
        return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank, reduction, zero_infinity)
    unbatched = isinstance(log_probs, torch.Tensor) and log_probs.dim() == 2
    lp, labels, T_n, U_n = _check_inputs(log_probs, targets, input_lengths, target_lengths, blank)
    loss = -_log_likelihood(lp, labels, T_n, U_n, blank)  # (N,)
    if zero_infinity:
        loss = torch.where(torch.isinf(loss), torch.zeros_like(loss), loss)
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return (loss / U_n.clamp(min=1).to(loss.dtype)).mean()
    return loss[0] if unbatched else loss


def _log_likelihood(log_probs, labels, input_lengths, target_lengths, blank):
    """log p(l | x) for each sequence: the forward recursion over the extended labelling.

    log_probs (T, N, C); labels (N, S) padded; lengths (N,). Returns (N,).
    """
    ext = _extend(labels, target_lengths, blank)  # (N, S'): -, l_1, -, l_2, ..., -
    can_skip = _skip_allowed(ext, blank)  # (N, S')
    # Before the first frame every path stands on the leading blank: log α_0 = (0, -inf, ...).
    # One step of the recursion then gives Graves's start, α_1(1) = y_-, α_1(2) = y_{l_1}.
    log_alpha = torch.full(ext.shape, NEG_INF, dtype=log_probs.dtype, device=log_probs.device)
    log_alpha[:, 0] = 0.0
    for t in range(log_probs.shape[0]):
        emit = log_probs[t].gather(1, ext)  # (N, S'): log y^t_{l'_s}
        step = _alpha_step(log_alpha, emit, can_skip)
        running = (t < input_lengths).unsqueeze(1)  # (N, 1): sequences shorter than T stop early
        log_alpha = torch.where(running, step, log_alpha)
    return _log_end(log_alpha, target_lengths)


def _extend(labels, target_lengths, blank):
    """l' = (-, l_1, -, ..., l_U, -): blanks at even positions; padding beyond U becomes blank."""
    N, S = labels.shape
    inside = torch.arange(S, device=labels.device) < target_lengths.unsqueeze(1)  # (N, S)
    labels = torch.where(inside, labels, torch.full_like(labels, blank))
    ext = torch.full((N, 2 * S + 1), blank, dtype=labels.dtype, device=labels.device)
    ext[:, 1::2] = labels
    return ext  # (N, S')


def _skip_allowed(ext, blank):
    """[l'_s != - and l'_s != l'_{s-2}]: the jump s-2 -> s passes one blank between different labels."""
    ok = torch.zeros_like(ext, dtype=torch.bool)  # (N, S')
    ok[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    return ok


def _alpha_step(log_alpha, emit, can_skip):
    """log α_t(s) = logsumexp(log α_{t-1}(s), log α_{t-1}(s-1), [skip] log α_{t-1}(s-2)) + log y^t."""
    stay = log_alpha
    move = _shift_right(log_alpha, 1)
    skip = torch.where(can_skip, _shift_right(log_alpha, 2), torch.full_like(log_alpha, NEG_INF))
    return _logsumexp(torch.stack([stay, move, skip]), dim=0) + emit  # (N, S')


def _shift_right(x, k):
    """x(s - k) at position s, log 0 where s - k < 0."""
    pad = torch.full_like(x[:, :k], NEG_INF)
    return torch.cat([pad, x[:, :-k]], dim=1)


def _logsumexp(x, dim):
    """log Σ exp(x) along ``dim``, where an all -inf slice (probability 0) gives -inf and gradient 0.

    ``torch.logsumexp`` returns -inf there too, but its gradient is exp(-inf - (-inf)) = NaN, and
    unreachable positions are everywhere in the recursion (α_t(s) = 0 for s > 2t). The dead
    slices are given a harmless stand-in (zeros) and masked out again.
    """
    dead = torch.isneginf(x).all(dim)
    x = torch.where(dead.unsqueeze(dim), torch.zeros_like(x), x)
    return torch.where(dead, torch.full_like(dead, NEG_INF, dtype=x.dtype), torch.logsumexp(x, dim))


def _log_end(log_alpha, target_lengths):
    """log p(l|x) = log(α_T(S') + α_T(S'-1)): end on the final blank (2U) or the last label (2U - 1)."""
    last_blank = log_alpha.gather(1, (2 * target_lengths).unsqueeze(1))  # (N, 1)
    last_label = log_alpha.gather(1, (2 * target_lengths - 1).clamp(min=0).unsqueeze(1))
    last_label = torch.where(target_lengths.unsqueeze(1) > 0, last_label, torch.full_like(last_label, NEG_INF))
    return _logsumexp(torch.cat([last_blank, last_label], dim=1), dim=1)  # (N,)


# ------------------------------------------------------------------ checking the arguments


def _check_inputs(log_probs, targets, input_lengths, target_lengths, blank):
    """Validate torch's argument forms; return log_probs (T, N, C), labels (N, S) and lengths (N,)."""
    if not isinstance(log_probs, torch.Tensor) or log_probs.dim() not in (2, 3) \
            or not log_probs.is_floating_point():
        got = tuple(log_probs.shape) if isinstance(log_probs, torch.Tensor) else type(log_probs).__name__
        raise ValueError(f"log_probs must be a floating tensor of shape (T, N, C) or (T, C), got {got}")
    if not isinstance(targets, torch.Tensor) or targets.is_floating_point() or targets.is_complex() \
            or targets.dtype == torch.bool:
        raise TypeError(f"targets must be an integer tensor, got {getattr(targets, 'dtype', type(targets).__name__)}")
    if log_probs.dim() == 2:  # unbatched, as torch: add the batch dimension
        if targets.dim() != 1 and not (targets.dim() == 2 and targets.shape[0] == 1):
            raise ValueError("unbatched log_probs (T, C) take one target sequence, of shape (S,) or (1, S); "
                             f"got targets of shape {tuple(targets.shape)}")
        log_probs, targets = log_probs.unsqueeze(1), targets.reshape(1, -1)
    T, N, C = log_probs.shape
    if not isinstance(blank, int) or not 0 <= blank < C:
        raise ValueError(f"blank must be an int in [0, C={C}), got {blank!r}")
    dev = log_probs.device
    T_n = _lengths(input_lengths, N, "input_lengths", dev)
    U_n = _lengths(target_lengths, N, "target_lengths", dev)
    if (T_n > T).any():
        raise ValueError(f"input_lengths must be at most T={T}, got {T_n.tolist()}")
    labels = _padded(targets.to(dev).long(), U_n, N)
    _check_labels(labels, U_n, C, blank)
    return log_probs, labels, T_n, U_n


def _lengths(lengths, N, name, device):
    """(N,) non-negative int64 lengths from a tensor, list, tuple or int."""
    try:
        x = torch.as_tensor(lengths, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a tensor, list or tuple of ints, got {type(lengths).__name__}") from None
    if x.is_floating_point() or x.is_complex():
        raise TypeError(f"{name} must hold integers, got {x.dtype}")
    x = x.reshape(-1).long()
    if x.numel() != N:
        raise ValueError(f"{name} must have N={N} entries, got {x.numel()}")
    if (x < 0).any():
        raise ValueError(f"{name} must be non-negative, got {x.tolist()}")
    return x


def _padded(targets, U_n, N):
    """(N, S) padded labels from either torch form: padded (N, S) or concatenated 1-D."""
    if targets.dim() == 2:
        if targets.shape[0] != N or (U_n > targets.shape[1]).any():
            raise ValueError(f"padded targets must have shape (N={N}, S >= max target length "
                             f"{int(U_n.max()) if N else 0}), got {tuple(targets.shape)}")
        return targets
    if targets.dim() != 1 or targets.numel() != int(U_n.sum()):
        raise ValueError(f"concatenated targets must be 1-D of length sum(target_lengths) = "
                         f"{int(U_n.sum())}, got shape {tuple(targets.shape)}")
    rows = torch.split(targets, U_n.tolist())
    return torch.nn.utils.rnn.pad_sequence(list(rows), batch_first=True) if N else targets.reshape(0, 0)


def _check_labels(labels, U_n, C, blank):
    inside = torch.arange(labels.shape[1], device=labels.device) < U_n.unsqueeze(1)  # (N, S)
    used = labels[inside]
    if ((used < 0) | (used >= C)).any():
        raise ValueError(f"target labels must lie in [0, C={C}), got values {sorted(set(used.tolist()))}")
    if (used == blank).any():
        raise ValueError(f"targets contain the blank index {blank}; labels must be other classes")


# ------------------------------------------------------------------ decoding


def collapse(path, blank: int = 0) -> list[int]:
    """Graves's map B: merge runs of a repeated symbol, then drop blanks. B(1 1 0 1 2 0) = 1 1 2."""
    out, previous = [], None
    for symbol in path:
        symbol = int(symbol)
        if symbol != previous and symbol != blank:
            out.append(symbol)
        previous = symbol
    return out


def _as_batch(log_probs, input_lengths, name):
    """(N, T, C) and a list of N lengths from a (N, T, C) or (T, C) tensor; and whether it was unbatched."""
    if not isinstance(log_probs, torch.Tensor) or log_probs.dim() not in (2, 3):
        got = tuple(log_probs.shape) if isinstance(log_probs, torch.Tensor) else type(log_probs).__name__
        raise ValueError(f"{name}: log_probs must have shape (N, T, C) or (T, C), got {got}")
    unbatched = log_probs.dim() == 2
    lp = log_probs.unsqueeze(0) if unbatched else log_probs  # (N, T, C)
    N, T, _ = lp.shape
    lengths = [T] * N if input_lengths is None else _lengths(input_lengths, N, "input_lengths", "cpu").tolist()
    if any(n > T for n in lengths):
        raise ValueError(f"{name}: input_lengths must be at most T={T}, got {lengths}")
    return lp, lengths, unbatched


def greedy_decode(log_probs: torch.Tensor, input_lengths=None, blank: int = 0):
    """Best-path decoding: the most probable symbol at each frame, then B.

    This is the labelling of the single most probable *path*, which need not be the most probable
    labelling (that sums over paths; see ``beam_search``).

    Args:
        log_probs: (N, T, C), batch first, or (T, C) unbatched.
        input_lengths: (N,) frames per sequence; all T if omitted.

    Returns:
        a list of N label lists, or one list for an unbatched input.
    """
    lp, lengths, unbatched = _as_batch(log_probs, input_lengths, "greedy_decode")
    best = lp.argmax(-1).tolist()  # (N, T): the argmax symbol of every frame
    out = [collapse(path[:n], blank) for path, n in zip(best, lengths)]
    return out[0] if unbatched else out


def beam_search(log_probs: torch.Tensor, beam_width: int, blank: int = 0, input_lengths=None):
    """Prefix beam search: the most probable labelling found with ``beam_width`` prefixes kept.

    Each kept prefix carries two log probabilities, summed over all paths (of the frames so far)
    that collapse to it: ending in a blank (p_b) and ending in its last label (p_nb). The split
    matters for repeated labels: from prefix "a", the next "a" extends it to "aa" only after a blank
    (from p_b), and otherwise merges into "a" (from p_nb). Without pruning (a beam as wide as the
    number of prefixes) the result is the most probable labelling and its exact log p(l | x).

    Args:
        log_probs: (N, T, C), batch first, or (T, C) unbatched.
        beam_width: how many prefixes survive each frame.
        input_lengths: (N,) frames per sequence; all T if omitted.

    Returns:
        ``(labels, log_prob)`` per sequence: a list of N pairs, or one pair unbatched.
    """
    check_positive_int("beam_width", beam_width)
    lp, lengths, unbatched = _as_batch(log_probs, input_lengths, "beam_search")
    frames = lp.detach().to("cpu", torch.float64).tolist()  # (N, T, C) as lists
    out = [_beam_search_one(f[:n], beam_width, blank) for f, n in zip(frames, lengths)]
    return out[0] if unbatched else out


def _beam_search_one(frames, beam_width, blank):
    """Prefix beam search over one sequence's frames (a list of T lists of C log probabilities)."""
    beams = {(): (0.0, NEG_INF)}  # prefix -> (log p_b, log p_nb): the empty prefix, surely
    for y in frames:
        beams = _prune(_extend_beams(beams, y, blank), beam_width)
    prefix, (p_b, p_nb) = max(beams.items(), key=lambda kv: _logaddexp(*kv[1]))
    return list(prefix), _logaddexp(p_b, p_nb)


def _extend_beams(beams, y, blank):
    """All prefixes one frame later, with their (log p_b, log p_nb)."""
    nxt = defaultdict(lambda: [NEG_INF, NEG_INF])
    for prefix, (p_b, p_nb) in beams.items():
        p = _logaddexp(p_b, p_nb)
        nxt[prefix][0] = _logaddexp(nxt[prefix][0], p + y[blank])  # a blank keeps the prefix
        for c, y_c in enumerate(y):
            if c == blank:
                continue
            longer = prefix + (c,)
            if prefix and c == prefix[-1]:
                nxt[longer][1] = _logaddexp(nxt[longer][1], p_b + y_c)  # a a needs a blank between
                nxt[prefix][1] = _logaddexp(nxt[prefix][1], p_nb + y_c)  # a a merges into a
            else:
                nxt[longer][1] = _logaddexp(nxt[longer][1], p + y_c)
    return nxt


def _prune(beams, beam_width):
    best = sorted(beams.items(), key=lambda kv: _logaddexp(*kv[1]), reverse=True)[:beam_width]
    return {prefix: tuple(p) for prefix, p in best}


def _logaddexp(a: float, b: float) -> float:
    """log(e^a + e^b) for Python floats, exact at -inf."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))
