"""seqmem.lstm (chapter 3): NP is torch's LSTM cell, and every Greff et al. variant is V with one change.

Pinned here (NP's cell and layer against torch.nn.LSTMCell and LSTM, both paths, are in
tests/test_dropin.py): each variant's parameters (names, shapes, counts); each variant's equations
against the test's own reading of Greff et al. (2017) and against V with the removed part switched
off; gradcheck in float64; state passing (FGR's gates included); every variant learns delayed
echo; the forget-bias initialiser.
"""
import pytest
import torch

import seqmem
from helpers import echo_accuracy, randn
from seqmem.lstm import VARIANTS, lstm_step

ALL = list(VARIANTS)
I, H = 3, 5


# -- the cell's state ---------------------------------------------------------------------------------

def test_lstm_cell_initial_state(dev):
    for variant, n in (("NP", 2), ("FGR", 3)):
        cell = seqmem.LSTMCell(I, H, variant=variant).to(dev, torch.float64)
        s = cell.initial_state(4)
        assert len(s) == n and s.h.shape == (4, H) and s.c.shape == (4, H)
        assert all(t.dtype == torch.float64 and t.device.type == dev.type and not t.any() for t in s)
    assert seqmem.LSTMCell(I, H, variant="FGR").initial_state(2).gates.shape == (2, 3 * H)


# -- any cell stacked: LSTMCell in seqmem.Stacked is torch's LSTM -----------------------------------

def test_stacked_lstm_cells_are_torch_lstm():
    """The generic machinery: seqmem.Stacked over LSTMCell is torch's 2-layer bidirectional LSTM."""
    torch.manual_seed(0)
    ref = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True).double()
    stacked = seqmem.Stacked(lambda i, h: seqmem.LSTMCell(i, h, fused=False), I, H, num_layers=2,
                             bidirectional=True).double()
    for k, cell in enumerate(stacked.cells):
        suffix = f"_l{k // 2}" + ("_reverse" if k % 2 else "")
        cell.load_state_dict({name: getattr(ref, name + suffix) for name in cell.state_dict()})
    x = torch.randn(4, 6, I, dtype=torch.float64)
    y, finals = stacked(x)
    y_ref, (h_ref, c_ref) = ref(x)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(torch.stack([s.h for s in finals]), h_ref)
    torch.testing.assert_close(torch.stack([s.c for s in finals]), c_ref)


# -- the variants: parameters -----------------------------------------------------------------------

# The layout, written out: row blocks of weight_ih / weight_hh / biases (torch's order i, f, z=g, o)
# and the peephole rows (order i, f, o) of each variant.
ROWS = {"V": "ifzo", "NIG": "fzo", "NFG": "izo", "NOG": "ifz", "NIAF": "ifzo", "NOAF": "ifzo", "NP": "ifzo",
        "CIFG": "izo", "FGR": "ifzo"}
PEEPHOLES = {"V": "ifo", "NIG": "fo", "NFG": "io", "NOG": "if", "NIAF": "ifo", "NOAF": "ifo", "NP": "",
             "CIFG": "io", "FGR": "ifo"}


def _expected_shapes(variant, bias=True, i=I, h=H):
    G = len(ROWS[variant])
    shapes = {"weight_ih": (G * h, i), "weight_hh": (G * h, h)}
    if bias:
        shapes.update(bias_ih=(G * h,), bias_hh=(G * h,))
    if PEEPHOLES[variant]:
        shapes["peephole"] = (len(PEEPHOLES[variant]), h)
    if variant == "FGR":
        shapes["weight_gg"] = (3 * h, 3 * h)
    return shapes


@pytest.mark.parametrize("variant", ALL)
def test_each_variant_has_exactly_its_parameters(variant):
    cell = seqmem.LSTMCell(I, H, variant=variant)
    assert {n: tuple(p.shape) for n, p in cell.named_parameters()} == _expected_shapes(variant)
    # I = 3, H = 5: torch's LSTM has 4 blocks of H (I + H + 2) = 200; peepholes add 5 each; a removed
    # gate takes a block of 50 away; FGR adds nine 5 x 5 matrices
    count = {"NP": 200, "V": 215, "NIAF": 215, "NOAF": 215, "FGR": 215 + 225,
             "NIG": 160, "NFG": 160, "NOG": 160, "CIFG": 160}
    assert sum(p.numel() for p in cell.parameters()) == count[variant]
    no_bias = seqmem.LSTMCell(I, H, bias=False, variant=variant)
    assert {n: tuple(p.shape) for n, p in no_bias.named_parameters()} == _expected_shapes(variant, bias=False)


@pytest.mark.parametrize("variant", ["V", "CIFG", "FGR"])
def test_variant_layer_parameter_names(variant):
    layer = seqmem.LSTM(I, H, num_layers=2, bidirectional=True, variant=variant)
    want = {}
    for layer_k, layer_in in ((0, I), (1, 2 * H)):
        for suffix in ("", "_reverse"):
            want.update({f"{n}_l{layer_k}{suffix}": s for n, s in _expected_shapes(variant, i=layer_in).items()})
    assert {n: tuple(p.shape) for n, p in layer.named_parameters()} == want


# -- the variants: equations ------------------------------------------------------------------------

def greff(xs, params, variant, g=torch.tanh, h_act=torch.tanh):
    """Greff et al.'s equations, step by step, with one named matrix per gate: the test's reference."""
    rows, peep = ROWS[variant], PEEPHOLES[variant]
    B, n = xs.shape[1], params["weight_hh"].shape[1]
    W = dict(zip(rows, params["weight_ih"].split(n)))  # W_a (H, I)
    R = dict(zip(rows, params["weight_hh"].split(n)))  # R_a (H, H)
    b = dict(zip(rows, (params["bias_ih"] + params["bias_hh"]).split(n)))  # b_a (H,)
    p = dict(zip(peep, params["peephole"])) if peep else {}
    blocks = params["weight_gg"].split(n) if variant == "FGR" else None
    h, c = xs.new_zeros(B, n), xs.new_zeros(B, n)
    prev = {a: xs.new_zeros(B, n) for a in "ifo"}  # the gates' previous activations (FGR)
    if variant == "NIAF":
        g = lambda a: a  # noqa: E731
    if variant == "NOAF":
        h_act = lambda a: a  # noqa: E731
    ys = []
    for x in xs:
        def pre(a, cell):
            out = x @ W[a].T + h @ R[a].T + b[a] + (p[a] * cell if a in p else 0)
            if variant == "FGR" and a != "z":  # gates only: + R_{ia} i^{t-1} + R_{fa} f^{t-1} + R_{oa} o^{t-1}
                row = blocks["ifo".index(a)].split(n, dim=1)
                out = out + sum(prev[src] @ row[k].T for k, src in enumerate("ifo"))
            return out
        z = g(pre("z", c))
        i = torch.sigmoid(pre("i", c)) if "i" in rows else 1
        f = 1 - i if variant == "CIFG" else (torch.sigmoid(pre("f", c)) if "f" in rows else 1)
        c = f * c + i * z
        o = torch.sigmoid(pre("o", c)) if "o" in rows else 1
        h = o * h_act(c)
        prev = {"i": i, "f": f, "o": o}
        ys.append(h)
    return torch.stack(ys), h, c


def _randomised(variant, i=I, h=H, **kw):
    torch.manual_seed(3)
    cell = seqmem.LSTMCell(i, h, variant=variant, **kw).double()
    with torch.no_grad():  # larger than the initialisation, so every term matters
        for p in cell.parameters():
            p.normal_(0, 0.7)
    return cell


@pytest.mark.parametrize("variant", ALL)
def test_variant_follows_greffs_equations(variant):
    cell = _randomised(variant, fused=False)
    xs = torch.randn(5, 3, I, dtype=torch.float64)  # (T, B, I): greff reads time first
    ys, state = seqmem.unroll(cell, xs.transpose(0, 1))  # unroll reads batch first
    ys_ref, h_ref, c_ref = greff(xs, dict(cell.named_parameters()), variant)
    torch.testing.assert_close(ys.transpose(0, 1), ys_ref)
    torch.testing.assert_close(state.h, h_ref)
    torch.testing.assert_close(state.c, c_ref)
    layer = seqmem.LSTM(I, H, variant=variant).double()  # the layer's path (time first): the same equations
    layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    torch.testing.assert_close(layer(xs)[0], ys_ref)


def _block(params, name, rows, a):
    k = rows.index(a)
    return params[name][k * H:(k + 1) * H]


def _gate_to_one(gate):
    """V with gate a pinned at 1: its weights zero, its bias huge (σ(1000) = 1 in float64), no peephole."""
    def change(params):
        for name in ("weight_ih", "weight_hh", "bias_hh"):
            _block(params, name, "ifzo", gate).zero_()
        _block(params, "bias_ih", "ifzo", gate).fill_(1000.0)
        params["peephole"]["ifo".index(gate)].zero_()
    return change


EMBEDDINGS = {
    "NP": lambda params: params["peephole"].zero_(),
    "NIG": _gate_to_one("i"), "NFG": _gate_to_one("f"), "NOG": _gate_to_one("o"),
}


def _own_rows(params, variant):
    """Keep the variant's own row blocks and peephole rows of V-shaped parameters."""
    out = dict(params)
    keep = [k for k, a in enumerate("ifzo") if a in ROWS[variant]]
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        out[name] = torch.cat([params[name][k * H:(k + 1) * H] for k in keep])
    del out["peephole"]
    if PEEPHOLES[variant]:
        out["peephole"] = params["peephole"][["ifo".index(a) for a in PEEPHOLES[variant]]]
    return out


@pytest.mark.parametrize("variant", ["NP", "NIG", "NFG", "NOG", "NIAF", "NOAF", "FGR"])
def test_variant_is_vanilla_with_one_change(variant):
    v_params = {k: v.detach().clone() for k, v in _randomised("V").named_parameters()}
    if variant in EMBEDDINGS:  # V with the part switched off; the variant gets V's remaining rows
        EMBEDDINGS[variant](v_params)
        params = _own_rows(v_params, variant)
    elif variant == "FGR":  # FGR with zero gate-to-gate weights is V
        params = {**v_params, "weight_gg": torch.zeros(3 * H, 3 * H, dtype=torch.float64)}
    else:  # NIAF / NOAF: V with the identity as g / h
        params = v_params
    identity = lambda a: a  # noqa: E731
    v_ref = seqmem.LSTMCell(I, H, variant="V", input_activation=identity if variant == "NIAF" else torch.tanh,
                            output_activation=identity if variant == "NOAF" else torch.tanh).double()
    v_ref.load_state_dict(v_params)
    cell = seqmem.LSTMCell(I, H, variant=variant).double()
    cell.load_state_dict(params)
    xs = torch.randn(3, 5, I, dtype=torch.float64)  # (B, T, I)
    torch.testing.assert_close(seqmem.unroll(cell, xs)[0], seqmem.unroll(v_ref, xs)[0])


def test_cifg_forget_gate_is_one_minus_input_gate():
    cell = _randomised("CIFG", fused=False)
    x, s = torch.randn(3, I, dtype=torch.float64), cell.initial_state(3)
    s = cell(s, x)[0]
    (h1, c1), _ = cell(s, x)
    params = dict(cell.named_parameters())
    a = (x @ params["weight_ih"].T + s.h @ params["weight_hh"].T + params["bias_ih"] + params["bias_hh"]).split(H, -1)
    i = torch.sigmoid(a[0] + params["peephole"][0] * s.c)
    torch.testing.assert_close(c1, (1 - i) * s.c + i * torch.tanh(a[1]))


@pytest.mark.parametrize("variant", ALL)
def test_lstm_step_gradcheck(variant):
    cell = _randomised(variant, i=2, h=3, fused=False)  # small: gradcheck perturbs every entry
    names = [n for n, _ in cell.named_parameters()]
    g = torch.Generator().manual_seed(4)
    state = [randn(g, 2, 3) for _ in range(2)]
    if variant == "FGR":
        state.append(torch.rand(2, 9, generator=g, dtype=torch.float64).requires_grad_())
    x = randn(g, 2, 2)
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]

    def f(x, *tensors):
        st, ps = tensors[:len(state)], dict(zip(names, tensors[len(state):]))
        st = seqmem.FGRState(*st) if variant == "FGR" else seqmem.LSTMState(*st)
        new, _ = lstm_step(ps, st, x, variant)  # step(params, state, x)
        return tuple(new)

    assert torch.autograd.gradcheck(f, (x, *state, *params))


# -- the variants: layers, state, training ------------------------------------------------------------

@pytest.mark.parametrize("variant", ALL)
def test_variant_layer_carries_its_state_across_chunks(variant):
    """Running 4 then 3 steps, passing the state, equals running 7: the state is the whole memory."""
    torch.manual_seed(5)
    layer = seqmem.LSTM(I, H, num_layers=2, variant=variant).double()
    x = torch.randn(7, 2, I, dtype=torch.float64)
    y, state = layer(x)
    assert len(state) == (3 if variant == "FGR" else 2)
    y1, s1 = layer(x[:4])
    y2, s2 = layer(x[4:], s1)
    torch.testing.assert_close(torch.cat([y1, y2]), y)
    for a, b in zip(s2, state):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("variant", ALL)
def test_each_variant_learns_delayed_echo(variant):
    """Learning: seed 0, 150 Adam steps (lr 1e-2) of 32 echo sequences (T 8, delay 2, 4 symbols),
    H = 16: > 90% right after the delay on 1,000 fresh sequences, where a model that does not
    remember its inputs scores 25%. Measured: 95.1% (NFG) to 100%."""
    acc = echo_accuracy(lambda i, h: seqmem.LSTM(i, h, variant=variant, batch_first=True), steps=150)
    assert acc > 0.9, acc


# -- errors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,match", [
    (lambda: seqmem.LSTMCell(3, 5, variant="vanilla"), "variant must be one of"),
    (lambda: seqmem.LSTMCell(3, 5, variant="NIAF", input_activation=torch.sigmoid), "identity"),
    (lambda: seqmem.LSTMCell(3, 5)(seqmem.LSTMState(torch.zeros(2, 5), torch.zeros(2, 5)), torch.randn(2, 4)),
     r"x must have shape \(B, 3\), got \(2, 4\)"),
    (lambda: seqmem.LSTMCell(3, 5)(seqmem.LSTMState(torch.zeros(2, 5), torch.zeros(2, 4)), torch.randn(2, 3)),
     r"c must have shape \(2, 5\), got \(2, 4\)"),
    (lambda: seqmem.LSTMCell(3, 5)(torch.zeros(2, 5), torch.randn(2, 3)), r"LSTMState\(h, c\)"),
    (lambda: seqmem.LSTMCell(3, 5, variant="FGR")(seqmem.LSTMState(torch.zeros(2, 5), torch.zeros(2, 5)),
                                                  torch.randn(2, 3)), r"FGRState\(h, c, gates\)"),
    (lambda: seqmem.LSTMCell(3, 0), "hidden_size must be a positive int"),
])
def test_bad_input_raises_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_other_activations_take_the_scratch_path():
    """torch's kernel knows tanh only: another g or h runs lstm_step, even with fused=True."""
    torch.manual_seed(0)
    relu = seqmem.LSTM(I, H, input_activation=torch.relu).double()
    tanh = seqmem.LSTM(I, H).double()
    tanh.load_state_dict(relu.state_dict())
    x = torch.randn(6, 2, I, dtype=torch.float64)  # (T, B, I): the drop-in layer's default
    cell = seqmem.LSTMCell(I, H, input_activation=torch.relu).double()
    cell.load_state_dict({k[:-3]: v for k, v in relu.state_dict().items()})  # weight_ih_l0 -> weight_ih
    torch.testing.assert_close(relu(x)[0], seqmem.unroll(cell, x.transpose(0, 1))[0].transpose(0, 1))
    assert not torch.allclose(relu(x)[0], tanh(x)[0])


# -- the forget-gate bias ------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: seqmem.LSTM(I, H, num_layers=2, bidirectional=True),
                                  lambda: torch.nn.LSTM(I, H, num_layers=2), lambda: seqmem.LSTMCell(I, H),
                                  lambda: seqmem.LSTMCell(I, H, variant="NIG"), lambda: torch.nn.LSTMCell(I, H)])
def test_forget_bias_sets_the_forget_block_of_every_bias_and_nothing_else(make):
    torch.manual_seed(0)
    module = make()
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    assert seqmem.init_forget_bias_(module, 2.0) is module
    k = {"NIG": 0}.get(getattr(module, "variant", "NP"), 1)  # the forget block: i, f, g, o (NIG: f, z, o)
    for name, p in module.named_parameters():
        if name.startswith("bias_"):
            expected = before[name].clone()
            expected[k * H:(k + 1) * H] = 2.0 if name.startswith("bias_ih") else 0.0
            torch.testing.assert_close(p.detach(), expected)
        else:
            torch.testing.assert_close(p.detach(), before[name])


def test_forget_bias_opens_the_forget_gate_and_refuses_variants_without_one():
    cell = seqmem.init_forget_bias_(seqmem.LSTMCell(I, H), 3.0)
    with torch.no_grad():
        cell.weight_ih.zero_(), cell.weight_hh.zero_()
    x = torch.randn(2, I)
    state, _ = cell(seqmem.LSTMState(torch.zeros(2, H), torch.ones(2, H)), x)
    i, g = torch.sigmoid(cell.bias_ih[:H] + cell.bias_hh[:H]), torch.tanh(cell.bias_ih[2 * H:3 * H] + cell.bias_hh[2 * H:3 * H])
    torch.testing.assert_close(state.c, (torch.sigmoid(torch.tensor(3.0)) + i * g).expand(2, H))  # c' = f c + i g, f = σ(3), c = 1
    for variant in ("NFG", "CIFG"):
        with pytest.raises(ValueError, match=f"variant '{variant}' has no forget gate"):
            seqmem.init_forget_bias_(seqmem.LSTMCell(I, H, variant=variant))
    with pytest.raises(ValueError, match="has no biases"):
        seqmem.init_forget_bias_(seqmem.LSTM(I, H, bias=False))
