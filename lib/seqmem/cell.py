r"""The small base every recurrent cell shares: parameters from shapes, a state spec, input checks.

A cell is the lecture's f, ``state, y = cell(state, x)``, for one step of a batch. What differs
from cell to cell is the equations; what they share is here:

- ``Cell`` registers the parameters a dict of shapes names (torch-initialised, U(-1/sqrt(H),
  1/sqrt(H)), as torch initialises its recurrent layers), knows its state's parts (one tensor, or
  the fields of a NamedTuple such as ``LSTMState(h, c)``) and their sizes, gives
  ``initial_state(B)`` on the parameters' device and dtype, and checks every call: x (B, I), each
  part of the state (B, size), both of the parameters' dtype and device, or a ``ValueError`` that
  says what was expected and what came.
- A cell's ``step(params, state, x)`` is its module-level step function (``rnn_step``,
  ``lstm_step``, ...) with the cell's options bound. Every step function of the library has the
  signature ``step(params, state, x, **options) -> (state, y)``: the parameters as a dict of
  tensors by name, then state and input in the cell's order. The drop-in layers call the same
  functions with their own (``weight_ih_l0``, ...) parameters, so one step serves both.
- ``ACTIVATIONS`` is the one table of activation functions by name; a cell says which of them it
  accepts (``activation(name, allowed)``).

Dimensions: B batch, I input size, H hidden size.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from .core import check_positive_int

__all__ = ["Cell", "ACTIVATIONS", "activation", "identity", "check_positive_int", "check_like"]


def identity(a: torch.Tensor) -> torch.Tensor:
    """The identity: a linear unit (the lecture's worked examples, Greff's NIAF and NOAF)."""
    return a


def _softmax(a: torch.Tensor) -> torch.Tensor:
    return torch.softmax(a, dim=-1)  # over the last dimension: the classes


#: Every activation a cell or head of the library can use, by name.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": identity, "tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "softmax": _softmax,
}


def activation(name: str, allowed: Sequence[str] = tuple(ACTIVATIONS), what: str = "nonlinearity") -> Callable:
    """The function ``ACTIVATIONS[name]``; a ``ValueError`` unless ``name`` is one of ``allowed``."""
    if not isinstance(name, str) or name not in allowed:
        raise ValueError(f"{what} must be one of {sorted(allowed)}, got {name!r}")
    return ACTIVATIONS[name]


def check_like(param: torch.Tensor, **tensors: torch.Tensor) -> None:
    """Inputs and states must share the parameters' dtype and device (torch.nn.RNN insists too):
    ``ValueError`` naming both, rather than a type error from deep inside a matmul."""
    for name, t in tensors.items():
        if t.dtype != param.dtype:
            raise ValueError(f"{name} must have the parameters' dtype {param.dtype}, got {t.dtype} "
                             f"(convert the input with .to({param.dtype}) or the module with .to(dtype))")
        if t.device != param.device:
            raise ValueError(f"{name} is on {t.device} but the parameters are on {param.device}: "
                             "move the module or the data so that they share one device")


def _shape_of(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


class Cell(nn.Module):
    """The base of every recurrent cell: ``state, y = cell(state, x)`` with checks, ``initial_state(B)``.

    A subclass sets ``state_type`` (a NamedTuple class, or ``None`` for a one-tensor state, named
    ``state_name`` in messages), may override ``state_sizes()`` (default: H for every part) and
    ``output_size`` (default H: the size of y, which a stacking layer reads), and implements
    ``step(params, state, x)``, usually by calling its module's step function with its options.

    Args:
        shapes: the parameters, ``{name: shape}``, registered in this order (the order of
            ``state_dict`` and of the initialisation's random draws).
        absent: names registered as ``None``, as torch's cells register a missing bias.
    """

    state_type: type | None = None
    state_name: str = "h"

    def __init__(self, input_size: int, hidden_size: int, shapes: dict[str, tuple], absent: Sequence[str] = (),
                 device=None, dtype=None):
        super().__init__()
        check_positive_int("input_size", input_size)
        check_positive_int("hidden_size", hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.empty(*shape, device=device, dtype=dtype)))
        for name in absent:
            self.register_parameter(name, None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's initialisation for recurrent cells: every parameter from U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters(recurse=False):
            nn.init.uniform_(p, -bound, bound)

    @property
    def output_size(self) -> int:
        """The size of the output y (B, output_size): H unless the cell says otherwise."""
        return self.hidden_size

    def state_sizes(self) -> tuple[int, ...]:
        """The size of each part of the state, in the order of ``state_type``'s fields."""
        n = 1 if self.state_type is None else len(self.state_type._fields)
        return (self.hidden_size,) * n

    def params(self) -> dict:
        """The cell's own parameters by name: what its step function reads."""
        return dict(self.named_parameters(recurse=False))

    def initial_state(self, batch_size: int):
        """The zero state, each part (B, size), on the device and dtype of the parameters."""
        like = next(self.parameters())
        parts = [like.new_zeros(batch_size, size) for size in self.state_sizes()]
        return parts[0] if self.state_type is None else self.state_type(*parts)

    def forward(self, state, x: torch.Tensor):
        self.check(state, x)
        return self.step(self.params(), state, x)

    def step(self, params: dict, state, x: torch.Tensor):
        raise NotImplementedError

    # -- the checks -------------------------------------------------------------------------------

    def _state_spec(self) -> str:
        if self.state_type is None:
            return f"a tensor {self.state_name} (B, {self.state_sizes()[0]})"
        return f"{self.state_type.__name__}({', '.join(self.state_type._fields)})"

    def _named_parts(self, state) -> list[tuple[str, object]]:
        """The state's parts with the names messages use: ``h``, or ``state.h``, ``state.c``, ..."""
        if self.state_type is None:
            return [(self.state_name, state)]
        fields = self.state_type._fields
        foreign = hasattr(state, "_fields") and type(state) is not self.state_type  # another cell's state
        if not isinstance(state, tuple) or len(state) != len(fields) or foreign:
            length = f" of length {len(state)}" if isinstance(state, tuple) else ""
            raise ValueError(f"state must be {self._state_spec()}, got {type(state).__name__}{length}")
        return [(f"state.{name}", part) for name, part in zip(fields, state)]

    def check(self, state, x: torch.Tensor) -> None:
        """x (B, I) and every part of the state (B, size), of the parameters' dtype and device."""
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"x must have shape (B, {self.input_size}), got {_shape_of(x)}")
        like = next(self.parameters())
        check_like(like, x=x)
        for (name, part), size in zip(self._named_parts(state), self.state_sizes()):
            if not isinstance(part, torch.Tensor) or tuple(part.shape) != (x.shape[0], size):
                raise ValueError(f"{name} must have shape ({x.shape[0]}, {size}), got {_shape_of(part)}")
            check_like(like, **{name: part})
