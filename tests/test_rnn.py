"""seqmem.rnn: the cell is torch's RNNCell, the layer is a drop-in for torch.nn.RNN.

Both of the layer's paths (fused and reference) are pinned to torch in outputs and gradients.
"""
import pytest
import torch

import seqmem


CONFIGS = [
    dict(),
    dict(num_layers=2),
    dict(bidirectional=True),
    dict(num_layers=3, bidirectional=True, batch_first=True),
    dict(nonlinearity="relu", bias=False),
    dict(num_layers=2, nonlinearity="relu", batch_first=True, bidirectional=True, bias=False),
]


def _pair(cfg, dev, fused, dtype=torch.float64):
    torch.manual_seed(0)
    ref = torch.nn.RNN(3, 5, **cfg).to(dev, dtype)
    ours = seqmem.RNN(3, 5, fused=fused, **cfg).to(dev, dtype)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _grads(module, *tensors):
    return [p.grad for p in module.parameters()] + [t.grad for t in tensors]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "reference"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_rnn_matches_torch_outputs_and_gradients(cfg, fused, dev):
    ref, ours = _pair(cfg, dev, fused)
    assert list(ours.state_dict()) == list(ref.state_dict())
    D = 2 if cfg.get("bidirectional") else 1
    L = cfg.get("num_layers", 1)
    shape = (4, 7, 3) if cfg.get("batch_first") else (7, 4, 3)
    outs = []
    for module in (ref, ours):
        g = torch.Generator().manual_seed(1)
        x = torch.randn(*shape, generator=g, dtype=torch.float64).to(dev).requires_grad_()
        h0 = torch.randn(L * D, 4, 5, generator=g, dtype=torch.float64).to(dev).requires_grad_()
        y, h = module(x, h0)
        # a loss that weighs every output differently, so that every gradient path is checked
        w = torch.randn(y.shape, generator=g, dtype=torch.float64).to(dev)
        ((y * w).sum() + h.pow(2).sum()).backward()
        outs.append((y, h, _grads(module, x, h0)))
    (y1, h1, g1), (y2, h2, g2) = outs
    assert y2.shape == y1.shape and h2.shape == h1.shape
    torch.testing.assert_close(y2, y1)
    torch.testing.assert_close(h2, h1)
    for a, b in zip(g2, g1):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "reference"])
def test_rnn_unbatched_and_default_state(fused, dev):
    ref, ours = _pair(dict(num_layers=2, bidirectional=True), dev, fused)
    x = torch.randn(6, 3, dtype=torch.float64, device=dev)
    y1, h1 = ref(x)
    y2, h2 = ours(x)
    assert y2.shape == (6, 10) and h2.shape == (4, 5)
    torch.testing.assert_close(y2, y1)
    torch.testing.assert_close(h2, h1)


def test_fused_and_reference_paths_agree_in_float32(dev):
    torch.manual_seed(2)
    a = seqmem.RNN(4, 8, num_layers=2, bidirectional=True).to(dev)
    b = seqmem.RNN(4, 8, num_layers=2, bidirectional=True, fused=False).to(dev)
    b.load_state_dict(a.state_dict())
    x = torch.randn(20, 3, 4, device=dev)
    torch.testing.assert_close(a(x)[0], b(x)[0], rtol=1e-5, atol=1e-5)


def test_rnn_dropout_only_in_training():
    torch.manual_seed(0)
    ref = torch.nn.RNN(3, 5, num_layers=2, dropout=0.5)
    ours = seqmem.RNN(3, 5, num_layers=2, dropout=0.5, fused=False)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 2, 3)
    ref.eval(); ours.eval()
    torch.testing.assert_close(ours(x)[0], ref(x)[0])
    ours.train()
    assert not torch.allclose(ours(x)[0], ref(x)[0])


def test_rnn_cell_is_torch_rnn_cell(dev):
    torch.manual_seed(0)
    ref = torch.nn.RNNCell(3, 5).to(dev, torch.float64)
    cell = seqmem.RNNCell(3, 5).to(dev, torch.float64)
    cell.load_state_dict(ref.state_dict())
    x = torch.randn(4, 3, dtype=torch.float64, device=dev)
    h = torch.randn(4, 5, dtype=torch.float64, device=dev)
    h_next, y = cell(h, x)
    torch.testing.assert_close(h_next, ref(x, h))
    assert y is h_next
    s = cell.initial_state(4)
    assert s.shape == (4, 5) and s.dtype == torch.float64 and s.device.type == dev.type and not s.any()


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
    xs = torch.tensor([[[1.0, 1.0]], [[2.0, 2.0]], [[3.0, 3.0]]])  # (T=3, B=1, I=2)
    ys, h = seqmem.unroll(cell, xs)
    torch.testing.assert_close(ys[:, 0], torch.tensor([[4.0, 4.0], [16.0, 16.0], [44.0, 44.0]]))
    torch.testing.assert_close(h[0], torch.tensor([22.0, 22.0]))


def test_naive_rnn_cell_softmax_output_is_a_distribution():
    cell = seqmem.NaiveRNNCell(3, 4, 5, output="softmax")
    h, y = cell(cell.initial_state(2), torch.randn(2, 3))
    assert y.shape == (2, 5)
    torch.testing.assert_close(y.sum(-1), torch.ones(2))


@pytest.mark.parametrize("make,match", [
    (lambda: seqmem.RNN(3, 5)(torch.randn(7, 4, 2)), "input_size=3"),
    (lambda: seqmem.RNN(3, 5)(torch.randn(3)), r"\(T, B, I\)"),
    (lambda: seqmem.RNN(3, 5)(torch.randn(7, 4, 3), torch.randn(1, 3, 5)), r"hx must have shape \(1, 4, 5\)"),
    (lambda: seqmem.RNN(3, 5, nonlinearity="sigmoid"), "nonlinearity must be one of"),
    (lambda: seqmem.RNN(3, 0), "hidden_size must be a positive int"),
    (lambda: seqmem.RNN(3, 5, num_layers=0), "num_layers"),
    (lambda: seqmem.RNNCell(3, 5)(torch.zeros(2, 5), torch.randn(2, 4)), r"x must have shape \(B, 3\)"),
    (lambda: seqmem.RNNCell(3, 5)(torch.zeros(3, 5), torch.randn(2, 3)), r"h must have shape \(2, 5\)"),
])
def test_bad_input_raises_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_packed_sequence_is_refused_clearly():
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(5, 2, 3), [5, 3])
    with pytest.raises(TypeError, match="PackedSequence"):
        seqmem.RNN(3, 5)(packed)


@pytest.mark.slow
def test_rnn_trains_on_parity():
    """A learning test: a small RNN learns running parity of 10 bits (seed 0, >= 99% accuracy)."""
    g = seqmem.seed(0)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = seqmem.RNN(1, 16, batch_first=True)
            self.head = torch.nn.Linear(16, 2)

        def forward(self, x):
            return self.head(self.rnn(x)[0])  # (B, T, 2)

    model = Model()

    def loss_fn(m, x, y):
        return torch.nn.functional.cross_entropy(m(x).reshape(-1, 2), y.reshape(-1))

    seqmem.fit(model, lambda i: seqmem.tasks.parity(64, 10, generator=g), loss_fn, steps=1500, lr=1e-2,
               progress=False)
    x, y = seqmem.tasks.parity(1000, 10, generator=g)
    acc = (model(x).argmax(-1) == y).float().mean().item()
    assert acc >= 0.99, acc


# -- seqmem.Stacked: any cell, stacked and bidirectional ---------------------------------------------

def test_stacked_rnn_cells_are_torch_rnn():
    torch.manual_seed(0)
    ref = torch.nn.RNN(3, 5, num_layers=2, bidirectional=True, batch_first=True).double()
    stacked = seqmem.Stacked(seqmem.RNNCell, 3, 5, num_layers=2, bidirectional=True, batch_first=True).double()
    assert len(stacked.cells) == 4 and stacked.cells[2].input_size == 10  # layer 1 reads both directions
    for k, cell in enumerate(stacked.cells):  # cells are layer-major, forward before backward
        suffix = f"_l{k // 2}" + ("_reverse" if k % 2 else "")
        cell.load_state_dict({name: getattr(ref, name + suffix) for name in cell.state_dict()})
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    h0 = torch.randn(4, 4, 5, dtype=torch.float64)
    y, finals = stacked(x, list(h0))
    y_ref, h_ref = ref(x, h0)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(torch.stack(finals), h_ref)
    y0, _ = stacked(x)  # no states: each cell's initial_state, zeros
    torch.testing.assert_close(y0, ref(x)[0])


def test_stacked_sizes_the_next_layer_by_the_cells_output_size():
    def factory(input_size, hidden_size):  # a cell whose output y (B, 7) is not its state (B, H)
        cell = seqmem.NaiveRNNCell(input_size, hidden_size, 7)
        cell.output_size = 7
        return cell

    stacked = seqmem.Stacked(factory, 3, 5, num_layers=2, bidirectional=True)
    assert [c.cell.input_size for c in stacked.cells] == [3, 3, 14, 14] and stacked.output_size == 14
    y, finals = stacked(torch.randn(6, 2, 3))
    assert y.shape == (6, 2, 14) and [s.shape for s in finals] == [(2, 5)] * 4


def test_stacked_dropout_only_in_training():
    torch.manual_seed(0)
    stacked = seqmem.Stacked(seqmem.RNNCell, 3, 5, num_layers=2, dropout=0.5)
    x = torch.randn(5, 2, 3)
    stacked.eval()
    torch.testing.assert_close(stacked(x)[0], stacked(x)[0])
    stacked.train()
    assert not torch.allclose(stacked(x)[0], stacked(x)[0])


@pytest.mark.parametrize("make,match", [
    (lambda s: s(torch.randn(7, 3)), r"input must have shape \(T, B, I\) with I = 3, got \(7, 3\)"),
    (lambda s: s(torch.randn(7, 2, 4)), r"got \(7, 2, 4\)"),
    (lambda s: s(torch.randn(7, 2, 3), [torch.zeros(2, 5)]), r"one state per cell \(2\), got 1"),
])
def test_stacked_bad_input_raises_clear_errors(make, match):
    stacked = seqmem.Stacked(seqmem.RNNCell, 3, 5, num_layers=2)
    with pytest.raises(ValueError, match=match):
        make(stacked)


@pytest.mark.parametrize("make", [
    lambda: seqmem.RNNCell(3, 4), lambda: seqmem.GRUCell(3, 4), lambda: seqmem.LSTMCell(3, 4),
    lambda: seqmem.LSTMCell(3, 4, variant="V"), lambda: seqmem.NestedLSTMCell(3, 4),
    lambda: seqmem.SCRNCell(3, 4, context_size=2)], ids=["rnn", "gru", "lstm", "lstm-V", "nested", "scrn"])
def test_cells_refuse_a_dtype_other_than_their_parameters(make):
    cell = make()
    state = cell.initial_state(2)
    with pytest.raises(ValueError, match=r"x must have the parameters' dtype torch.float32, got torch.float64"):
        cell(state, torch.randn(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="dtype torch.float32, got torch.int64"):
        cell(state, torch.ones(2, 3, dtype=torch.int64))


@pytest.mark.parametrize("layer", [seqmem.RNN, seqmem.LSTM, seqmem.GRU])
def test_layers_refuse_a_dtype_other_than_their_parameters(layer):
    module = layer(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"input must have the parameters' dtype torch.float32, got torch.float64"):
        module(torch.randn(5, 2, 3, dtype=torch.float64))
    h0 = torch.zeros(2, 2, 4, dtype=torch.float64)
    hx = h0 if layer is not seqmem.LSTM else (h0, h0)
    with pytest.raises(ValueError, match="dtype torch.float32, got torch.float64"):
        module(torch.randn(5, 2, 3), hx)
