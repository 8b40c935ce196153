"""Homework 4's checks: the additive score's weights with a padding mask, scaled dot-product
attention for a batch of queries with a mask per query, one memory-network hop, and the copy
mechanism's mixture over an extended vocabulary.

Each item is a sibling of what chapter 5 shows (the bilinear and dot scores and an unmasked
softmax and weighted sum for one query; the memory network and the copy mechanism through the
library's functions). As in the other homework modules: the student's function runs through
``guard.call`` on fresh inputs drawn from ``guard.item_seed``; its result is validated, then
compared with the reference computed here, in float64 and cast to the inputs' dtype.

Conventions every item shares: ``mask`` is a bool tensor, True where a key (a memory) may be
read; a query that may read nothing gets zero weights and a zero context, never NaN; what is
masked holds junk (large values), so that a forgotten mask shows.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .guard import call, close, fail, guard_tensor, guard_tuple, item_seed, register, torch_compilers

__all__ = ["check_additive_weights", "check_scaled_dot_attention", "check_memory_hop", "check_copy_mixture",
           "additive_weights_reference", "scaled_dot_attention_reference", "memory_hop_reference",
           "copy_mixture_reference"]


def _attention_references() -> list:
    """The library's and torch's attention: scores, masked softmaxes, attention, memory reads."""
    from .. import attention, memn2n

    scores = [(cls, name) for cls in (attention.AdditiveScore, attention.BilinearScore, attention.DotScore,
                                      attention.ScaledDotScore, attention.Score)
              for name in ("forward", "prepare", "compare", "_scores") if name in vars(cls)]
    return [attention.masked_softmax, attention.attend, attention.scaled_dot_product_attention,
            attention._sdpa_reference, memn2n.match, memn2n.read, (memn2n.MemN2N, "hop"),
            (memn2n.MemN2N, "forward"), *scores,
            (torch.nn.functional, "scaled_dot_product_attention"), (torch.nn.functional, "multi_head_attention_forward"),
            (torch.nn.MultiheadAttention, "forward"), *torch_compilers(), "scaled_dot_product", "attention"]


def _copy_references() -> list:
    """The library's copy mechanism: its mixture, its loss and its decoder's step."""
    from .. import copy

    return [copy.copy_distribution, copy._check_mixture, copy.copy_nll, (copy.CopyDecoder, "step"),
            *torch_compilers()]


register({"additive_weights": _attention_references, "scaled_dot_attention": _attention_references,
          "memory_hop": _attention_references, "copy_mixture": _copy_references})


def _dtype(k: int) -> torch.dtype:
    return torch.float64 if k % 2 else torch.float32


def _softmax_where(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax over the last dim restricted to ``mask``; 0 where masked and on rows with nothing."""
    scores = torch.where(mask, scores, torch.full((), -math.inf, dtype=scores.dtype))
    top = scores.amax(-1, keepdim=True)
    e = torch.where(mask, torch.exp(scores - torch.where(torch.isfinite(top), top, torch.zeros_like(top))),
                    torch.zeros((), dtype=scores.dtype))
    total = e.sum(-1, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))


def _mask(g: torch.Generator, shape: tuple, empty_rows: bool) -> torch.Tensor:
    """A random mask (about 70% True) of ``shape``; with ``empty_rows``, the first row reads nothing."""
    mask = torch.rand(*shape, generator=g) < 0.7
    if empty_rows:
        mask.view(-1, shape[-1])[0] = False
    return mask


# ------------------------------------------------------------------------------ 1. the additive score

def additive_weights_reference(query, keys, W1, w2, mask) -> torch.Tensor:
    """(B, S): softmax over the real keys of a_j = w2^T tanh(W1 [q; k_j])."""
    q, k, W1, w2 = (t.double() for t in (query, keys, W1, w2))
    Q = q.shape[-1]
    hidden = torch.tanh((q @ W1[:, :Q].T)[:, None, :] + k @ W1[:, Q:].T)  # (B, S, A)
    return _softmax_where(hidden @ w2, mask).to(query.dtype)


def check_additive_weights(fn: Callable, trials: int = 8, seed: int = 431) -> None:
    """Check ``fn(query, keys, W1, w2, mask) -> weights (B, S)``.

    query (B, Q), keys (B, S, K), W1 (A, Q + K), w2 (A,), mask (B, S) bool (True for a real key,
    anywhere in the row). Tried in float32 and float64, with junk in the masked keys, a row with no
    real key (its weights are all 0), B = S = 1 and Q != K included.
    """
    item = "additive_weights"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        B, S, Q, K, A = (1, 1, 1, 1, 1) if k == 0 else tuple(int(v) for v in torch.randint(1, 7, (5,), generator=g))
        dtype = _dtype(k)
        if k == 1:
            Q, K = 2, 5

        def randn(*shape):
            return torch.randn(*shape, generator=g, dtype=dtype)
        query, keys, W1, w2 = randn(B, Q), randn(B, S, K), randn(A, Q + K), 2 * randn(A)
        mask = torch.ones(B, S, dtype=torch.bool) if k == 0 else _mask(g, (B, S), empty_rows=k % 3 == 2)
        keys[~mask] = 1e3 * randn(int((~mask).sum()), K)  # what is masked must not matter
        out = call(item, fn, query.clone(), keys.clone(), W1.clone(), w2.clone(), mask.clone())
        expected = additive_weights_reference(query, keys, W1, w2, mask)
        guard_tensor(item, out, (B, S), dtype)
        close(item, out.detach(), expected,
              what=f"vector of weights for B={B}, S={S}, Q={Q}, K={K}, A={A}, mask={mask.int().tolist()} ({dtype})")


# ------------------------------------------------------------------------------ 2. scaled dot-product attention

def scaled_dot_attention_reference(queries, keys, values, mask) -> tuple[torch.Tensor, torch.Tensor]:
    """(context (B, T, Dv), weights (B, T, S)): softmax over the allowed keys of q.k / sqrt(d)."""
    q, k, v = (t.double() for t in (queries, keys, values))
    weights = _softmax_where(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), mask)  # (B, T, S)
    return (weights @ v).to(queries.dtype), weights.to(queries.dtype)


def check_scaled_dot_attention(fn: Callable, trials: int = 8, seed: int = 433) -> None:
    """Check ``fn(queries, keys, values, mask) -> (context, weights)``.

    queries (B, T, d), keys (B, S, d), values (B, S, Dv), mask (B, T, S) bool (True where query t
    may read key s). Returns context (B, T, Dv) and weights (B, T, S). Tried in float32 and
    float64 with d, Dv, S and T different, causal masks, junk in keys and values no query may
    read, and queries that may read nothing (zero weights, zero context).
    """
    item = "scaled_dot_attention"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        B, T, S, d, Dv = (1, 1, 1, 1, 1) if k == 0 else tuple(int(v) for v in torch.randint(1, 7, (5,), generator=g))
        dtype = _dtype(k)
        if k == 1:
            B, T, S, d, Dv = 2, 3, 4, 9, 2  # the scale is 1/3: sqrt(d), not sqrt(S) or sqrt(Dv)

        def randn(*shape):
            return torch.randn(*shape, generator=g, dtype=dtype)
        queries, keys, values = 2 * randn(B, T, d), randn(B, S, d), randn(B, S, Dv)
        if k == 0:
            mask = torch.ones(B, T, S, dtype=torch.bool)
        elif k % 4 == 3:  # causal: query t reads keys s <= t, and the batch's padded keys are masked too
            mask = torch.ones(T, S, dtype=torch.bool).tril()[None] & _mask(g, (B, 1, S), empty_rows=False)
        else:
            mask = _mask(g, (B, T, S), empty_rows=k % 3 == 2)
        unread = ~mask.any(1)  # (B, S): keys no query may read
        keys[unread] = 1e3 * randn(int(unread.sum()), d)
        values[unread] = 1e3 * randn(int(unread.sum()), Dv)
        out = call(item, fn, queries.clone(), keys.clone(), values.clone(), mask.clone())
        context, weights = scaled_dot_attention_reference(queries, keys, values, mask)
        got = guard_tuple(item, out, ((B, T, Dv), (B, T, S)), dtype, ("context", "weights"))
        what = f"for B={B}, T={T}, S={S}, d={d}, Dv={Dv} ({dtype})"
        close(item, got[1], weights, what=f"matrix of weights {what}")
        close(item, got[0], context, what=f"context {what}")


# ------------------------------------------------------------------------------ 3. one memory-network hop

def memory_hop_reference(u, m, c, mask, H) -> tuple[torch.Tensor, torch.Tensor]:
    """(u_next (B, d), p (B, N)): p = softmax over the real memories of u.m_i, o = sum_i p_i c_i,
    u_next = u + o (H None) or H u + o."""
    u64, m64, c64 = u.double(), m.double(), c.double()
    p = _softmax_where((m64 @ u64[:, :, None])[..., 0], mask)  # (B, N)
    o = (p[:, :, None] * c64).sum(1)  # (B, d)
    carried = u64 if H is None else u64 @ H.double().T
    return (carried + o).to(u.dtype), p.to(u.dtype)


def check_memory_hop(fn: Callable, trials: int = 8, seed: int = 439) -> None:
    """Check ``fn(u, m, c, mask, H) -> (u_next, p)``.

    u (B, d) the controller's query, m (B, N, d) the input memories, c (B, N, d) the output
    memories, mask (B, N) bool (True for a real sentence), H (d, d) or None. Returns u_next (B, d)
    and p (B, N). Tried with and without H, in float32 and float64, with junk in the masked
    memories and a story with no sentence (p = 0, o = 0).
    """
    item = "memory_hop"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        B, N, d = (1, 1, 1) if k == 0 else tuple(int(v) for v in torch.randint(1, 7, (3,), generator=g))
        dtype, with_H = _dtype(k), k in (2, 3, 5, 6)  # H in float32 and float64
        d = max(d, 2) if with_H else d  # d >= 2: a 1 x 1 H equals its transpose

        def randn(*shape):
            return torch.randn(*shape, generator=g, dtype=dtype)
        u, m, c = randn(B, d), randn(B, N, d), randn(B, N, d)
        H = randn(d, d) / math.sqrt(d) if with_H else None
        mask = torch.ones(B, N, dtype=torch.bool) if k < 2 else _mask(g, (B, N), empty_rows=k % 3 == 0)
        m[~mask] = 1e3 * randn(int((~mask).sum()), d)
        c[~mask] = 1e3 * randn(int((~mask).sum()), d)
        out = call(item, fn, u.clone(), m.clone(), c.clone(), mask.clone(), None if H is None else H.clone())
        u_next, p = memory_hop_reference(u, m, c, mask, H)
        got = guard_tuple(item, out, ((B, d), (B, N)), dtype, ("u_next", "p"))
        what = f"for B={B}, N={N}, d={d}, H={'None' if H is None else 'given'}, mask={mask.int().tolist()} ({dtype})"
        close(item, got[1], p, what=f"vector of weights p {what}")
        close(item, got[0], u_next, what=f"next query u_next {what}")


# ------------------------------------------------------------------------------ 4. the copy mixture

def copy_mixture_reference(p_vocab, attention, source_ids, p_gen, extended_size: int) -> torch.Tensor:
    """(B, extended_size): p_gen p_vocab (zeros beyond V) + (1 - p_gen) * the attention summed per
    source id."""
    B, V = p_vocab.shape
    out = torch.zeros(B, extended_size, dtype=torch.float64)
    out[:, :V] = p_gen.double()[:, None] * p_vocab.double()
    for b in range(B):
        for j, token in enumerate(source_ids[b].tolist()):
            out[b, token] += (1 - float(p_gen[b])) * float(attention[b, j])
    return out.to(p_vocab.dtype)


def check_copy_mixture(fn: Callable, trials: int = 8, seed: int = 443) -> None:
    """Check ``fn(p_vocab, attention, source_ids, p_gen, extended_size) -> (B, extended_size)``.

    p_vocab (B, V) rows summing to 1; attention (B, S) rows summing to 1 over the real source
    positions, 0 at the padding (whose id is 0); source_ids (B, S) int64 in [0, extended_size),
    ids >= V the example's out-of-vocabulary words, ids repeated; p_gen (B,) in [0, 1]. Tried in
    float32 and float64, with p_gen 0 and 1, V = extended_size, and every source id the same.
    """
    item = "copy_mixture"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        B, V, S = (1, 2, 1) if k == 0 else (int(torch.randint(1, 5, (), generator=g)),
                                            int(torch.randint(3, 9, (), generator=g)),
                                            int(torch.randint(2, 9, (), generator=g)))
        n_oov = 0 if k in (0, 3) else int(torch.randint(1, 4, (), generator=g))
        extended, dtype = V + n_oov, _dtype(k)
        p_vocab = torch.softmax(2 * torch.randn(B, V, generator=g, dtype=dtype), -1)
        lengths = torch.randint(1, S + 1, (B,), generator=g)
        lengths[0] = S
        real = torch.arange(S)[None, :] < lengths[:, None]  # (B, S)
        # the real words' ids: above the special ids 0-2 where there is room, never the padding's 0
        ids = torch.randint(3 if extended > 3 else 1, extended, (B, S), generator=g)
        if k == 2:
            ids[:] = ids[:, :1]  # every position copies the same word: its attention sums to 1
        ids = torch.where(real, ids, 0)
        attention = torch.where(real, torch.rand(B, S, generator=g, dtype=dtype) + 0.1, torch.zeros((), dtype=dtype))
        attention = attention / attention.sum(1, keepdim=True)
        p_gen = torch.rand(B, generator=g, dtype=dtype)
        if k == 4:
            p_gen[0] = 0.0
        if k == 5:
            p_gen[0] = 1.0
        out = call(item, fn, p_vocab.clone(), attention.clone(), ids.clone(), p_gen.clone(), extended)
        expected = copy_mixture_reference(p_vocab, attention, ids, p_gen, extended)
        guard_tensor(item, out, (B, extended), dtype)
        close(item, out.detach(), expected, what=f"distribution for B={B}, V={V}, S={S}, extended_size={extended}, "
                                                  f"source_ids={ids.tolist()}, p_gen={p_gen.tolist()} ({dtype})")


# the reference answers' helpers, blocked with the *_reference functions while a student's code runs
GRADER_HELPERS = [_softmax_where]
