"""seqmem.attention's score functions and ``attend`` (chapter 5).

Pinned here: each score is its formula from the lecture, computed by hand; T queries at once are
the T queries one by one; a score from prepared keys is the score; gradients pass gradcheck in
float64; ``attend``'s weights sum to one over the keys in the mask and are 0 elsewhere, its
context is the weighted sum of the values, and a query with every key masked reads a zero
context with zero weights, with no NaN in the values or the gradients; errors.
"""
import pytest
import torch

import seqmem
from seqmem.attention import AdditiveScore, BilinearScore, DotScore, ScaledDotScore, attend, masked_softmax

B, S, T, Q, K, A = 3, 5, 4, 6, 7, 8


def _data(seed=0, k_size=K):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, Q, generator=g, dtype=torch.float64), torch.randn(B, T, Q, generator=g, dtype=torch.float64),
            torch.randn(B, S, k_size, generator=g, dtype=torch.float64))


def _scores():
    torch.manual_seed(0)
    return {"additive": (AdditiveScore(Q, K, A).double(), K), "bilinear": (BilinearScore(Q, K).double(), K),
            "dot": (DotScore(), Q), "scaled": (ScaledDotScore(), Q)}


def _by_hand(name, score, q, k):
    """a(q, k_j) for every j, one key at a time, as the lecture writes it: (B, S)."""
    out = torch.empty(q.shape[0], k.shape[1], dtype=q.dtype)
    for b in range(q.shape[0]):
        for j in range(k.shape[1]):
            qb, kj = q[b], k[b, j]
            if name == "additive":  # w_2^T tanh(W_1 [q; k]) with W_1 = [W_q, W_k]
                W_1 = torch.cat([score.W_q.weight, score.W_k.weight], dim=1)  # (A, Q + K)
                out[b, j] = score.w_2.weight[0] @ torch.tanh(W_1 @ torch.cat([qb, kj]))
            elif name == "bilinear":  # q^T W k
                out[b, j] = qb @ score.W.weight @ kj
            else:  # q^T k, over sqrt(|k|) when scaled
                out[b, j] = qb @ kj / (kj.numel() ** 0.5 if name == "scaled" else 1.0)
    return out


@pytest.mark.parametrize("name", ["additive", "bilinear", "dot", "scaled"])
def test_each_score_is_its_formula_and_batches_queries(name):
    score, k_size = _scores()[name]
    q, qs, k = _data(k_size=k_size)
    torch.testing.assert_close(score(q, k), _by_hand(name, score, q, k))
    batched = score(qs, k)  # (B, T, S)
    assert batched.shape == (B, T, S)
    for t in range(T):
        torch.testing.assert_close(batched[:, t], score(qs[:, t], k))
    torch.testing.assert_close(score.compare(qs, score.prepare(k)), batched)  # keys prepared once


@pytest.mark.parametrize("name", ["additive", "bilinear", "dot", "scaled"])
def test_scores_pass_gradcheck(name):
    score, k_size = _scores()[name]
    q, qs, k = (t[:2, ..., :].clone().requires_grad_() for t in _data(k_size=k_size))
    assert torch.autograd.gradcheck(lambda q, k: score(q, k), (q, k))
    assert torch.autograd.gradcheck(lambda q, k: score(q, k), (qs, k))


def test_prepared_keys_have_the_documented_shapes():
    scores = _scores()
    _, _, k = _data()
    assert scores["additive"][0].prepare(k).shape == (B, S, A)  # W_k k
    assert scores["bilinear"][0].prepare(k).shape == (B, S, Q)  # W k
    assert scores["dot"][0].prepare(k) is k


def _mask():
    mask = torch.ones(B, S, dtype=torch.bool)
    mask[1, 3:] = False  # a padded source
    mask[2] = False  # nothing to attend to
    return mask


@pytest.mark.parametrize("batched", [False, True])
def test_attend_weights_sum_to_one_over_the_real_keys_and_read_the_values(batched):
    score, _ = _scores()["additive"]
    q, qs, k = _data()
    values = torch.randn(B, S, 2, dtype=torch.float64)
    mask = _mask()
    context, weights = attend(qs if batched else q, k, values, score, mask)
    weights_ = weights if batched else weights[:, None]  # (B, T or 1, S)
    context_ = context if batched else context[:, None]
    assert weights_.shape[-1] == S and context_.shape[-1] == 2
    torch.testing.assert_close(weights_[:2].sum(-1), torch.ones_like(weights_[:2].sum(-1)))
    assert not weights_[~mask[:, None, :].expand_as(weights_)].any()  # padding gets no weight at all
    assert not weights_[2].any() and not context_[2].any()  # no key: zero weights and context
    by_hand = torch.softmax(score(qs if batched else q, k)[:2, ..., :], dim=-1)
    torch.testing.assert_close(weights[0], by_hand[0])  # no padding: the plain softmax
    torch.testing.assert_close(context_, weights_ @ values)


def test_attend_with_a_mask_per_query_and_no_nan_in_the_gradients():
    score, _ = _scores()["bilinear"]
    _, qs, k = _data()
    qs.requires_grad_(), k.requires_grad_()
    values = torch.randn(B, S, 2, dtype=torch.float64, requires_grad=True)
    causal = torch.ones(T, S, dtype=torch.bool).tril().expand(B, T, S).clone()  # (B, T, S)
    causal[0, 1] = False  # one query of one sample has nothing left
    context, weights = attend(qs, k, values, score, causal)
    assert not weights[0, 1].any() and not context[0, 1].any()
    (context.sum() + weights.pow(2).sum()).backward()
    for t in (qs.grad, k.grad, values.grad, *[p.grad for p in score.parameters()]):
        assert torch.isfinite(t).all()
    assert not qs.grad[0, 1].any()  # the query that read nothing gets no gradient


def test_attend_passes_gradcheck_with_a_fully_masked_row():
    score, _ = _scores()["additive"]
    q, _, k = (t.clone().requires_grad_() for t in _data())
    values = torch.randn(B, S, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q, k, v: attend(q, k, v, score, _mask()), (q, k, values))


def test_masked_softmax_treats_minus_inf_as_masked():
    scores = torch.tensor([[0.0, float("-inf"), 1.0], [float("-inf")] * 3])
    w = masked_softmax(scores)
    torch.testing.assert_close(w[0], torch.softmax(torch.tensor([0.0, 1.0]), 0)[[0, 0, 1]] * torch.tensor([1, 0, 1.]))
    assert not w[1].any()


def test_devices_follow_the_data(dev):
    scores = _scores()
    q, qs, k = (t.to(dev) for t in _data())
    for name in ("additive", "bilinear"):
        score = scores[name][0].to(dev)
        context, weights = attend(qs, k, k, score, _mask().to(dev))
        assert context.device.type == dev.type and weights.device.type == dev.type


def _errors():
    scores = _scores()
    additive, bilinear, dot = scores["additive"][0], scores["bilinear"][0], scores["dot"][0]
    q, qs, k = _data()
    return [
        (lambda: dot(q, k), r"DotScore needs queries and keys of one size \(Q = K\), got Q = 6 and K = 7"),
        (lambda: additive(q[:, :5], k), r"query must have shape \(B, Q\) or \(B, T, Q\) with Q = 6, got \(3, 5\)"),
        (lambda: additive(q, k[..., :6]), r"keys must have shape \(B, S, K\) with K = 7, got \(3, 5, 6\)"),
        (lambda: bilinear(q[:2], k), "query and keys must share the batch size"),
        (lambda: bilinear(q.float(), k), "query must have the parameters' dtype torch.float64, got torch.float32"),
        (lambda: dot(q, k[..., :6].float()),
         r"keys must have the query's dtype and device \(torch.float64 on cpu\), got torch.float32"),
        (lambda: attend(q, k, k[:, :4], additive), r"values must have shape \(B, S, Vd\) with the keys' \(B, S\)"),
        (lambda: attend(q, k, k, additive, _mask().long()), r"mask must be a bool tensor of shape \(3, 5\)"),
        (lambda: attend(q, k, k, additive, _mask()[:, :4]),
         r"mask must be a bool tensor of shape \(3, 5\), got \(3, 4\)"),
        (lambda: attend(qs, k, k, additive, torch.ones(B, 2, S, dtype=torch.bool)), r"\(3, 5\) or \(3, 4, 5\)"),
    ]


@pytest.mark.parametrize("case", range(10))
def test_bad_inputs_raise_clear_errors(case):
    make, match = _errors()[case]
    with pytest.raises(ValueError, match=match):
        make()


def test_exported_from_the_package():
    for name in ("AdditiveScore", "BilinearScore", "DotScore", "ScaledDotScore", "attend", "masked_softmax",
                 "scaled_dot_product_attention", "AttentionDecoder", "AttentionState", "Score"):
        assert getattr(seqmem, name) is getattr(seqmem.attention, name) and name in seqmem.__all__


def test_masked_softmax_refuses_a_mask_that_would_pair_samples_with_queries():
    """Scores (B, T, S) with a padding mask (B, S): broadcasting would read the mask by query, and
    with T == B nothing would fail. The mask must say (B, 1, S)."""
    scores = torch.zeros(2, 2, 3)
    padding = torch.tensor([[True, True, False], [True, False, False]])
    with pytest.raises(ValueError, match=r"mask must be a bool tensor with the scores' 3 dimensions"):
        masked_softmax(scores, padding)
    w = masked_softmax(scores, padding[:, None, :])
    torch.testing.assert_close(w[0], torch.tensor([[0.5, 0.5, 0.0]] * 2))
    torch.testing.assert_close(w[1], torch.tensor([[1.0, 0.0, 0.0]] * 2))
    for bad in (padding.float()[:, None, :], torch.ones(2, 1, 4, dtype=torch.bool), torch.ones(3, 1, 3, dtype=torch.bool)):
        with pytest.raises(ValueError, match="mask must be"):
            masked_softmax(scores, bad)
