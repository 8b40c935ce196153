"""seqmem.dnc: the DNC's memory mechanisms and its cell (chapter 8).

Pinned here: small hand-computed cases for the allocation, the retention and usage with free
gates, the links and precedence after two writes (a forward read from the first write's slot goes
to the second), the write and read weightings and the interface's nonlinearities; the invariants
(every weighting in [0, 1], summing to one or at most one where the paper says so, a link matrix
with zero diagonal and rows and columns summing to at most one, usage in [0, 1]) under random,
saturating interface vectors over a long run; gradcheck in float64 for each mechanism and for a
whole step; the batch equals a loop over examples; an empty and a one-slot memory give finite
values and gradients; ``unroll``; shape errors; a freed slot is allocated again; a short training
run on a tiny copy task; a 500-step unroll stays finite.
"""
import pytest
import torch
from torch.nn import functional as F

import seqmem
from seqmem import dnc

from helpers import gen, randn

f64 = torch.float64


def t64(values, dev="cpu"):
    return torch.tensor(values, dtype=f64, device=dev)


def distribution(g, *shape, dev="cpu"):
    """Random weightings summing to one over the last dimension, float64 leaves."""
    return torch.softmax(torch.randn(*shape, generator=g, dtype=f64) * 2, -1).to(dev).requires_grad_()


def sub_distribution(g, *shape, dev="cpu"):
    """Random weightings summing to at most one (a softmax times a factor in [0, 1])."""
    w = torch.softmax(torch.randn(*shape, generator=g, dtype=f64) * 2, -1)
    return (w * torch.rand(*shape[:-1], 1, generator=g, dtype=f64)).to(dev).requires_grad_()


def in_unit(t, tol=1e-12):
    return bool(((t >= -tol) & (t <= 1 + tol)).all())


# ------------------------------------------------------------------ hand-computed cases

def test_allocation_by_hand(dev):
    # usage [0.5, 0.1, 1.0]: ascending order phi = (1, 0, 2); slot 1 gets 1 - 0.1 = 0.9, slot 0
    # gets (1 - 0.5) * 0.1 = 0.05, slot 2 (fully used) gets (1 - 1) * 0.1 * 0.5 = 0
    a = dnc.allocation_weighting(t64([[0.5, 0.1, 1.0]], dev), eps=0.0)
    torch.testing.assert_close(a, t64([[0.05, 0.9, 0.0]], dev))
    # the epsilon shift moves it by about epsilon only
    a_eps = dnc.allocation_weighting(t64([[0.5, 0.1, 1.0]], dev))
    torch.testing.assert_close(a_eps, a, atol=1e-5, rtol=0)
    # an empty memory: ties in slot order, everything to slot 0; a full one: nothing to allocate
    torch.testing.assert_close(dnc.allocation_weighting(t64([[0.0, 0.0, 0.0]], dev), eps=0.0),
                               t64([[1.0, 0.0, 0.0]], dev))
    torch.testing.assert_close(dnc.allocation_weighting(t64([[1.0, 1.0]], dev)), t64([[0.0, 0.0]], dev))
    # the shift itself: the products are of eps + (1 - eps) u, never of exact zeros
    e = 1e-3
    torch.testing.assert_close(dnc.allocation_weighting(t64([[0.0, 0.0, 0.0]], dev), eps=e),
                               (1 - e) * t64([[1.0, e, e * e]], dev))


def test_retention_and_usage_with_free_gates_by_hand(dev):
    free = t64([[1.0, 0.5]], dev)  # head 0 frees fully, head 1 half
    w_r = t64([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dev)  # head 0 read slot 0, head 1 slot 1
    psi = dnc.retention_vector(free, w_r)
    # psi = [(1 - 1 * 1)(1 - 0.5 * 0), (1 - 0)(1 - 0.5 * 1), 1 * 1] = [0, 0.5, 1]
    torch.testing.assert_close(psi, t64([[0.0, 0.5, 1.0]], dev))
    u = dnc.usage_vector(t64([[0.5, 0.5, 0.2]], dev), t64([[0.0, 0.5, 0.5]], dev), psi)
    # u + w - u w = [0.5, 0.75, 0.6], times psi = [0, 0.375, 0.6]
    torch.testing.assert_close(u, t64([[0.0, 0.375, 0.6]], dev))


def test_links_and_precedence_after_two_writes(dev):
    N = 3
    L, p = torch.zeros(1, N, N, dtype=f64, device=dev), torch.zeros(1, N, dtype=f64, device=dev)
    first, second = t64([[1.0, 0.0, 0.0]], dev), t64([[0.0, 0.0, 1.0]], dev)  # slot 0, then slot 2
    L = dnc.temporal_link_matrix(L, first, p)
    p = dnc.precedence_weighting(p, first)
    torch.testing.assert_close(L, torch.zeros_like(L))  # nothing was written before the first write
    torch.testing.assert_close(p, first)
    L = dnc.temporal_link_matrix(L, second, p)
    p = dnc.precedence_weighting(p, second)
    expected = torch.zeros(1, N, N, dtype=f64, device=dev)
    expected[0, 2, 0] = 1.0  # slot 2 was written right after slot 0
    torch.testing.assert_close(L, expected)
    torch.testing.assert_close(p, second)  # a full write replaces the precedence
    f, b = dnc.directional_weightings(L, first.unsqueeze(1))  # a head that read slot 0
    torch.testing.assert_close(f, second.unsqueeze(1))  # forward: to the second write's slot
    torch.testing.assert_close(b, torch.zeros_like(b))  # nothing was written before slot 0
    _, b = dnc.directional_weightings(L, second.unsqueeze(1))
    torch.testing.assert_close(b, first.unsqueeze(1))  # backward from slot 2: slot 0


def test_partial_write_links_and_precedence_by_hand():
    L_prev = torch.zeros(1, 3, 3, dtype=f64)
    p_prev, w = t64([[0.2, 0.3, 0.0]]), t64([[0.0, 0.5, 0.25]])
    L = dnc.temporal_link_matrix(L_prev, w, p_prev)
    # L[i, j] = w[i] p[j] off the diagonal: row 1 = 0.5 * [0.2, (0.3), 0], row 2 = 0.25 * [0.2, 0.3, (0)]
    torch.testing.assert_close(L[0], t64([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.05, 0.075, 0.0]]))
    # p = (1 - 0.75) p_prev + w
    torch.testing.assert_close(dnc.precedence_weighting(p_prev, w), t64([[0.05, 0.575, 0.25]]))
    # a second step fades old links: L[1, 0] = (1 - w[1] - w[0]) 0.1 + w[1] p[0]
    w2, p = t64([[0.0, 0.5, 0.0]]), dnc.precedence_weighting(p_prev, w)
    torch.testing.assert_close(dnc.temporal_link_matrix(L, w2, p)[0, 1, 0], t64(0.5 * 0.1 + 0.5 * 0.05))


def test_a_step_links_its_writes_and_reads_what_it_wrote(dev):
    # memory_step in the paper's order: the links from the precedence of the step before, the
    # reads from the memory after this step's write
    B, N, W, R = 1, 3, 2, 1
    cell = dnc.DNCCell(2, 4, 2, memory_slots=N, word_size=W, read_heads=R).to(dev, f64)
    state = cell.initial_state(B)
    slots = []
    for t in range(2):  # two allocating writes
        state = dnc.memory_step(state, allocating_interface(B, N, R, W, dev=dev))
        slots.append(state.write_weights.argmax().item())
    first, second = slots
    assert state.link[0, second, first] > 1 - 1e-5  # the second write followed the first
    one_hot = torch.nn.functional.one_hot(torch.tensor(first), N).to(dev, f64)
    xi = allocating_interface(B, N, R, W, write=0.0, dev=dev)
    forward = torch.zeros(B, R, 3, dtype=f64, device=dev)
    forward[..., 2] = 1.0  # read mode: forward only
    read_first = state._replace(read_weights=one_hot.reshape(1, 1, N))  # a head that read slot `first`
    after = dnc.memory_step(read_first, xi._replace(read_modes=forward))
    assert after.read_weights[0, 0, second] > 1 - 1e-5  # forward from the first write: the second
    # a write and a content read of what it writes, in one step: the read sees the new memory
    v = t64([[3.0, -1.0]], dev)
    xi = allocating_interface(B, N, R, W, dev=dev)._replace(write_vector=v, read_keys=v.unsqueeze(1),
                                                            read_strengths=t64([[100.0]], dev))
    after = dnc.memory_step(state, xi)
    torch.testing.assert_close(after.read_vectors, v.unsqueeze(1), atol=1e-4, rtol=0)


def test_forward_and_backward_reads_walk_the_writes_in_time_order(dev):
    # five words written by allocation into N = 7 slots; a head put on the first word by content,
    # then switched to forward mode, reads them back in the order they were written; from the
    # last word, backward mode reads them in reverse: the order lives in the link matrix alone
    N, W, T = 7, 5, 5
    words = torch.eye(W, dtype=f64, device=dev)[torch.tensor([3, 0, 4, 1, 2])] * 2 - 0.5  # distinct rows
    cell = dnc.DNCCell(2, 4, 2, memory_slots=N, word_size=W, read_heads=1).to(dev, f64)
    state = cell.initial_state(1)
    for t in range(T):
        state = dnc.memory_step(state, dnc.hand_interface(words[0] * 0, words[t], strength=0.0))
    no_write = dict(write=0.0)

    def walk(start, mode):
        modes = torch.zeros(1, 1, 3, dtype=f64, device=dev)
        modes[..., mode] = 1.0
        s = dnc.memory_step(state, dnc.hand_interface(words[start], words[0], strength=100.0, **no_write))
        seen = [s.read_vectors[0, 0]]
        for _ in range(T - 1):
            s = dnc.memory_step(s, dnc.hand_interface(words[0], words[0], **no_write)._replace(read_modes=modes))
            seen.append(s.read_vectors[0, 0])
        return torch.stack(seen)

    close = dict(atol=1e-3, rtol=0)
    torch.testing.assert_close(walk(0, mode=2), words, **close)  # forward from the first write
    torch.testing.assert_close(walk(T - 1, mode=0), words.flip(0), **close)  # backward from the last
    assert torch.diagonal(state.link[0]).abs().max() == 0


def test_write_and_read_weightings_by_hand(dev):
    a, c = t64([[0.6, 0.4, 0.0]], dev), t64([[0.1, 0.2, 0.7]], dev)
    w = dnc.write_weighting(a, c, t64([0.5], dev), t64([0.8], dev))
    torch.testing.assert_close(w, t64([[0.28, 0.24, 0.28]], dev))  # 0.8 (0.5 a + 0.5 c)
    torch.testing.assert_close(dnc.write_weighting(a, c, t64([1.0], dev), t64([1.0], dev)), a)
    torch.testing.assert_close(dnc.write_weighting(a, c, t64([0.0], dev), t64([1.0], dev)), c)
    torch.testing.assert_close(dnc.write_weighting(a, c, t64([0.3], dev), t64([0.0], dev)),
                               torch.zeros_like(a))  # write gate shut: no write at all
    eye = torch.eye(3, dtype=f64, device=dev)
    b, c, f = eye[0].reshape(1, 1, 3), eye[1].reshape(1, 1, 3), eye[2].reshape(1, 1, 3)
    pi = t64([[[0.2, 0.5, 0.3]]], dev)  # modes in the paper's order: backward, content, forward
    torch.testing.assert_close(dnc.read_weighting(b, c, f, pi), pi)


def test_interface_is_parsed_as_in_the_paper(dev):
    R, W = 2, 3
    assert dnc.interface_size(R, W) == R * W + 3 * W + 5 * R + 3 == 28
    xi = dnc.parse_interface(torch.zeros(4, 28, dtype=f64, device=dev), R, W)
    shapes = dict(read_keys=(4, R, W), read_strengths=(4, R), write_key=(4, W), write_strength=(4,),
                  erase=(4, W), write_vector=(4, W), free_gates=(4, R), allocation_gate=(4,),
                  write_gate=(4,), read_modes=(4, R, 3))
    for name, shape in shapes.items():
        assert tuple(getattr(xi, name).shape) == shape, name
    one_plus_log2 = 1 + torch.log(t64(2.0, dev))
    torch.testing.assert_close(xi.read_strengths, one_plus_log2.expand(4, R))  # oneplus(0)
    torch.testing.assert_close(xi.write_gate, torch.full((4,), 0.5, dtype=f64, device=dev))  # sigmoid(0)
    torch.testing.assert_close(xi.read_modes, torch.full((4, R, 3), 1 / 3, dtype=f64, device=dev))
    # consecutive slices in the paper's order: k^r 0:6, beta^r 6:8, k^w 8:11, beta^w 11, e 12:15,
    # v 15:18, f 18:20, g^a 20, g^w 21, pi 22:28
    g = gen(10)
    raw = torch.randn(4, 28, generator=g, dtype=f64).to(dev) * 5
    xi = dnc.parse_interface(raw, R, W)
    torch.testing.assert_close(xi.read_keys, raw[:, :6].reshape(4, R, W))
    torch.testing.assert_close(xi.write_key, raw[:, 8:11])
    torch.testing.assert_close(xi.write_strength, 1 + F.softplus(raw[:, 11]))
    torch.testing.assert_close(xi.erase, torch.sigmoid(raw[:, 12:15]))
    torch.testing.assert_close(xi.write_vector, raw[:, 15:18])
    torch.testing.assert_close(xi.free_gates, torch.sigmoid(raw[:, 18:20]))
    torch.testing.assert_close(xi.allocation_gate, torch.sigmoid(raw[:, 20]))
    torch.testing.assert_close(xi.write_gate, torch.sigmoid(raw[:, 21]))
    torch.testing.assert_close(xi.read_modes, torch.softmax(raw[:, 22:].reshape(4, R, 3), -1))
    assert (xi.read_strengths >= 1).all() and (xi.write_strength >= 1).all()
    assert in_unit(xi.free_gates) and in_unit(xi.allocation_gate) and in_unit(xi.erase)


# ------------------------------------------------------------------ invariants

def test_allocation_sums_to_one_minus_the_product_of_usages(dev):
    g = gen(11)
    u = torch.rand(50, 7, generator=g, dtype=f64).to(dev)
    u[:10] = torch.rand(10, 7, generator=g, dtype=f64).round().to(dev)  # exact 0s and 1s, ties
    a = dnc.allocation_weighting(u, eps=0.0)
    assert in_unit(a)
    torch.testing.assert_close(a.sum(-1), 1 - u.prod(-1))
    assert (a.sum(-1) <= 1 + 1e-12).all()
    least = u.argmin(-1)  # the least used slot gets the most (1 - u_min >= everything after it)
    assert torch.equal(a.gather(-1, least[:, None]).squeeze(-1), a.max(-1).values)


def random_interface(g, B, R, W, dev, scale=4.0):
    """A DNCInterface from a random vector of large entries: gates and modes near 0 or 1."""
    raw = torch.randn(B, dnc.interface_size(R, W), generator=g, dtype=f64) * scale
    return dnc.parse_interface(raw.to(dev), R, W)


def check_invariants(state, tol=1e-9):
    """Every invariant of the paper for one state, up to ``tol``; AssertionError on the first broken one."""
    assert in_unit(state.usage, tol), "usage in [0, 1]"
    a = dnc.allocation_weighting(state.usage)
    assert in_unit(a, tol) and (a.sum(-1) <= 1 + tol).all(), "allocation in [0, 1], sum <= 1"
    for name in ("write_weights", "precedence"):
        w = getattr(state, name)
        assert in_unit(w, tol) and (w.sum(-1) <= 1 + tol).all(), f"{name} in [0, 1], sum <= 1"
    assert in_unit(state.read_weights, tol) and (state.read_weights.sum(-1) <= 1 + tol).all(), "read weights"
    L = state.link
    assert in_unit(L, tol), "links in [0, 1]"
    assert (L.diagonal(dim1=1, dim2=2) == 0).all(), "zero diagonal"
    assert (L.sum(-1) <= 1 + tol).all() and (L.sum(-2) <= 1 + tol).all(), "rows and columns sum to <= 1"


def test_invariants_hold_over_a_long_run_of_random_saturating_interfaces(dev):
    g = gen(12)
    B, N, W, R = 4, 6, 3, 2
    cell = dnc.DNCCell(2, 4, 2, memory_slots=N, word_size=W, read_heads=R).to(dev, f64)
    state = cell.initial_state(B)
    for t in range(300):
        xi = random_interface(g, B, R, W, dev)
        state = dnc.memory_step(state, xi)
        # content weightings (used inside) sum to one; the read modes too
        torch.testing.assert_close(xi.read_modes.sum(-1), torch.ones(B, R, dtype=f64, device=dev))
        check_invariants(state)
    assert state.usage.max() > 0.5 and state.link.max() > 0.1  # the run did use and link slots


def test_invariants_hold_when_the_cell_runs(dev):
    torch.manual_seed(0)
    cell = dnc.DNCCell(3, 8, 2, memory_slots=5, word_size=4, read_heads=3).to(dev, f64)
    g = gen(13)
    state = cell.initial_state(3)
    with torch.no_grad():
        for t in range(60):
            state, y = cell(state, torch.randn(3, 3, generator=g, dtype=f64).to(dev) * 3)
            check_invariants(state)
            assert torch.isfinite(y).all()


# ------------------------------------------------------------------ gradients

def test_gradcheck_each_mechanism():
    g = gen(14)
    B, R, N = 2, 2, 4
    free, w_r = torch.rand(B, R, generator=g, dtype=f64).requires_grad_(), distribution(g, B, R, N)
    assert torch.autograd.gradcheck(dnc.retention_vector, (free, w_r))
    u_prev, w_w, psi = (torch.rand(B, N, generator=g, dtype=f64).requires_grad_() for _ in range(3))
    assert torch.autograd.gradcheck(dnc.usage_vector, (u_prev, w_w, psi))
    # allocation away from ties: distinct usages, at least 0.05 apart
    u = (torch.stack([torch.randperm(N, generator=g) for _ in range(B)]).to(f64) * 0.2 + 0.1
         + 0.02 * torch.rand(B, N, generator=g, dtype=f64)).requires_grad_()
    assert torch.autograd.gradcheck(dnc.allocation_weighting, (u,))
    a, c = sub_distribution(g, B, N), distribution(g, B, N)
    g_a, g_w = (torch.rand(B, generator=g, dtype=f64).requires_grad_() for _ in range(2))
    assert torch.autograd.gradcheck(dnc.write_weighting, (a, c, g_a, g_w))
    L = (torch.rand(B, N, N, generator=g, dtype=f64) / N).requires_grad_()
    w_w, p = sub_distribution(g, B, N), sub_distribution(g, B, N)
    assert torch.autograd.gradcheck(dnc.temporal_link_matrix, (L, w_w, p))
    assert torch.autograd.gradcheck(dnc.precedence_weighting, (p, w_w))
    assert torch.autograd.gradcheck(dnc.directional_weightings, (L, w_r))
    b, f, pi = sub_distribution(g, B, R, N), sub_distribution(g, B, R, N), distribution(g, B, R, 3)
    assert torch.autograd.gradcheck(dnc.read_weighting, (b, distribution(g, B, R, N), f, pi))
    raw = randn(g, B, dnc.interface_size(R, 3))
    assert torch.autograd.gradcheck(lambda x: tuple(dnc.parse_interface(x, R, 3)), (raw,))


def random_state(cell, g, B, dev="cpu"):
    """A DNCState of the cell's sizes with random, valid entries (distinct usages)."""
    N, W, R, H = cell.memory_slots, cell.word_size, cell.read_heads, cell.hidden_size
    return dnc.DNCState(
        controller=seqmem.LSTMState(torch.randn(B, H, generator=g, dtype=f64).to(dev),
                                    torch.randn(B, H, generator=g, dtype=f64).to(dev)),
        memory=torch.randn(B, N, W, generator=g, dtype=f64).to(dev),
        usage=(torch.stack([torch.randperm(N, generator=g) for _ in range(B)]).to(f64) / N + 0.02).to(dev),
        link=(torch.rand(B, N, N, generator=g, dtype=f64) / N * (1 - torch.eye(N, dtype=f64))).to(dev),
        precedence=sub_distribution(g, B, N, dev=dev).detach(),
        read_weights=sub_distribution(g, B, R, N, dev=dev).detach(),
        write_weights=sub_distribution(g, B, N, dev=dev).detach(),
        read_vectors=torch.randn(B, R, W, generator=g, dtype=f64).to(dev))


def test_gradcheck_a_whole_step():
    torch.manual_seed(1)
    cell = dnc.DNCCell(3, 5, 2, memory_slots=4, word_size=3, read_heads=2).to(f64)
    g = gen(15)
    state = random_state(cell, g, 2)
    x, M = randn(g, 2, 3), state.memory.clone().requires_grad_()
    L = state.link.clone().requires_grad_()

    def step(x, M, L):
        new, y = cell(state._replace(memory=M, link=L), x)
        return y, new.memory, new.read_weights, new.link

    assert torch.autograd.gradcheck(step, (x, M, L))


# ------------------------------------------------------------------ the cell

def test_the_batch_is_a_loop_over_single_examples(dev):
    torch.manual_seed(2)
    cell = dnc.DNCCell(3, 6, 2, memory_slots=5, word_size=4, read_heads=2).to(dev, f64)
    g = gen(16)
    xs = torch.randn(4, 7, 3, generator=g, dtype=f64).to(dev)
    state = cell.initial_state(4)
    singles = [cell.initial_state(1) for _ in range(4)]
    for t in range(7):
        state, y = cell(state, xs[:, t])
        for b in range(4):
            singles[b], y_b = cell(singles[b], xs[b:b + 1, t])
            torch.testing.assert_close(y_b, y[b:b + 1])
    for b in range(4):
        one = seqmem.map_state(lambda s: s[b:b + 1], state)
        for name in dnc.DNCState._fields[1:]:
            torch.testing.assert_close(getattr(singles[b], name), getattr(one, name), msg=name)


def test_initial_state_is_empty_on_the_parameters_device_and_dtype(dev):
    cell = dnc.DNCCell(3, 6, 2, memory_slots=5, word_size=4, read_heads=2).to(dev, f64)
    s = cell.initial_state(3)
    assert isinstance(s, dnc.DNCState)
    shapes = dict(memory=(3, 5, 4), usage=(3, 5), link=(3, 5, 5), precedence=(3, 5), read_weights=(3, 2, 5),
                  write_weights=(3, 5), read_vectors=(3, 2, 4))
    for name, shape in shapes.items():
        part = getattr(s, name)
        assert tuple(part.shape) == shape and part.dtype == f64 and part.device.type == dev.type, name
        assert not part.any(), name
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        cell.initial_state(0)
    assert tuple(s.controller.h.shape) == (3, 6) and s.controller.h.device.type == dev.type
    assert cell.output_size == 2
    # nothing of the memory lives on the module: only parameters, no buffers
    assert not list(cell.buffers())
    names = {n for n, _ in cell.named_parameters()}
    assert names == {"weight_xi", "bias_xi", "weight_y", "bias_y", "controller.weight_ih",
                     "controller.weight_hh", "controller.bias_ih", "controller.bias_hh"}
    assert cell.weight_xi.shape == (dnc.interface_size(2, 4), 6) and cell.weight_y.shape == (2, 6 + 2 * 4)


def test_output_is_W_y_of_h_and_the_new_reads(dev):
    torch.manual_seed(3)
    cell = dnc.DNCCell(3, 6, 2, memory_slots=5, word_size=4, read_heads=2).to(dev, f64)
    g = gen(17)
    state = random_state(cell, g, 2, dev)
    x = torch.randn(2, 3, generator=g, dtype=f64).to(dev)
    new, y = cell(state, x)
    chi = torch.cat([x, state.read_vectors.reshape(2, 8)], -1)  # the controller reads [x; r_{t-1}]
    ctrl, h = cell.controller(state.controller, chi)
    torch.testing.assert_close(new.controller.h, h)
    torch.testing.assert_close(new.read_vectors, seqmem.addressing.read(new.memory, new.read_weights))
    by_hand = torch.cat([h, new.read_vectors.reshape(2, 8)], -1) @ cell.weight_y.T + cell.bias_y
    torch.testing.assert_close(y, by_hand)


def test_unroll_runs_the_cell(dev):
    torch.manual_seed(4)
    cell = dnc.DNCCell(3, 6, 2, memory_slots=5, word_size=4, read_heads=2).to(dev, f64)
    xs = torch.randn(3, 9, 3, dtype=f64, device=dev)
    ys, final = seqmem.unroll(cell, xs)
    assert ys.shape == (3, 9, 2) and isinstance(final, dnc.DNCState)
    state = cell.initial_state(3)
    for t in range(9):
        state, y = cell(state, xs[:, t])
        torch.testing.assert_close(ys[:, t], y)
    torch.testing.assert_close(final.link, state.link)
    # a state carries over (truncated BPTT): two halves give the whole
    first, s = seqmem.unroll(cell, xs[:, :4])
    second, _ = seqmem.unroll(cell, xs[:, 4:], seqmem.map_state(torch.Tensor.detach, s))
    torch.testing.assert_close(torch.cat([first, second], 1), ys)


@pytest.mark.parametrize("slots", [1, 4])
def test_empty_and_one_slot_memories_are_finite(dev, slots):
    torch.manual_seed(5)
    cell = dnc.DNCCell(3, 6, 2, memory_slots=slots, word_size=4, read_heads=2).to(dev, f64)
    xs = torch.randn(2, 6, 3, dtype=f64, device=dev, requires_grad=True)
    ys, state = seqmem.unroll(cell, xs)  # from the all-zero memory
    (ys.pow(2).sum() + state.memory.sum()).backward()
    for part in (ys, *state[1:], *state.controller):
        assert torch.isfinite(part).all()
    for p in [xs, *cell.parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    if slots == 1:
        assert not state.link.any()  # one slot has no other slot to link to
    # the mechanisms themselves on an empty memory and usage: finite gradients
    u = torch.zeros(2, slots, dtype=f64, device=dev, requires_grad=True)
    dnc.allocation_weighting(u).sum().backward()
    assert torch.isfinite(u.grad).all()


def test_shape_errors_say_what_was_expected():
    cell = dnc.DNCCell(3, 6, 2, memory_slots=5, word_size=4, read_heads=2)
    s = cell.initial_state(2)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\), got \(2, 4\)"):
        cell(s, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"state.memory must have shape \(2, 5, 4\), got \(2, 5, 3\)"):
        cell(s._replace(memory=torch.zeros(2, 5, 3)), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"state.memory must have shape \(3, 5, 4\), got \(2, 5, 4\)"):
        cell(s, torch.zeros(3, 3))  # a batch of 3 with a state of 2
    with pytest.raises(ValueError, match=r"state.link must have shape \(2, 5, 5\), got \(2, 5, 4\)"):
        cell(s._replace(link=torch.zeros(2, 5, 4)), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"state must be DNCState"):
        cell(tuple(s), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"dtype"):
        cell(s, torch.zeros(2, 3, dtype=f64))
    with pytest.raises(ValueError, match=r"u must have shape \(B, N\) \(2 dims\), got \(3,\)"):
        dnc.allocation_weighting(torch.zeros(3))
    with pytest.raises(ValueError, match=r"free_gates must have shape \(2, 3\), got \(2, 2\)"):
        dnc.retention_vector(torch.zeros(2, 2), torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match=r"w_w must have shape \(2, 5\), got \(2, 4\)"):
        dnc.temporal_link_matrix(torch.zeros(2, 5, 5), torch.zeros(2, 4), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"L_prev must have shape \(B, N, N\), got \(2, 5, 4\)"):
        dnc.temporal_link_matrix(torch.zeros(2, 5, 4), torch.zeros(2, 5), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"pi must have shape \(1, 2, 3\), got \(1, 2, 2\)"):
        dnc.read_weighting(*(torch.zeros(1, 2, 4) for _ in range(3)), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"xi must have shape \(B, 28\)"):
        dnc.parse_interface(torch.zeros(2, 27), 2, 3)
    with pytest.raises(ValueError, match=r"memory_slots"):
        dnc.DNCCell(3, 6, 2, memory_slots=0)
    with pytest.raises(ValueError, match=r"use DNCCell.state_shapes"):  # no (B, size) parts to bridge
        cell.state_sizes()


# ------------------------------------------------------------------ freeing and reusing a slot

def allocating_interface(B, N, R, W, *, free=0.0, allocate=1.0, write=1.0, dev="cpu"):
    """An interface that writes by allocation (g^a, g^w given) and reads by content from slot keys
    that match nothing in particular; free gates ``free``."""
    z = lambda *shape: torch.zeros(*shape, dtype=f64, device=dev)  # noqa: E731
    modes = z(B, R, 3)
    modes[..., 1] = 1.0  # read by content only
    return dnc.DNCInterface(read_keys=z(B, R, W), read_strengths=z(B, R) + 1, write_key=z(B, W),
                            write_strength=z(B) + 1, erase=z(B, W) + 1, write_vector=z(B, W) + 1,
                            free_gates=z(B, R) + free, allocation_gate=z(B) + allocate,
                            write_gate=z(B) + write, read_modes=modes)


def test_trace_records_what_unroll_computes_and_the_gates(dev):
    torch.manual_seed(4)
    cell = dnc.DNCCell(5, 16, 3, memory_slots=6, word_size=4, read_heads=2).to(dev, f64)
    xs = torch.randn(2, 7, 5, generator=gen(40), dtype=f64).to(dev)
    with torch.no_grad():
        ys, last = seqmem.unroll(cell, xs)
        rec, final = dnc.trace(cell, xs)
    torch.testing.assert_close(rec.outputs, ys)
    torch.testing.assert_close(final.memory, last.memory)
    torch.testing.assert_close(rec.usage[:, -1], last.usage)
    torch.testing.assert_close(rec.read_weights[:, -1], last.read_weights)
    assert rec.usage.shape == (2, 7, 6) and rec.read_weights.shape == (2, 7, 2, 6)
    assert rec.free_gates.shape == (2, 7, 2) and rec.allocation_gate.shape == (2, 7)
    assert rec.read_modes.shape == (2, 7, 2, 3)
    for gate in (rec.free_gates, rec.allocation_gate, rec.write_gate):
        assert in_unit(gate)
    torch.testing.assert_close(rec.read_modes.sum(-1), torch.ones(2, 7, 2, dtype=f64, device=dev))
    # the step's gates are the interface of that step: redo step 3 by hand from the state before it
    state = cell.initial_state(2)
    for t in range(3):
        state, _ = cell(state, xs[:, t])
    chi = torch.cat([xs[:, 3], state.read_vectors.reshape(2, 8)], -1)
    _, h = cell.controller(state.controller, chi)
    xi = dnc.parse_interface(h @ cell.weight_xi.T + cell.bias_xi, 2, 4)
    torch.testing.assert_close(rec.free_gates[:, 3], xi.free_gates)
    torch.testing.assert_close(rec.write_gate[:, 3], xi.write_gate)
    with pytest.raises(ValueError, match=r"inputs must have shape \(B, T, 5\)"):
        dnc.trace(cell, xs[:, :, :4])
    with pytest.raises(ValueError, match=r"at least one step \(T >= 1\), got T = 0"):
        dnc.trace(cell, xs[:, :0])
    with pytest.raises(ValueError, match="trace runs a DNCCell, got LSTMCell"):
        dnc.trace(seqmem.LSTMCell(5, 4), xs)


def test_a_freed_slot_is_allocated_again(dev):
    B, N, W, R = 1, 3, 2, 1
    cell = dnc.DNCCell(2, 4, 2, memory_slots=N, word_size=W, read_heads=R).to(dev, f64)
    state = cell.initial_state(B)
    close = dict(atol=1e-5, rtol=0)  # the epsilon shift of the usages moves things by about 1e-6
    writes = []
    for t in range(3):  # three allocating writes fill the three slots one after the other
        state = dnc.memory_step(state, allocating_interface(B, N, R, W, dev=dev))
        writes.append(state.write_weights.argmax().item())
        assert state.write_weights.max() > 1 - 1e-5  # each one a whole slot
    # three different slots (slot 0 first; the next order is set by epsilon-sized leftovers)
    assert writes[0] == 0 and sorted(writes) == [0, 1, 2]
    # the usage of the last written slot reaches 1 one step later (u_t uses w^w_{t-1})
    state = dnc.memory_step(state, allocating_interface(B, N, R, W, write=0.0, dev=dev))
    torch.testing.assert_close(state.usage, torch.ones(B, N, dtype=f64, device=dev), **close)
    assert dnc.allocation_weighting(state.usage).max() < 1e-5  # the memory is full: nowhere to allocate
    # a read of the second write's slot, then a free gate of 1: its usage falls to 0 and the next
    # write goes there
    freed = torch.nn.functional.one_hot(torch.tensor(writes[1]), N).to(dev, f64)  # (N,)
    state = state._replace(read_weights=freed.reshape(1, 1, N))
    state = dnc.memory_step(state, allocating_interface(B, N, R, W, free=1.0, dev=dev))
    torch.testing.assert_close(state.usage, (1 - freed).unsqueeze(0), **close)
    torch.testing.assert_close(state.write_weights, freed.unsqueeze(0), **close)


@pytest.mark.parametrize("slots,freed_word", [(4, 1), (3, 0), (6, 5)])
def test_the_reuse_demonstration(dev, slots, freed_word):
    tr = dnc.reuse_after_free(slots, freed_word, device=dev)
    N, tol = slots, 1e-4  # the epsilon shift leaves about N epsilon = N 1e-6 here and there
    assert all(tuple(part.shape) == (N + 2, N) for part in tr)
    filled = tr.write_weights[:N].argmax(-1)  # the slot each of the first N words went to
    assert sorted(filled.tolist()) == list(range(N))  # all different: the memory fills
    assert (tr.write_weights[:N].max(-1).values > 1 - tol).all()
    assert (tr.usage[N] > 1 - tol).all() and tr.allocation[N].sum() < tol  # full: nowhere to allocate
    slot = filled[freed_word].item()
    assert tr.read_weights[N, slot] > 1 - tol  # step N reads the freed word's slot by content
    assert tr.usage[N + 1, slot] < tol  # the free gate releases it
    assert tr.write_weights[N + 1, slot] > 1 - tol  # and the next allocating write goes there
    others = torch.arange(N, device=tr.usage.device) != slot
    assert (tr.usage[N + 1, others] > 1 - tol).all()  # the other slots stay used


def test_the_reuse_demonstration_checks_its_arguments():
    with pytest.raises(ValueError, match=r"freed_word must be one of the words written, in \[0, 4\), got 4"):
        dnc.reuse_after_free(4, 4)
    with pytest.raises(ValueError, match=r"write_vector must have shape \(W\)"):
        dnc.hand_interface(torch.zeros(3), torch.zeros(1, 3))


# ------------------------------------------------------------------ learning and long runs

def copy_batch(g, B, length, bits, dev):
    """A tiny copy task: ``length`` random bit vectors, a delimiter step, then ``length`` zero steps
    during which the target is the bits again. Inputs (B, 2 length + 1, bits + 1) (the last channel
    is the delimiter), targets (B, length, bits)."""
    seq = torch.randint(0, 2, (B, length, bits), generator=g).to(dev, torch.float32)
    x = torch.zeros(B, 2 * length + 1, bits + 1, device=dev)
    x[:, :length, :bits] = seq
    x[:, length, bits] = 1.0  # the delimiter
    return x, seq


@pytest.mark.slow  # about 10 s on a loaded 2-core CPU
def test_a_short_training_run_learns_a_tiny_copy_task(dev):
    # seed 0; 120 Adam steps of 16 sequences of 3 steps of 4 bits. Chance (ignoring the input) is
    # BCE = ln 2 = 0.693 per bit; seeds 0, 1, 2 reached 0.42-0.46 over the last 20 steps.
    seqmem.seed(0)
    g = gen(0)
    L, K = 3, 4
    cell = dnc.DNCCell(K + 1, 32, K, memory_slots=8, word_size=8, read_heads=1).to(dev)
    opt = torch.optim.Adam(cell.parameters(), lr=2e-2)
    losses = []
    for step in range(120):
        x, target = copy_batch(g, 16, L, K, dev)
        ys, _ = seqmem.unroll(cell, x)
        loss = F.binary_cross_entropy_with_logits(ys[:, L + 1:], target)  # the recall steps only
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(cell.parameters(), 10.0)
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-20:]) / 20
    assert first > 0.65  # it starts at chance
    assert last < 0.55, f"copy loss {first:.3f} -> {last:.3f}"  # and clearly learns (chance - 0.14)


@pytest.mark.slow  # about 5 s
def test_a_500_step_unroll_stays_finite(dev):
    torch.manual_seed(6)
    cell = dnc.DNCCell(4, 16, 3, memory_slots=8, word_size=6, read_heads=2).to(dev)
    g = gen(18)
    xs = (torch.randn(2, 500, 4, generator=g) * 3).to(dev)
    ys, state = seqmem.unroll(cell, xs)
    ys.pow(2).mean().backward()
    for part in (ys, *state[1:], *state.controller):
        assert torch.isfinite(part).all()
    for p in cell.parameters():
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    check_invariants(state, tol=1e-5)  # float32: up to rounding
