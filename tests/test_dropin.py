"""seqmem.RNN, GRU and LSTM and their cells are drop-ins for torch's: the same arguments, state_dict
keys, outputs and gradients, on both paths (torch's fused kernel, and the from-scratch step
functions, through run_stacked for the layers).

One parametrized file for the three kinds (chapters 1 and 3): each test runs for every kind.
"""
import pytest
import torch

import seqmem
from helpers import LAYER_CONFIGS, grads, randn, torch_pair

I, H = 3, 5
KINDS = {"rnn": (torch.nn.RNN, seqmem.RNN), "gru": (torch.nn.GRU, seqmem.GRU), "lstm": (torch.nn.LSTM, seqmem.LSTM)}
# the RNN's own configurations: its ReLU kernel, with and without bias
RNN_CONFIGS = [dict(nonlinearity="relu", bias=False),
               dict(num_layers=2, nonlinearity="relu", batch_first=True, bidirectional=True, bias=False)]
CASES = [(kind, cfg) for kind in KINDS for cfg in LAYER_CONFIGS + (RNN_CONFIGS if kind == "rnn" else [])]


def _name(cfg):
    return ",".join(f"{k}={v}" for k, v in cfg.items()) or "default"


def _pair(kind, cfg, dev, fused):
    return torch_pair(*KINDS[kind], I, H, cfg, dev, fused)


def _state(kind, g, LD, B, dev):
    """A random initial state in torch's form: h_0, or (h_0, c_0) for an LSTM; float64 leaves."""
    h0 = randn(g, LD, B, H, dev=dev)
    return (h0, randn(g, LD, B, H, dev=dev)) if kind == "lstm" else h0


def _parts(state):
    return list(state) if isinstance(state, tuple) else [state]


# -- the cells ------------------------------------------------------------------------------------------

CELLS = {"rnn": (torch.nn.RNNCell, seqmem.RNNCell), "gru": (torch.nn.GRUCell, seqmem.GRUCell),
         "lstm": (torch.nn.LSTMCell, seqmem.LSTMCell)}
CELL_CASES = [(kind, fused, bias) for kind in CELLS for fused in ((None,) if kind == "rnn" else (True, False))
              for bias in (True, False)]


@pytest.mark.parametrize("kind,fused,bias", CELL_CASES,
                         ids=[f"{k}-{'scratch' if f is False else 'fused' if f else 'cell'}-bias={b}" for k, f, b in CELL_CASES])
def test_cell_is_torchs_cell(kind, fused, bias, dev):
    torch.manual_seed(0)
    ref = CELLS[kind][0](I, H, bias=bias).to(dev, torch.float64)
    cell = CELLS[kind][1](I, H, bias=bias, **({} if fused is None else {"fused": fused})).to(dev, torch.float64)
    assert list(cell.state_dict()) == list(ref.state_dict())
    cell.load_state_dict(ref.state_dict())
    results = []
    for module in (ref, cell):
        g = torch.Generator().manual_seed(1)
        x, h, c = randn(g, 4, I, dev=dev), randn(g, 4, H, dev=dev), randn(g, 4, H, dev=dev)
        state = (h, c) if kind == "lstm" else h
        if module is ref:
            new = ref(x, state)  # torch's cells read (x, state) and return the state
        else:
            new, y = cell(seqmem.LSTMState(h, c) if kind == "lstm" else h, x)  # ours: the lecture's f
            assert y is (new.h if kind == "lstm" else new)
            assert isinstance(new, seqmem.LSTMState) or kind != "lstm"
        w = torch.randn(4, H, generator=g, dtype=torch.float64).to(dev)  # weigh each output differently
        loss = sum((p * w).sum() if k == 0 else p.pow(2).sum() for k, p in enumerate(_parts(new)))
        loss.backward()
        results.append([*_parts(new), *grads(module, x, *_parts(state))])
    for a, b in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(a, b)


# -- the layers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "scratch"])
@pytest.mark.parametrize("kind,cfg", CASES, ids=[f"{k}-{_name(c)}" for k, c in CASES])
def test_layer_matches_torch_outputs_and_gradients(kind, cfg, fused, dev):
    ref, ours = _pair(kind, cfg, dev, fused)
    assert list(ours.state_dict()) == list(ref.state_dict())
    LD = cfg.get("num_layers", 1) * (2 if cfg.get("bidirectional") else 1)
    shape = (4, 7, I) if cfg.get("batch_first") else (7, 4, I)
    results = []
    for module in (ref, ours):
        g = torch.Generator().manual_seed(1)
        x, hx = randn(g, *shape, dev=dev), _state(kind, g, LD, 4, dev)
        y, state = module(x, hx)
        w = torch.randn(y.shape, generator=g, dtype=torch.float64).to(dev)  # weigh each output differently
        loss = (y * w).sum() + sum(p.pow(k + 2).sum() for k, p in enumerate(_parts(state)))
        loss.backward()
        results.append([y, *_parts(state), *grads(module, x, *_parts(hx))])
    assert [t.shape for t in results[1]] == [t.shape for t in results[0]]
    for a, b in zip(results[1], results[0]):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "scratch"])
@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_input_and_default_state(kind, fused, dev):
    ref, ours = _pair(kind, dict(num_layers=2, bidirectional=True), dev, fused)
    x = torch.randn(6, I, dtype=torch.float64, device=dev)
    (y1, s1), (y2, s2) = ref(x), ours(x)
    assert y2.shape == (6, 2 * H) and all(p.shape == (4, H) for p in _parts(s2))
    for a, b in zip([y2, *_parts(s2)], [y1, *_parts(s1)]):
        torch.testing.assert_close(a, b)
    hx = tuple(torch.randn(4, H, dtype=torch.float64, device=dev) for _ in _parts(s1))
    hx = hx if kind == "lstm" else hx[0]
    torch.testing.assert_close(ours(x, hx)[0], ref(x, hx)[0])


@pytest.mark.parametrize("kind", KINDS)
def test_fused_and_scratch_paths_agree_in_float32(kind, dev):
    torch.manual_seed(2)
    a = KINDS[kind][1](4, 8, num_layers=2, bidirectional=True, batch_first=True).to(dev)
    b = KINDS[kind][1](4, 8, num_layers=2, bidirectional=True, batch_first=True, fused=False).to(dev)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 20, 4, device=dev)
    (ya, sa), (yb, sb) = a(x), b(x)
    for u, v in zip([ya, *_parts(sa)], [yb, *_parts(sb)]):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)


# -- dropout: what it must do -------------------------------------------------------------------------

@pytest.mark.parametrize("fused", [True, False], ids=["fused", "scratch"])
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_zero_is_the_dropout_free_layer_and_eval_switches_it_off(kind, fused):
    ref, ours = _pair(kind, dict(num_layers=2), "cpu", fused)  # torch's layer, no dropout
    x = torch.randn(5, 2, I, dtype=torch.float64)
    without = ref(x)[0]
    p0 = KINDS[kind][1](I, H, num_layers=2, dropout=0.0, fused=fused).double()
    p0.load_state_dict(ref.state_dict())
    p0.train()
    torch.testing.assert_close(p0(x)[0], without)  # p = 0: nothing dropped, even in training
    half = KINDS[kind][1](I, H, num_layers=2, dropout=0.5, fused=fused).double()
    half.load_state_dict(ref.state_dict())
    half.eval()
    torch.testing.assert_close(half(x)[0], without)  # in eval mode dropout does nothing


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "scratch"])
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_one_feeds_zeros_to_the_layers_above_the_first(kind, fused):
    """With p = 1 in training, layer 1 reads zeros: its output is its own cell run over zero input."""
    torch.manual_seed(3)
    layer = KINDS[kind][1](I, H, num_layers=2, dropout=1.0, fused=fused).double().train()
    x = torch.randn(6, 2, I, dtype=torch.float64)
    y, state = layer(x)
    top = KINDS[kind][1](H, H).double()  # layer 1 alone, reading the H zeros that dropout leaves
    top.load_state_dict({name.replace("_l1", "_l0"): p for name, p in layer.state_dict().items() if "_l1" in name})
    y_top, state_top = top(torch.zeros(6, 2, H, dtype=torch.float64))
    torch.testing.assert_close(y, y_top)
    for a, b in zip(_parts(state), _parts(state_top)):
        torch.testing.assert_close(a[1], b[0])  # layer 1's final state
    assert not torch.allclose(layer.eval()(x)[0], y_top)  # in eval mode layer 1 reads layer 0 again


# -- errors -------------------------------------------------------------------------------------------

ERRORS = [
    ("rnn", lambda: seqmem.RNN(3, 5)(torch.randn(7, 4, 3), torch.randn(1, 3, 5)), r"hx must have shape \(1, 4, 5\)"),
    ("gru", lambda: seqmem.GRU(3, 5)(torch.randn(7, 4, 3), torch.randn(1, 3, 5)), r"hx must have shape \(1, 4, 5\)"),
    ("rnn", lambda: seqmem.RNN(3, 5, nonlinearity="sigmoid"), "nonlinearity must be one of"),
    ("lstm", lambda: seqmem.LSTM(3, 5)(torch.randn(7, 4, 3), torch.zeros(1, 4, 5)), r"hx must be a tuple \(h_0, c_0\)"),
    ("lstm", lambda: seqmem.LSTM(3, 5)(torch.randn(7, 4, 3), (torch.zeros(1, 4, 5), torch.zeros(1, 3, 5))),
     r"c_0 must have shape \(1, 4, 5\).*got \(1, 3, 5\)"),
    ("lstm", lambda: seqmem.LSTM(3, 5, bidirectional=True)(torch.randn(7, 4, 3), (torch.zeros(1, 4, 5),) * 2),
     r"h_0 must have shape \(2, 4, 5\)"),
    ("lstm", lambda: seqmem.LSTM(3, 5, proj_size=2), "does not support proj_size"),
    ("lstm", lambda: seqmem.LSTM(3, 5, variant="GRU"), "variant must be one of"),
]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_sizes_and_inputs_raise_clear_errors(kind):
    layer = KINDS[kind][1]
    for make, match in [(lambda: layer(3, 5)(torch.randn(7, 4, 2)), "input_size=3"),
                        (lambda: layer(3, 5)(torch.randn(3)), r"\(T, B, I\)"),
                        (lambda: layer(3, 5, batch_first=True)(torch.randn(3)), r"\(B, T, I\)"),
                        (lambda: layer(3, 0), "hidden_size must be a positive int"),
                        (lambda: layer(3, 5, num_layers=0), "num_layers must be a positive int"),
                        (lambda: layer(3, 5, dropout=2), r"dropout must be a number in \[0, 1\]")]:
        with pytest.raises(ValueError, match=match):
            make()


@pytest.mark.parametrize("kind,make,match", ERRORS, ids=[f"{k}-{i}" for i, (k, *_) in enumerate(ERRORS)])
def test_each_layer_names_its_own_state_in_errors(kind, make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("kind", KINDS)
def test_layers_refuse_a_dtype_other_than_their_parameters(kind):
    module = KINDS[kind][1](3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"input must have the parameters' dtype torch.float32, got torch.float64"):
        module(torch.randn(5, 2, 3, dtype=torch.float64))
    h0 = torch.zeros(2, 2, 4, dtype=torch.float64)
    hx = (h0, h0) if kind == "lstm" else h0
    with pytest.raises(ValueError, match=r"(hx|h_0) must have the parameters' dtype torch.float32, got torch.float64"):
        module(torch.randn(5, 2, 3), hx)


# -- packed sequences: torch's way of passing a padded batch ------------------------------------------

PACKED_CONFIGS = [dict(), dict(num_layers=2, bidirectional=True), dict(bidirectional=True, batch_first=True)]
PACKED_CASES = [(kind, cfg) for kind in KINDS for cfg in PACKED_CONFIGS]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "scratch"])
@pytest.mark.parametrize("kind,cfg", PACKED_CASES, ids=[f"{k}-{_name(c)}" for k, c in PACKED_CASES])
def test_packed_input_matches_torch(kind, cfg, fused, dev):
    """Unsorted lengths (enforce_sorted=False), an initial state given: the packed output, the final
    state at each sequence's true end, and every gradient are torch's."""
    ref, ours = _pair(kind, cfg, dev, fused)
    LD = cfg.get("num_layers", 1) * (2 if cfg.get("bidirectional") else 1)
    lengths = torch.tensor([3, 7, 1, 5])  # unsorted: the packed order differs from the batch's
    results = []
    for module in (ref, ours):
        g = torch.Generator().manual_seed(1)
        x, hx = randn(g, 4, 7, I, dev=dev), _state(kind, g, LD, 4, dev)  # x: (B, T, I)
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, state = module(packed, hx)
        assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)  # (B, T, D * H)
        w = torch.randn(y.shape, generator=g, dtype=torch.float64).to(dev)
        loss = (y * w).sum() + sum(p.pow(k + 2).sum() for k, p in enumerate(_parts(state)))
        loss.backward()
        results.append([y, out.batch_sizes, *_parts(state), *grads(module, x, *_parts(hx))])
    for a, b in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "scratch"])
@pytest.mark.parametrize("kind", KINDS)
def test_packed_input_gives_each_sequence_what_it_gets_alone(kind, fused):
    """Without an initial state: the final state of each sequence of a packed batch is the one it
    gets run alone, for both directions of both layers."""
    torch.manual_seed(4)
    layer = KINDS[kind][1](I, H, num_layers=2, bidirectional=True, batch_first=True, fused=fused).double()
    lengths = torch.tensor([2, 6, 4])
    x = torch.randn(3, 6, I, dtype=torch.float64)
    out, state = layer(torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
    for b, n in enumerate(lengths.tolist()):
        y_b, state_b = layer(x[b:b + 1, :n])
        torch.testing.assert_close(y[b:b + 1, :n], y_b)
        assert not y[b, n:].any()  # pad_packed_sequence's zeros after the end
        for part, part_b in zip(_parts(state), _parts(state_b)):
            torch.testing.assert_close(part[:, b:b + 1], part_b)


def test_packed_input_checks_its_data():
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(5, 2, 4), [5, 3])
    with pytest.raises(ValueError, match=r"PackedSequence's data must have shape \(N, input_size=3\), got \(8, 4\)"):
        seqmem.GRU(3, 5)(packed)
    with pytest.raises(ValueError, match="hx must have shape"):
        seqmem.GRU(4, 5)(packed, torch.zeros(1, 3, 5))
