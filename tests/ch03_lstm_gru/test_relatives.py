"""seqmem.relatives (chapter 3): NestedLSTMCell and SCRNCell, the papers' equations, gradients, learning, stacking.

One step of each cell is computed by hand from the equations (float64), a random step against an
independent reference (torch's LSTMCell as the nested LSTM's inner cell), gradients by finite
differences, a few training steps, the contract (initial state, devices, shape errors) and both
cells stacked and bidirectional through ``seqmem.Stacked``.
"""
import math

import pytest
import torch
from torch.nn import functional as F

import seqmem
from seqmem import NestedLSTMCell, NestedLSTMState, SCRNCell, SCRNState

F64 = torch.float64


def sigmoid(a):
    return 1 / (1 + math.exp(-a))


def _set(module, **values):
    with torch.no_grad():
        for name, value in values.items():
            getattr(module, name).copy_(torch.tensor(value, dtype=F64))


# ------------------------------------------------------------------ nested LSTM


def test_nested_lstm_one_step_by_hand(dev):
    cell = NestedLSTMCell(1, 1, bias=False).to(dev, F64)
    # rows are the gates i, f, g, o (torch's layout)
    _set(cell, weight_ih=[[0.5], [-0.3], [0.8], [0.1]], weight_hh=[[0.2], [0.4], [-0.6], [0.7]],
         inner_weight_ih=[[0.3], [0.9], [-0.2], [0.5]], inner_weight_hh=[[-0.4], [0.1], [0.6], [0.2]])
    x, h, c, c_inner = 1.0, 0.5, -0.4, 0.25
    # the outer gates
    i = sigmoid(0.5 * x + 0.2 * h)
    f = sigmoid(-0.3 * x + 0.4 * h)
    g = math.tanh(0.8 * x - 0.6 * h)
    o = sigmoid(0.1 * x + 0.7 * h)
    # the inner LSTM reads x~ = i g, with previous hidden state h~ = f c
    xt, ht = i * g, f * c
    i_ = sigmoid(0.3 * xt - 0.4 * ht)
    f_ = sigmoid(0.9 * xt + 0.1 * ht)
    g_ = math.tanh(-0.2 * xt + 0.6 * ht)
    o_ = sigmoid(0.5 * xt + 0.2 * ht)
    c_inner_next = f_ * c_inner + i_ * g_
    c_next = o_ * math.tanh(c_inner_next)  # c_t = h~_t
    h_next = o * math.tanh(c_next)
    state = NestedLSTMState(*(torch.tensor([[v]], dtype=F64, device=dev) for v in (h, c, c_inner)))
    new, y = cell(state, torch.tensor([[x]], dtype=F64, device=dev))
    expected = torch.tensor([h_next, c_next, c_inner_next], dtype=F64, device=dev)
    torch.testing.assert_close(torch.stack([new.h[0, 0], new.c[0, 0], new.inner_c[0, 0]]), expected)
    assert y is new.h


def test_nested_lstm_inner_cell_is_a_torch_lstm_cell(dev):
    torch.manual_seed(0)
    I, H, B = 3, 5, 4
    cell = NestedLSTMCell(I, H).to(dev, F64)
    inner = torch.nn.LSTMCell(H, H).to(dev, F64)
    inner.load_state_dict({"weight_ih": cell.inner_weight_ih, "weight_hh": cell.inner_weight_hh,
                           "bias_ih": cell.inner_bias_ih, "bias_hh": cell.inner_bias_hh})
    x = torch.randn(B, I, dtype=F64, device=dev)
    state = NestedLSTMState(*(torch.randn(B, H, dtype=F64, device=dev) for _ in range(3)))
    # the outer gates, written out independently of the library
    z = F.linear(x, cell.weight_ih, cell.bias_ih) + F.linear(state.h, cell.weight_hh, cell.bias_hh)
    i, f, g, o = z.sigmoid()[:, :H], z.sigmoid()[:, H:2 * H], z.tanh()[:, 2 * H:3 * H], z.sigmoid()[:, 3 * H:]
    h_inner, c_inner = inner(i * g, (f * state.c, state.inner_c))
    new, y = cell(state, x)
    torch.testing.assert_close(new.c, h_inner)
    torch.testing.assert_close(new.inner_c, c_inner)
    torch.testing.assert_close(new.h, o * torch.tanh(h_inner))


def test_nested_lstm_gradcheck():
    torch.manual_seed(1)
    cell = NestedLSTMCell(2, 3).double()
    x = torch.randn(2, 2, dtype=F64, requires_grad=True)
    parts = [torch.randn(2, 3, dtype=F64, requires_grad=True) for _ in range(3)]

    def step(x, h, c, c_inner):
        new, _ = cell(NestedLSTMState(h, c, c_inner), x)
        return tuple(new)

    assert torch.autograd.gradcheck(step, (x, *parts))
    # and with respect to every parameter
    names = [n for n, _ in cell.named_parameters()]
    state = NestedLSTMState(*(p.detach() for p in parts))

    def by_params(*ps):
        return tuple(torch.func.functional_call(cell, dict(zip(names, ps)), (state, x.detach()))[0])

    assert torch.autograd.gradcheck(by_params, tuple(p.detach().requires_grad_() for p in cell.parameters()))


# ------------------------------------------------------------------ SCRN


def test_scrn_one_step_by_hand(dev):
    cell = SCRNCell(2, 1, 1, alpha=0.5, bias=False).to(dev, F64)
    _set(cell, B=[[1.0, -2.0]], A=[[0.5, 0.25]], P=[[2.0]], R=[[-1.0]])
    x, h, s = (1.0, 0.5), 0.3, 0.4
    s_next = (1 - 0.5) * (1.0 * x[0] - 2.0 * x[1]) + 0.5 * s  # (1 - α) B x + α s = 0 + 0.2
    h_next = sigmoid(2.0 * s_next + (0.5 * x[0] + 0.25 * x[1]) - 1.0 * h)  # σ(P s + A x + R h)
    state = SCRNState(torch.tensor([[h]], dtype=F64, device=dev), torch.tensor([[s]], dtype=F64, device=dev))
    new, y = cell(state, torch.tensor([x], dtype=F64, device=dev))
    assert s_next == pytest.approx(0.2)
    torch.testing.assert_close(new.s, torch.tensor([[s_next]], dtype=F64, device=dev))
    torch.testing.assert_close(new.h, torch.tensor([[h_next]], dtype=F64, device=dev))
    torch.testing.assert_close(y, torch.tensor([[h_next, s_next]], dtype=F64, device=dev))  # y = [h; s]


def test_scrn_bias_and_tanh(dev):
    cell = SCRNCell(2, 1, 1, alpha=0.5, bias=True, nonlinearity="tanh").to(dev, F64)
    _set(cell, B=[[1.0, -2.0]], A=[[0.5, 0.25]], P=[[2.0]], R=[[-1.0]], b_h=[0.1])
    state = SCRNState(torch.full((1, 1), 0.3, dtype=F64, device=dev), torch.full((1, 1), 0.4, dtype=F64, device=dev))
    new, _ = cell(state, torch.tensor([[1.0, 0.5]], dtype=F64, device=dev))
    assert new.h.item() == pytest.approx(math.tanh(2.0 * 0.2 + 0.625 - 0.3 + 0.1), abs=1e-12)


def test_scrn_context_is_a_moving_average_of_the_input(dev):
    # From s_0 = 0 with a constant input x: s_T = (1 - α) Σ_{k<T} α^k B x = (1 - α^T) B x,
    # whatever A, P, R and h do (the context does not read the hidden state).
    torch.manual_seed(2)
    alpha, T = 0.95, 30
    cell = SCRNCell(3, 4, 2, alpha=alpha).to(dev, F64)
    x = torch.randn(5, 3, dtype=F64, device=dev)
    xs = x[:, None].expand(5, T, 3)  # (B, T, I): the same input at every step
    ys, state = seqmem.unroll(cell, xs)
    torch.testing.assert_close(state.s, (1 - alpha ** T) * x @ cell.B.T)
    torch.testing.assert_close(ys[:, :, 4:], torch.stack([(1 - alpha ** (t + 1)) * x @ cell.B.T for t in range(T)], 1))
    with torch.no_grad():
        cell.R.mul_(3.0), cell.A.zero_()
    torch.testing.assert_close(seqmem.unroll(cell, xs)[1].s, state.s)


def test_scrn_alpha_extremes():
    cell = SCRNCell(3, 2, 2, alpha=0.0).double()
    x = torch.randn(4, 3, dtype=F64)
    s0 = torch.randn(4, 2, dtype=F64)
    new, _ = cell(SCRNState(torch.zeros(4, 2, dtype=F64), s0), x)
    torch.testing.assert_close(new.s, x @ cell.B.T)  # α = 0: no memory, s_t = B x_t
    cell.alpha = 1.0
    new, _ = cell(SCRNState(torch.zeros(4, 2, dtype=F64), s0), x)
    torch.testing.assert_close(new.s, s0)  # α = 1: the context never changes


def test_scrn_gradcheck():
    torch.manual_seed(3)
    cell = SCRNCell(2, 3, 2).double()
    x = torch.randn(2, 2, dtype=F64, requires_grad=True)
    h = torch.randn(2, 3, dtype=F64, requires_grad=True)
    s = torch.randn(2, 2, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h, s: cell(SCRNState(h, s), x)[1], (x, h, s))
    names = [n for n, _ in cell.named_parameters()]

    def by_params(*ps):
        state = SCRNState(h.detach(), s.detach())
        return torch.func.functional_call(cell, dict(zip(names, ps)), (state, x.detach()))[1]

    assert torch.autograd.gradcheck(by_params, tuple(p.detach().requires_grad_() for p in cell.parameters()))


# ------------------------------------------------------------------ both cells: contract and learning


CELLS = {
    "nested": (lambda I, H: NestedLSTMCell(I, H), NestedLSTMState),
    "scrn": (lambda I, H: SCRNCell(I, H, 3), SCRNState),
}


@pytest.mark.parametrize("name", CELLS)
def test_initial_state_and_devices(name, dev):
    make, state_type = CELLS[name]
    cell = make(4, 5).to(dev, F64)
    state = cell.initial_state(3)
    assert isinstance(state, state_type)
    for part in state:
        assert part.dtype == F64 and part.device.type == dev.type and not part.any()
    new, y = cell(state, torch.randn(3, 4, dtype=F64, device=dev))
    assert isinstance(new, state_type) and y.device.type == dev.type
    assert y.shape == (3, getattr(cell, "output_size", 5))
    assert [tuple(p.shape) for p in new] == [tuple(p.shape) for p in state]


def _step(cell, state, x):
    return lambda: cell(state, x)


NESTED, SCRN = NestedLSTMCell(3, 4), SCRNCell(3, 4, 2)
Z = torch.zeros


@pytest.mark.parametrize("call,match", [
    (_step(NESTED, NESTED.initial_state(2), torch.randn(2, 5)), r"x must have shape \(B, 3\)"),
    (_step(NESTED, NESTED.initial_state(3), torch.randn(2, 3)), r"state.h must have shape \(2, 4\)"),
    (_step(NESTED, (Z(2, 4), Z(2, 4)), torch.randn(2, 3)), "NestedLSTMState"),
    (_step(NESTED, NestedLSTMState(Z(2, 4), Z(2, 4), Z(2, 3)), torch.randn(2, 3)),
     r"state.inner_c must have shape \(2, 4\)"),
    (lambda: NestedLSTMCell(0, 4), "input_size must be a positive int"),
    (_step(SCRN, SCRN.initial_state(2), torch.randn(2, 3, 1)), r"x must have shape \(B, 3\)"),
    (_step(SCRN, SCRNState(Z(2, 4), Z(2, 4)), torch.randn(2, 3)), r"state.s must have shape \(2, 2\)"),
    (_step(SCRN, Z(2, 4), torch.randn(2, 3)), "SCRNState"),
    (lambda: SCRNCell(3, 4, 2, alpha=1.5), r"alpha must be a number in \[0, 1\]"),
    (lambda: SCRNCell(3, 4, 0), "context_size must be a positive int"),
    (lambda: SCRNCell(3, 4, 2, nonlinearity="relu"), "nonlinearity must be one of"),
])
def test_bad_shapes_and_arguments_raise_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("name", CELLS)
def test_each_cell_learns_to_average_its_inputs(name, dev):
    """Learning: seed 0, 300 Adam steps (lr 0.01) of 64 fresh sequences, T = 8, H = 8: read out
    the mean of the first input channel over time after the last step (seqmem.heads.LastStep).
    The target's variance, 1/8, is the error of the best answer that does not read the inputs; the
    cell must reach a tenth of it on 1,000 fresh sequences. Measured on cpu: 0.0003 (nested LSTM)
    and 0.0006 (SCRN)."""
    torch.manual_seed(0)
    model = seqmem.LastStep(seqmem.Stacked(CELLS[name][0], 2, 8), 1).to(dev)
    g = torch.Generator().manual_seed(0)

    def batch(n):
        x = torch.randn(n, 8, 2, generator=g).to(dev)  # (B, T, I)
        return x, x[:, :, :1].mean(1)  # (B, 1): the mean over time of channel 0, variance 1/8

    seqmem.fit(model, lambda step: batch(64), lambda m, b: F.mse_loss(m(b[0])[0], b[1]), steps=300, lr=0.01,
               progress=False)
    x, y = batch(1000)
    with torch.no_grad():
        mse = F.mse_loss(model(x)[0], y).item()
    assert mse < 0.1 * (1 / 8), mse


# ------------------------------------------------------------------ stacked and bidirectional


@pytest.mark.parametrize("name", CELLS)
def test_cells_run_stacked_and_bidirectional(name, dev):
    make, state_type = CELLS[name]
    torch.manual_seed(4)
    I, H, T, B = 3, 4, 6, 2
    layer = seqmem.Stacked(make, I, H, num_layers=2, bidirectional=True).to(dev, F64)
    width = getattr(layer.cells[0], "output_size", H)  # H' = H + S for the SCRN, H for the nested LSTM
    x = torch.randn(B, T, I, dtype=F64, device=dev, requires_grad=True)
    out, finals = layer(x)
    assert out.shape == (B, T, 2 * width) and layer.output_size == 2 * width
    assert len(finals) == 4 and all(isinstance(s, state_type) for s in finals)
    # the same computation by hand: each layer's forward cell reads time forwards, its backward
    # cell reads it reversed, and layer 1 reads both of layer 0's outputs side by side
    seq = x  # (B, T, I)
    for k in range(2):
        fwd, s_f = seqmem.unroll(layer.cells[2 * k], seq)
        bwd, s_b = seqmem.unroll(layer.cells[2 * k + 1], seq.flip(1))
        seq = torch.cat([fwd, bwd.flip(1)], dim=-1)  # (B, T, 2 H')
        for got, want in ((finals[2 * k], s_f), (finals[2 * k + 1], s_b)):
            for a, b in zip(got, want):
                torch.testing.assert_close(a, b)
    torch.testing.assert_close(out, seq)
    out.pow(2).sum().backward()
    for pname, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
