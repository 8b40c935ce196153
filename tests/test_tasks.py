"""seqmem.tasks: seeded, on any device, and each target is what its docstring says."""
import pytest
import torch

from seqmem import tasks


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_adding_problem_shapes_and_targets(dev):
    x, y = tasks.adding_problem(64, 20, generator=gen(), device=dev)
    assert x.shape == (64, 20, 2) and y.shape == (64, 1) and x.device.type == dev.type
    markers = x[..., 1]
    assert torch.all(markers.sum(1) == 2)
    assert torch.all(markers[:, :10].sum(1) == 1) and torch.all(markers[:, 10:].sum(1) == 1)
    torch.testing.assert_close(y, (x[..., 0] * markers).sum(1, keepdim=True))


def test_adding_problem_baseline_mse_is_one_sixth():
    _, y = tasks.adding_problem(200_000, 10, generator=gen(1))
    mse = ((y - 1.0) ** 2).mean().item()
    assert abs(mse - 1 / 6) < 0.003


def test_same_seed_same_data_on_every_device(dev):
    a = tasks.adding_problem(8, 12, generator=gen(5))
    b = tasks.adding_problem(8, 12, generator=gen(5), device=dev)
    torch.testing.assert_close(a[0], b[0].cpu())
    c = tasks.adding_problem(8, 12, generator=gen(6))
    assert not torch.equal(a[0], c[0])


def test_copy_task():
    x, y = tasks.copy_task(4, 5, n_symbols=3, generator=gen())
    assert x.shape == (4, 11, 4) and y.shape == (4, 5) and y.dtype == torch.int64
    assert torch.equal(x[:, :5, :3].argmax(-1), y)
    assert torch.all(x[:, 5, 3] == 1) and x[:, 6:].abs().sum() == 0


def test_parity():
    x, y = tasks.parity(3, 9, generator=gen())
    bits = x[..., 0].long()
    for t in range(9):
        assert torch.equal(y[:, t], bits[:, : t + 1].sum(1) % 2)


def test_delayed_echo():
    x, y = tasks.delayed_echo(3, 10, delay=2, n_symbols=5, generator=gen())
    s = x.argmax(-1)
    assert torch.equal(y[:, 2:], s[:, :-2]) and torch.all(y[:, :2] == 0)


@pytest.mark.parametrize("call", [
    lambda: tasks.adding_problem(0, 10),
    lambda: tasks.adding_problem(4, 1),
    lambda: tasks.copy_task(4, 2.5),
    lambda: tasks.delayed_echo(2, 4, delay=4),
])
def test_bad_sizes_raise(call):
    with pytest.raises(ValueError):
        call()
