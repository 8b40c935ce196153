"""seqmem.core: device choice, seeding, shape checks, unroll, map_state and the training loop."""
from typing import NamedTuple

import pytest
import torch

import seqmem
from seqmem import core
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


def test_unroll_applies_the_cell_at_every_step_batch_first():
    cell = seqmem.RNNCell(3, 4)
    xs = torch.randn(2, 6, 3)  # (B, T, I)
    ys, h = seqmem.unroll(cell, xs)
    assert ys.shape == (2, 6, 4)
    h_manual, steps = cell.initial_state(2), []
    for t in range(6):
        h_manual, y = cell(h_manual, xs[:, t])
        steps.append(y)
    torch.testing.assert_close(h, h_manual)
    torch.testing.assert_close(ys, torch.stack(steps, dim=1))
    h0 = torch.randn(2, 4)
    torch.testing.assert_close(seqmem.unroll(cell, xs[:, 3:], seqmem.unroll(cell, xs[:, :3], h0)[1])[0],
                               seqmem.unroll(cell, xs, h0)[0][:, 3:])  # the state carries on
    with pytest.raises(ValueError, match=r"\(B, T, \.\.\.\)"):
        seqmem.unroll(cell, torch.randn(3))


class _HC(NamedTuple):
    h: torch.Tensor
    c: torch.Tensor


def test_map_state_keeps_the_structure_and_detaches():
    w = torch.ones(2, requires_grad=True)
    state = [_HC(w * 2, w * 3), w * 4, None, {"m": w * 5}]  # two layers' states, a missing one, a dict
    cut = seqmem.map_state(torch.Tensor.detach, state)
    assert type(cut) is list and type(cut[0]) is _HC and cut[2] is None and set(cut[3]) == {"m"}
    for part in (cut[0].h, cut[0].c, cut[1], cut[3]["m"]):
        assert part.grad_fn is None and not part.requires_grad
    torch.testing.assert_close(cut[0].c, torch.full((2,), 3.0))


def test_map_state_selects_by_mask_and_sums_with_weights():
    new, old = _HC(torch.ones(3, 2), torch.full((3, 2), 2.0)), _HC(torch.zeros(3, 2), torch.zeros(3, 2))
    done = torch.tensor([True, False, True])  # (B,): keep the old state where done
    kept = seqmem.map_state(lambda a, b: torch.where(done[:, None], b, a), new, old)
    assert kept.h[:, 0].tolist() == [0.0, 1.0, 0.0] and kept.c[:, 1].tolist() == [0.0, 2.0, 0.0]
    weights = [0.25, 0.75]
    mean = seqmem.map_state(lambda *parts: sum(w * p for w, p in zip(weights, parts)), new, old)
    torch.testing.assert_close(mean.c, torch.full((3, 2), 0.5))


def test_fit_reduces_loss_and_returns_history():
    seqmem.seed(0)
    model = torch.nn.Linear(3, 1)
    w = torch.tensor([[1.0, -2.0, 0.5]])

    def batch(step):
        x = torch.randn(32, 3)
        return x, x @ w.T

    def loss_fn(m, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(m(x), y)

    evals = []
    hist = seqmem.fit(model, batch, loss_fn, steps=200, lr=0.05, progress=False,
                      evaluate=lambda: evals.append(1) or 0.0, eval_every=50)
    assert isinstance(hist, History)
    assert len(hist.loss) == 200
    assert hist.loss[-1] < 0.01 * hist.loss[0]
    assert [s for s, _ in hist.evals] == [50, 100, 150, 200] and len(evals) == 4
    assert len(hist.smoothed(20)) == 181


def test_fit_records_what_loss_fn_logs_and_shows_it_on_the_bar(monkeypatch):
    shown = []

    class Bar:  # stands in for tqdm: records what fit shows
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            pass

        def set_postfix(self, **values):
            shown.append(values)

    monkeypatch.setattr(core, "_progress", lambda total, enabled: Bar())
    model = torch.nn.Linear(2, 1)
    data = [(torch.full((4, 2), float(k)), torch.zeros(4, 1)) for k in range(3)]

    def loss_fn(m, batch):
        x, y = batch
        return (m(x) - y).pow(2).mean(), {"mean_input": x.mean(), "batch_size": len(x)}

    hist = seqmem.fit(model, data, loss_fn, lr=0.0)
    assert hist.logs == {"mean_input": [0.0, 1.0, 2.0], "batch_size": [4.0, 4.0, 4.0]}
    assert [set(v) for v in shown] == [{"loss", "mean_input", "batch_size"}] * 3
    assert shown[-1]["mean_input"] == "2" and float(shown[-1]["loss"]) == pytest.approx(hist.loss[-1], abs=1e-4)


def test_fit_checks_its_arguments():
    model = torch.nn.Linear(1, 1)
    with pytest.raises(ValueError, match="steps must be given"):
        seqmem.fit(model, lambda i: None, lambda *a: None)
    with pytest.raises(ValueError, match="must return a scalar"):
        seqmem.fit(model, [(torch.ones(2, 1), None)], lambda m, b: m(b[0]), progress=False)
    with pytest.raises(ValueError, match=r"\(loss, logs\) with logs a dict, got a tuple of 3"):
        seqmem.fit(model, [(torch.ones(2, 1), None)], lambda m, b: (m(b[0]).sum(), {}, 1), progress=False)


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
    seqmem.fit(model, data, lambda m, b: (m(b[0]) - b[1]).pow(2).sum(), optimizer=opt,
               clip_grad_norm=1.0, progress=False)
    assert seen and abs(seen[0] - 1.0) < 1e-5
