"""seqmem.remedies (chapter 2): the IRNN initialisation, the residual (skip) RNN, and the
adding-problem models."""
import pytest
import torch

import seqmem
from seqmem import remedies


@pytest.mark.parametrize("make", [
    lambda: torch.nn.RNN(3, 5, nonlinearity="relu"),
    lambda: torch.nn.RNN(3, 5, num_layers=2, nonlinearity="relu", bidirectional=True),
    lambda: seqmem.RNN(3, 5, nonlinearity="relu"),
    lambda: seqmem.RNNCell(3, 5, nonlinearity="relu"),
    lambda: torch.nn.RNNCell(3, 5, nonlinearity="relu"),
])
def test_irnn_init_sets_identity_zero_biases_and_small_inputs(make):
    torch.manual_seed(0)
    rnn = remedies.irnn_init_(make(), input_std=1e-3)
    for name, p in rnn.named_parameters():
        if name.startswith("weight_hh"):
            torch.testing.assert_close(p, torch.eye(5), rtol=0, atol=0)
        elif name.startswith("bias"):
            assert torch.count_nonzero(p) == 0, name
        else:  # weight_ih: N(0, 0.001^2)
            assert name.startswith("weight_ih") and 0 < p.abs().max() < 5e-3 and p.std() > 2e-4, name


def test_irnn_keeps_its_state_without_input_and_has_identity_jacobian():
    """With W_hh = I and no bias, h_t = ReLU(h_{t-1}): a nonnegative state is kept unchanged."""
    rnn = remedies.irnn_init_(seqmem.RNN(2, 4, nonlinearity="relu"), scale=1.0).double()
    h0 = torch.tensor([[0.5, 0.0, 2.0, 1e-3]], dtype=torch.float64)
    _, h_n = rnn(torch.zeros(50, 1, 2, dtype=torch.float64), h0.unsqueeze(0))
    torch.testing.assert_close(h_n[0], h0, rtol=0, atol=0)
    h = torch.tensor([0.3, 0.2, 0.1, 0.4], dtype=torch.float64)  # all units active: ReLU' = 1
    J = torch.autograd.functional.jacobian(lambda s: rnn(torch.zeros(1, 1, 2, dtype=torch.float64),
                                                         s.view(1, 1, 4))[1].view(4), h)
    torch.testing.assert_close(J, torch.eye(4, dtype=torch.float64))


def test_irnn_scale_and_bad_modules():
    rnn = remedies.irnn_init_(torch.nn.RNN(2, 3, nonlinearity="relu"), scale=0.5)
    torch.testing.assert_close(rnn.weight_hh_l0.detach(), 0.5 * torch.eye(3))
    with pytest.raises(ValueError, match="an IRNN is a ReLU RNN.*got 'tanh'"):
        remedies.irnn_init_(torch.nn.RNN(2, 3))
    lin = torch.nn.Linear(2, 3)
    lin.nonlinearity = "relu"
    with pytest.raises(TypeError, match="expects a module with weight_hh parameters, got Linear"):
        remedies.irnn_init_(lin)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_skip_cell_is_the_residual_formula(nonlinearity, dev):
    torch.manual_seed(1)
    cell = remedies.SkipRNNCell(3, 4, nonlinearity=nonlinearity).to(dev)
    s, x = torch.randn(2, 4, device=dev), torch.randn(2, 3, device=dev)
    s_next, y = cell(s, x)
    a = torch.tanh if nonlinearity == "tanh" else torch.relu
    r = a(x @ cell.weight_ih.T + s @ cell.weight_hh.T + cell.bias)  # r^t = a(U x^t + V s^{t-1} + b)
    torch.testing.assert_close(s_next, s + r)  # s^t = s^{t-1} + r^t
    assert y is s_next and s_next.device.type == dev.type
    assert cell.initial_state(7).shape == (7, 4) and cell.initial_state(7).device.type == dev.type


def test_skip_cell_starts_with_a_small_recurrent_matrix():
    torch.manual_seed(0)
    cell = remedies.SkipRNNCell(2, 16, recurrent_scale=0.1)
    assert cell.weight_hh.abs().max() <= 0.1 / 4 + 1e-7 < cell.weight_ih.abs().max()


def test_skip_rnn_gradcheck_and_jacobian_is_identity_plus_correction():
    torch.manual_seed(2)
    layer = seqmem.Stacked(remedies.SkipRNNCell, 2, 3).double()  # a skip RNN layer: the cell in Stacked
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)  # (B, T, I)
    s0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, s: layer(x, [s])[0], (x, s0))
    c = layer.cells[0]
    s, xt = torch.randn(3, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda s: c(s.view(1, 3), xt.view(1, 2))[0].view(3), s)
    a_prime = 1 - torch.tanh(c.weight_ih @ xt + c.weight_hh @ s + c.bias) ** 2
    torch.testing.assert_close(J, torch.eye(3, dtype=torch.float64) + torch.diag(a_prime) @ c.weight_hh)


def test_skip_rnn_layer_matches_a_loop():
    torch.manual_seed(3)
    layer = seqmem.Stacked(remedies.SkipRNNCell, 2, 5)
    x = torch.randn(3, 6, 2)  # (B, T, I)
    out, (s_n,) = layer(x)
    s, outs = torch.zeros(3, 5), []
    for t in range(6):
        s, _ = layer.cells[0](s, x[:, t])
        outs.append(s)
    torch.testing.assert_close(out, torch.stack(outs, dim=1))
    torch.testing.assert_close(s_n, s)


def test_skip_cell_checks_its_arguments():
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        remedies.SkipRNNCell(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size must be a positive int, got 0"):
        remedies.SkipRNNCell(2, 0)
    cell = remedies.SkipRNNCell(2, 3)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\), got \(4, 3\)"):
        cell(torch.zeros(4, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"s must have shape \(4, 3\), got \(4, 2\)"):
        cell(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="x must have the parameters' dtype torch.float32, got torch.float64"):
        cell(torch.zeros(4, 3), torch.zeros(4, 2, dtype=torch.float64))  # not a RuntimeError from the matmul


@pytest.mark.parametrize("kind", remedies.ADDING_MODELS)
def test_adding_models_read_the_last_step(kind):
    torch.manual_seed(0)
    model = remedies.adding_model(kind, hidden_size=8)
    x, _ = seqmem.tasks.adding_problem(5, 7, torch.Generator().manual_seed(0))
    y, _ = model(x)
    assert y.shape == (5, 1)
    out, _ = model.rnn(x)  # (B, T, H)
    torch.testing.assert_close(y, model.head(out[:, -1]))
    if kind == "irnn":
        torch.testing.assert_close(model.rnn.weight_hh_l0.detach(), torch.eye(8))
    if kind.startswith("skip"):
        assert model.rnn.cells[0].nonlinearity == ("relu" if kind == "skip-relu" else "tanh")
        increments = out.diff(dim=1)  # (B, T - 1, H): r^t = s^t - s^{t-1}
        assert kind == "skip" or increments.min() >= 0  # a ReLU skip RNN only ever adds
    with pytest.raises(ValueError, match="kind must be one of"):
        remedies.adding_model("lstm")


def test_train_adding_is_seeded_and_records_held_out_mse():
    runs = [remedies.train_adding("irnn", T=8, steps=20, hidden_size=8, eval_every=10, seed=4) for _ in range(2)]
    (m1, h1), (m2, h2) = runs
    assert h1.loss == h2.loss and len(h1.loss) == 20
    assert [s for s, _ in h1.evals] == [10, 20] and h1.evals == h2.evals
    with pytest.raises(ValueError, match="optimizer must be one of"):
        remedies.train_adding("tanh", T=8, steps=1, optimizer="lbfgs")


@pytest.mark.slow
@pytest.mark.parametrize("kind,steps,threshold", [("irnn", 2000, 0.1), ("skip-relu", 600, 0.03)])
def test_remedies_learn_a_short_adding_problem(kind, steps, threshold):
    """Learning tests at T = 20, 32 units, Adam 1e-3, clip 1, seed 0, against the baseline 1/6:
    the IRNN below 0.1 after 2000 steps, the ReLU skip RNN below 0.03 after 600."""
    _, history = remedies.train_adding(kind, T=20, steps=steps, hidden_size=32, eval_every=steps, seed=0)
    assert history.evals[-1][1] < threshold, history.evals
