r"""Decoding: from a model's next-token distributions to an output sequence.

A trained model gives p(y_t | y_{<t}, x) one step at a time; the output we want is the most
probable sequence, argmax_y log p(y | x) = sum_t log p(y_t | y_{<t}, x), which no search over all
V^T sequences can afford. Two approximations, for every model with the decoding protocol of
``seqmem.seq2seq`` (``state = model.start(source_ids, lengths)``, ``state, logits =
model.step(state, tokens)``, the state batch first so that ``map_state`` can reorder it):

- ``greedy``: take the most probable token at each step. One hypothesis per sample; a good first
  token can lead to a poor sequence.
- ``beam_search`` (Sutskever et al., 2014): keep the K most probable partial hypotheses (the
  beam). At each step extend every one by every token and keep the best K extensions; an
  extension that ends with ``<eos>`` is finished and leaves the beam. With K = 1 it is greedy.

Finished hypotheses of different lengths compete by their length-normalised log-probability
(Wu et al., 2016, in its simplest form):

.. math::

    \mathrm{score}(y) = \frac{\log p(y \mid x)}{|y|^\alpha}

where |y| counts the generated tokens, ``<eos>`` included (a hypothesis stopped by ``max_len``
without ``<eos>`` counts its max_len tokens). alpha = 0 is the plain log-probability, which
favours short outputs (every token costs probability); alpha = 1 is the mean log-probability
per token. Live beams all have the same length at a step, so normalisation changes nothing in
which of them are kept; it only ranks the finished ones.

The search stops when every sample has K finished hypotheses and none of its live beams can
still beat the worst of them (a live beam's log p only falls, so its best reachable score is
log p / max_len^alpha), or after ``max_len`` steps. Both functions return token lists without
``<bos>`` and ``<eos>``, and run under ``torch.no_grad``; put the model in ``eval()`` mode first
(dropout would otherwise sample). The special ids default to the library's: ``<bos>`` 1,
``<eos>`` 2.

Dimensions: B batch, S source length, K beam size, V vocabulary size.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from .core import check_positive_int, map_state
from .text import BOS_ID, EOS_ID

__all__ = ["greedy", "beam_search", "beam_hypotheses", "beam_step", "BeamStep", "Hypothesis",
           "length_normalised"]


def _until_eos(tokens: list[int], eos_id: int) -> list[int]:
    """The tokens before the first ``<eos>`` (all of them if there is none)."""
    return tokens[:tokens.index(eos_id)] if eos_id in tokens else tokens


def _start(model, source_ids: torch.Tensor, lengths, bos_id: int):
    """The model's initial state and the first input, ``<bos>`` (B,)."""
    state = model.start(source_ids, lengths)
    return state, torch.full((source_ids.shape[0],), bos_id, dtype=torch.long, device=source_ids.device)


@torch.no_grad()
def greedy(model, source_ids: torch.Tensor, lengths: torch.Tensor | None, max_len: int,
           bos_id: int = BOS_ID, eos_id: int = EOS_ID) -> list[list[int]]:
    """The most probable token at every step, for a batch at once.

    Args:
        model: a model with ``start`` and ``step`` (``seqmem.Seq2Seq`` and later chapters').
        source_ids: (B, S) ids; lengths: (B,) or ``None``.
        max_len: at most this many steps (tokens, ``<eos>`` included) per sample.

    Returns:
        B lists of token ids, each up to (not including) its first ``<eos>``; a sample that
        emits no ``<eos>`` within max_len steps gets its max_len tokens.
    """
    check_positive_int("max_len", max_len)
    state, tokens = _start(model, source_ids, lengths, bos_id)
    done = torch.zeros_like(tokens, dtype=torch.bool)  # (B,)
    steps = []
    for _ in range(max_len):
        state, logits = model.step(state, tokens)  # (B, V)
        tokens = logits.argmax(-1)  # (B,)
        steps.append(tokens)
        done |= tokens == eos_id
        if done.all():
            break
    rows = torch.stack(steps, dim=1).tolist()  # (B, steps)
    return [_until_eos(row, eos_id) for row in rows]


class BeamStep(NamedTuple):
    """One step of beam search for B samples and k kept extensions, each (B, k)."""

    live: torch.Tensor  # log p of the extensions that stay in the beam; -inf for a slot that did not
    finished: torch.Tensor  # log p of the extensions that ended with <eos> now; -inf elsewhere
    parents: torch.Tensor  # the beam each extension extends, in [0, K)
    tokens: torch.Tensor  # the token it appended


def beam_step(scores: torch.Tensor, log_probs: torch.Tensor, k: int, eos_id: int = EOS_ID) -> BeamStep:
    """Extend every beam by every token, keep the best k extensions, carry the finished aside.

    Args:
        scores: (B, K) log p of each live beam so far; -inf marks an empty slot.
        log_probs: (B, K, V) log p of each next token after each beam.
        k: how many extensions to keep per sample (at most K * V).

    Returns:
        a ``BeamStep``: of the k extensions with the highest log p(y_{<=t}) = scores + log_probs,
        those whose token is ``<eos>`` are finished, the others live on.
    """
    V = log_probs.shape[-1]
    total = (scores.unsqueeze(-1) + log_probs).flatten(1)  # (B, K * V): log p of every extension
    best, index = total.topk(min(k, total.shape[1]), dim=-1)  # (B, k), best first
    parents, tokens = index // V, index % V
    ended = (tokens == eos_id) & (best > float("-inf"))  # (B, k)
    minus_inf = torch.full_like(best, float("-inf"))
    return BeamStep(torch.where(ended, minus_inf, best), torch.where(ended, best, minus_inf), parents, tokens)


class Hypothesis(NamedTuple):
    """A hypothesis of beam search: its tokens (no ``<eos>``), log p, length-normalised score."""

    tokens: list
    log_prob: float
    score: float
    finished: bool  # True if it ended with <eos>, False if max_len stopped it


def length_normalised(log_prob: float, length: int, alpha: float) -> float:
    """log p / length^alpha: how finished hypotheses of different lengths compete."""
    return log_prob / length ** alpha


@torch.no_grad()
def beam_hypotheses(model, source_ids: torch.Tensor, lengths: torch.Tensor | None, beam_size: int, max_len: int,
                    alpha: float = 0.0, bos_id: int = BOS_ID, eos_id: int = EOS_ID) -> list[list[Hypothesis]]:
    """Beam search, batched over B * K: the ``beam_size`` best hypotheses of every sample.

    Args:
        model: a model with ``start`` and ``step``; source_ids: (B, S); lengths: (B,) or ``None``.
        beam_size: K, the live beams kept per sample (1 is greedy).
        max_len: at most this many steps (tokens, ``<eos>`` included).
        alpha: the length normalisation's exponent (the module docstring); 0 ranks by log p.

    Returns:
        for each sample, up to K ``Hypothesis``, best score first.
    """
    check_positive_int("beam_size", beam_size)
    check_positive_int("max_len", max_len)
    if alpha < 0:
        raise ValueError(f"alpha must be at least 0, got {alpha!r}")
    state, tokens = _start(model, source_ids, lengths, bos_id)
    B = source_ids.shape[0]
    scores = torch.zeros(B, 1, device=source_ids.device)  # (B, K): one beam per sample, <bos>, log p = 0
    history = torch.zeros(B, 1, 0, dtype=torch.long, device=source_ids.device)  # (B, K, t) tokens so far
    pools: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = [False] * B
    for t in range(1, max_len + 1):
        state, logits = model.step(state, tokens)  # (B * K, V)
        log_probs = F.log_softmax(logits, dim=-1).view(B, scores.shape[1], -1)  # (B, K, V)
        step = beam_step(scores, log_probs, beam_size, eos_id)
        history = torch.cat([history.gather(1, step.parents[..., None].expand(-1, -1, t - 1)),
                             step.tokens[..., None]], dim=-1)  # (B, k, t)
        _carry(pools, done, step.finished, history, t, alpha, beam_size, finished=True)
        scores = step.live
        done = [d or _settled(pool, row, max_len, alpha, beam_size) for d, pool, row in zip(done, pools, scores)]
        if all(done) or t == max_len:
            break
        # the state's rows are b * K + j: pick each new beam's parent, (B * K_new,)
        rows = (torch.arange(B, device=scores.device)[:, None] * log_probs.shape[1] + step.parents).flatten()
        state = map_state(lambda s: s.index_select(0, rows), state)
        tokens = step.tokens.flatten()  # (B * K_new,)
    _carry(pools, done, scores, history, t, alpha, beam_size, finished=False)  # what max_len stopped
    return pools


def _carry(pools, done, scores, history, length: int, alpha: float, k: int, finished: bool) -> None:
    """Add the hypotheses with a finite score (B, k) to their sample's pool; keep the best k."""
    for b, row in enumerate(scores.tolist()):
        if done[b]:
            continue  # settled: nothing later can beat its pool
        for j, log_p in enumerate(row):
            if log_p == float("-inf"):
                continue
            tokens = history[b, j].tolist()
            pools[b].append(Hypothesis(tokens[:-1] if finished else tokens, log_p,
                                       length_normalised(log_p, length, alpha), finished))
        pools[b].sort(key=lambda h: -h.score)
        del pools[b][k:]


def _settled(pool: list[Hypothesis], live: torch.Tensor, max_len: int, alpha: float, k: int) -> bool:
    """Whether a sample's search is over: no live beam left, or k finished that no live beam can beat."""
    best = live.max().item()  # the best live beam's log p, -inf if none
    if best == float("-inf"):
        return True
    return len(pool) >= k and pool[-1].score >= length_normalised(best, max_len, alpha)


def beam_search(model, source_ids: torch.Tensor, lengths: torch.Tensor | None, beam_size: int, max_len: int,
                alpha: float = 0.0, bos_id: int = BOS_ID, eos_id: int = EOS_ID) -> list[list[int]]:
    """Beam search: the best hypothesis's tokens (no ``<eos>``) for each of the B samples.

    The arguments are ``beam_hypotheses``'s, which gives the K best with their scores.
    """
    pools = beam_hypotheses(model, source_ids, lengths, beam_size, max_len, alpha, bos_id, eos_id)
    return [pool[0].tokens for pool in pools]
