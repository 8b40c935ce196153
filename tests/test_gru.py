"""seqmem.gru: torch's GRU on both paths, and the lectures' textbook form against its formula.

Pinned here: GRUCell and GRU (fused and from scratch) equal torch in outputs and gradients on cpu
and cuda; the textbook form (reset before the product) equals the formula written out by hand;
gradcheck in float64; a few Adam steps lower the loss with either reset placement.
"""
import pytest
import torch

import seqmem
from layer_helpers import LAYER_CONFIGS, grads, randn, torch_pair
from seqmem.gru import gru_step

I, H = 3, 5


def textbook(x, h, W_i, W_h, b_i, b_h):
    """The lectures' GRU, one gate at a time: the reset gate scales h before W_hn multiplies it."""
    W_ir, W_iz, W_in = W_i.split(H)
    W_hr, W_hz, W_hn = W_h.split(H)
    b_ir, b_iz, b_in = b_i.split(H)
    b_hr, b_hz, b_hn = b_h.split(H)
    r = torch.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = torch.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = torch.tanh(x @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
    return (1 - z) * n + z * h


# -- GRUCell ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "scratch"])
def test_gru_cell_is_torch_gru_cell(fused, bias, dev):
    torch.manual_seed(0)
    ref = torch.nn.GRUCell(I, H, bias=bias).to(dev, torch.float64)
    cell = seqmem.GRUCell(I, H, bias=bias, fused=fused).to(dev, torch.float64)
    assert list(cell.state_dict()) == list(ref.state_dict())
    cell.load_state_dict(ref.state_dict())
    results = []
    for module in (ref, cell):
        g = torch.Generator().manual_seed(1)
        x, h = randn(g, 4, I, dev=dev), randn(g, 4, H, dev=dev)
        if module is ref:
            h2 = ref(x, h)
        else:
            h2, y = cell(h, x)
            assert y is h2
        w = torch.randn(h2.shape, generator=g, dtype=torch.float64).to(dev)
        (h2 * w).sum().backward()
        results.append([h2, *grads(module, x, h)])
    for a, b in zip(results[1], results[0]):
        torch.testing.assert_close(a, b)


def test_gru_cell_textbook_form_is_the_formula(dev):
    torch.manual_seed(0)
    cell = seqmem.GRUCell(I, H, reset_after=False).to(dev, torch.float64)
    x = torch.randn(4, I, dtype=torch.float64, device=dev)
    h = torch.randn(4, H, dtype=torch.float64, device=dev)
    h2, _ = cell(h, x)
    torch.testing.assert_close(h2, textbook(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh))
    torch_form = seqmem.GRUCell(I, H).to(dev, torch.float64)
    torch_form.load_state_dict(cell.state_dict())
    assert not torch.allclose(torch_form(h, x)[0], h2)  # the two placements are different models


def test_gru_cell_initial_state(dev):
    s = seqmem.GRUCell(I, H).to(dev, torch.float64).initial_state(4)
    assert s.shape == (4, H) and s.dtype == torch.float64 and s.device.type == dev.type and not s.any()


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_step_gradcheck(reset_after):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x, h = randn(g, 2, 2), randn(g, 2, 3)
    params = [randn(g, 9, 2), randn(g, 9, 3), randn(g, 9), randn(g, 9)]
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    f = lambda x, h, *ps: gru_step(x, h, dict(zip(names, ps)), reset_after)[0]  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, h, *params))


# -- GRU ----------------------------------------------------------------------------------------------

CONFIGS = LAYER_CONFIGS


def _pair(cfg, dev, fused):
    return torch_pair(torch.nn.GRU, seqmem.GRU, I, H, cfg, dev, fused)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "scratch"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_gru_matches_torch_outputs_and_gradients(cfg, fused, dev):
    ref, ours = _pair(cfg, dev, fused)
    assert list(ours.state_dict()) == list(ref.state_dict())
    LD = cfg.get("num_layers", 1) * (2 if cfg.get("bidirectional") else 1)
    shape = (4, 7, I) if cfg.get("batch_first") else (7, 4, I)
    results = []
    for module in (ref, ours):
        g = torch.Generator().manual_seed(1)
        x, h0 = randn(g, *shape, dev=dev), randn(g, LD, 4, H, dev=dev)
        y, h = module(x, h0)
        w = torch.randn(y.shape, generator=g, dtype=torch.float64).to(dev)
        ((y * w).sum() + h.pow(2).sum()).backward()
        results.append([y, h, *grads(module, x, h0)])
    for a, b in zip(results[1], results[0]):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "scratch"])
def test_gru_unbatched_and_default_state(fused, dev):
    ref, ours = _pair(dict(num_layers=2, bidirectional=True), dev, fused)
    x = torch.randn(6, I, dtype=torch.float64, device=dev)
    y1, h1 = ref(x)
    y2, h2 = ours(x)
    assert y2.shape == (6, 2 * H) and h2.shape == (4, H)
    torch.testing.assert_close(y2, y1)
    torch.testing.assert_close(h2, h1)


def test_gru_textbook_layer_is_the_formula_unrolled(dev):
    torch.manual_seed(0)
    gru = seqmem.GRU(I, H, bidirectional=True, reset_after=False).to(dev, torch.float64)
    x = torch.randn(6, 2, I, dtype=torch.float64, device=dev)
    y, h_n = gru(x)
    for d, (suffix, seq) in enumerate((("_l0", x), ("_l0_reverse", x.flip(0)))):
        w = [getattr(gru, name + suffix) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        h, hs = torch.zeros(2, H, dtype=torch.float64, device=dev), []
        for x_t in seq:
            h = textbook(x_t, h, *w)
            hs.append(h)
        hs = torch.stack(hs if d == 0 else hs[::-1])
        torch.testing.assert_close(y[..., d * H:(d + 1) * H], hs)
        torch.testing.assert_close(h_n[d], h)


def test_fused_and_scratch_paths_agree_in_float32(dev):
    torch.manual_seed(2)
    a = seqmem.GRU(4, 8, num_layers=2, bidirectional=True).to(dev)
    b = seqmem.GRU(4, 8, num_layers=2, bidirectional=True, fused=False).to(dev)
    b.load_state_dict(a.state_dict())
    x = torch.randn(20, 3, 4, device=dev)
    torch.testing.assert_close(a(x)[0], b(x)[0], rtol=1e-5, atol=1e-5)


def test_gru_dropout_only_in_training():
    torch.manual_seed(0)
    ref = torch.nn.GRU(I, H, num_layers=2, dropout=0.5)
    ours = seqmem.GRU(I, H, num_layers=2, dropout=0.5, fused=False)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 2, I)
    ref.eval(); ours.eval()
    torch.testing.assert_close(ours(x)[0], ref(x)[0])
    ours.train()
    assert not torch.allclose(ours(x)[0], ref(x)[0])


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_trains(reset_after):
    """Seed 0: 60 Adam steps (lr 1e-2) on delayed echo (T 8, delay 2, 4 symbols, H 16) cut the loss
    of the last 10 steps to at most 0.75 of the first 10's."""
    g = seqmem.seed(0)
    gru = seqmem.GRU(4, 16, batch_first=True, reset_after=reset_after)
    head = torch.nn.Linear(16, 4)
    opt = torch.optim.Adam([*gru.parameters(), *head.parameters()], lr=1e-2)
    losses = []
    for _ in range(60):
        x, y = seqmem.tasks.delayed_echo(32, 8, delay=2, n_symbols=4, generator=g)
        loss = torch.nn.functional.cross_entropy(head(gru(x)[0]).reshape(-1, 4), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last <= 0.75 * first, (first, last)


@pytest.mark.parametrize("make,match", [
    (lambda: seqmem.GRU(3, 5)(torch.randn(7, 4, 2)), "input_size=3"),
    (lambda: seqmem.GRU(3, 5)(torch.randn(3)), r"\(T, B, I\)"),
    (lambda: seqmem.GRU(3, 5)(torch.randn(7, 4, 3), torch.randn(1, 3, 5)), r"hx must have shape \(1, 4, 5\)"),
    (lambda: seqmem.GRU(3, 5, num_layers=0), "num_layers"),
    (lambda: seqmem.GRU(3, 5, dropout=2), "dropout"),
    (lambda: seqmem.GRUCell(3, 5)(torch.zeros(2, 5), torch.randn(2, 4)), r"x must have shape \(B, 3\), got \(2, 4\)"),
    (lambda: seqmem.GRUCell(3, 5)(torch.zeros(3, 5), torch.randn(2, 3)), r"h must have shape \(2, 5\), got \(3, 5\)"),
])
def test_bad_input_raises_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
