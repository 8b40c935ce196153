"""seqmem.act: adaptive computation time around any cell (chapter 9).

Pinned here: the halting probabilities of every input step are a distribution over the ponder
steps (in [0, 1], summing to one, zero after N(t)), N(t) is the first step at which the halting sum
reaches 1 - epsilon or the cap, and R(t) is what is left; a halting bias that halts at once gives
the wrapped cell itself (on the input with its first-step flag); the ponder cost's gradient
reaches the halting unit only through the remainder (against the hand-derived gradient); a batch
whose examples ponder for different numbers of steps equals a loop over them; ACT wraps the RNN,
GRU, LSTM and NTM cells under ``unroll``; the cap holds; bad arguments and inputs say what was
expected; and training on the ponder cost alone makes the machine halt at once.
"""
import pytest
import torch

import seqmem
from seqmem import act

from conftest import DEVICES
from helpers import gen

I, H = 5, 12


def _act(cell=None, dev="cpu", dtype=torch.float64, **options):
    torch.manual_seed(0)
    cell = cell or seqmem.GRUCell(I + 1, H, device=dev, dtype=dtype)
    return act.ACTCell(cell, **options)


def _x(B=6, seed=1, dev="cpu", dtype=torch.float64):
    return torch.randn(B, I, generator=gen(seed), dtype=dtype).to(dev)


def _spread(model):
    """Halting weights that give different examples different numbers of ponder steps."""
    with torch.no_grad():
        model.halting.weight.copy_(torch.randn(model.halting.weight.shape, generator=gen(5)) * 2)
        model.halting.bias.fill_(-1.5)
    return model


def _ponder_by_hand(model, state, x):
    """Every ponder step up to the cap, by hand: the halting units h^n (B, M), the states s^n and
    the outputs y^n (B, M, O)."""
    flag = torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)
    s, hs, states, ys = state, [], [], []
    for n in range(model.max_steps):
        s, y = model.cell(s, torch.cat([x, flag + (n == 0)], -1))
        hs.append(torch.sigmoid(model.halting(y)).squeeze(-1))
        states.append(s)
        ys.append(y)
    return torch.stack(hs, 1), states, torch.stack(ys, 1)


def _halting_sums(model, state, x):
    return _ponder_by_hand(model, state, x)[0]


@pytest.mark.parametrize("dev", DEVICES)
def test_halting_probabilities_are_a_distribution_that_stops_where_the_sum_reaches_one(dev):
    model = _spread(_act(dev=dev, max_steps=8))
    x = _x(32, dev=dev)
    state = model.cell.initial_state(32)
    _, _, did = act.act_step(model.cell, model.halting, state, x, model.max_steps, model.epsilon)
    p = did.halting
    assert p.shape == (32, 8) and (p >= 0).all() and (p <= 1).all()
    torch.testing.assert_close(p.sum(1), torch.ones(32, dtype=p.dtype, device=dev))
    assert len(set(did.steps.tolist())) >= 3  # the examples ponder for different numbers of steps
    with torch.no_grad():
        h = _halting_sums(model, state, x)  # (B, M)
    cumulative = h.cumsum(1)
    for b in range(32):
        N = int(did.steps[b])
        reached = (cumulative[b] >= 1 - model.epsilon).nonzero()
        expected = int(reached[0]) + 1 if len(reached) else model.max_steps
        assert N == min(expected, model.max_steps)
        torch.testing.assert_close(p[b, :N - 1], h[b, :N - 1])  # h^n before the last step
        torch.testing.assert_close(did.remainder[b], 1 - h[b, :N - 1].sum())  # R(t)
        torch.testing.assert_close(p[b, N - 1], did.remainder[b])
        assert (p[b, N:] == 0).all()


def test_the_state_and_output_are_the_halting_weighted_means_of_the_ponder_steps():
    model = _spread(_act(max_steps=8, cell=seqmem.LSTMCell(I + 1, H, dtype=torch.float64)))
    x = _x(16)
    state = model.initial_state(16)
    new, y = model(state, x)
    _, _, did = act.act_step(model.cell, model.halting, state.cell, x, model.max_steps, model.epsilon)
    assert len(set(did.steps.tolist())) >= 3
    with torch.no_grad():
        _, states, ys = _ponder_by_hand(model, state.cell, x)
    p = did.halting.detach()  # (B, M)
    torch.testing.assert_close(y, (p[..., None] * ys).sum(1))
    for k, part in enumerate(new.cell):  # h and c, each averaged
        torch.testing.assert_close(part, sum(p[:, n, None] * states[n][k] for n in range(model.max_steps)))


def test_the_task_loss_reaches_the_halting_unit_through_the_weights_of_the_steps():
    # y = sum_n p^n y^n depends on the halting bias through p (a step function only where N jumps):
    # autograd against central differences, at a bias where no example's N(t) changes
    model = _spread(_act(max_steps=8))
    x = _x(16)
    w = torch.randn(H, generator=gen(7), dtype=torch.float64)

    def loss(bias):
        with torch.no_grad():
            model.halting.bias.fill_(bias)
        state, y = model(model.initial_state(16), x)
        return (y @ w).sum(), state.steps

    value, steps = loss(-1.5)
    value.backward()
    grad = float(model.halting.bias.grad)
    d = 1e-6
    (up, steps_up), (down, steps_down) = loss(-1.5 + d), loss(-1.5 - d)
    assert torch.equal(steps_up, steps) and torch.equal(steps_down, steps)
    assert abs(grad) > 1e-3
    assert abs(grad - float((up - down).detach()) / (2 * d)) < 1e-5 * max(1.0, abs(grad))


def test_a_bias_that_halts_at_once_gives_the_wrapped_cell_on_the_flagged_input():
    model = _act(max_steps=5, halting_bias=20.0)
    x = _x()
    state = model.initial_state(6)
    new, y = model(state, x)
    expected_state, expected_y = model.cell(state.cell, torch.cat([x, torch.ones(6, 1, dtype=x.dtype)], -1))
    torch.testing.assert_close(y, expected_y, rtol=0, atol=0)
    torch.testing.assert_close(new.cell, expected_state, rtol=0, atol=0)
    assert (new.steps == 1).all()
    torch.testing.assert_close(new.ponder, torch.full((6, 1), 2.0, dtype=x.dtype))  # N + R = 1 + 1


def test_the_ponder_cost_reaches_the_halting_unit_only_through_the_remainder():
    model = _spread(_act(max_steps=6))
    x = _x(16)
    state = model.initial_state(16)
    new, _ = model(state, x)
    new.ponder.sum().backward()
    steps = new.steps.squeeze(1).long()
    with torch.no_grad():
        h = _halting_sums(model, state.cell, x)  # (B, M)
    # P = N + R with R = 1 - sum_{n < N} h^n, h^n = sigmoid(w . y^n + b): dP/db = -sum_{n < N} h(1 - h)
    before = torch.arange(model.max_steps)[None] < (steps[:, None] - 1)  # (B, M): n < N
    expected = -(h * (1 - h) * before).sum()
    torch.testing.assert_close(model.halting.bias.grad, expected.reshape(1))
    # where every example halts at once, R = 1 whatever the parameters: the cost has no gradient
    halts = _act(max_steps=6, halting_bias=20.0)
    new, y = halts(halts.initial_state(16), x)
    assert (new.steps == 1).all() and not new.ponder.requires_grad and y.requires_grad


def test_a_batch_of_different_numbers_of_steps_equals_a_loop_over_its_examples():
    model = _spread(_act(max_steps=8))
    xs = torch.randn(7, 3, I, generator=gen(2), dtype=torch.float64)
    batch = act.trace(model, xs)
    assert len(set(batch.steps.flatten().tolist())) >= 3
    for b in range(7):
        one = act.trace(model, xs[b:b + 1])
        torch.testing.assert_close(one.ys, batch.ys[b:b + 1])
        torch.testing.assert_close(one.state.cell, batch.state.cell[b:b + 1])
        torch.testing.assert_close(one.state.ponder, batch.state.ponder[b:b + 1])
        assert torch.equal(one.steps, batch.steps[b:b + 1])
        torch.testing.assert_close(one.halting, batch.halting[b:b + 1])
    # the state's ponder cost is the sum over inputs of N(t) + R(t); steps is the last N(t)
    torch.testing.assert_close(batch.state.ponder.squeeze(1), (batch.steps + batch.remainder).sum(1))
    assert torch.equal(batch.state.steps.squeeze(1).long(), batch.steps[:, -1])


def test_unroll_runs_act_the_same_as_trace():
    model = _spread(_act(max_steps=8))
    xs = torch.randn(4, 5, I, generator=gen(3), dtype=torch.float64)
    ys, state = seqmem.unroll(model, xs)
    traced = act.trace(model, xs)
    torch.testing.assert_close(ys, traced.ys)
    torch.testing.assert_close(state.ponder, traced.state.ponder)


def test_the_cap_on_ponder_steps_holds_and_the_last_step_gets_the_remainder():
    model = _act(max_steps=4)
    with torch.no_grad():
        model.halting.weight.zero_()
        model.halting.bias.fill_(-2.2)  # h = 0.0998 at every step: 3 steps sum to 0.3, far from 1
    state = model.cell.initial_state(6)
    _, _, did = act.act_step(model.cell, model.halting, state, _x(), model.max_steps, model.epsilon)
    h = torch.sigmoid(torch.tensor(-2.2, dtype=torch.float64))
    assert (did.steps == 4).all()
    torch.testing.assert_close(did.remainder, (1 - 3 * h).expand(6))  # R = 1 - sum_{n < M} h^n
    torch.testing.assert_close(did.halting[:, :3], h.expand(6, 3))
    torch.testing.assert_close(did.halting[:, 3], did.remainder)
    torch.testing.assert_close(did.halting.sum(1), torch.ones(6, dtype=torch.float64))


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("kind", ["rnn", "lstm", "ntm", "dnc"])
def test_act_wraps_the_librarys_cells(kind, dev):
    torch.manual_seed(0)
    cells = {"rnn": lambda: seqmem.RNNCell(I + 1, H, device=dev),
             "lstm": lambda: seqmem.LSTMCell(I + 1, H, device=dev),
             "ntm": lambda: seqmem.NTMCell(I + 1, 3, controller_size=H, memory_size=8, word_size=4).to(dev),
             "dnc": lambda: seqmem.DNCCell(I + 1, H, 3, memory_slots=6, word_size=4).to(dev)}
    cell = cells[kind]()
    model = act.ACTCell(cell, max_steps=5, halting_bias=-1.0).to(dev)
    xs = torch.randn(3, 4, I, generator=gen(4)).to(dev)
    ys, state = seqmem.unroll(model, xs)
    assert ys.shape == (3, 4, cell.output_size) and ys.device.type == dev
    assert type(state.cell) is type(cell.initial_state(3))  # the wrapped cell's own state
    assert (state.ponder >= 4).all()  # at least one step per input (N >= 1, R > 0)
    loss = ys.square().sum() + state.ponder.sum()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.halting.weight.grad.abs().sum() > 0


def test_bad_arguments_and_inputs_say_what_was_expected():
    with pytest.raises(ValueError, match="input_size must be I \\+ 1"):
        act.ACTCell(seqmem.GRUCell(1, H))
    with pytest.raises(ValueError, match="a cell of the library"):
        act.ACTCell(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="max_steps"):
        _act(max_steps=0)
    with pytest.raises(ValueError, match="epsilon must be a number in \\(0, 1\\)"):
        _act(epsilon=1.0)
    model = _act()
    state = model.initial_state(6)
    with pytest.raises(ValueError, match=f"x must have shape \\(B, {I}\\).*got \\(6, {I + 1}\\)"):
        model(state, torch.zeros(6, I + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="state must be an ACTState"):
        model(state.cell, _x())
    with pytest.raises(ValueError, match="state.ponder must have shape \\(6, 1\\), got \\(6,\\)"):
        model(state._replace(ponder=torch.zeros(6, dtype=torch.float64)), _x())
    with pytest.raises(ValueError, match="dtype"):
        model(state, _x(dtype=torch.float32))
    with pytest.raises(ValueError, match="xs must have shape"):
        act.trace(model, _x())
    with pytest.raises(ValueError, match=f"xs must have shape \\(B, T, {I}\\)"):
        act.trace(model, torch.zeros(6, 2, I + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="halting_bias must be a number"):
        _act(halting_bias="1")

    class Bare(torch.nn.Module):  # a "cell" with no parameters
        input_size, output_size = I + 1, H

        def initial_state(self, B):
            return torch.zeros(B, H)

    with pytest.raises(ValueError, match="must have parameters"):
        act.ACTCell(Bare())
    with pytest.raises(ValueError, match="max_steps"):
        act.act_step(model.cell, model.halting, model.cell.initial_state(6), _x(), 0)
    with pytest.raises(ValueError, match="halting unit must map y \\(6, 12\\) to \\(B, 1\\)"):
        act.act_step(model.cell, torch.nn.Linear(H, 2, dtype=torch.float64), model.cell.initial_state(6),
                     _x(), 3)


def test_the_time_penalty_alone_trains_the_machine_to_halt_sooner():
    # from a halting bias that ponders about four steps per input, gradient descent on the ponder
    # cost (the only way in is the remainder) brings N(t) down to one
    torch.manual_seed(0)
    model = act.ACTCell(seqmem.GRUCell(I + 1, H), max_steps=8, halting_bias=-1.0)
    xs = torch.randn(16, 3, I, generator=gen(6))
    before = act.trace(model, xs).steps.float().mean()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        _, state = seqmem.unroll(model, xs)
        if not state.ponder.requires_grad:  # every example halts at once: R = 1, nothing to descend
            break
        state.ponder.mean().backward()
        opt.step()
        opt.zero_grad()
    after = act.trace(model, xs).steps.float().mean()
    assert before >= 3 and after == 1, (before, after)


def test_the_repeat_cell_runs_its_cell_a_fixed_number_of_times_with_the_flag():
    torch.manual_seed(0)
    cell = seqmem.GRUCell(I + 1, H, dtype=torch.float64)
    x = _x()
    h = cell.initial_state(6)
    flagged = [torch.cat([x, torch.full((6, 1), float(n == 0), dtype=x.dtype)], -1) for n in range(3)]
    s = h
    for x1 in flagged:
        s, y = cell(s, x1)
    state, out = act.RepeatCell(cell, 3)(h, x)
    torch.testing.assert_close(out, y, rtol=0, atol=0)
    torch.testing.assert_close(state, s, rtol=0, atol=0)
    # one repeat is ACT halting at once: the wrapped cell on the flagged input
    once, y1 = act.RepeatCell(cell, 1)(h, x)
    torch.testing.assert_close(y1, cell(h, flagged[0])[1], rtol=0, atol=0)
    ys, _ = seqmem.unroll(act.RepeatCell(cell, 2), x[:, None].expand(6, 4, I))
    assert ys.shape == (6, 4, H)
    lstm = seqmem.LSTMCell(I + 1, H)
    rep = act.RepeatCell(lstm, 2)  # its state is the wrapped cell's, sizes and type
    assert rep.state_sizes() == lstm.state_sizes() and type(rep.initial_state(2)) is seqmem.LSTMState
    with pytest.raises(ValueError, match="repeats"):
        act.RepeatCell(cell, 0)
    with pytest.raises(ValueError, match=f"x must have shape \\(B, {I}\\)"):
        act.RepeatCell(cell, 2)(h, flagged[0])
