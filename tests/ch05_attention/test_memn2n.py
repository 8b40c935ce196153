"""seqmem.memn2n (chapter 5): end-to-end memory networks.

Pinned here: the position encoding against its formula and by hand; the forward against the
paper's equations written again with loops over sentences and words, for every tying, with and
without PE, TE and linear start; tying shares parameters (one object: changing one changes the
other) and counts them; masked slots get zero weight and never NaN, even when all are masked;
padding changes nothing; the ages of the temporal encoding; random noise's empty memories;
gradients; errors; devices; and a 3-hop network that learns task 1.
"""
import itertools
import time

import pytest
import torch

import seqmem
from helpers import gen
from seqmem import memn2n
from seqmem.memn2n import MemN2N, add_empty_memories, match, position_encoding, read, recency
from seqmem.tasks import babi

V, d, K, M, L, B = 12, 6, 3, 5, 4, 3


def _inputs(seed=0):
    """Stories (B, M, L) with sentences of 1 to L words and 1 to M used slots, queries (B, L)."""
    g = gen(seed)
    stories = torch.zeros(B, M, L, dtype=torch.long)
    n_slots = [M, 2, 4]
    for b, n in enumerate(n_slots):
        for i in range(n):
            J = int(torch.randint(1, L + 1, (1,), generator=g))
            stories[b, i, :J] = torch.randint(1, V, (J,), generator=g)
    queries = torch.zeros(B, L, dtype=torch.long)
    queries[:, :3] = torch.randint(1, V, (B, 3), generator=g)
    queries[1, 2] = 0  # a shorter question
    mask = torch.arange(M) < torch.tensor(n_slots)[:, None]
    return stories, queries, mask


def _model(seed=0, **options):
    torch.manual_seed(seed)
    return MemN2N(V, d, K, M, **options).double()


# ------------------------------------------------------------------ the paper's equations, with loops

def pe_formula(J, dim):
    """l_kj = (1 - j/J) - (k/d)(1 - 2j/J), j = 1..J (rows), k = 1..d (columns)."""
    return torch.tensor([[(1 - j / J) - (k / dim) * (1 - 2 * j / J) for k in range(1, dim + 1)]
                         for j in range(1, J + 1)], dtype=torch.float64)


def sentence_vector(table, words, position):
    words = [w for w in words.tolist() if w != 0]
    if not words:
        return torch.zeros(table.shape[1], dtype=table.dtype)
    l = pe_formula(len(words), table.shape[1]) if position else torch.ones(len(words), table.shape[1])
    return sum(l[j] * table[w] for j, w in enumerate(words))


def reference(model, stories, queries, mask):
    """Logits (B, V) and attention (B, K, M) from section 2's equations, one story, slot and word at a time."""
    pe, te = model.position_encoding, model.temporal_encoding
    logits, attention = [], []
    for b in range(stories.shape[0]):
        used = [i for i in range(stories.shape[1]) if mask[b, i]]
        u = sentence_vector(model.B.weight, queries[b], pe)
        hops = []
        for k in range(model.K):
            m, c = {}, {}
            for rank, i in enumerate(used):
                age = len(used) - 1 - rank  # 0 for the most recent sentence
                m[i] = sentence_vector(model.A[k].weight, stories[b, i], pe) + (model.T_A[k].weight[age] if te else 0)
                c[i] = sentence_vector(model.C[k].weight, stories[b, i], pe) + (model.T_C[k].weight[age] if te else 0)
            scores = torch.stack([u @ m[i] for i in used])
            p_used = scores if model.linear_start else torch.softmax(scores, 0)
            p = torch.zeros(stories.shape[1], dtype=u.dtype)
            p[used] = p_used
            o = sum(p[i] * c[i] for i in used)
            u = (u if model.H is None else model.H.weight @ u) + o
            hops.append(p)
        logits.append(model.W.weight @ u)
        attention.append(torch.stack(hops))
    return torch.stack(logits), torch.stack(attention)


OPTIONS = [dict(tying=t, position_encoding=pe, temporal_encoding=te)
           for t, pe, te in itertools.product(memn2n.TYINGS, (True, False), (True, False))]


@pytest.mark.parametrize("linear", [False, True], ids=["softmax", "linear-start"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_forward_is_the_papers_equations(options, linear):
    model = _model(**options)
    model.linear_start = linear
    stories, queries, mask = _inputs()
    mask[0, 1] = False  # a hole: an unused slot between used ones
    out = model(stories, queries, mask)
    logits, attention = reference(model, stories, queries, mask)
    assert out.logits.shape == (B, V) and out.attention.shape == (B, K, M)
    torch.testing.assert_close(out.logits, logits)
    torch.testing.assert_close(out.attention, attention)


# ------------------------------------------------------------------ position encoding

@pytest.mark.parametrize("dim", [1, 4, 7])
def test_position_encoding_is_its_formula(dim):
    lengths = torch.tensor([[1, 2, 3], [4, 6, 0]])
    l = position_encoding(lengths, 6, dim, torch.float64)
    assert l.shape == (2, 3, 6, dim)
    for J, table in zip(lengths.flatten().tolist(), l.reshape(6, 6, dim)):
        if J:
            torch.testing.assert_close(table[:J], pe_formula(J, dim))
        assert not table[J:].any()


def test_position_encoding_by_hand():
    # J = 2, d = 2: word 1 gets 1/2 - (k/2)(0) = 1/2 in both dimensions; word 2 gets 0 + k/2
    torch.testing.assert_close(position_encoding(torch.tensor(2), 3, 2),
                               torch.tensor([[0.5, 0.5], [0.5, 1.0], [0.0, 0.0]]))
    # one word: l_k1 = k/d
    torch.testing.assert_close(position_encoding(torch.tensor([1]), 1, 4), torch.tensor([[[0.25, 0.5, 0.75, 1.0]]]))


def test_word_weights_bag_of_words_counts_the_words_only():
    ids = torch.tensor([[3, 1, 0, 0], [2, 0, 0, 0]])
    w = memn2n.word_weights(ids, 3, position=False)
    torch.testing.assert_close(w, (ids != 0)[..., None].float().expand(2, 4, 3))


def test_recency_by_hand():
    mask = torch.tensor([[True, True, True, False], [True, False, True, False], [False] * 4])
    assert recency(mask)[mask].tolist() == [2, 1, 0, 1, 0]


# ------------------------------------------------------------------ tying

def test_adjacent_tying_shares_one_parameter_per_pair():
    model = _model(tying="adjacent")
    for k in range(K - 1):
        assert model.A[k + 1] is model.C[k] and model.T_A[k + 1] is model.T_C[k]
    assert model.B is model.A[0] and model.W is model.C[-1] and model.H is None
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == (K + 1) * V * d + (K + 1) * M * d  # A^1, C^1 ... C^K and their temporal tables
    with torch.no_grad():
        model.C[0].weight[3, 2] = 7.0  # changing C^1 changes A^2
    assert model.A[1].weight[3, 2] == 7.0 and model.A[1].weight.data_ptr() == model.C[0].weight.data_ptr()
    with torch.no_grad():
        model.C[-1].weight[5] = 0.0
    assert not model.W.weight[5].any()


def test_layerwise_tying_shares_every_hop_and_adds_h():
    model = _model(tying="layerwise")
    assert all(model.A[k] is model.A[0] and model.C[k] is model.C[0] for k in range(K))
    assert all(model.T_A[k] is model.T_A[0] for k in range(K))
    assert model.B is not model.A[0] and model.W is not model.C[0] and model.H.weight.shape == (d, d)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 4 * V * d + 2 * M * d + d * d  # A, C, B, W, T_A, T_C, H
    with torch.no_grad():
        model.A[2].weight.zero_()
    assert not model.A[0].weight.any()


def test_no_tying_gives_every_hop_its_own():
    model = _model(tying="none")
    tables = [*model.A, *model.C, model.B, model.W]
    assert len({id(t) for t in tables}) == 2 * K + 2


# ------------------------------------------------------------------ masking, padding

def test_masked_slots_get_no_weight_and_the_rest_sums_to_one():
    model = _model()
    stories, queries, mask = _inputs()
    mask[2] = False  # a story with no memory at all
    out = model(stories, queries, mask)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.attention).all()
    assert not out.attention.permute(0, 2, 1)[~mask].any()
    torch.testing.assert_close(out.attention[:2].sum(-1), torch.ones(2, K, dtype=torch.float64))
    assert not out.attention[2].any()
    out.logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_match_and_read_gradcheck():
    g = gen(1)
    u, m, c = (torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)
               for s in ((2, 3), (2, 4, 3), (2, 4, 3)))
    mask = torch.tensor([[True, False, True, True], [False, False, False, False]])
    assert torch.autograd.gradcheck(lambda u, m, c: read(match(u, m, mask), c), (u, m, c))
    assert torch.autograd.gradcheck(lambda u, m: match(u, m, mask, softmax=False), (u, m))


def test_padding_slots_and_words_changes_nothing():
    model = _model()
    stories, queries, mask = _inputs()
    out = model(stories, queries, mask)
    wider = torch.nn.functional.pad(stories, (0, 2, 0, 0))  # two more nil words per sentence: (B, M, L + 2)
    longer_q = torch.nn.functional.pad(queries, (0, 3))
    padded = model(wider, longer_q, mask)
    torch.testing.assert_close(padded.logits, out.logits)
    fewer = model(stories[:, :4], queries, mask[:, :4])  # story 0 fills all M slots: only stories 1, 2
    torch.testing.assert_close(fewer.logits[1:], out.logits[1:])


def test_default_mask_is_the_slots_with_words():
    model = _model()
    stories, queries, mask = _inputs()
    torch.testing.assert_close(model(stories, queries).logits, model(stories, queries, mask).logits)


# ------------------------------------------------------------------ random noise

def test_empty_memories_keep_order_and_make_sentences_older():
    stories, _, mask = _inputs()
    same, same_mask = add_empty_memories(stories, mask, 0.0, gen(0))
    assert torch.equal(same, stories) and torch.equal(same_mask, mask)
    every, every_mask = add_empty_memories(stories[1:], mask[1:], 1.0, gen(0))  # 2 and 4 sentences
    assert every_mask.sum(1).tolist() == [4, 5]  # 2 + 2; 4 + 4 overflow M = 5: the oldest go
    assert torch.equal(every[0, [1, 3]], stories[1, :2]) and not every[0, [0, 2]].any()
    assert torch.equal(every[1, [0, 2, 4]], stories[2, 1:4]) and not every[1, [1, 3]].any()
    draws = [add_empty_memories(stories, mask, 0.5, gen(3))[0] for _ in range(2)]
    assert torch.equal(*draws)


def test_empty_memories_are_read_as_temporal_encodings():
    model = _model()
    stories, queries, mask = _inputs()
    stories[0, 2] = 0  # an empty memory, still used: its age counts
    out = model(stories, queries, mask)
    assert out.attention[0, :, 2].gt(0).all()
    torch.testing.assert_close(out.logits, reference(model, stories, queries, mask)[0])


# ------------------------------------------------------------------ training, errors, devices

def test_gradients_reach_every_parameter():
    for tying in memn2n.TYINGS:
        model = _model(tying=tying)
        stories, queries, _ = _inputs()
        loss, logs = memn2n.memn2n_loss(model, (stories, queries, torch.tensor([1, 2, 3]), stories.ne(0).any(-1)))
        loss.backward()
        assert 0 <= logs["accuracy"] <= 1
        for name, p in model.named_parameters():
            assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("call, message", [
    (lambda m, s, q, k: m(s.float(), q, k), "stories must hold integer word ids"),
    (lambda m, s, q, k: m(s[0], q, k), r"stories must have shape \(B, M, L\)"),
    (lambda m, s, q, k: m(s, q[:2], k), r"queries must have shape \(3, \*\)"),
    (lambda m, s, q, k: m(s, q, k[:, :2]), r"mask must have shape \(3, 5\)"),
    (lambda m, s, q, k: m(s, q, k.long()), "mask must be a bool tensor"),
    (lambda m, s, q, k: m(torch.nn.functional.pad(s, (0, 0, 0, 1)), q), "at most memory_size = 5 slots, got 6"),
    (lambda m, s, q, k: MemN2N(V, tying="rnn"), "tying must be one of"),
    (lambda m, s, q, k: MemN2N(V, hops=0), "hops must be a positive int"),
    (lambda m, s, q, k: add_empty_memories(s, k.flip(1), 0.1), "used slots first"),
    (lambda m, s, q, k: add_empty_memories(s, k, 1.5), "probability"),
    (lambda m, s, q, k: memn2n.train_memn2n(m, (s, q, q[:, 0], k), optimizer="rmsprop"), "optimizer must be"),
    (lambda m, s, q, k: memn2n.train_memn2n(m, (s, q, q[:, 0], k), reduction="max"), "reduction must be"),
    (lambda m, s, q, k: memn2n.memn2n_loss(m, (s, q, q[:, 0], k), reduction="none"), "reduction must be"),
    (lambda m, s, q, k: memn2n.train_memn2n(m, (s, q, q[:, 0], k), epochs=3, linear_start_epochs=4),
     r"linear_start_epochs must be in \[0, epochs = 3\]"),
])
def test_errors_say_what_was_expected(call, message):
    stories, queries, mask = _inputs()
    with pytest.raises(ValueError, match=message):
        call(_model(), stories, queries, mask)


def test_on_device(dev):
    model = _model().to(dev)
    stories, queries, mask = _inputs()
    out = model(stories.to(dev), queries.to(dev), mask.to(dev))
    ref = _model()(stories, queries, mask)
    assert out.logits.device.type == dev.type
    torch.testing.assert_close(out.logits.cpu(), ref.logits)
    noisy, noisy_mask = add_empty_memories(stories.to(dev), mask.to(dev), 0.5, gen(0))
    assert noisy.device.type == dev.type and torch.equal(noisy.cpu(), add_empty_memories(stories, mask, 0.5, gen(0))[0])


def test_three_hops_with_pe_learn_task_1():
    """1,000 training stories (seed 0), 20 epochs of Adam: >= 95 % on 500 test stories, in about 20 s."""
    g = gen(0)
    vocab = babi.babi_vocab(1)
    train = babi.encode_stories(babi.babi_stories(1, 1000, "train", g), vocab, 50)
    test = babi.encode_stories(babi.babi_stories(1, 500, "test", g), vocab, 50)
    torch.manual_seed(0)
    model = MemN2N(len(vocab), 20, hops=3, memory_size=50)
    start = time.perf_counter()
    memn2n.train_memn2n(model, train, epochs=20, lr=0.01, anneal_every=5, generator=g)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        out = model(test.stories, test.queries, test.mask)
    accuracy = seqmem.metrics.accuracy(out.logits, test.answers)
    assert accuracy >= 0.95, f"test accuracy {accuracy:.3f} after {seconds:.0f} s"
    # the last hop looks at the supporting fact more than at all the other sentences together
    assert (out.attention[:, -1] * test.support).sum(-1).mean() > 0.5


# ------------------------------------------------------------------ the paper's training options

def _task1(n=64, seed=0):
    vocab = babi.babi_vocab(1)
    return vocab, babi.encode_stories(babi.babi_stories(1, n, "train", gen(seed)), vocab, 10)


def test_summed_cost_is_batch_size_times_the_mean():
    vocab, data = _task1(8)
    torch.manual_seed(0)
    model = MemN2N(len(vocab), 8, 2, 10).double()
    mean, _ = memn2n.memn2n_loss(model, data)
    total, _ = memn2n.memn2n_loss(model, data, reduction="sum")
    torch.testing.assert_close(total, 8 * mean)


@pytest.mark.parametrize("clip_each", [True, False])
def test_clipping_each_parameter_on_its_own(clip_each):
    """One SGD step at learning rate 1 with a tiny clip: with clip_each every parameter moves by
    exactly the clip (its own gradient is far larger); clipped together, by less (their squares add to it)."""
    vocab, data = _task1(8)
    torch.manual_seed(0)
    model = MemN2N(len(vocab), 8, 2, 10).double()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    memn2n.train_memn2n(model, tuple(data), epochs=1, batch_size=8, lr=1.0, optimizer="sgd", clip_grad_norm=1e-4,
                        clip_each=clip_each, reduction="sum", anneal_every=None)
    moves = torch.stack([(p.detach() - before[n]).norm() for n, p in model.named_parameters()])
    if clip_each:
        torch.testing.assert_close(moves, torch.full_like(moves, 1e-4))
    else:
        torch.testing.assert_close(moves.square().sum().sqrt(), torch.tensor(1e-4, dtype=moves.dtype))
        assert (moves < 0.9e-4).all()


def test_linear_start_ends_when_the_validation_loss_stops_falling():
    """At learning rate 0 the validation loss never falls after the first epoch: LS stops after 2."""
    vocab, data = _task1(32)
    _, val = _task1(16, seed=1)
    torch.manual_seed(0)
    model = MemN2N(len(vocab), 8, 2, 10)
    history = memn2n.train_memn2n(model, data, epochs=5, lr=0.0, linear_start_epochs=5, validation=val)
    assert history.linear_start_epochs == 2 and len(history.evals) == 5 and not model.linear_start


def test_linear_start_with_validation_stops_at_the_first_epoch_without_a_new_low(monkeypatch):
    """Every LS epoch before the last set a new lowest validation loss (in LS mode); the last did not,
    unless LS ran to its maximum. Without validation, LS runs exactly linear_start_epochs."""
    vocab, data = _task1(128)
    _, val = _task1(64, seed=1)
    seen, original = [], memn2n.validation_loss

    def spy(model, batch):
        value = original(model, batch)
        if model.linear_start:
            seen.append(value)
        return value

    monkeypatch.setattr(memn2n, "validation_loss", spy)
    torch.manual_seed(0)
    history = memn2n.train_memn2n(MemN2N(len(vocab), 8, 2, 10), data, epochs=8, lr=0.01, linear_start_epochs=8,
                                  validation=val, generator=gen(0))
    n = history.linear_start_epochs
    # an LS epoch that goes on evaluates twice in LS mode (the decision, then history.evals), the last once
    ls = seen[::2]
    assert len(ls) == n and [v for _, v in history.evals[: n - 1]] == ls[: n - 1]
    assert all(ls[i] < min(ls[:i]) for i in range(1, n - 1))
    assert n == 8 or ls[n - 1] >= min(ls[: n - 1])
    torch.manual_seed(0)
    fixed = memn2n.train_memn2n(MemN2N(len(vocab), 8, 2, 10), data, epochs=4, linear_start_epochs=3)
    assert fixed.linear_start_epochs == 3 and fixed.evals == []


def test_match_refuses_masks_and_queries_of_the_wrong_shape():
    u, m = torch.randn(2, 4), torch.randn(2, 3, 4)
    mask = torch.ones(2, 3, dtype=torch.bool)
    torch.testing.assert_close(memn2n.match(u, m, mask).sum(1), torch.ones(2))
    for bad in (torch.ones(3, dtype=torch.bool), torch.ones(2, 1, dtype=torch.bool), mask.float()):
        with pytest.raises(ValueError, match=r"mask must be a bool tensor of shape \(B, M\) = \(2, 3\)"):
            memn2n.match(u, m, bad)
    with pytest.raises(ValueError, match=r"u must have shape \(B, d\)"):
        memn2n.match(torch.randn(1, 4), m, mask)


def test_recommence_runs_the_whole_schedule_after_linear_start():
    """recommence=True: LS first, then the schedule from its first epoch, as two separate calls would
    train (LS at its own rate, then ``epochs`` epochs at lr halved every ``anneal_every``)."""
    vocab, data = _task1(32)
    kw = dict(optimizer="sgd", batch_size=8, random_noise=0.1, reduction="sum", clip_each=True)
    torch.manual_seed(0)
    one = MemN2N(len(vocab), 8, 2, 10).double()
    two = MemN2N(len(vocab), 8, 2, 10).double()
    two.load_state_dict(one.state_dict())
    history = memn2n.train_memn2n(one, data, epochs=3, lr=0.01, anneal_every=2, linear_start_epochs=2,
                                  linear_start_lr=0.005, recommence=True, generator=gen(5), **kw)
    g = gen(5)
    memn2n.train_memn2n(two, data, epochs=2, lr=0.005, anneal_every=None, linear_start_epochs=2, generator=g, **kw)
    memn2n.train_memn2n(two, data, epochs=3, lr=0.01, anneal_every=2, generator=g, **kw)
    assert history.linear_start_epochs == 2 and len(history.loss) == 5 * 4 and not one.linear_start
    for (name, p), q in zip(one.named_parameters(), two.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    torch.manual_seed(0)
    plain = memn2n.train_memn2n(MemN2N(len(vocab), 8, 2, 10), data, epochs=3, linear_start_epochs=2, batch_size=8)
    assert len(plain.loss) == 3 * 4
