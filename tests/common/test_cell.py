"""seqmem.cell: every cell of the library stands on one base and keeps one step convention.

For each cell: ``cell(state, x)`` is its module's step function ``step(params, state, x, **options)``
on the cell's own parameters; ``initial_state`` has the state's structure, zeros on the
parameters' device and dtype; wrong states, shapes and dtypes raise the library's ValueErrors.
"""
import math
from typing import NamedTuple

import pytest
import torch

import seqmem
from seqmem import gru, lstm, relatives, remedies, rnn
from seqmem.cell import ACTIVATIONS, Cell, activation

I, H, B = 3, 4, 2

# name: (the cell, its step function with the cell's options bound)
CELLS = {
    "rnn": (lambda: seqmem.RNNCell(I, H, nonlinearity="relu"), lambda c: lambda p, s, x: rnn.rnn_step(p, s, x, "relu")),
    "gru": (lambda: seqmem.GRUCell(I, H, fused=False), lambda c: lambda p, s, x: gru.gru_step(p, s, x, True)),
    "gru-textbook": (lambda: seqmem.GRUCell(I, H, reset_after=False),
                     lambda c: lambda p, s, x: gru.gru_step(p, s, x, reset_after=False)),
    "lstm": (lambda: seqmem.LSTMCell(I, H, fused=False), lambda c: lambda p, s, x: lstm.lstm_step(p, s, x)),
    "lstm-FGR": (lambda: seqmem.LSTMCell(I, H, variant="FGR"),
                 lambda c: lambda p, s, x: lstm.lstm_step(p, s, x, "FGR")),
    "lstm-NOAF": (lambda: seqmem.LSTMCell(I, H, variant="NOAF"),
                  lambda c: lambda p, s, x: lstm.lstm_step(p, s, x, "NOAF", h=lambda a: a)),
    "nested": (lambda: seqmem.NestedLSTMCell(I, H), lambda c: relatives.nested_lstm_step),
    "scrn": (lambda: seqmem.SCRNCell(I, H, context_size=2, alpha=0.9, nonlinearity="tanh"),
             lambda c: lambda p, s, x: relatives.scrn_step(p, s, x, 0.9, "tanh")),
    "skip": (lambda: seqmem.SkipRNNCell(I, H, nonlinearity="relu"),
             lambda c: lambda p, s, x: remedies.skip_rnn_step(p, s, x, "relu")),
}


def _parts(state) -> list:
    return [state] if isinstance(state, torch.Tensor) else list(state)


def _random_state(cell, g):
    parts = [torch.randn(B, size, generator=g, dtype=torch.float64) for size in cell.state_sizes()]
    return parts[0] if cell.state_type is None else cell.state_type(*parts)


@pytest.mark.parametrize("name", CELLS)
def test_the_cell_is_its_step_function_on_its_parameters(name):
    make, step = CELLS[name]
    torch.manual_seed(0)
    cell = make().double()
    g = torch.Generator().manual_seed(1)
    state, x = _random_state(cell, g), torch.randn(B, I, generator=g, dtype=torch.float64)
    new, y = cell(state, x)
    ref_state, ref_y = step(cell)(dict(cell.named_parameters(recurse=False)), state, x)
    torch.testing.assert_close(y, ref_y)
    for a, b in zip(_parts(new), _parts(ref_state), strict=True):
        torch.testing.assert_close(a, b)
    assert y.shape == (B, cell.output_size)
    assert type(new) is (torch.Tensor if cell.state_type is None else cell.state_type)


@pytest.mark.parametrize("name", CELLS)
def test_initial_state_follows_the_parameters(name, dev):
    cell = CELLS[name][0]().to(dev, torch.float64)
    state = cell.initial_state(5)
    parts = _parts(state)
    assert [tuple(p.shape) for p in parts] == [(5, size) for size in cell.state_sizes()]
    assert all(p.dtype == torch.float64 and p.device.type == dev.type and not p.any() for p in parts)
    _, y = cell(state, torch.randn(5, I, dtype=torch.float64, device=dev))
    assert y.device.type == dev.type


@pytest.mark.parametrize("name", CELLS)
def test_cells_refuse_a_dtype_other_than_their_parameters(name):
    cell = CELLS[name][0]()
    state = cell.initial_state(2)
    with pytest.raises(ValueError, match=r"x must have the parameters' dtype torch.float32, got torch.float64"):
        cell(state, torch.randn(2, I, dtype=torch.float64))  # a SkipRNNCell too: no raw RuntimeError
    with pytest.raises(ValueError, match="dtype torch.float32, got torch.int64"):
        cell(state, torch.ones(2, I, dtype=torch.int64))
    wrong = seqmem.map_state(lambda t: t.double(), state)
    with pytest.raises(ValueError, match=r"(h|s|state\.h) must have the parameters' dtype torch.float32"):
        cell(wrong, torch.randn(2, I))


@pytest.mark.parametrize("name", CELLS)
def test_cells_check_the_state_against_its_spec(name):
    cell = CELLS[name][0]()
    x = torch.randn(2, I)
    with pytest.raises(ValueError, match=rf"x must have shape \(B, {I}\), got \(2, {I + 1}\)"):
        cell(cell.initial_state(2), torch.randn(2, I + 1))
    state = cell.initial_state(3)  # a state for another batch size
    first = cell.state_name if cell.state_type is None else f"state.{cell.state_type._fields[0]}"
    with pytest.raises(ValueError, match=rf"{first} must have shape \(2, {cell.state_sizes()[0]}\), got \(3,"):
        cell(state, x)
    if cell.state_type is not None:
        fields = ", ".join(cell.state_type._fields)
        with pytest.raises(ValueError, match=rf"state must be {cell.state_type.__name__}\({fields}\), got Tensor"):
            cell(torch.zeros(2, H), x)
        with pytest.raises(ValueError, match=r"got tuple of length 1"):
            cell((torch.zeros(2, H),), x)


def test_a_namedtuple_of_another_cell_is_refused_even_of_the_right_length():
    cell = seqmem.LSTMCell(I, H)
    scrn_state = seqmem.SCRNState(torch.zeros(2, H), torch.zeros(2, H))
    with pytest.raises(ValueError, match=r"state must be LSTMState\(h, c\), got SCRNState of length 2"):
        cell(scrn_state, torch.randn(2, I))
    state, _ = cell((torch.zeros(2, H), torch.zeros(2, H)), torch.randn(2, I))  # a plain tuple is read as (h, c)
    assert isinstance(state, seqmem.LSTMState)


class _Pair(NamedTuple):
    a: torch.Tensor
    b: torch.Tensor


class _Leaky(Cell):
    """A new cell in a few lines: a = tanh(W x + U a), b = the running sum of a."""

    state_type = _Pair

    def __init__(self, input_size, hidden_size, bias=False):
        super().__init__(input_size, hidden_size, {"W": (hidden_size, input_size), "U": (hidden_size, hidden_size)},
                         absent=() if bias else ("c",))

    def step(self, params, state, x):
        a = torch.tanh(x @ params["W"].T + state.a @ params["U"].T)
        return _Pair(a, state.b + a), a


def test_the_base_serves_a_new_cell():
    torch.manual_seed(0)
    cell = _Leaky(I, H)
    assert [n for n, _ in cell.named_parameters()] == ["W", "U"] and cell.c is None
    bound = 1 / math.sqrt(H)  # torch's initialisation, U(-1/sqrt(H), 1/sqrt(H))
    assert all(0 < p.abs().max() <= bound for p in cell.parameters())
    ys, state = seqmem.unroll(cell, torch.randn(B, 6, I))
    torch.testing.assert_close(state.b, ys.sum(1))
    with pytest.raises(ValueError, match=r"state must be _Pair\(a, b\)"):
        cell(torch.zeros(B, H), torch.randn(B, I))
    with pytest.raises(ValueError, match="input_size must be a positive int, got 0"):
        _Leaky(0, H)


def test_one_activation_table():
    assert set(ACTIVATIONS) == {"identity", "tanh", "relu", "sigmoid", "softmax"}
    a = torch.randn(3, 4)
    torch.testing.assert_close(activation("softmax")(a).sum(-1), torch.ones(3))
    assert activation("relu") is torch.relu
    with pytest.raises(ValueError, match=r"nonlinearity must be one of \['relu', 'tanh'\], got 'sigmoid'"):
        activation("sigmoid", ("tanh", "relu"))


def test_lstm_variants_are_recognised_by_name_not_by_function_identity():
    """NIAF prescribes g = identity: the name, the library's function or any identity of the caller's."""
    torch.manual_seed(0)
    by_name = seqmem.LSTMCell(I, H, variant="NIAF").double()
    mine = seqmem.LSTMCell(I, H, variant="NIAF", input_activation=lambda v: v * 1).double()
    named = seqmem.LSTMCell(I, H, variant="NIAF", input_activation="identity").double()
    mine.load_state_dict(by_name.state_dict())
    named.load_state_dict(by_name.state_dict())
    xs = torch.randn(B, 5, I, dtype=torch.float64)
    torch.testing.assert_close(seqmem.unroll(mine, xs)[0], seqmem.unroll(by_name, xs)[0])
    torch.testing.assert_close(seqmem.unroll(named, xs)[0], seqmem.unroll(by_name, xs)[0])
    for not_identity in (torch.sigmoid, "tanh", lambda v: 2 * v):
        with pytest.raises(ValueError, match="sets the input activation to the identity"):
            seqmem.LSTMCell(I, H, variant="NIAF", input_activation=not_identity)
    with pytest.raises(ValueError, match="sets the output activation to the identity"):
        seqmem.LSTM(I, H, variant="NOAF", output_activation=torch.relu)
    with pytest.raises(ValueError, match="input_activation must be one of"):
        seqmem.LSTMCell(I, H, input_activation="swish")


def test_only_np_with_tanh_by_name_or_function_takes_torchs_kernel():
    for kwargs, fused in [(dict(), True), (dict(input_activation=torch.tanh), True),
                          (dict(output_activation="tanh"), True), (dict(variant="V"), False),
                          (dict(input_activation=lambda a: torch.tanh(a)), False), (dict(input_activation="relu"), False)]:
        assert seqmem.LSTMCell(I, H, **kwargs)._fusable is fused, kwargs
        assert seqmem.LSTM(I, H, **kwargs)._can_fuse() is fused, kwargs
