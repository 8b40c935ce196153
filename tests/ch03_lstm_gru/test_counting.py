"""seqmem.tasks.counting (chapter 3): the lecture's counting memory, its slide, the hand-built cell
that reproduces the slide, and the job on random sequences."""
import pytest
import torch

import seqmem
from helpers import gen
from seqmem import tasks


def test_counting_memory_targets_follow_the_rules():
    x, y = tasks.counting_memory(50, 40, generator=gen(1))
    assert x.shape == (50, 40, 3) and y.shape == (50, 40)
    for b in range(50):  # the rules of the slide, one step at a time in plain Python
        memory = 0.0
        for t in range(40):
            value, x2, x3 = x[b, t].tolist()
            assert value in range(1, 10) and x2 in (-1, 0, 1) and x3 in (0, 1)
            memory = 0.0 if x2 == -1 else memory + (value if x2 == 1 else 0.0)
            assert y[b, t].item() == (memory if x3 == 1 else 0.0)


def test_counting_memory_rates_seed_and_device(dev):
    x, _ = tasks.counting_memory(400, 50, p_write=0.3, p_reset=0.1, p_read=0.2, generator=gen(2))
    x2, x3 = x[..., 1], x[..., 2]
    assert abs((x2 == 1).float().mean() - 0.3) < 0.02 and abs((x2 == -1).float().mean() - 0.1) < 0.02
    assert abs(x3.mean() - 0.2) < 0.02
    a = tasks.counting_memory(4, 9, generator=gen(3))
    b = tasks.counting_memory(4, 9, generator=gen(3), device=dev)
    assert b[0].device.type == dev.type
    torch.testing.assert_close(a[0], b[0].cpu())
    torch.testing.assert_close(a[1], b[1].cpu())


def test_the_hand_built_cell_solves_counting_memory():
    x, y = tasks.counting_memory(100, 30, generator=gen(4))
    with torch.no_grad():
        ys, _ = seqmem.unroll(tasks.counting_cell(dtype=torch.float64), x.double())  # (B, T, 1)
    # exact up to the gates' saturation: σ(10) = 0.99995 per kept step, σ(-10) leaking in
    torch.testing.assert_close(ys[..., 0], y.double(), atol=0.05, rtol=1e-3)


def test_counting_targets_are_the_slides_outputs():
    shown = tasks.counting_targets(tasks.SLIDE_INPUTS[None])  # (1, 9)
    torch.testing.assert_close(shown[0], tasks.SLIDE_OUTPUTS)
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, 3\), got \(9, 3\)"):
        tasks.counting_targets(tasks.SLIDE_INPUTS)


@pytest.mark.parametrize("kw,match", [(dict(p_write=0.8, p_reset=0.3), "p_write \\+ p_reset <= 1"),
                                      (dict(p_read=1.5), r"p_read in \[0, 1\]"),
                                      (dict(max_value=0), "max_value must be a positive int")])
def test_counting_memory_rejects_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        tasks.counting_memory(2, 5, **kw)


# ------------------------------------------------------------------ the lecture's counting cell


def run_slide(cell, dtype=torch.float32):
    state, cs, ys = cell.initial_state(1), [], []
    with torch.no_grad():
        for x in tasks.SLIDE_INPUTS.to(dtype):
            state, y = cell(state, x[None])  # x: (1, 3)
            cs.append(state.c[0, 0])
            ys.append(y[0, 0])
    return torch.stack(cs), torch.stack(ys)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_counting_cell_reproduces_the_slide(dtype):
    c, y = run_slide(tasks.counting_cell(dtype=dtype), dtype)
    # the gates saturate at σ(±10), not at 0 and 1: 7 kept for two steps decays to 6.9995
    torch.testing.assert_close(c, tasks.SLIDE_MEMORY.to(dtype), atol=1e-3, rtol=0)
    torch.testing.assert_close(y, tasks.SLIDE_OUTPUTS.to(dtype), atol=1e-3, rtol=0)


def test_counting_cell_on_the_slides_walkthrough():
    # pages 21-25 start from memory 0 with (3, 1, 0): memory 3, 7, 7, 7 (output 7), then reset to 0
    cell = tasks.counting_cell()
    state, rows = cell.initial_state(1), []
    with torch.no_grad():
        for x in [[3.0, 1, 0], [4, 1, 0], [2, 0, 0], [1, 0, 1], [3, -1, 0]]:
            state, y = cell(state, torch.tensor([x], dtype=torch.float32))
            rows.append((state.c.item(), y.item()))
    torch.testing.assert_close(torch.tensor(rows), torch.tensor([[3.0, 0], [7, 0], [7, 0], [7, 7], [0, 0]]),
                               atol=1e-3, rtol=0)


def test_counting_cell_weights_fit_an_lstm_cell_and_gate_as_the_slide_says():
    weights = tasks.counting_cell_weights(dtype=torch.float64)
    reference = seqmem.LSTMCell(3, 1).state_dict()
    assert {k: tuple(v.shape) for k, v in weights.items()} == {k: tuple(v.shape) for k, v in reference.items()}
    assert all(w.dtype == torch.float64 for w in weights.values())
    W, b = weights["weight_ih"], weights["bias_ih"] + weights["bias_hh"]
    gate = lambda row, x: torch.sigmoid(W[row] @ torch.tensor(x, dtype=torch.float64) + b[row]).item()
    i, f, o = 0, 1, 3  # torch's order i, f, g, o
    assert gate(i, [5.0, 1, 0]) > 0.9999 and gate(i, [5.0, 0, 0]) < 1e-4  # write only when x2 = 1
    assert gate(f, [5.0, 0, 0]) > 0.9999 and gate(f, [5.0, -1, 0]) < 1e-4  # forget only when x2 = -1
    assert gate(o, [5.0, 0, 1]) > 0.9999 and gate(o, [5.0, 0, 0]) < 1e-4  # show only when x3 = 1
    torch.testing.assert_close(W[2], torch.tensor([1.0, 0, 0], dtype=torch.float64))  # the cell input is x1
    assert torch.all(weights["weight_hh"] == 0)  # the slide's gates do not read h


def test_counting_cell_is_linear_where_the_slide_is_and_follows_the_device(dev):
    cell = tasks.counting_cell(device=dev)
    assert cell.weight_ih.device.type == dev.type
    state = cell.initial_state(1)
    with torch.no_grad():  # 50 written at once is kept as 50: no tanh squashes the memory or the output
        state, _ = cell(state, torch.tensor([[50.0, 1, 0]], device=dev))
        state, y = cell(state, torch.tensor([[0.0, 0, 1]], device=dev))
    assert abs(y.item() - 50) < 0.01

