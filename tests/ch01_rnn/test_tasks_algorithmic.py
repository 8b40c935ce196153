"""seqmem.tasks.algorithmic and slot filling (chapters 1 and 2): seeded, on any device, and each
target is what its docstring says."""
import pytest
import torch

from helpers import gen
from seqmem import tasks


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


@pytest.mark.parametrize("call,match", [
    (lambda: tasks.adding_problem(0, 10), "batch_size must be a positive int, got 0"),
    (lambda: tasks.adding_problem(4, 1), "needs T >= 2"),
    (lambda: tasks.copy_task(4, 2.5), "T must be a positive int, got 2.5"),
    (lambda: tasks.delayed_echo(2, 4, delay=4), r"delay must be an int in \[0, T\)"),
])
def test_bad_sizes_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_future_tagging_labels_the_symbol_k_steps_ahead(dev):
    x, y = tasks.future_tagging(5, 12, k=3, n_symbols=6, generator=gen(), device=dev)
    assert x.shape == (5, 12, 6) and y.shape == (5, 12) and y.dtype == torch.int64
    assert x.device.type == dev.type and y.device.type == dev.type
    assert torch.all(x.sum(-1) == 1)  # one-hot
    s = x.argmax(-1)
    for t in range(12 - 3):
        assert torch.equal(y[:, t], s[:, t + 3])
    assert torch.all(y[:, 9:] == tasks.IGNORE_INDEX)


def test_future_tagging_ignored_steps_drop_out_of_cross_entropy():
    x, y = tasks.future_tagging(4, 6, k=2, generator=gen())
    logits = torch.randn(4, 6, 4, generator=gen(1))
    full = torch.nn.functional.cross_entropy(logits.reshape(-1, 4), y.reshape(-1))
    kept = torch.nn.functional.cross_entropy(logits[:, :4].reshape(-1, 4), y[:, :4].reshape(-1))
    torch.testing.assert_close(full, kept)


def test_future_tagging_label_is_independent_of_the_past():
    # The claim behind "chance for a unidirectional RNN": the label at t agrees with the symbol at t
    # (or any earlier one) only by chance, 1/4 of the time; 200,000 pairs give a std of 0.001.
    x, y = tasks.future_tagging(10_000, 22, k=2, generator=gen(2))
    s = x.argmax(-1)
    agree_now = (y[:, :20] == s[:, :20]).float().mean().item()
    agree_before = (y[:, 1:20] == s[:, :19]).float().mean().item()
    assert abs(agree_now - 0.25) < 0.005 and abs(agree_before - 0.25) < 0.005


def test_future_tagging_checks_k():
    with pytest.raises(ValueError, match=r"k must be an int in \[1, T\)"):
        tasks.future_tagging(2, 4, k=4)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, T\)"):
        tasks.future_tagging(2, 4, k=0)


# ---------------------------------------------------------------------------------------------
# Chapter 1: the shapes of sequence problems, and slot filling


def test_number_to_bits_writes_the_binary_digits(dev):
    x, y = tasks.number_to_bits(50, n_bits=5, generator=gen(), device=dev)
    assert x.shape == (50, 5, 32) and y.shape == (50, 5) and y.dtype == torch.int64
    assert x.device.type == dev.type
    assert torch.all(x[:, 0].sum(-1) == 1) and x[:, 1:].abs().sum() == 0  # one input, then nothing
    n = x[:, 0].argmax(-1)
    for b in range(50):
        assert "".join(map(str, y[b].tolist())) == format(int(n[b]), "05b")


def test_collapse_runs_by_hand():
    x, y = tasks.collapse_runs(200, n_runs=3, max_run=3, n_symbols=4, generator=gen(3))
    assert x.shape == (200, 12, 5) and y.shape == (200, 3)
    assert torch.all(y[:, 1:] != y[:, :-1])  # neighbouring runs differ
    assert torch.all(x[:, 9:, 4] == 1) and x[:, 9:, :4].abs().sum() == 0 and x[:, :9, 4].abs().sum() == 0
    lengths = set()
    for b in range(200):
        frames = [int(v.argmax()) for v in x[b, :9] if v.sum() > 0]
        assert torch.all(x[b, len(frames):9] == 0)  # the runs first, then silence
        collapsed = [s for i, s in enumerate(frames) if i == 0 or s != frames[i - 1]]
        assert collapsed == y[b].tolist()
        lengths.add(len(frames))
    assert lengths == set(range(3, 10))  # inputs of every length from n_runs to n_runs * max_run


def test_slot_filling_same_word_different_slot(dev):
    vocab, labels = tasks.slot_vocab(), tasks.SLOT_LABELS
    x, y = tasks.slot_filling(300, generator=gen(4), device=dev)
    assert x.shape == y.shape == (300, 9) and x.device.type == dev.type and y.dtype == torch.int64
    seen = set()
    for b in range(300):
        words = [w for w in vocab.decode(x[b]) if w != "<pad>"]
        slots = [labels[i] for i in y[b, : len(words)].tolist()]
        assert torch.all(y[b, len(words):] == tasks.IGNORE_INDEX)
        v = words.index("arrive") if "arrive" in words else words.index("leave")
        expected = ("destination", "time of arrival") if words[v] == "arrive" else ("place of departure", "time of departure")
        assert words[v + 2] == "on" and slots[v + 1] == expected[0] and slots[v + 3:] == [expected[1]] * 2
        assert set(slots[: v + 1]) | {slots[v + 2]} == {"none"}
        seen.add((words[v + 1], slots[v + 1]))
    # Taipei is a destination in some sentences and a place of departure in others
    assert {("Taipei", "destination"), ("Taipei", "place of departure")} <= seen


def test_slot_filling_unknown_cities_are_other_and_seeded():
    vocab = tasks.slot_vocab()
    assert vocab.tokens[-1] == "<other>" and "Taipei" in vocab and "Gondor" not in vocab
    x, y = tasks.slot_filling(50, cities=("Gondor",), generator=gen(5))
    city = (y == 1) | (y == 3)
    assert torch.all(x[city] == vocab.other_id) and city.sum(1).eq(1).all()
    a = tasks.slot_filling(20, generator=gen(6))
    b = tasks.slot_filling(20, generator=gen(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="cities must be a non-empty sequence"):
        tasks.slot_filling(2, cities="Taipei")
