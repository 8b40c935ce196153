"""seqmem.pointer's network, distribution and decoders (chapter 7).

Pinned here: the masked log-softmax (-inf outside the mask, a distribution inside, no NaN in
values or gradients, an error for a row with nothing allowed); one masked greedy step by hand;
the scores are the paper's u_j = v^T tanh(W_1 e_j + W_2 d_i) computed by hand; padding changes no
sample's log-probabilities; the constrained mask forbids exactly the targets already chosen;
greedy decoding agrees with the teacher-forced argmax at every step; beam search of width 1 is
greedy and a wide beam finds the exhaustive optimum on tiny inputs; a short training run learns
to sort.
"""
import itertools

import pytest
import torch

from seqmem import pointer as P
from seqmem.core import IGNORE_INDEX
from seqmem.tasks import geometry as G


def _model(end=True, seed=0, H=16, dtype=torch.float64, D=2):
    torch.manual_seed(seed)
    return P.PointerNetwork(input_size=D, hidden_size=H, attention_size=12, end=end).to(dtype).eval()


def _hulls(B=5, n=(3, 7), seed=0, dtype=torch.float64):
    d = G.convex_hulls(B, n, torch.Generator().manual_seed(seed))
    return d._replace(points=d.points.to(dtype))


def test_pointer_log_probs_masked():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(3, 6, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1], [1] * 6], dtype=torch.bool)
    logp = P.pointer_log_probs(u, mask)
    assert torch.all(logp[~mask] == float("-inf"))
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(logp[0, [0, 1, 3]], u[0, [0, 1, 3]].log_softmax(0))
    assert float(logp[1, 5].detach()) == 0.0  # the only allowed position is certain
    logp[mask].sum().backward()
    assert torch.isfinite(u.grad).all() and torch.all(u.grad[~mask] == 0)
    with pytest.raises(ValueError, match="allows no position"):
        P.pointer_log_probs(u, torch.zeros(3, 6, dtype=torch.bool))


def test_greedy_step_by_hand():
    logp = torch.tensor([[-0.1, -2.0, -3.0], [-0.1, -2.0, -3.0]])
    mask = torch.tensor([[True, True, True], [False, True, True]])
    choice, new = P.greedy_step(logp, mask)
    assert choice.tolist() == [0, 1]
    assert new.tolist() == [[False, True, True], [False, False, True]]
    assert mask.tolist() == [[True, True, True], [False, True, True]]  # not changed in place
    with pytest.raises(ValueError):
        P.greedy_step(logp, torch.zeros(2, 3, dtype=torch.bool))


def test_scores_are_the_papers_equation():
    model, d = _model(), _hulls(B=2, n=5)
    memory = model.encode(d.points, d.lengths)
    e, (h, c) = model.encoder(model.embed(d.points))  # no padding here: every n is 5
    e = torch.cat([e, model.end_key.expand(2, 1, -1)], dim=1)  # (B, N + 1, H)
    d_1, _ = model.decoder(model.first_input.expand(2, 1, -1), (h, c))  # (B, 1, H)
    W_1, W_2, v = model.score.W_k.weight, model.score.W_q.weight, model.score.w_2.weight[0]
    u = torch.stack([torch.stack([v @ torch.tanh(W_1 @ e[b, j] + W_2 @ d_1[b, 0]) for j in range(6)])
                     for b in range(2)])  # (B, N + 1)
    _, scores = model.step(memory, memory.state, torch.full((2,), 5))
    torch.testing.assert_close(scores, u)
    torch.testing.assert_close(P.pointer_scores(d_1[:, 0], e, W_1, W_2, v), u)  # the functional form
    mask = torch.tensor([[1, 1, 0, 1, 1, 1], [1, 0, 0, 0, 0, 1]], dtype=torch.bool)
    torch.testing.assert_close(P.pointer_distribution(d_1[:, 0], e, W_1, W_2, v, mask), P.pointer_log_probs(u, mask))
    logp = model(d.points, d.lengths, d.targets)
    torch.testing.assert_close(logp[:, 0], u.log_softmax(-1))


def test_padding_changes_nothing():
    model, d = _model(), _hulls(B=6, n=(3, 8), seed=1)
    logp = model(d.points, d.lengths, d.targets, constrained=True)  # (B, T, N + 1)
    N = d.points.shape[1]
    assert logp.shape == (6, d.targets.shape[1], N + 1)
    for b in range(6):
        n, t = int(d.lengths[b]), int(d.target_lengths[b])
        target = d.targets[b:b + 1, :t].clone()
        target[0, -1] = n  # the end position alone is n
        alone = model(d.points[b:b + 1, :n], None, target, constrained=True)  # (1, t, n + 1)
        torch.testing.assert_close(logp[b, :t, :n], alone[0, :, :n])
        torch.testing.assert_close(logp[b, :t, N], alone[0, :, n])  # the end position
        assert torch.all(logp[b, :t, n:N] == float("-inf"))  # padding is never pointed at


def test_constrained_mask_forbids_the_chosen():
    model, d = _model(), _hulls(B=4, n=6, seed=2)
    logp = model(d.points, d.lengths, d.targets, constrained=True)
    free = model(d.points, d.lengths, d.targets)
    assert torch.isfinite(free[d.targets != IGNORE_INDEX].sum(-1)).all()
    for b in range(4):
        t = int(d.target_lengths[b])
        for i in range(t):
            before = set(d.targets[b, :i].tolist())
            forbidden = [j for j in range(6) if j in before]
            assert torch.all(logp[b, i, forbidden] == float("-inf"))
            assert torch.isfinite(logp[b, i, [j for j in range(7) if j not in before]]).all()
    loss = P.pointer_loss(logp, d.targets)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("constrained", [False, True])
def test_greedy_is_the_teacher_forced_argmax(constrained):
    model, d = _model(end=True, seed=3), _hulls(B=6, n=(3, 7), seed=3)
    with torch.no_grad():  # push the end position down, so that decodings are long
        model.end_key.mul_(0.0)
    decoded = P.greedy(model, d.points, d.lengths, constrained=constrained)
    N = d.points.shape[1]
    for b, seq in enumerate(decoded):
        n = int(d.lengths[b])
        assert all(0 <= j < n for j in seq)
        if constrained:
            assert len(set(seq)) == len(seq)
        target = torch.tensor([seq + [N]])[:, :N + 1]  # greedy stops at N + 1 steps
        logp = model(d.points[b:b + 1], d.lengths[b:b + 1], target, constrained=constrained)
        assert logp[0].argmax(-1).tolist() == target[0].tolist()


def test_greedy_without_end_gives_permutations(dev):
    model = _model(end=False, seed=4, dtype=torch.float32).to(dev)
    d = G.tsp_problems(5, (3, 6), torch.Generator().manual_seed(4), device=dev)
    tours = P.greedy(model, d.points, d.lengths, constrained=True)
    assert [sorted(t) for t in tours] == [list(range(int(n))) for n in d.lengths]
    free = P.greedy(model, d.points, d.lengths)
    assert [len(t) for t in free] == d.lengths.tolist()


def test_beam_of_one_is_greedy(dev):
    model, d = _model(seed=5, dtype=torch.float32).to(dev), _hulls(B=6, n=(3, 8), seed=5, dtype=torch.float32)
    points, lengths = d.points.to(dev), d.lengths.to(dev)
    with torch.no_grad():
        model.end_key.mul_(0.5)
    for constrained in (False, True):
        assert P.beam_search(model, points, lengths, beam_size=1, constrained=constrained) == \
            P.greedy(model, points, lengths, constrained=constrained)


def _exhaustive(model, points, n, end):
    """The most probable complete sequence of distinct positions, by scoring all of them."""
    if end:
        seqs = [list(s) for m in range(n + 1) for s in itertools.permutations(range(n), m)]
    else:
        seqs = [list(s) for s in itertools.permutations(range(n))]
    targets = torch.tensor([s + [n] * (n + 1 - len(s)) if end else s for s in seqs])  # (M, T)
    if end:
        lengths = torch.tensor([len(s) + 1 for s in seqs])
        targets[torch.arange(targets.shape[1]) >= lengths.unsqueeze(1)] = IGNORE_INDEX
    logp = model(points.expand(len(seqs), -1, -1), None, targets, constrained=True)
    picked = logp.gather(2, targets.clamp(min=0).unsqueeze(-1))[..., 0]  # (M, T)
    total = torch.where(targets == IGNORE_INDEX, 0.0, picked).sum(1).to(points)
    return seqs[int(total.argmax())], total


@pytest.mark.parametrize("end,n,K", [(True, 3, 6), (False, 5, 120)])
def test_wide_beam_is_exhaustive(end, n, K):
    """K at least the number of live prefixes at any step (3!/0! = 6, 5! = 120): the search is exact."""
    found = 0
    for seed in range(12):
        model = _model(end=end, seed=seed)
        if end:
            with torch.no_grad():
                model.end_key.mul_(0.3)  # stopping less likely: longer sequences compete
        points = G.points(1, n, torch.Generator().manual_seed(seed)).double()
        best, _ = _exhaustive(model, points, n, end)
        assert P.beam_search(model, points, None, beam_size=K, constrained=True) == [best]
        found += P.greedy(model, points, None, constrained=True) != [best]
    assert found >= 1  # at least one case where greedy is not optimal, so the test has teeth


def test_errors():
    model = _model()
    with pytest.raises(ValueError, match=r"\(B, N, 2\)"):
        model.encode(torch.zeros(2, 5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="lengths"):
        model.encode(torch.zeros(2, 5, 2, dtype=torch.float64), torch.tensor([6, 2]))
    with pytest.raises(ValueError, match="targets"):
        model(torch.zeros(2, 5, 2, dtype=torch.float64), None, torch.zeros(3, 4, dtype=torch.long))


def test_learns_to_sort():
    """Seed 0: 300 Adam steps on sorting 5 numbers reach >= 90% exact sequences (greedy, constrained)."""
    torch.manual_seed(0)
    model = P.PointerNetwork(input_size=1, hidden_size=32, end=False)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        d = G.sorting_problems(64, 5, g)
        loss = P.pointer_loss(model(d.points, d.lengths, d.targets, constrained=True), d.targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = G.sorting_problems(200, 5, torch.Generator().manual_seed(1))
    decoded = P.greedy(model.eval(), test.points, test.lengths, constrained=True)
    exact = sum(s == t for s, t in zip(decoded, test.targets.tolist())) / 200
    assert exact >= 0.9
