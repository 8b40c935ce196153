"""seqmem.rnn (chapter 1): rnn_step keeps the step convention, the naive cell is the slide's worked
example, and the RNN learns a task that needs its memory.

The cell and the layer, drop-ins for torch.nn.RNNCell and RNN, are pinned in tests/test_dropin.py.
"""
import pytest
import torch

import seqmem
from helpers import gen
from seqmem.rnn import rnn_step


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "identity"])
def test_rnn_step_is_the_formula_in_the_step_convention(nonlinearity):
    g = gen(1)
    params = {"weight_ih": torch.randn(5, 3, generator=g), "weight_hh": torch.randn(5, 5, generator=g),
              "bias_ih": torch.randn(5, generator=g), "bias_hh": torch.randn(5, generator=g)}
    h, x = torch.randn(4, 5, generator=g), torch.randn(4, 3, generator=g)
    a = x @ params["weight_ih"].T + params["bias_ih"] + h @ params["weight_hh"].T + params["bias_hh"]
    sigma = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda v: v}[nonlinearity]
    h_next, y = rnn_step(params, h, x, nonlinearity)  # step(params, state, x) -> (state, y)
    torch.testing.assert_close(h_next, sigma(a))
    assert y is h_next
    no_bias = {k: v for k, v in params.items() if not k.startswith("bias")}
    torch.testing.assert_close(rnn_step(no_bias, h, x, nonlinearity)[0],
                               sigma(x @ params["weight_ih"].T + h @ params["weight_hh"].T))


def test_rnn_cell_gradcheck():
    torch.manual_seed(0)
    cell = seqmem.RNNCell(2, 3).double()
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h, x: cell(h, x)[0], (h, x))


def test_naive_rnn_cell_worked_example():
    # Seed 003, pages 9-10: weights 1, no bias, linear activations.
    cell = seqmem.NaiveRNNCell(2, 2, 2, bias=False, nonlinearity="identity")
    with torch.no_grad():
        for p in cell.parameters():
            p.fill_(1.0)
    xs = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])  # (B=1, T=3, I=2)
    ys, h = seqmem.unroll(cell, xs)
    torch.testing.assert_close(ys[0], torch.tensor([[4.0, 4.0], [16.0, 16.0], [44.0, 44.0]]))
    torch.testing.assert_close(h[0], torch.tensor([22.0, 22.0]))


def test_naive_rnn_cell_softmax_output_is_a_distribution():
    cell = seqmem.NaiveRNNCell(3, 4, 5, output="softmax")
    assert cell.output_size == 5 and cell.hidden_size == 4
    h, y = cell(cell.initial_state(2), torch.randn(2, 3))
    assert y.shape == (2, 5) and h.shape == (2, 4)
    torch.testing.assert_close(y.sum(-1), torch.ones(2))
    torch.testing.assert_close(y, torch.softmax(cell.out(h), -1))  # y = g(W^o h')


@pytest.mark.parametrize("make,match", [
    (lambda: seqmem.RNNCell(3, 5, nonlinearity="sigmoid"), "nonlinearity must be one of"),
    (lambda: seqmem.NaiveRNNCell(3, 5, 2, output="relu"), "output must be one of"),
    (lambda: seqmem.RNNCell(3, 0), "hidden_size must be a positive int"),
    (lambda: seqmem.RNNCell(3, 5)(torch.zeros(2, 5), torch.randn(2, 4)), r"x must have shape \(B, 3\)"),
    (lambda: seqmem.RNNCell(3, 5)(torch.zeros(3, 5), torch.randn(2, 3)), r"h must have shape \(2, 5\)"),
])
def test_bad_input_raises_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.slow
def test_rnn_learns_running_parity():
    """Learning: seed 0, 1500 Adam steps (lr 1e-2) of 64 strings of 10 bits, H = 16: the running
    parity of 1,000 fresh strings is right at >= 99% of steps. Each bit of the answer is a coin
    flip given the current input alone, so a model without memory scores 50%."""
    g = seqmem.seed(0)
    model = seqmem.Tagger(seqmem.RNN(1, 16, batch_first=True), 2)
    seqmem.fit(model, lambda i: seqmem.tasks.parity(64, 10, generator=g), seqmem.heads.tagging_loss, steps=1500,
               lr=1e-2, progress=False)
    x, y = seqmem.tasks.parity(1000, 10, generator=g)
    with torch.no_grad():
        acc = seqmem.metrics.accuracy(model(x)[0], y)
    assert acc >= 0.99, acc
