"""Homework 4's grading pipeline, end to end (as tests/test_grading.py for homework 1): canned
submissions and the adversarial corpus autograded in one batch by nbgrader with a real gradebook.
The checks themselves, called directly, are in tests/test_grading_checks_hw4.py."""
import pytest

from corpus_checks import *  # noqa: F401,F403 (the adversarial corpus's tests, run on this homework)
from corpus_checks import automatic_homework

pytestmark = [pytest.mark.grading, pytest.mark.slow]

HW = "hw4-attention"

RIGHT = {  # right answers written differently from the source's
    "additive_weights": '''
def additive_weights(query, keys, W1, w2, mask):
    B, S, K = keys.shape
    pairs = torch.cat([query[:, None, :].expand(B, S, query.shape[1]), keys], dim=2)  # [q; k_j]
    scores = torch.tanh(pairs @ W1.T) @ w2
    rows = []
    for b in range(B):
        row = torch.zeros(S, dtype=query.dtype)
        if mask[b].any():
            row[mask[b]] = torch.softmax(scores[b][mask[b]], dim=0)
        rows.append(row)
    return torch.stack(rows)
''',
    "scaled_dot_attention": '''
def scaled_dot_attention(queries, keys, values, mask):
    scores = torch.einsum("btd,bsd->bts", queries, keys) / queries.shape[-1] ** 0.5
    top = torch.where(mask, scores, torch.finfo(scores.dtype).min).amax(-1, keepdim=True)
    e = torch.where(mask, torch.exp(scores - top), 0.0)  # where, not a product: exp may overflow where masked
    weights = e / e.sum(-1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)
    return torch.einsum("bts,bsv->btv", weights, values), weights
''',
    "memory_hop": '''
def memory_hop(u, m, c, mask, H):
    B, N, d = m.shape
    p = torch.zeros(B, N, dtype=u.dtype)
    o = torch.zeros(B, d, dtype=u.dtype)
    for b in range(B):
        if mask[b].any():
            p[b, mask[b]] = torch.softmax(m[b][mask[b]] @ u[b], 0)
            o[b] = p[b, mask[b]] @ c[b][mask[b]]
    return (u if H is None else u @ H.T) + o, p
''',
    "copy_mixture": '''
def copy_mixture(p_vocab, attention, source_ids, p_gen, extended_size):
    B, V = p_vocab.shape
    out = torch.zeros(B, extended_size, dtype=p_vocab.dtype)
    out[:, :V] = p_gen[:, None] * p_vocab
    return out.index_put((torch.arange(B)[:, None].expand_as(source_ids), source_ids),
                         (1 - p_gen[:, None]) * attention, accumulate=True)
''',
}
WRONG_COPY = '''
def copy_mixture(p_vocab, attention, source_ids, p_gen, extended_size):
    B, V = p_vocab.shape
    out = torch.zeros(B, extended_size, dtype=p_vocab.dtype)
    out[:, :V] = p_gen[:, None] * p_vocab
    for b in range(B):
        out[b, source_ids[b]] += (1 - p_gen[b]) * attention[b]  # a repeated word keeps one occurrence
    return out
'''
CALLS_LIBRARY = {
    "scaled_dot_attention": '''
def scaled_dot_attention(queries, keys, values, mask):
    context = torch.nn.functional.scaled_dot_product_attention(queries, keys, values, attn_mask=mask)
    weights = torch.softmax((queries @ keys.transpose(1, 2) / queries.shape[-1] ** 0.5).masked_fill(~mask, -math.inf), -1)
    return context.nan_to_num(0.0), weights.nan_to_num(0.0)
''',
    "memory_hop": '''
def memory_hop(u, m, c, mask, H):
    p = seqmem.memn2n.match(u, m, mask)
    return (u if H is None else u @ H.T) + seqmem.memn2n.read(p, c), p
''',
}
# W1's halves swapped: right whenever they act alike, as in the visible tests (W1 zero, then all ones)
VISIBLE_ONLY = '''
def additive_weights(query, keys, W1, w2, mask):
    K = keys.shape[2]
    scores = torch.tanh((query @ W1[:, K:].T)[:, None, :] + keys @ W1[:, :K].T) @ w2
    weights = torch.softmax(scores.masked_fill(~mask, -math.inf), dim=1)
    return weights.nan_to_num(0.0)
'''
FULL = {"test_additive_weights": 3, "test_scaled_dot_attention": 3, "test_memory_hop": 2, "test_copy_mixture": 2}

SUBMISSIONS = {
    "source": ("source", FULL),
    "canned_right": (RIGHT, FULL),
    "partial": ({**RIGHT, "copy_mixture": WRONG_COPY}, {**FULL, "test_copy_mixture": 0}),
    "calls_library": ({**RIGHT, **CALLS_LIBRARY}, {**FULL, "test_scaled_dot_attention": 0, "test_memory_hop": 0}),
    "visible_only": ({**RIGHT, "additive_weights": VISIBLE_ONLY}, {**FULL, "test_additive_weights": 0}),
}


globals().update(automatic_homework(HW, SUBMISSIONS, {"partial": 8.0, "honest": 10.0, "blank": 0.0}))
