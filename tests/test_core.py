"""seqmem.core: device choice, seeding, shape checks, unroll and the training loop."""
import pytest
import torch

import seqmem
from seqmem.core import History


def test_device_default_is_an_available_device(monkeypatch):
    monkeypatch.delenv("SEQMEM_DEVICE", raising=False)
    d = seqmem.device()
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert d.type == expected


def test_device_override_cpu(monkeypatch):
    monkeypatch.setenv("SEQMEM_DEVICE", "cpu")
    assert seqmem.device() == torch.device("cpu")


def test_device_unknown_value_raises_clearly(monkeypatch):
    monkeypatch.setenv("SEQMEM_DEVICE", "tpu")
    with pytest.raises(RuntimeError, match="'tpu' is not a device seqmem knows"):
        seqmem.device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has cuda")
def test_device_unavailable_value_raises_clearly(monkeypatch):
    monkeypatch.setenv("SEQMEM_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="which this machine does not have"):
        seqmem.device()


def test_seed_repeats_all_generators():
    import random

    import numpy as np
    g1 = seqmem.seed(3)
    a = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=g1))
    g2 = seqmem.seed(3)
    b = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=g2))
    assert a[0] == b[0] and a[1] == b[1]
    torch.testing.assert_close(a[2], b[2])
    torch.testing.assert_close(a[3], b[3])


def test_seed_rejects_non_int():
    with pytest.raises(TypeError, match="expects an int"):
        seqmem.seed(1.5)


def test_check_shape_binds_names_and_reports_mismatches():
    x = torch.zeros(4, 7, 3)
    assert seqmem.check_shape(x, ("B", "T", 3)) == {"B": 4, "T": 7}
    with pytest.raises(ValueError, match=r"must have shape \(B, T, 2\), got \(4, 7, 3\)"):
        seqmem.check_shape(x, ("B", "T", 2))
    with pytest.raises(ValueError, match="3 dims"):
        seqmem.check_shape(torch.zeros(4, 7), ("B", "T", 3))
    with pytest.raises(ValueError, match="dimension B is 4 elsewhere but 7"):
        seqmem.check_shape(x, ("B", "B", None))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        seqmem.check_shape([1, 2], ("B",))


def test_unroll_applies_the_cell_at_every_step():
    cell = seqmem.RNNCell(3, 4)
    xs = torch.randn(6, 2, 3)
    ys, h = seqmem.unroll(cell, xs)
    assert ys.shape == (6, 2, 4)
    h_manual = cell.initial_state(2)
    for x in xs:
        h_manual, _ = cell(h_manual, x)
    torch.testing.assert_close(h, h_manual)
    torch.testing.assert_close(ys[-1], h_manual)
    with pytest.raises(ValueError, match=r"\(T, B, \.\.\.\)"):
        seqmem.unroll(cell, torch.randn(3))


def test_fit_reduces_loss_and_returns_history():
    seqmem.seed(0)
    model = torch.nn.Linear(3, 1)
    w = torch.tensor([[1.0, -2.0, 0.5]])

    def batch(step):
        x = torch.randn(32, 3)
        return x, x @ w.T

    def loss_fn(m, x, y):
        return torch.nn.functional.mse_loss(m(x), y)

    evals = []
    hist = seqmem.fit(model, batch, loss_fn, steps=200, lr=0.05, progress=False,
                      evaluate=lambda: evals.append(1) or 0.0, eval_every=50)
    assert isinstance(hist, History)
    assert len(hist.loss) == 200
    assert hist.loss[-1] < 0.01 * hist.loss[0]
    assert [s for s, _ in hist.evals] == [50, 100, 150, 200] and len(evals) == 4
    assert len(hist.smoothed(20)) == 181


def test_fit_checks_its_arguments():
    model = torch.nn.Linear(1, 1)
    with pytest.raises(ValueError, match="steps must be given"):
        seqmem.fit(model, lambda i: None, lambda *a: None)
    with pytest.raises(ValueError, match="must return a scalar"):
        seqmem.fit(model, [(torch.ones(2, 1), None)], lambda m, x, y: m(x), progress=False)


def test_fit_clips_gradients():
    model = torch.nn.Linear(1, 1, bias=False)
    seen = []
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    orig = opt.step

    def spy(*a, **k):
        seen.append(model.weight.grad.norm().item())
        return orig(*a, **k)

    opt.step = spy
    data = [(torch.full((1, 1), 100.0), torch.zeros(1, 1))]
    seqmem.fit(model, data, lambda m, x, y: (m(x) - y).pow(2).sum(), optimizer=opt,
               clip_grad_norm=1.0, progress=False)
    assert seen and abs(seen[0] - 1.0) < 1e-5
