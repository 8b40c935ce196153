"""seqmem.lstm: NP is torch's LSTM (both paths), and every Greff et al. variant is V with one change.

Pinned here: outputs and gradients of LSTMCell and LSTM (fused and from scratch) against torch on
cpu and cuda; each variant's parameters (names, shapes, counts); each variant's equations against
the test's own reading of Greff et al. (2017) and against V with the removed part switched off;
gradcheck in float64; state passing (FGR's gates included); a few Adam steps lower the loss.
"""
import pytest
import torch

import seqmem
from layer_helpers import LAYER_CONFIGS, grads, randn, torch_pair
from seqmem.lstm import VARIANTS, lstm_step

ALL = list(VARIANTS)
I, H = 3, 5


# -- NP is torch.nn.LSTMCell ------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "scratch"])
def test_lstm_cell_is_torch_lstm_cell(fused, bias, dev):
    torch.manual_seed(0)
    ref = torch.nn.LSTMCell(I, H, bias=bias).to(dev, torch.float64)
    cell = seqmem.LSTMCell(I, H, bias=bias, fused=fused).to(dev, torch.float64)
    assert list(cell.state_dict()) == list(ref.state_dict())
    cell.load_state_dict(ref.state_dict())
    results = []
    for module in (ref, cell):
        g = torch.Generator().manual_seed(1)
        x, h, c = randn(g, 4, I, dev=dev), randn(g, 4, H, dev=dev), randn(g, 4, H, dev=dev)
        if module is ref:
            h2, c2 = ref(x, (h, c))
        else:
            state, y = cell(seqmem.LSTMState(h, c), x)
            assert isinstance(state, seqmem.LSTMState) and y is state.h
            h2, c2 = state
        w = torch.randn(h2.shape, generator=g, dtype=torch.float64).to(dev)
        ((h2 * w).sum() + c2.pow(2).sum()).backward()
        results.append((h2, c2, grads(module, x, h, c)))
    for a, b in zip(results[1][:2], results[0][:2]):
        torch.testing.assert_close(a, b)
    for a, b in zip(results[1][2], results[0][2]):
        torch.testing.assert_close(a, b)


def test_lstm_cell_initial_state(dev):
    for variant, n in (("NP", 2), ("FGR", 3)):
        cell = seqmem.LSTMCell(I, H, variant=variant).to(dev, torch.float64)
        s = cell.initial_state(4)
        assert len(s) == n and s.h.shape == (4, H) and s.c.shape == (4, H)
        assert all(t.dtype == torch.float64 and t.device.type == dev.type and not t.any() for t in s)
    assert seqmem.LSTMCell(I, H, variant="FGR").initial_state(2).gates.shape == (2, 3 * H)


# -- LSTM is torch.nn.LSTM --------------------------------------------------------------------------

CONFIGS = LAYER_CONFIGS


def _pair(cfg, dev, fused):
    return torch_pair(torch.nn.LSTM, seqmem.LSTM, I, H, cfg, dev, fused)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "scratch"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_lstm_matches_torch_outputs_and_gradients(cfg, fused, dev):
    ref, ours = _pair(cfg, dev, fused)
    assert list(ours.state_dict()) == list(ref.state_dict())
    LD = cfg.get("num_layers", 1) * (2 if cfg.get("bidirectional") else 1)
    shape = (4, 7, I) if cfg.get("batch_first") else (7, 4, I)
    results = []
    for module in (ref, ours):
        g = torch.Generator().manual_seed(1)
        x, h0, c0 = randn(g, *shape, dev=dev), randn(g, LD, 4, H, dev=dev), randn(g, LD, 4, H, dev=dev)
        y, (h, c) = module(x, (h0, c0))
        w = torch.randn(y.shape, generator=g, dtype=torch.float64).to(dev)  # weigh each output differently
        ((y * w).sum() + h.pow(2).sum() + c.pow(3).sum()).backward()
        results.append((y, h, c, grads(module, x, h0, c0)))
    (y1, h1, c1, g1), (y2, h2, c2, g2) = results
    assert y2.shape == y1.shape and h2.shape == h1.shape == c2.shape
    for a, b in zip((y2, h2, c2, *g2), (y1, h1, c1, *g1)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "scratch"])
def test_lstm_unbatched_and_default_state(fused, dev):
    ref, ours = _pair(dict(num_layers=2, bidirectional=True), dev, fused)
    x = torch.randn(6, I, dtype=torch.float64, device=dev)
    y1, (h1, c1) = ref(x)
    y2, (h2, c2) = ours(x)
    assert y2.shape == (6, 2 * H) and h2.shape == c2.shape == (4, H)
    for a, b in ((y2, y1), (h2, h1), (c2, c1)):
        torch.testing.assert_close(a, b)
    hx = (torch.randn(4, H, dtype=torch.float64, device=dev), torch.randn(4, H, dtype=torch.float64, device=dev))
    torch.testing.assert_close(ours(x, hx)[0], ref(x, hx)[0])


def test_fused_and_scratch_paths_agree_in_float32(dev):
    torch.manual_seed(2)
    a = seqmem.LSTM(4, 8, num_layers=2, bidirectional=True, batch_first=True).to(dev)
    b = seqmem.LSTM(4, 8, num_layers=2, bidirectional=True, batch_first=True, fused=False).to(dev)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 20, 4, device=dev)
    (ya, (ha, ca)), (yb, (hb, cb)) = a(x), b(x)
    for u, v in ((ya, yb), (ha, hb), (ca, cb)):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)


def test_lstm_dropout_only_in_training():
    torch.manual_seed(0)
    ref = torch.nn.LSTM(I, H, num_layers=2, dropout=0.5)
    ours = seqmem.LSTM(I, H, num_layers=2, dropout=0.5, fused=False)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 2, I)
    ref.eval(); ours.eval()
    torch.testing.assert_close(ours(x)[0], ref(x)[0])
    ours.train()
    assert not torch.allclose(ours(x)[0], ref(x)[0])


def test_stacked_lstm_cells_are_torch_lstm():
    """The generic machinery: seqmem.Stacked over LSTMCell is torch's 2-layer bidirectional LSTM."""
    torch.manual_seed(0)
    ref = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True).double()
    stacked = seqmem.Stacked(lambda i, h: seqmem.LSTMCell(i, h, fused=False), I, H, num_layers=2,
                             bidirectional=True, batch_first=True).double()
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
    xs = torch.randn(5, 3, I, dtype=torch.float64)
    ys, state = seqmem.unroll(cell, xs)
    ys_ref, h_ref, c_ref = greff(xs, dict(cell.named_parameters()), variant)
    torch.testing.assert_close(ys, ys_ref)
    torch.testing.assert_close(state.h, h_ref)
    torch.testing.assert_close(state.c, c_ref)
    layer = seqmem.LSTM(I, H, variant=variant).double()  # the layer's path: the same equations
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
    xs = torch.randn(5, 3, I, dtype=torch.float64)
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
        new, _ = lstm_step(x, st, ps, variant)
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
def test_each_variant_trains(variant):
    """Seed 0: 60 Adam steps (lr 1e-2) on delayed echo (T 8, delay 2, 4 symbols, H 16) cut the loss
    of the last 10 steps to at most 0.75 of the first 10's."""
    g = seqmem.seed(0)
    lstm = seqmem.LSTM(4, 16, variant=variant, batch_first=True)
    head = torch.nn.Linear(16, 4)
    opt = torch.optim.Adam([*lstm.parameters(), *head.parameters()], lr=1e-2)
    losses = []
    for _ in range(60):
        x, y = seqmem.tasks.delayed_echo(32, 8, delay=2, n_symbols=4, generator=g)
        loss = torch.nn.functional.cross_entropy(head(lstm(x)[0]).reshape(-1, 4), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last <= 0.75 * first, (first, last)


# -- errors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,match", [
    (lambda: seqmem.LSTM(3, 5)(torch.randn(7, 4, 2)), "input_size=3"),
    (lambda: seqmem.LSTM(3, 5)(torch.randn(3)), r"\(T, B, I\)"),
    (lambda: seqmem.LSTM(3, 5)(torch.randn(7, 4, 3), torch.zeros(1, 4, 5)), r"hx must be a tuple \(h_0, c_0\)"),
    (lambda: seqmem.LSTM(3, 5)(torch.randn(7, 4, 3), (torch.zeros(1, 4, 5), torch.zeros(1, 3, 5))),
     r"c_0 must have shape \(1, 4, 5\).*got \(1, 3, 5\)"),
    (lambda: seqmem.LSTM(3, 5, bidirectional=True)(torch.randn(7, 4, 3), (torch.zeros(1, 4, 5),) * 2),
     r"h_0 must have shape \(2, 4, 5\)"),
    (lambda: seqmem.LSTM(3, 5, proj_size=2), "does not support proj_size"),
    (lambda: seqmem.LSTM(3, 5, variant="GRU"), "variant must be one of"),
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
    x = torch.randn(6, 2, I, dtype=torch.float64)
    cell = seqmem.LSTMCell(I, H, input_activation=torch.relu).double()
    cell.load_state_dict({k[:-3]: v for k, v in relu.state_dict().items()})  # weight_ih_l0 -> weight_ih
    torch.testing.assert_close(relu(x)[0], seqmem.unroll(cell, x)[0])
    assert not torch.allclose(relu(x)[0], tanh(x)[0])
