"""seqmem.addressing: content addressing, the lookup the NTM and the DNC share (chapter 8).

Pinned here: cosine similarity against torch's on nonzero rows, and exactly 0 (never NaN) on a
zero row or key; the weighting is a softmax over slots that sums to one and lies in [0, 1]; beta =
0 gives the uniform weighting and a large beta the one-hot argmax; a hand-computed memory; one
head (B, W) equals the R = 1 slice of many heads (B, R, W); the batch equals a loop over examples;
gradcheck in float64, at a random and an all-zero memory; one slot gives weight 1; shape errors.
"""
import pytest
import torch
from torch.nn import functional as F

from seqmem import addressing as A

from helpers import gen, randn


def test_cosine_similarity_is_torchs_on_nonzero_rows(dev):
    g = gen(0)
    M, k = randn(g, 3, 7, 5, dev=dev), randn(g, 3, 2, 5, dev=dev)
    K = A.cosine_similarity(M, k, eps=0.0)  # (B, R, N)
    ref = F.cosine_similarity(k.unsqueeze(2), M.unsqueeze(1), dim=-1, eps=0.0)  # (B, R, N)
    torch.testing.assert_close(K, ref)
    assert K.shape == (3, 2, 7) and K.device.type == torch.device(dev).type


def test_a_zero_memory_or_key_has_similarity_zero_and_finite_gradients(dev):
    M = torch.zeros(2, 4, 3, dtype=torch.float64, device=dev, requires_grad=True)
    k = torch.zeros(2, 3, dtype=torch.float64, device=dev, requires_grad=True)
    beta = torch.ones(2, dtype=torch.float64, device=dev, requires_grad=True)
    w = A.content_addressing(M, k, beta)
    assert torch.equal(A.cosine_similarity(M, k), torch.zeros(2, 4, dtype=torch.float64, device=dev))
    torch.testing.assert_close(w, torch.full((2, 4), 0.25, dtype=torch.float64, device=dev))
    (w * torch.arange(4.0, dtype=torch.float64, device=dev)).sum().backward()
    for t in (M, k, beta):
        assert torch.isfinite(t.grad).all()


def test_hand_computed_memory():
    M = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]], dtype=torch.float64)  # (1, 3, 2)
    k = torch.tensor([[2.0, 0.0]], dtype=torch.float64)  # along slot 0
    K = A.cosine_similarity(M, k, eps=0.0)
    torch.testing.assert_close(K, torch.tensor([[1.0, 0.0, 2 ** -0.5]], dtype=torch.float64))
    beta = torch.tensor([2.0], dtype=torch.float64)
    e = torch.exp(2.0 * K[0])
    torch.testing.assert_close(A.content_addressing(M, k, beta, eps=0.0)[0], e / e.sum())


def test_weights_are_a_distribution_and_beta_sharpens(dev):
    g = gen(1)
    M, k = randn(g, 4, 9, 6, dev=dev).detach(), randn(g, 4, 3, 6, dev=dev).detach()
    for scale in (0.0, 0.5, 5.0, 500.0):
        w = A.content_addressing(M, k, torch.full((4, 3), scale, dtype=torch.float64, device=dev))
        assert w.shape == (4, 3, 9) and (w >= 0).all() and (w <= 1).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(4, 3, dtype=torch.float64, device=dev))
        if scale == 0.0:
            torch.testing.assert_close(w, torch.full_like(w, 1 / 9))  # no strength: uniform
    top2 = A.cosine_similarity(M, k).topk(2, dim=-1)
    assert torch.equal(w.argmax(-1), top2.indices[..., 0])  # the most similar slot wins
    clear = top2.values[..., 0] - top2.values[..., 1] > 0.02  # where it wins by a margin: one-hot
    assert clear.any() and (w.max(-1).values[clear] > 0.99).all()


def test_one_head_is_the_first_of_many_and_the_batch_is_a_loop():
    g = gen(2)
    M, k, beta = randn(g, 5, 6, 4), randn(g, 5, 3, 4), torch.rand(5, 3, generator=g, dtype=torch.float64) * 4
    many = A.content_addressing(M, k, beta)  # (B, R, N)
    torch.testing.assert_close(A.content_addressing(M, k[:, 1], beta[:, 1]), many[:, 1])
    torch.testing.assert_close(A.content_addressing(M, k[:, 1], beta[:, 1:2]), many[:, 1])
    for b in range(5):
        torch.testing.assert_close(A.content_addressing(M[b:b + 1], k[b:b + 1], beta[b:b + 1])[0], many[b])


@pytest.mark.parametrize("zero_memory", [False, True])
def test_gradcheck(zero_memory):
    g = gen(3)
    M = randn(g, 2, 5, 3)
    if zero_memory:
        M = torch.zeros(2, 5, 3, dtype=torch.float64, requires_grad=True)
    k, beta = randn(g, 2, 2, 3), (torch.rand(2, 2, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(A.content_addressing, (M, k, beta))


def test_one_slot_gets_all_the_weight():
    g = gen(4)
    w = A.content_addressing(randn(g, 3, 1, 4), randn(g, 3, 4), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(w, torch.ones(3, 1, dtype=torch.float64))


def test_shape_errors_say_what_was_expected():
    M = torch.zeros(2, 5, 3)
    with pytest.raises(ValueError, match=r"memory must be \(B, N, W\)"):
        A.cosine_similarity(torch.zeros(5, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"k must be \(B, W\) = \(2, 3\)"):
        A.cosine_similarity(M, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"k must be"):
        A.cosine_similarity(M, torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"beta must have shape \(2,\)"):
        A.content_addressing(M, torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"beta must have shape \(2, 4\)"):
        A.content_addressing(M, torch.zeros(2, 4, 3), torch.zeros(2))
    # nothing is silently promoted: a float64 key or strength against a float32 memory is refused
    with pytest.raises(ValueError, match=r"k must have the memory's dtype and device \(torch.float32, cpu\), "
                                         r"got \(torch.float64, cpu\)"):
        A.cosine_similarity(M, torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"beta must be a tensor of the memory's dtype and device"):
        A.content_addressing(M, torch.zeros(2, 3), torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"beta must be a tensor.*got float"):
        A.content_addressing(M, torch.zeros(2, 3), 1.0)


def test_read_is_a_weighted_sum_of_rows_by_hand():
    M = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]], dtype=torch.float64)  # (1, 3, 2)
    w = torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64)
    torch.testing.assert_close(A.read(M, w), torch.tensor([[2.5, 3.5]], dtype=torch.float64))
    many = A.read(M, torch.stack([w, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)], 1))  # (1, 2, 2)
    torch.testing.assert_close(many[0, 1], M[0, 2])


def test_write_erases_then_adds_by_hand_and_leaves_the_old_memory():
    M = torch.ones(1, 2, 3, dtype=torch.float64)
    w = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    e = torch.tensor([[1.0, 0.0, 0.5]], dtype=torch.float64)
    a = torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)
    new = A.write(M, w, e, a)
    # slot 0, w = 1: [1 - 1 + 2, 1, 1 - 0.5] ; slot 1, w = 0.5: [1 - 0.5 + 1, 1, 1 - 0.25]
    torch.testing.assert_close(new[0], torch.tensor([[2.0, 1.0, 0.5], [1.5, 1.0, 0.75]], dtype=torch.float64))
    assert torch.equal(M, torch.ones(1, 2, 3, dtype=torch.float64))
    full = A.write(M, torch.ones(1, 2, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64), a)
    torch.testing.assert_close(full, a.unsqueeze(1).expand(1, 2, 3))  # erase everything, then add a


def test_read_and_write_gradcheck_and_batch_is_a_loop(dev):
    g = gen(5)
    M, w = randn(g, 3, 4, 2), torch.softmax(randn(g, 3, 4), -1)
    e, a = torch.sigmoid(randn(g, 3, 2)), randn(g, 3, 2)
    assert torch.autograd.gradcheck(A.read, (M, w))
    assert torch.autograd.gradcheck(A.write, (M, w, e, a))
    Md, wd, ed, ad = (t.detach().to(dev) for t in (M, w, e, a))
    out = A.write(Md, wd, ed, ad)
    for b in range(3):
        torch.testing.assert_close(out[b:b + 1], A.write(Md[b:b + 1], wd[b:b + 1], ed[b:b + 1], ad[b:b + 1]))


def test_read_and_write_shape_errors():
    M = torch.zeros(2, 5, 3)
    with pytest.raises(ValueError, match=r"w must be \(B, N\) = \(2, 5\)"):
        A.read(M, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"write takes one head's weights"):
        A.write(M, torch.zeros(2, 2, 5), torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"e must be \(B, W\) = \(2, 3\)"):
        A.write(M, torch.zeros(2, 5), torch.zeros(2, 5), torch.zeros(2, 3))
