"""seqmem.ntm: the Neural Turing Machine's location addressing and its cell (chapter 8).

Pinned here: every stage's output is a weighting (sums to one, in [0, 1]); gradcheck in float64
for interpolation, shift, sharpening and the whole addressing (also at an all-zero memory and at
one-hot weightings); hand-computed shifts (a one-hot moved by one slot, the wrap-around, a blur)
and sharpenings; the cell's batch equals a loop over its examples; all-zero and one-slot memories
give finite values and gradients, and so do a thousand steps; ``unroll`` runs the cell, both
controllers, several read heads, float64 and every device; shape errors say what was expected;
and a short training on copy cuts the bit errors.
"""
import pytest
import torch

import seqmem
from seqmem import ntm, tasks
from seqmem.addressing import content_addressing

from helpers import gen, randn


def _weighting(g, *shape, dev="cpu"):
    """A random weighting (softmax of normal logits), float64, requiring its gradient."""
    return torch.softmax(torch.randn(*shape, generator=g, dtype=torch.float64) * 2, -1).to(dev).requires_grad_()


def _assert_weighting(w):
    assert torch.isfinite(w).all() and (w >= 0).all() and (w <= 1).all()
    torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))


def _head_inputs(g, B=3, R=2, N=7, W=4, K=3, dev="cpu"):
    """Memory, keys and squashed head parameters for R heads, float64 leaves on dev."""
    memory, k = randn(g, B, N, W, dev=dev), randn(g, B, R, W, dev=dev)
    beta = (torch.rand(B, R, generator=g, dtype=torch.float64) * 5).to(dev).requires_grad_()
    gate = torch.rand(B, R, generator=g, dtype=torch.float64).to(dev).requires_grad_()
    s = _weighting(g, B, R, K, dev=dev)
    gamma = (1 + torch.rand(B, R, generator=g, dtype=torch.float64) * 3).to(dev).requires_grad_()
    return memory, k, beta, gate, s, gamma, _weighting(g, B, R, N, dev=dev)


# -- the addressing stages -------------------------------------------------------------------

def test_every_stage_gives_a_weighting(dev):
    g = gen(0)
    memory, k, beta, gate, s, gamma, w_prev = _head_inputs(g, dev=dev)
    w_c = content_addressing(memory, k, beta)
    w_g = ntm.interpolate(w_c, w_prev, gate)
    w_tilde = ntm.shift(w_g, s)
    w = ntm.sharpen(w_tilde, gamma)
    for stage in (w_g, w_tilde, w, ntm.address(memory, k, beta, gate, s, gamma, w_prev)):
        assert stage.shape == (3, 2, 7) and stage.device.type == torch.device(dev).type
        _assert_weighting(stage)
    torch.testing.assert_close(ntm.address(memory, k, beta, gate, s, gamma, w_prev), w)
    for big in (50.0, 1e4):  # a huge gamma is the argmax, not 0/0
        _assert_weighting(ntm.sharpen(w_tilde, torch.full((3, 2), big, dtype=torch.float64, device=dev)))
    sharp = ntm.sharpen(torch.tensor([[0.1, 0.6, 0.3]], device=dev), torch.tensor([300.0], device=dev))
    torch.testing.assert_close(sharp, torch.tensor([[0.0, 1.0, 0.0]], device=dev))  # float32: 0.6^300 is 0


def test_interpolation_by_hand():
    w_c = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    w_prev = torch.tensor([[0.0, 0.5, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(ntm.interpolate(w_c, w_prev, torch.tensor([0.25], dtype=torch.float64)),
                               torch.tensor([[0.25, 0.375, 0.375]], dtype=torch.float64))
    assert torch.equal(ntm.interpolate(w_c, w_prev, torch.ones(1, 1, dtype=torch.float64)), w_c)  # g = 1: content
    assert torch.equal(ntm.interpolate(w_c, w_prev, torch.zeros(1, dtype=torch.float64)), w_prev)  # g = 0: last


def test_shift_moves_a_one_hot_by_one_slot_and_wraps_around():
    N = 5
    one_hot = torch.eye(N, dtype=torch.float64)  # (N, N): row i has its weight on slot i
    forward, stay, back = (torch.tensor([v], dtype=torch.float64).expand(N, 3) for v in
                           ([0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]))
    assert torch.equal(ntm.shift(one_hot, forward), one_hot.roll(1, dims=1))  # slot i -> i + 1
    assert torch.equal(ntm.shift(one_hot, stay), one_hot)
    assert torch.equal(ntm.shift(one_hot, back), one_hot.roll(-1, dims=1))  # slot i -> i - 1
    assert torch.equal(ntm.shift(one_hot[N - 1:], forward[:1]), one_hot[:1])  # the last slot wraps to the first
    assert torch.equal(ntm.shift(one_hot[:1], back[:1]), one_hot[N - 1:])  # and the first to the last
    blur = ntm.shift(one_hot[2:3], torch.tensor([[0.1, 0.7, 0.2]], dtype=torch.float64))  # eq. 8 by hand
    torch.testing.assert_close(blur, torch.tensor([[0.0, 0.1, 0.7, 0.2, 0.0]], dtype=torch.float64))


def test_shift_range_two_and_a_memory_smaller_than_the_shifts():
    w = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    s = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)  # shifts -2..2: by +2
    assert torch.equal(ntm.shift(w, s), w.roll(2, dims=1))
    two = torch.tensor([[1.0, 0.0]], dtype=torch.float64)  # N = 2 < K = 3: shifts -1 and +1 both land on slot 1
    torch.testing.assert_close(ntm.shift(two, torch.tensor([[0.2, 0.5, 0.3]], dtype=torch.float64)),
                               torch.tensor([[0.5, 0.5]], dtype=torch.float64))


def test_sharpen_by_hand():
    w = torch.tensor([[0.5, 0.25, 0.25, 0.0]], dtype=torch.float64)
    two = torch.tensor([2.0], dtype=torch.float64)
    # gamma = 2: [0.25, 0.0625, 0.0625, 0] / 0.375, exactly: the guard only touches the zero weight
    want = torch.tensor([[2 / 3, 1 / 6, 1 / 6, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(ntm.sharpen(w, two), want, atol=1e-15, rtol=1e-14)
    torch.testing.assert_close(ntm.sharpen(w, two, eps=0.0), want)
    torch.testing.assert_close(ntm.sharpen(w, torch.ones(1, 1, dtype=torch.float64)), w, atol=1e-15, rtol=1e-14)
    # an epsilon added to every weight moves every sharpened weight (what the default avoids)
    added = ntm.sharpen(w, two, eps=1e-2)
    assert (added - want).abs().max() > 1e-3 and added[0, 3] > 0


def test_a_very_sharp_head_is_one_hot_and_finite_in_float32():
    # 0.6 ** 300 underflows float32: the direct ratio would be 0 / 0
    w = torch.tensor([[0.6, 0.3, 0.1, 0.0]], requires_grad=True)
    out = ntm.sharpen(w, torch.tensor([300.0]))
    torch.testing.assert_close(out.detach(), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    out[0, 0].backward()
    assert torch.isfinite(w.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_sharpen_in_every_float_type_keeps_zero_weights_at_zero(dtype):
    # float16's smallest normal number (6e-5) times 126 zero slots would leak 0.8% of the weight
    w = torch.zeros(1, 128, dtype=dtype)
    w[0, 0], w[0, 1] = 0.75, 0.25
    out = ntm.sharpen(w, torch.ones(1, dtype=dtype))
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), w.float(), atol=1e-3, rtol=0)
    assert float(out[0, 2:].float().sum()) < 1e-6


@pytest.mark.parametrize("heads", [1, 2])
def test_gradcheck_of_each_stage_and_the_whole_addressing(heads):
    g = gen(1)
    memory, k, beta, gate, s, gamma, w_prev = _head_inputs(g, B=2, R=2, N=5, W=3)
    if heads == 1:  # one head: (B, ...) without the R axis
        k, beta, gate, s, gamma, w_prev = (t[:, 0].detach().requires_grad_() for t in (k, beta, gate, s, gamma, w_prev))
    w_c = content_addressing(memory, k, beta).detach().requires_grad_()
    assert torch.autograd.gradcheck(ntm.interpolate, (w_c, w_prev, gate))
    assert torch.autograd.gradcheck(ntm.shift, (w_prev, s))
    assert torch.autograd.gradcheck(ntm.sharpen, (w_prev, gamma))
    assert torch.autograd.gradcheck(ntm.address, (memory, k, beta, gate, s, gamma, w_prev))


def test_gradcheck_at_a_zero_memory_and_one_hot_weightings():
    g = gen(2)
    _, k, beta, gate, s, gamma, _ = _head_inputs(g, B=2, R=2, N=4, W=3)
    memory = torch.zeros(2, 4, 3, dtype=torch.float64, requires_grad=True)
    one_hot = torch.zeros(2, 2, 4, dtype=torch.float64)
    one_hot[..., 0] = 1.0
    one_hot.requires_grad_()
    assert torch.autograd.gradcheck(ntm.address, (memory, k, beta, gate, s, gamma, one_hot))
    assert torch.autograd.gradcheck(ntm.sharpen, (one_hot, gamma))  # exact zeros: the log must never see 0


def test_addressing_shape_errors_say_what_was_expected():
    w = torch.full((2, 5), 0.2)
    with pytest.raises(ValueError, match=r"w_prev must have the shape of w_c, \(2, 5\), got shape \(2, 4\)"):
        ntm.interpolate(w, torch.zeros(2, 4), torch.zeros(2))
    with pytest.raises(ValueError, match=r"g must have shape \(2,\) or \(2, 1\).*got shape \(3,\)"):
        ntm.interpolate(w, w, torch.zeros(3))
    with pytest.raises(ValueError, match=r"s must have shape \(2, 'K'\) with K = 2S \+ 1 odd.*got shape \(2, 4\)"):
        ntm.shift(w, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"s must have shape"):
        ntm.shift(w, torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"gamma must have shape \(2,\) or \(2, 1\).*got shape \(2, 2\)"):
        ntm.sharpen(w, torch.ones(2, 2))
    with pytest.raises(ValueError, match=r"w_tilde must be a weighting \(B, N\) or \(B, R, N\), got shape \(5,\)"):
        ntm.sharpen(torch.zeros(5), torch.ones(1))


# -- the cell --------------------------------------------------------------------------------

def _cell(dev="cpu", seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(input_size=5, output_size=4, controller_size=12, memory_size=6, word_size=3, read_heads=2)
    return ntm.NTMCell(**{**cfg, **kw}).to(dev, torch.float64)


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_unroll_runs_the_cell_and_the_state_holds_the_memory(dev, controller):
    cell = _cell(dev, controller=controller)
    xs = torch.randn(3, 7, 5, generator=gen(3), dtype=torch.float64).to(dev)
    ys, state = seqmem.unroll(cell, xs)
    assert ys.shape == (3, 7, 4) and ys.dtype == torch.float64 and ys.device.type == torch.device(dev).type
    assert isinstance(state, ntm.NTMState) and state.memory.shape == (3, 6, 3)
    assert state.read_weights.shape == (3, 2, 6) and state.write_weights.shape == (3, 6)
    assert state.reads.shape == (3, 2, 3)
    _assert_weighting(state.read_weights)
    _assert_weighting(state.write_weights)
    before, _ = cell(state, xs[:, 0])  # one more step: the heads read the memory as it came
    torch.testing.assert_close(before.reads, before.read_weights @ state.memory)
    start = cell.initial_state(3)
    assert not torch.allclose(state.memory, start.memory)  # it wrote
    assert all(not hasattr(cell, name) for name in ("memory", "M"))  # nothing kept in the module
    ys2, state2 = seqmem.unroll(cell, xs, start)  # an explicit state, the same run
    torch.testing.assert_close(ys2, ys)
    for i in range(7):  # unroll is the loop of steps
        start, y = cell(start, xs[:, i])
        torch.testing.assert_close(y, ys[:, i])


def test_initial_state_is_a_value_on_the_cells_device_and_dtype(dev):
    cell = _cell(dev)
    s = cell.initial_state(4)
    assert s.memory.shape == (4, 6, 3) and s.memory.dtype == torch.float64
    assert s.memory.device.type == torch.device(dev).type
    assert torch.equal(s.write_weights, torch.eye(6, dtype=torch.float64, device=dev)[0].expand(4, 6))
    assert torch.equal(s.read_weights[:, 1], s.write_weights)
    s.memory.add_(1.0)  # changing one state leaves the next one alone
    assert torch.equal(cell.initial_state(4).memory, torch.full((4, 6, 3), 1e-6, dtype=torch.float64, device=dev))
    assert cell.initial_state(1).memory.shape == (1, 6, 3)


def test_a_batch_equals_a_loop_over_its_examples(dev):
    cell = _cell(dev, read_heads=3)
    xs = torch.randn(4, 6, 5, generator=gen(4), dtype=torch.float64).to(dev)
    ys, state = seqmem.unroll(cell, xs)
    for b in range(4):
        yb, sb = seqmem.unroll(cell, xs[b:b + 1])
        torch.testing.assert_close(yb, ys[b:b + 1])
        torch.testing.assert_close(sb.memory, state.memory[b:b + 1])
        torch.testing.assert_close(sb.read_weights, state.read_weights[b:b + 1])


def test_map_state_reaches_every_part_so_that_act_can_mix_states():
    cell = _cell()
    xs = torch.randn(3, 4, 5, generator=gen(9), dtype=torch.float64)
    _, new = seqmem.unroll(cell, xs)
    old = cell.initial_state(3)
    done = torch.tensor([True, False, True])
    kept = seqmem.map_state(lambda n, o: torch.where(done.view(-1, *[1] * (n.dim() - 1)), o, n), new, old)
    assert isinstance(kept, ntm.NTMState) and isinstance(kept.controller, seqmem.LSTMState)
    assert torch.equal(kept.memory[0], old.memory[0]) and torch.equal(kept.memory[1], new.memory[1])
    assert torch.equal(kept.controller.h[2], old.controller.h[2])
    half = seqmem.map_state(lambda a, b: 0.5 * a + 0.5 * b, new, old)  # ACT's mean state is a state
    _assert_weighting(half.read_weights)
    y = cell(half, xs[:, 0])[1]
    assert y.shape == (3, 4) and torch.isfinite(y).all()


@pytest.mark.parametrize("memory_size", [1, 6])
def test_zero_and_one_slot_memories_give_finite_values_and_gradients(memory_size):
    cell = _cell(memory_size=memory_size, memory_init=0.0)  # an all-zero memory to start from
    xs = torch.randn(2, 5, 5, generator=gen(5), dtype=torch.float64, requires_grad=True)
    ys, state = seqmem.unroll(cell, xs)
    ys.sum().backward()
    assert torch.isfinite(ys).all() and torch.isfinite(state.memory).all()
    assert torch.isfinite(xs.grad).all() and xs.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in cell.parameters())
    if memory_size == 1:
        assert torch.equal(state.write_weights, torch.ones(2, 1, dtype=torch.float64))  # one slot: all the weight


def test_the_cells_step_gradcheck():
    cell = _cell(memory_size=4, read_heads=1)
    x = torch.randn(2, 5, generator=gen(6), dtype=torch.float64, requires_grad=True)
    state = cell.initial_state(2)
    for _ in range(3):  # a memory with something written in it
        state, _ = cell(state, torch.randn(2, 5, generator=gen(7), dtype=torch.float64))
    memory = state.memory.detach().requires_grad_()

    def step(x, memory):
        return cell(state._replace(memory=memory), x)[1]

    assert torch.autograd.gradcheck(step, (x, memory))


def test_one_step_by_hand_from_the_cells_own_parameters():
    """The cell's step written out with plain torch operations and the paper's formulas."""
    from torch.nn import functional as F

    cell = _cell(read_heads=2, shift_range=1)
    B, N, W, R, K = 2, cell.N, cell.W, cell.R, cell.K
    state = cell.initial_state(B)
    for t in range(2):  # a memory with something in it, and moved weightings
        state, _ = cell(state, torch.randn(B, 5, generator=gen(20 + t), dtype=torch.float64))
    x = torch.randn(B, 5, generator=gen(30), dtype=torch.float64)
    new, y = cell(state, x)

    c = cell.controller  # the LSTM controller: one step of the standard LSTM
    inp = torch.cat([x, state.reads.reshape(B, R * W)], -1)
    h0, c0 = state.controller
    gates = inp @ c.weight_ih.T + h0 @ c.weight_hh.T + c.bias_ih + c.bias_hh
    i, f, gg, o = gates.chunk(4, -1)
    c1 = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(gg)
    h1 = torch.sigmoid(o) * torch.tanh(c1)
    xi = h1 @ cell.heads.weight.T + cell.heads.bias
    P = W + 3 + K
    M = state.memory
    prev = list(state.read_weights.unbind(1)) + [state.write_weights]
    weights = []
    for head in range(R + 1):
        p = xi[:, head * P:(head + 1) * P]
        k, beta, gate = p[:, :W], F.softplus(p[:, W]), torch.sigmoid(p[:, W + 1])
        s, gamma = torch.softmax(p[:, W + 2:W + 2 + K], -1), 1 + F.softplus(p[:, -1])
        norm = lambda v: (v.pow(2).sum(-1) + 1e-6).sqrt()  # noqa: E731  the library's guarded norm
        cos = torch.stack([(k * M[:, i]).sum(-1) / (norm(k) * norm(M[:, i])) for i in range(N)], -1)
        w = torch.softmax(beta[:, None] * cos, -1)  # eq. 5
        w = gate[:, None] * w + (1 - gate[:, None]) * prev[head]  # eq. 7
        w = sum(s[:, j, None] * torch.roll(w, j - 1, dims=-1) for j in range(K))  # eq. 8, shifts -1, 0, 1
        w = w ** gamma[:, None]
        weights.append(w / w.sum(-1, keepdim=True))  # eq. 9
    e, a = torch.sigmoid(xi[:, -2 * W:-W]), torch.tanh(xi[:, -W:])
    reads = torch.stack([(w[:, :, None] * M).sum(1) for w in weights[:R]], 1)  # eq. 2
    w_w = weights[R][:, :, None]
    memory = M * (1 - w_w * e[:, None]) + w_w * a[:, None]  # eq. 3-4
    y_hand = torch.cat([h1, reads.reshape(B, R * W)], -1) @ cell.output.weight.T + cell.output.bias

    tight = dict(atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(new.controller.h, h1)
    torch.testing.assert_close(new.read_weights, torch.stack(weights[:R], 1), **tight)
    torch.testing.assert_close(new.write_weights, weights[R], **tight)
    torch.testing.assert_close(new.reads, reads, **tight)
    torch.testing.assert_close(new.memory, memory, **tight)
    torch.testing.assert_close(y, y_hand, **tight)


def test_state_sizes_is_refused_with_what_to_use_instead():
    with pytest.raises(ValueError, match=r"memory is \(B, N, W\).*initial_state"):
        _cell().state_sizes()


def test_a_thousand_steps_stay_finite_in_float32():
    torch.manual_seed(0)
    cell = ntm.NTMCell(5, 4, controller_size=16, memory_size=8, word_size=4)
    xs = torch.randn(2, 1000, 5, generator=gen(8)) * 3
    ys, state = seqmem.unroll(cell, xs)
    ys.pow(2).mean().backward()
    assert torch.isfinite(ys).all() and torch.isfinite(state.memory).all() and state.memory.abs().max() <= 1000
    assert all(torch.isfinite(p.grad).all() for p in cell.parameters())


def test_cell_shape_and_option_errors_say_what_was_expected():
    cell = _cell()
    state = cell.initial_state(2)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 5\), got \(2, 4\)"):
        cell(state, torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"state.memory must have shape \(3, 6, 3\), got \(2, 6, 3\)"):
        cell(state, torch.zeros(3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"state.read_weights must have shape \(2, 2, 6\), got \(2, 6\)"):
        cell(state._replace(read_weights=state.write_weights), torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"state must be an NTMState"):
        cell(tuple(state), torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x must have the parameters' dtype torch.float64, got torch.float32"):
        cell(state, torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"controller must be 'lstm' or 'feedforward', got 'gru'"):
        ntm.NTMCell(5, 4, controller="gru")
    with pytest.raises(ValueError, match=r"shift_range must be an int >= 0, got -1"):
        ntm.NTMCell(5, 4, shift_range=-1)
    with pytest.raises(ValueError, match=r"read_heads must be a positive int, got 0"):
        ntm.NTMCell(5, 4, read_heads=0)


def test_shift_range_sets_the_shifts_of_every_head():
    cell = _cell(shift_range=2)
    assert cell.K == 5 and cell.heads.out_features == 3 * (3 + 1 + 1 + 5 + 1) + 2 * 3  # 3 heads, e, a
    ys, _ = seqmem.unroll(cell, torch.randn(2, 3, 5, dtype=torch.float64))
    assert torch.isfinite(ys).all()


# -- learning --------------------------------------------------------------------------------

def test_a_short_training_on_copy_cuts_the_bit_errors():
    """Seed 0: 300 Adam steps (lr 3e-2, gradients clipped to norm 10) on copy of 1-3 vectors of
    4 bits, batch 16. An untrained NTM is at chance, 2 of every 4 bits wrong: about 4 bit errors per
    sequence (1-3 vectors, 2 on average). Measured after training: 0.0 at seed 0; seeds 0-4 end
    between 0.0 and 0.52 (a seed that stalls copies 1 and 2 vectors but not 3). The test asks for
    under 1.0."""
    g = seqmem.seed(0)
    cell = ntm.NTMCell(5, 4, controller_size=32, memory_size=8, word_size=6)

    def loss(model, batch):
        ys, _ = seqmem.unroll(model, batch.inputs)
        return tasks.sequence_cost(ys, batch.targets, batch.mask, bits=False).mean()

    test = tasks.copy_sequences(500, 1, 3, 4, generator=torch.Generator().manual_seed(1))

    def errors():
        with torch.no_grad():
            return float(tasks.bit_errors(seqmem.unroll(cell, test.inputs)[0], test.targets, test.mask).mean())

    before = errors()
    seqmem.fit(cell, lambda i: tasks.copy_sequences(16, 1, 3, 4, generator=g), loss, steps=300, lr=3e-2,
               clip_grad_norm=10.0, progress=False)
    after = errors()
    assert before > 2.5  # an untrained NTM is at chance
    assert after < 1.0, (before, after)
