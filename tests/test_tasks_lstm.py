"""seqmem.tasks.counting_memory (chapter 3): the lecture's memory-cell job on random sequences."""
import pytest
import torch

import seqmem
from seqmem import data, tasks


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


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
        ys, _ = seqmem.unroll(data.counting_cell(dtype=torch.float64), x.double().transpose(0, 1))  # (T, B, 1)
    # exact up to the gates' saturation: σ(10) = 0.99995 per kept step, σ(-10) leaking in
    torch.testing.assert_close(ys[..., 0].T, y.double(), atol=0.05, rtol=1e-3)


@pytest.mark.parametrize("kw", [dict(p_write=0.8, p_reset=0.3), dict(p_read=1.5), dict(max_value=0)])
def test_counting_memory_rejects_bad_arguments(kw):
    with pytest.raises(ValueError):
        tasks.counting_memory(2, 5, **kw)
