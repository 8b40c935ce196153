"""seqmem.tasks.memory: the NTM's copy, repeat copy and associative recall, the DNC's series of copies, and
their scores.

Pinned here, per task and per episode: the delimiters' channels and steps, the repeat number's
channel and its normalisation, zero input during the recall phase and the padding, a mask that
covers exactly the recall steps, targets that are what the task asks for (the sequence, its
copies and the end marker, the item after the query) and zero elsewhere; lengths of the padded
episodes; a seed gives the same batch on every device; bit errors and the cost in bits by hand.
"""
import math

import pytest
import torch
from torch.nn import functional as F

from seqmem import tasks
from seqmem.tasks import memory

from helpers import gen


def _check_padding_and_mask(batch, recall_start, recall_len):
    """Mask True exactly at recall_start[b] ... + recall_len[b] - 1; no input there or after lengths."""
    B, T, _ = batch.inputs.shape
    t = torch.arange(T, device=batch.inputs.device)
    for b in range(B):
        lo, n = int(recall_start[b]), int(recall_len[b])
        want = (t >= lo) & (t < lo + n)
        assert torch.equal(batch.mask[b], want), b
        assert int(batch.lengths[b]) == lo + n  # the recall phase ends the episode
        assert (batch.inputs[b, lo:] == 0).all()  # no input during recall nor in the padding
        assert (batch.targets[b, ~want] == 0).all()  # nothing to produce outside the recall phase
    assert T == int(batch.lengths.max())


def test_copy_layout():
    batch = tasks.copy_sequences(64, 1, 6, n_bits=5, generator=gen(0))
    x, y, L = batch.inputs, batch.targets, batch.sizes
    assert x.shape[2] == 6 and y.shape[2] == 5 and len(set(L.tolist())) > 1  # lengths vary in the batch
    assert int(L.min()) >= 1 and int(L.max()) <= 6 and torch.equal(batch.repeats, torch.ones_like(L))
    for b in range(64):
        n = int(L[b])
        assert torch.equal(x[b, :, 5].nonzero().flatten(), torch.tensor([n]))  # one delimiter, at t = L
        assert torch.equal(y[b, n + 1:2 * n + 1], x[b, :n, :5])  # the recall phase is the sequence
        assert set(x[b, :n, :5].unique().tolist()) <= {0.0, 1.0}
    _check_padding_and_mask(batch, L + 1, L)


def test_copy_series_is_copy_episodes_back_to_back():
    batch = tasks.copy_series(32, n_sequences=3, min_len=1, max_len=5, n_bits=4, generator=gen(11))
    x, y = batch.inputs, batch.targets
    assert x.shape[2] == 5 and y.shape[2] == 4 and torch.equal(batch.repeats, torch.full((32,), 3))
    shown = x[..., :4][x[..., :4].sum(-1) > 0]
    assert 0.4 < float(x[..., :4].sum() / (4 * batch.sizes.sum())) < 0.6  # random bits, p = 1/2
    assert len(shown) > 0
    for b in range(32):
        delimiters = x[b, :, 4].nonzero().flatten().tolist()
        assert len(delimiters) == 3  # one per part
        start, total = 0, 0
        for d in delimiters:
            L = d - start  # the part's length: the vectors before its delimiter
            assert 1 <= L <= 5
            assert (x[b, d, :4] == 0).all() and (x[b, start:d, 4] == 0).all()  # the channels apart
            assert torch.equal(y[b, d + 1:d + 1 + L], x[b, start:d, :4])  # recalled right after
            assert batch.mask[b, d + 1:d + 1 + L].all() and not batch.mask[b, start:d + 1].any()
            assert (x[b, d + 1:d + 1 + L] == 0).all()  # no input while recalling
            start, total = d + 1 + L, total + L
        assert int(batch.lengths[b]) == start and int(batch.sizes[b]) == total
        assert not batch.mask[b, start:].any() and (x[b, start:] == 0).all()  # padding at the end only
    assert int(batch.mask.sum()) == int(batch.sizes.sum())
    # one part is the copy task's layout
    one = tasks.copy_series(4, n_sequences=1, min_len=3, max_len=3, generator=gen(12))
    assert one.inputs.shape == (4, 7, 9) and torch.equal(one.mask[0], tasks.copy_sequences(1, 3, 3).mask[0])


def test_repeat_copy_layout():
    batch = tasks.repeat_copy(64, 1, 4, 1, 5, n_bits=3, generator=gen(1))
    x, y, L, R = batch.inputs, batch.targets, batch.sizes, batch.repeats
    assert x.shape[2] == 5 and y.shape[2] == 4 and len(set(R.tolist())) > 1
    for b in range(64):
        n, r = int(L[b]), int(R[b])
        assert torch.equal(x[b, :, 3].nonzero().flatten(), torch.tensor([n]))  # the delimiter at t = L
        assert torch.equal(x[b, :, 4].nonzero().flatten(), torch.tensor([n + 1]))  # R at t = L + 1 (never 0)
        torch.testing.assert_close(x[b, n + 1, 4], torch.tensor((r - 5.5) / math.sqrt(99 / 12)))  # over 1..10
        start = n + 2
        assert torch.equal(y[b, start:start + n * r, :3], x[b, :n, :3].repeat(r, 1))  # r copies
        assert (y[b, :, 3].nonzero().flatten() == start + n * r).all()  # then the end marker, once
        assert y[b, start + n * r, 3] == 1 and (y[b, start + n * r, :3] == 0).all()
    _check_padding_and_mask(batch, L + 2, L * R + 1)


def test_repeat_encoding_has_mean_zero_and_variance_one_over_its_range():
    r = torch.arange(1, 11)
    z = tasks.repeat_encoding(r)  # the paper's 1..10
    torch.testing.assert_close(z.mean(), torch.tensor(0.0))
    torch.testing.assert_close(z.var(unbiased=False), torch.tensor(1.0))
    torch.testing.assert_close(tasks.repeat_encoding(torch.tensor([20]))[0], torch.tensor(14.5 / math.sqrt(8.25)))
    assert torch.equal(tasks.repeat_encoding(torch.tensor([3]), (3, 3)), torch.tensor([0.0]))
    far = tasks.repeat_copy(4, 2, 2, 12, 12, generator=gen(2))  # outside the training range, same scale
    torch.testing.assert_close(far.inputs[:, 3, 9], torch.full((4,), 6.5 / math.sqrt(8.25)))


def test_associative_recall_layout():
    item_len, n_bits = 3, 4
    batch = tasks.associative_recall(64, 2, 5, item_len, n_bits, generator=gen(3))
    x, y, n = batch.inputs, batch.targets, batch.sizes
    assert x.shape[2] == n_bits + 2 and y.shape[2] == n_bits and len(set(n.tolist())) > 1
    span = item_len + 1
    for b in range(64):
        k = int(n[b])
        assert torch.equal(x[b, :, n_bits].nonzero().flatten(), torch.arange(k) * span)  # an opening per item
        q0 = k * span
        assert torch.equal(x[b, :, n_bits + 1].nonzero().flatten(), torch.tensor([q0, q0 + item_len + 1]))
        items = [x[b, i * span + 1:(i + 1) * span, :n_bits] for i in range(k)]
        assert len({tuple(it.flatten().tolist()) for it in items}) == k  # the items differ
        query = x[b, q0 + 1:q0 + 1 + item_len, :n_bits]
        found = [i for i in range(k) if torch.equal(items[i], query)]
        assert len(found) == 1 and found[0] < k - 1  # the query is one of the items, not the last
        start = q0 + item_len + 2
        assert torch.equal(y[b, start:start + item_len], items[found[0] + 1])  # the answer: the item after it
    _check_padding_and_mask(batch, n * span + item_len + 2, torch.full_like(n, item_len))


def test_the_query_is_every_item_but_the_last_in_turn():
    batch = tasks.associative_recall(2000, 4, 4, 1, 6, generator=gen(4))
    queries = batch.inputs[:, 9, :6]  # 4 items of 1 vector: the query at t = 4 * 2 + 1
    items = batch.inputs[:, 1:8:2, :6]  # (B, 4, 6)
    which = (items == queries.unsqueeze(1)).all(-1).float().argmax(-1)
    counts = torch.bincount(which, minlength=4)
    assert counts[3] == 0 and (counts[:3] > 550).all()  # uniform over the first three (about 667 each)


@pytest.mark.parametrize("task", ["copy", "series", "repeat", "recall"])
def test_seeded_and_the_same_on_every_device(task, dev):
    make = {"copy": lambda g, d: tasks.copy_sequences(8, 1, 5, generator=g, device=d),
            "series": lambda g, d: tasks.copy_series(8, 3, 1, 4, generator=g, device=d),
            "repeat": lambda g, d: tasks.repeat_copy(8, 1, 3, 1, 3, generator=g, device=d),
            "recall": lambda g, d: tasks.associative_recall(8, generator=g, device=d)}[task]
    a, b, c = make(gen(5), None), make(gen(5), dev), make(gen(6), None)
    for x, y in zip(a, b):
        assert y.device.type == torch.device(dev).type
        assert torch.equal(x, y.cpu())
    assert a.inputs.shape != c.inputs.shape or not torch.equal(a.inputs, c.inputs)  # another seed, other data
    assert a.inputs.dtype == torch.float32 and a.mask.dtype == torch.bool and a.lengths.dtype == torch.int64


def test_fixed_lengths_have_no_padding():
    batch = tasks.copy_sequences(5, 4, 4, generator=gen(7))
    assert batch.inputs.shape == (5, 9, 9) and (batch.lengths == 9).all() and batch.mask.sum() == 5 * 4


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"min_len must be <= max_len, got 5 > 3"):
        tasks.copy_sequences(2, 5, 3)
    with pytest.raises(ValueError, match=r"n_sequences must be a positive int, got 0"):
        tasks.copy_series(2, n_sequences=0)
    with pytest.raises(ValueError, match=r"min_len must be <= max_len, got 4 > 2"):
        tasks.copy_series(2, 2, 4, 2)
    with pytest.raises(ValueError, match=r"min_repeats must be a positive int, got 0"):
        tasks.repeat_copy(2, min_repeats=0)
    with pytest.raises(ValueError, match=r"min_items >= 2"):
        tasks.associative_recall(2, min_items=1)
    with pytest.raises(ValueError, match=r"distinct items"):
        tasks.associative_recall(2, 5, 5, item_len=1, n_bits=2)


# -- the scores ------------------------------------------------------------------------------

def test_bit_errors_by_hand():
    targets = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])  # (1, 3, 2)
    mask = torch.tensor([[False, True, True]])
    logits = torch.tensor([[[-5.0, 5.0], [1.0, 2.0], [3.0, -0.5]]])  # step 0 all wrong but not scored; step 1: one
    assert torch.equal(memory.bit_errors(logits, targets, mask), torch.tensor([1.0]))
    probs = torch.sigmoid(logits)
    assert torch.equal(memory.bit_errors(probs, targets, mask, from_logits=False), torch.tensor([1.0]))
    assert memory.bit_errors(probs, targets, mask).item() == 2.0  # probabilities read as logits: all ones
    batch = tasks.copy_sequences(16, 1, 5, generator=gen(8))
    perfect = (batch.targets * 2 - 1) * 10  # the right bits, confidently
    assert torch.equal(memory.bit_errors(perfect, batch.targets, batch.mask), torch.zeros(16))
    wrong = -perfect
    assert torch.equal(memory.bit_errors(wrong, batch.targets, batch.mask), (batch.sizes * 8).float())


def test_sequence_cost_is_the_masked_cross_entropy_in_bits():
    batch = tasks.repeat_copy(6, 1, 3, 1, 3, generator=gen(9))
    logits = torch.randn(batch.targets.shape, generator=gen(10))
    nats = memory.sequence_cost(logits, batch.targets, batch.mask, bits=False)
    for b in range(6):
        m = batch.mask[b]
        ref = F.binary_cross_entropy_with_logits(logits[b, m], batch.targets[b, m], reduction="sum")
        torch.testing.assert_close(nats[b], ref)
    torch.testing.assert_close(memory.sequence_cost(logits, batch.targets, batch.mask), nats / math.log(2))
    half = torch.zeros_like(logits)  # p = 1/2 everywhere: one bit per scored bit
    torch.testing.assert_close(memory.sequence_cost(half, batch.targets, batch.mask),
                               (batch.mask.sum(1) * batch.targets.shape[2]).float())


def test_score_shape_errors():
    with pytest.raises(ValueError, match=r"outputs and targets must both be \(B, T, O\)"):
        memory.bit_errors(torch.zeros(2, 3, 4), torch.zeros(2, 3, 5), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask must be a bool tensor \(B, T\) = \(2, 3\)"):
        memory.sequence_cost(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, 3))
