"""Homework 4's checks, called directly on local functions: wrong answers fail with a message
naming the item, and an answer that calls a reference is blocked (and would otherwise be right).
That the source's answers pass under any grading seed is tested with every homework's in
test_grading_checks.py; the pipeline is in test_grading_hw4.py."""
import math

import pytest
import torch

import seqmem
import seqmem.copy
from test_grading_checks import assert_blocked_and_otherwise_right, assert_fails_with_a_message
from test_grading_checks import source  # noqa: F401 (the fixture: every homework's source answers)
from seqmem.grading import guard, hw4

CHECKS = {"additive_weights": hw4.check_additive_weights, "scaled_dot_attention": hw4.check_scaled_dot_attention,
          "memory_hop": hw4.check_memory_hop, "copy_mixture": hw4.check_copy_mixture}


# ------------------------------------------------------------------------------ wrong answers

def _then(item, change):
    return lambda s: lambda *args: change(s[item](*args), *args)


def _additive_unmasked(query, keys, W1, w2, mask):
    Q = query.shape[1]
    return torch.softmax(torch.tanh((query @ W1[:, :Q].T)[:, None] + keys @ W1[:, Q:].T) @ w2, dim=1)


def _additive_nan_rows(query, keys, W1, w2, mask):
    Q = query.shape[1]
    scores = torch.tanh((query @ W1[:, :Q].T)[:, None] + keys @ W1[:, Q:].T) @ w2
    return torch.softmax(scores.masked_fill(~mask, -math.inf), dim=1)  # NaN where a row reads nothing


def _additive_swapped_halves(query, keys, W1, w2, mask):
    """W1's key columns read first: right only when Q = K and the halves happen to agree."""
    K = keys.shape[-1]
    scores = torch.tanh((query @ W1[:, K:].T)[:, None] + keys @ W1[:, :K].T) @ w2
    return torch.softmax(scores.masked_fill(~mask, -1e9), dim=1) * mask


def _additive_mask_by_multiplying(s):
    def answer(query, keys, W1, w2, mask):
        unmasked = _additive_unmasked(query, keys, W1, w2, mask) * mask  # zeroed after the softmax, not renormalised
        return unmasked
    return answer


def _sdpa_scale(scale):
    def answer(queries, keys, values, mask):
        scores = queries @ keys.transpose(1, 2) * scale(queries, keys, values)
        weights = torch.softmax(scores.masked_fill(~mask, -math.inf), -1).nan_to_num(0.0)
        return weights @ values, weights
    return answer


def _sdpa_key_mask_only(queries, keys, values, mask):
    """Reads the mask of the first query only, as if it were a padding mask of the keys."""
    scores = (queries @ keys.transpose(1, 2) / math.sqrt(queries.shape[-1])).masked_fill(~mask[:, :1], -math.inf)
    weights = torch.softmax(scores, -1).nan_to_num(0.0)
    return weights @ values, weights


def _sdpa_minus_large(queries, keys, values, mask):
    """-1e9 in place of -inf: a query that may read nothing spreads its weight over every key."""
    scores = (queries @ keys.transpose(1, 2) / math.sqrt(queries.shape[-1])).masked_fill(~mask, -1e9)
    weights = torch.softmax(scores, -1)
    return weights @ values, weights


def _hop_no_residual(s):
    def answer(u, m, c, mask, H):
        u_next, p = s["memory_hop"](u, m, c, mask, H)
        carried = u if H is None else u @ H.T
        return u_next - carried, p  # o alone
    return answer


def _hop_reads_m(s):
    return lambda u, m, c, mask, H: s["memory_hop"](u, m, m, mask, H)  # reads the input memories


def _hop_ignores_H(s):
    return lambda u, m, c, mask, H: s["memory_hop"](u, m, c, mask, None)


def _hop_H_transposed(s):
    return lambda u, m, c, mask, H: s["memory_hop"](u, m, c, mask, None if H is None else H.T)


def _copy_by_assignment(p_vocab, attention, source_ids, p_gen, extended_size):
    """out[b, ids] += ...: an index assignment, so a repeated source word keeps one occurrence only."""
    B, V = p_vocab.shape
    out = torch.zeros(B, extended_size, dtype=p_vocab.dtype)
    out[:, :V] = p_gen[:, None] * p_vocab
    for b in range(B):
        out[b, source_ids[b]] += (1 - p_gen[b]) * attention[b]
    return out


def _copy_mix(p_vocab, attention, source_ids, p_gen, extended_size):
    B, V = p_vocab.shape
    out = torch.nn.functional.pad(p_gen[:, None] * p_vocab, (0, extended_size - V))
    return out.scatter_add(1, source_ids, (1 - p_gen[:, None]) * attention)


def _copy_vocab_only(p_vocab, attention, source_ids, p_gen, extended_size):
    """Copies only into the fixed vocabulary: the out-of-vocabulary words get nothing."""
    V = p_vocab.shape[1]
    inside = source_ids < V
    return _copy_mix(p_vocab, attention * inside, torch.where(inside, source_ids, 0), p_gen, extended_size)


WRONG = {  # case -> (item, answer made from the source's answers, a phrase of the message)
    "additive: no mask": ("additive_weights", lambda s: _additive_unmasked, "differs"),
    "additive: NaN for a row with no key": ("additive_weights", lambda s: _additive_nan_rows, "differs"),
    "additive: W1's halves swapped": ("additive_weights", lambda s: _additive_swapped_halves, "differs"),
    "additive: masked after the softmax": ("additive_weights", _additive_mask_by_multiplying, "differs"),
    "additive: float64 always": ("additive_weights", _then("additive_weights", lambda out, *a: out.double()), "dtype"),
    "additive: scores, not weights": ("additive_weights", lambda s: lambda q, k, W1, w2, mask: torch.tanh(
        (q @ W1[:, :q.shape[1]].T)[:, None] + k @ W1[:, q.shape[1]:].T) @ w2 * mask, "differs"),
    "sdpa: no scale": ("scaled_dot_attention", lambda s: _sdpa_scale(lambda q, k, v: 1.0), "differs"),
    "sdpa: scaled by sqrt(S)": ("scaled_dot_attention",
                                lambda s: _sdpa_scale(lambda q, k, v: 1 / math.sqrt(k.shape[1])), "differs"),
    "sdpa: scaled by d": ("scaled_dot_attention", lambda s: _sdpa_scale(lambda q, k, v: 1 / q.shape[-1]), "differs"),
    "sdpa: one mask for every query": ("scaled_dot_attention", lambda s: _sdpa_key_mask_only, "differs"),
    "sdpa: -1e9 for a query with no key": ("scaled_dot_attention", lambda s: _sdpa_minus_large, "differs"),
    "sdpa: weights first": ("scaled_dot_attention", _then("scaled_dot_attention", lambda out, *a: (out[1], out[0])),
                            "weights"),
    "sdpa: a list": ("scaled_dot_attention", _then("scaled_dot_attention", lambda out, *a: list(out)), "tuple"),
    "hop: no residual": ("memory_hop", _hop_no_residual, "u_next"),
    "hop: reads the input memories": ("memory_hop", _hop_reads_m, "u_next"),
    "hop: ignores H": ("memory_hop", _hop_ignores_H, "u_next"),
    "hop: H transposed": ("memory_hop", _hop_H_transposed, "u_next"),
    "hop: unmasked": ("memory_hop", lambda s: lambda u, m, c, mask, H: s["memory_hop"](
        u, m, c, torch.ones_like(mask), H), "weights p"),
    "copy: index assignment loses repeats": ("copy_mixture", lambda s: _copy_by_assignment, "differs"),
    "copy: the gate swapped": ("copy_mixture", lambda s: lambda p, a, ids, g, n: _copy_mix(p, a, ids, 1 - g, n),
                               "differs"),
    "copy: no out-of-vocabulary words": ("copy_mixture", lambda s: _copy_vocab_only, "differs"),
    "copy: not padded to the extended size": ("copy_mixture", lambda s: lambda p, a, ids, g, n: _copy_mix(
        p, a, ids, g, n)[:, :p.shape[1]], "shape"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_wrong_answers_fail_with_a_message(source, case):
    item, make, phrase = WRONG[case]
    assert_fails_with_a_message(CHECKS[item], make(source), item, phrase)


def test_the_shared_answers_of_the_tests_above_are_right_where_they_should_be(source):
    """The helpers the wrong answers are built from are right themselves (so each case fails for its
    own reason): the mixture by scatter_add, the scaled attention with sqrt(d)."""
    CHECKS["copy_mixture"](_copy_mix)
    CHECKS["scaled_dot_attention"](_sdpa_scale(lambda q, k, v: 1 / math.sqrt(q.shape[-1])))


# ------------------------------------------------------------------------------ blocked references

def _additive_by_library(query, keys, W1, w2, mask):
    return seqmem.attention.masked_softmax(_scores_by_hand(query, keys, W1, w2), mask)


def _scores_by_hand(query, keys, W1, w2):
    Q = query.shape[1]
    return torch.tanh((query @ W1[:, :Q].T)[:, None] + keys @ W1[:, Q:].T) @ w2


def _sdpa_by_torch(queries, keys, values, mask):
    context = torch.nn.functional.scaled_dot_product_attention(queries, keys, values, attn_mask=mask)
    weights = torch.softmax((queries @ keys.transpose(1, 2) / math.sqrt(queries.shape[-1])).masked_fill(
        ~mask, -math.inf), -1).nan_to_num(0.0)
    return torch.where(mask.any(-1, keepdim=True), context, 0.0), weights


def _sdpa_by_library(queries, keys, values, mask):
    context = seqmem.attention.scaled_dot_product_attention(queries, keys, values, attn_mask=mask)
    weights = torch.softmax((queries @ keys.transpose(1, 2) / math.sqrt(queries.shape[-1])).masked_fill(
        ~mask, -math.inf), -1).nan_to_num(0.0)
    return torch.where(mask.any(-1, keepdim=True), context.nan_to_num(0.0), 0.0), weights


def _hop_by_library(u, m, c, mask, H):
    p = seqmem.memn2n.match(u, m, mask)
    o = seqmem.memn2n.read(p, c)
    return (u if H is None else u @ H.T) + o, p


BLOCKED = {
    "seqmem.attention.masked_softmax": ("additive_weights", _additive_by_library),
    "torch.nn.functional.scaled_dot_product_attention": ("scaled_dot_attention", _sdpa_by_torch),
    "seqmem.attention.scaled_dot_product_attention": ("scaled_dot_attention", _sdpa_by_library),
    "seqmem.memn2n.match": ("memory_hop", _hop_by_library),
    "seqmem.copy.copy_distribution": ("copy_mixture", lambda p, a, ids, g, n: seqmem.copy.copy_distribution(p, a, ids, g, n)),
}


@pytest.mark.parametrize("case", list(BLOCKED))
def test_calling_a_reference_is_blocked_and_would_otherwise_be_right(case, monkeypatch):
    item, answer = BLOCKED[case]
    assert_blocked_and_otherwise_right(CHECKS[item], answer, item, monkeypatch)


def test_the_hidden_cases_cover_the_edges(monkeypatch):
    """Rows that read nothing, causal masks and p_gen at 0 and 1 are among the cases the checks draw
    (watched through the references, with nothing blocked)."""
    monkeypatch.setattr(guard, "references", lambda item: [])
    seen = {"empty additive row": False, "empty sdpa row": False, "causal": False, "empty story": False}
    gates = []

    def additive(query, keys, W1, w2, mask):
        seen["empty additive row"] |= bool((~mask.any(1)).any())
        return hw4.additive_weights_reference(query, keys, W1, w2, mask)

    def sdpa(queries, keys, values, mask):
        seen["empty sdpa row"] |= bool((~mask.any(-1)).any())
        T, S = mask.shape[1:]
        seen["causal"] |= T > 1 and S > 1 and not (mask & ~torch.ones(T, S, dtype=torch.bool).tril()).any()
        return hw4.scaled_dot_attention_reference(queries, keys, values, mask)

    def hop(u, m, c, mask, H):
        seen["empty story"] |= bool((~mask.any(1)).any())
        return hw4.memory_hop_reference(u, m, c, mask, H)

    def mixture(p_vocab, attention, source_ids, p_gen, extended_size):
        gates.extend(p_gen.tolist())
        return hw4.copy_mixture_reference(p_vocab, attention, source_ids, p_gen, extended_size)

    for check, fn in ((hw4.check_additive_weights, additive), (hw4.check_scaled_dot_attention, sdpa),
                      (hw4.check_memory_hop, hop), (hw4.check_copy_mixture, mixture)):
        check(fn)
    assert all(seen.values()), seen
    assert 0.0 in gates and 1.0 in gates


def test_the_reference_mixture_is_a_distribution_and_accumulates_repeats():
    g = torch.Generator().manual_seed(0)
    p_vocab = torch.softmax(torch.randn(3, 5, generator=g, dtype=torch.float64), -1)
    attention = torch.softmax(torch.randn(3, 4, generator=g, dtype=torch.float64), -1)
    ids = torch.tensor([[6, 6, 6, 6], [0, 1, 5, 1], [3, 4, 2, 7]])
    P = hw4.copy_mixture_reference(p_vocab, attention, ids, torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64), 8)
    torch.testing.assert_close(P.sum(1), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(P[0, 6], torch.tensor(0.8, dtype=torch.float64))  # all four positions copy word 6
    torch.testing.assert_close(P[2, :5], p_vocab[2])  # p_gen = 1: no copying
