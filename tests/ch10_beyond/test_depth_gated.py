"""The depth-gated LSTM (seqmem.depth_gated, chapter 10): shapes, the cell contract, gradients, and
that without its depth gate it is exactly a stacked LSTM."""
import pytest
import torch

import seqmem
from seqmem import DepthGatedLSTM, DepthGatedLSTMCell, LSTMCell, Stacked, unroll
from seqmem.depth_gated import depth_gated_step
from seqmem.lstm import LSTMState

from conftest import DEVICES


@pytest.mark.parametrize("device", DEVICES)
def test_shapes_and_the_state_contract(device):
    seqmem.seed(0)
    model = DepthGatedLSTM(5, 7, num_layers=3).to(device)
    x = torch.randn(4, 6, 5, device=device)
    h, finals = model(x)
    assert h.shape == (4, 6, 7) and len(finals) == 3
    assert all(isinstance(s, LSTMState) and s.c.shape == (4, 7) for s in finals)
    upper = model.stack.cells[1]
    assert upper.below and upper.input_size == 14 and upper.output_size == 14
    assert not model.stack.cells[0].below and not hasattr(model.stack.cells[0], "weight_xd")
    state = upper.initial_state(4)
    assert state.h.device.type == device and state.h.dtype == torch.float32
    ys, final = unroll(upper, torch.randn(4, 6, 14, device=device), state)  # one cell runs under unroll
    assert ys.shape == (4, 6, 14)
    torch.testing.assert_close(ys[:, -1], torch.cat(final, dim=-1))  # y = [h; c]


def test_without_the_depth_gate_it_is_a_stacked_lstm():
    seqmem.seed(1)
    gated = DepthGatedLSTM(3, 6, num_layers=3, depth_gate=False)
    plain = Stacked(LSTMCell, 3, 6, num_layers=3)
    for ours, theirs in zip(gated.stack.cells, plain.cells):
        assert sorted(n for n, _ in ours.named_parameters()) == sorted(n for n, _ in theirs.named_parameters())
        theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 9, 3)
    h, finals = gated(x)
    expected, plain_finals = plain(x)
    torch.testing.assert_close(h, expected)
    for a, b in zip(finals, plain_finals):
        torch.testing.assert_close(a.c, b.c)
    with_gate = DepthGatedLSTM(3, 6, num_layers=3)
    with_gate.load_state_dict(gated.state_dict(), strict=False)  # the same LSTM weights, a depth gate added
    assert not torch.allclose(with_gate(x)[0], h)  # the memory from below changes the output


def test_the_depth_gate_adds_the_gated_cell_from_below():
    seqmem.seed(2)
    cell = DepthGatedLSTMCell(4 + 3, 3)  # x^{L+1} of 4 features, c below of 3
    params = cell.params()
    state = LSTMState(torch.randn(2, 3), torch.randn(2, 3))
    x, c_below = torch.randn(2, 4), torch.randn(2, 3)
    (_, c), _ = cell(state, torch.cat([x, c_below], dim=1))
    (_, c_plain), _ = depth_gated_step(params, state, x)  # the same step without the gate
    d = torch.sigmoid(x @ params["weight_xd"].T + params["bias_d"] + params["w_cd"] * state.c
                      + params["w_ld"] * c_below)
    torch.testing.assert_close(c, c_plain + d * c_below)
    with torch.no_grad():
        params["bias_d"].fill_(-1e4)  # a closed depth gate: nothing comes from below
    (_, c_closed), _ = cell(state, torch.cat([x, c_below], dim=1))
    torch.testing.assert_close(c_closed, c_plain)


def test_gradcheck_in_float64_reaches_every_parameter():
    seqmem.seed(3)
    model = DepthGatedLSTM(2, 3, num_layers=2).double()
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: model(inp)[0], (x,))
    model(x)[0].sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_input_says_what_was_expected():
    with pytest.raises(ValueError, match="must exceed hidden_size"):
        DepthGatedLSTMCell(3, 3)  # a layer below, yet no room for [x; c_below]
    cell = DepthGatedLSTMCell(7, 3)
    with pytest.raises(ValueError, match="7"):
        cell(cell.initial_state(2), torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"\(B, T, I\)"):
        DepthGatedLSTM(4, 3)(torch.randn(2, 5, 6))
