r"""Cells into layers: any cell, stacked in depth and run in both directions.

A cell is the lecture's f, ``state, y = f(state, x)``, for one step. A *layer* applies it along time;
the lectures' "deep RNN" stacks layers (layer k reads the outputs of layer k - 1), and a
bidirectional layer runs a second cell backwards in time and concatenates the two outputs:

.. math::

    y_t^{(k)} = [\overrightarrow{y}_t^{(k)}; \overleftarrow{y}_t^{(k)}], \qquad
    \overrightarrow{s}_t^{(k)}, \overrightarrow{y}_t^{(k)} = f(\overrightarrow{s}_{t-1}^{(k)}, y_t^{(k-1)}), \qquad
    \overleftarrow{s}_t^{(k)}, \overleftarrow{y}_t^{(k)} = f(\overleftarrow{s}_{t+1}^{(k)}, y_t^{(k-1)})

Three pieces, from the loop to the drop-in layers:

- ``run_stacked(cells, x, states)`` is the loop over a batch-first sequence x (B, T, I): L * D cells,
  layer-major (layer 0 forward, layer 0 backward, layer 1 forward, ...), as torch orders ``h_n``.
  A padded batch carries its ``lengths`` (B,): the forward state stops at each sequence's true
  end, the backward direction starts there, so each sequence gets what it would get alone.
- ``Stacked(cell_factory, ...)`` is a module holding one cell per layer and direction: any cell that
  keeps the contract runs stacked and bidirectional, batch first.
- ``RecurrentLayer`` is what ``seqmem.RNN``, ``LSTM`` and ``GRU`` share, as torch's ``RNNBase``:
  torch's arguments (time first unless ``batch_first``, torch's default) and parameter names
  (``weight_ih_l0``, ..., ``_reverse``), input checks, and two paths tested equal: torch's fused
  kernel, or the cell's step function through ``run_stacked``.

Dimensions: B batch, T time, I input size, H hidden size, L layers, D directions (1 or 2).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .cell import check_like, check_positive_int
from .core import map_state, unroll

__all__ = ["run_stacked", "length_mask", "reverse_within", "Stacked", "BoundCell", "RecurrentLayer"]


def check_dropout(dropout) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
        raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
    return float(dropout)


def init_uniform(module: nn.Module, hidden_size: int) -> None:
    """torch's initialisation for recurrent layers: every parameter from U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


def run_stacked(cells: Sequence[Callable], x: torch.Tensor, states: Sequence | None = None,
                bidirectional: bool = False, dropout: float = 0.0, training: bool = False,
                lengths: torch.Tensor | None = None):
    """Run L * D cells over a sequence: the loop every stacked, bidirectional layer shares.

    Args:
        cells: L * D cells, layer-major: ``cells[k * D + d]`` is layer k's cell for direction d
            (0 forward, 1 backward). Each keeps the contract ``state, y = cell(state, x)``.
        x: (B, T, I) the input, batch first.
        states: L * D initial states in the same order, or ``None`` (each ``cell.initial_state(B)``).
        dropout: applied to the outputs of every layer but the last, when ``training``.
        lengths: (B,) ints in [0, T], each sequence's true length in a padded batch, or ``None``
            (every sequence has T steps). With lengths, padding never enters a state: the
            forward cell's state stops changing after step ``lengths[b] - 1``, the backward cell
            reads each sequence reversed within its length (it starts at the true end), and the
            outputs at padded steps are 0. Each sequence gets what it would get alone.

    Returns:
        ``(output, finals)``: output (B, T, D * H) of the last layer, and the list of the L * D final
        states, in the order of ``cells``.
    """
    D = 2 if bidirectional else 1
    if len(cells) == 0 or len(cells) % D:
        raise ValueError(f"run_stacked needs a positive multiple of {D} cells, got {len(cells)}")
    if states is not None and len(states) != len(cells):
        raise ValueError(f"states must hold one state per cell ({len(cells)}), got {len(states)}")
    mask = None if lengths is None else length_mask(lengths, x.shape[0], x.shape[1], x.device)
    L = len(cells) // D
    finals = []
    for layer in range(L):
        outs = []
        for d in range(D):
            k = layer * D + d
            ys, state = _run_direction(cells[k], x, None if states is None else states[k], d == 1, mask)
            outs.append(ys)  # (B, T, H), in forward time order
            finals.append(state)
        x = torch.cat(outs, dim=-1) if D == 2 else outs[0]  # (B, T, D * H), the next layer's input
        if dropout > 0 and training and layer < L - 1:
            x = F.dropout(x, dropout, training=True)
    return x, finals


def length_mask(lengths, batch_size: int, steps: int, device) -> torch.Tensor:
    """The (B, T) bool mask of the real steps, ``t < lengths[b]``; a ValueError for bad lengths."""
    if not isinstance(lengths, torch.Tensor) or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        got = lengths.dtype if isinstance(lengths, torch.Tensor) else type(lengths).__name__
        raise ValueError(f"lengths must be an integer tensor (B,), got {got}")
    if tuple(lengths.shape) != (batch_size,):
        raise ValueError(f"lengths must have shape ({batch_size},), got {tuple(lengths.shape)}")
    lengths = lengths.to(device)
    if lengths.numel() and (lengths.min() < 0 or lengths.max() > steps):
        raise ValueError(f"lengths must lie in [0, T={steps}], got values from {lengths.min().item()} "
                         f"to {lengths.max().item()}")
    return torch.arange(steps, device=device) < lengths[:, None]  # (B, T)


def reverse_within(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each sequence of x (B, T, ...) reversed within its length; the padding stays where it is.

    Step t < n of a sequence of length n becomes step n - 1 - t. The map is its own inverse, so
    the same call puts a backward cell's outputs back in time order.
    """
    n = mask.sum(1, keepdim=True)  # (B, 1) lengths
    t = torch.arange(x.shape[1], device=x.device).expand_as(mask)  # (B, T)
    index = torch.where(mask, n - 1 - t, t)  # (B, T)
    index = index.view(*index.shape, *(1,) * (x.dim() - 2)).expand_as(x)  # (B, T, ...)
    return x.gather(1, index)


def _run_direction(cell, x, state, reverse: bool, mask):
    """One cell over x (B, T, I), forward or backward; with a mask, each sequence within its length."""
    if mask is None:
        ys, state = unroll(cell, x.flip(1) if reverse else x, state)  # ys: (B, T, H)
        return (ys.flip(1) if reverse else ys), state  # back in forward time order
    ys, state = _unroll_masked(cell, reverse_within(x, mask) if reverse else x, state, mask)
    return (reverse_within(ys, mask) if reverse else ys), state


def _unroll_masked(cell, xs: torch.Tensor, state, mask: torch.Tensor):
    """``unroll`` for a padded batch: at a padded step (mask False) the state stays and y is 0."""
    if state is None:
        state = cell.initial_state(xs.shape[0])
    ys = []
    for x, m in zip(xs.unbind(1), mask.unbind(1)):  # x: (B, I), m: (B,)
        new, y = cell(state, x)
        state = map_state(lambda a, b: torch.where(m.view(-1, *(1,) * (a.dim() - 1)), a, b), new, state)
        ys.append(y.masked_fill(~m.view(-1, *(1,) * (y.dim() - 1)), 0.0))
    return torch.stack(ys, dim=1), state  # (B, T, H)


class Stacked(nn.Module):
    """Any cell, stacked in ``num_layers`` layers and optionally bidirectional; batch first.

    ``cell_factory(input_size, hidden_size)`` builds one cell; ``Stacked`` calls it once per layer
    and direction (layer-major, forward before backward), so every cell has its own parameters.
    Layer 0's cells read I features, layer k > 0's read D * H' (both directions of layer k - 1),
    where H' is the cells' ``output_size`` (``hidden_size`` if they have none). ``dropout`` is
    applied to the outputs of every layer but the last, in training mode.

    The cells are ``self.cells[k * D + d]``; their states are whatever the cell uses (a tensor,
    an ``LSTMState``, ...), passed and returned as a list in the same order. Unlike the drop-in
    layers (``seqmem.RNN``, ...), which keep torch's time-first default, ``Stacked`` is the
    library's own layer and reads batch-first sequences, as every library function does.

    Shape:
        input: (B, T, I).
        states: a list of L * D cell states, or ``None`` for each cell's ``initial_state(B)``.
        lengths: (B,) the true lengths of a padded batch, or ``None``: padding then never enters
        a state, the backward cells start at each sequence's true end, padded outputs are 0
        (``run_stacked``).
        returns ``(output, final_states)``: output (B, T, D * H') and the list of L * D final states.
    """

    def __init__(self, cell_factory: Callable[[int, int], nn.Module], input_size: int, hidden_size: int,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            check_positive_int(name, value)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout = bidirectional, check_dropout(dropout)
        D = 2 if bidirectional else 1
        cells, layer_in = [], input_size
        for _ in range(num_layers):
            row = [cell_factory(layer_in, hidden_size) for _ in range(D)]
            cells += row
            layer_in = D * getattr(row[0], "output_size", hidden_size)
        self.cells = nn.ModuleList(cells)
        self.output_size = layer_in  # D * H', the last dimension of the output

    def initial_state(self, batch_size: int) -> list:
        """The L * D cells' zero states."""
        return [cell.initial_state(batch_size) for cell in self.cells]

    def forward(self, input: torch.Tensor, states: Sequence | None = None, lengths: torch.Tensor | None = None):
        if not isinstance(input, torch.Tensor) or input.dim() != 3 or input.shape[-1] != self.input_size:
            got = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
            raise ValueError(f"Stacked: input must have shape (B, T, I) with I = {self.input_size}, got {got}")
        return run_stacked(self.cells, input, states, self.bidirectional, self.dropout, self.training, lengths)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, dropout={self.dropout}")


class BoundCell:
    """A step function with its parameters fixed: the contract ``state, y = cell(state, x)``.

    ``step(params, state, x)`` is one of the library's step functions (``rnn_step``, ...) with its
    options bound; ``params`` maps the cell's parameter names (``weight_ih``, ...) to tensors, here
    a layer's ``weight_ih_l0``, ... The drop-in layers run their cells through ``run_stacked`` this
    way, so the parameters stay the layer's own, under torch's names.
    """

    def __init__(self, step: Callable, params: dict, initial_state: Callable[[int], object] | None = None):
        self.step, self.params, self._initial_state = step, params, initial_state

    def initial_state(self, batch_size: int):
        if self._initial_state is None:
            raise TypeError("this BoundCell has no initial_state: pass the states explicitly")
        return self._initial_state(batch_size)

    def __call__(self, state, x):
        return self.step(self.params, state, x)


class RecurrentLayer(nn.Module):
    """What ``seqmem.RNN``, ``LSTM`` and ``GRU`` share, as torch's ``RNNBase``.

    A subclass says what one cell is; this class makes it a drop-in layer:

    - ``_cell_shapes(input_size)``: the name and shape of each parameter of one cell, in torch's
      order. Layer k, direction d registers them as ``{name}_l{k}`` (``{name}_l{k}_reverse``).
    - ``_step(params, state, x)``: the from-scratch step (the cell's step function, options bound).
    - ``_state_names``, ``_state_sizes()``: the state's parts, e.g. ``("h0", "c0")`` of size (H, H).
      One part is passed as a tensor ``hx``, several as a tuple; each is (L * D, B, size).
    - ``_can_fuse()`` and ``_forward_fused(x, parts, batch_sizes)``: torch's fused kernel, where it
      applies (``batch_sizes`` for a packed input, as torch's layers call it).

    ``fused=False`` always runs the reference path: the cells through ``run_stacked``. A
    ``torch.nn.utils.rnn.PackedSequence`` input is read as torch reads it: the output is packed
    too, and the final state is each sequence's at its own true end (on the reference path,
    ``run_stacked``'s ``lengths``).
    """

    _state_names: tuple[str, ...] = ("hx",)
    _state_type: type | None = None  # the cell's state NamedTuple, when it has several parts

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, fused: bool = True):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            check_positive_int(name, value)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, check_dropout(dropout)
        self.bidirectional, self.fused = bidirectional, fused

    def _register_cells(self, device=None, dtype=None) -> None:
        """Register every cell's parameters under torch's names, in torch's order; initialise them."""
        D = 2 if self.bidirectional else 1
        # (layer, direction, then the cell's own order): the fused kernels take the weights as one
        # flat list in exactly this order.
        self._flat_names: list[str] = []
        for layer in range(self.num_layers):
            layer_in = self.input_size if layer == 0 else D * self.hidden_size
            for suffix in ("", "_reverse")[:D]:
                for kind, shape in self._cell_shapes(layer_in).items():
                    name = f"{kind}_l{layer}{suffix}"
                    self.register_parameter(name, nn.Parameter(torch.empty(*shape, device=device, dtype=dtype)))
                    self._flat_names.append(name)
        init_uniform(self, self.hidden_size)

    # -- what a subclass provides ------------------------------------------------------------------

    def _cell_shapes(self, input_size: int) -> dict[str, tuple]:
        raise NotImplementedError

    def _step(self, params, state, x):
        raise NotImplementedError

    def _state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    @property
    def output_size(self) -> int:
        """D * H: the last dimension of the output, what a read-out on top of the layer reads."""
        return (2 if self.bidirectional else 1) * self.hidden_size

    def _can_fuse(self) -> bool:
        return False

    def _forward_fused(self, x, parts, batch_sizes=None):
        raise NotImplementedError

    # -- the shared machinery ----------------------------------------------------------------------

    def _params(self, layer: int, reverse: bool) -> dict:
        """One cell's parameters, by the cell's names: {"weight_ih": weight_ih_l{layer}, ...}."""
        suffix = "_reverse" if reverse else ""
        kinds = self._cell_shapes(self.input_size).keys()
        return {kind: getattr(self, f"{kind}_l{layer}{suffix}") for kind in kinds}

    def _run_kernel(self, kernel: Callable, x: torch.Tensor, hx, batch_sizes=None):
        """Call one of torch's fused kernels (``torch._VF.rnn_tanh``, ``lstm``, ``gru``) on x (T, B, I),
        or on a packed sequence's data x (N, I) with its ``batch_sizes`` (the kernels' packed form)."""
        flat = [getattr(self, name) for name in self._flat_names]
        options = (self.bias, self.num_layers, self.dropout, self.training, self.bidirectional)
        with warnings.catch_warnings():
            # On cuDNN the kernel compacts weights that are not in one buffer, and says so each call.
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
            if batch_sizes is None:
                return kernel(x, hx, flat, *options, False)
            return kernel(x, batch_sizes, hx, flat, *options)

    def _check_input(self, input):
        if not isinstance(input, torch.Tensor) or input.dim() not in (2, 3):
            got = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
            order = "(B, T, I)" if self.batch_first else "(T, B, I)"
            raise ValueError(f"input must have shape {order} or (T, I) unbatched, got {got}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"input's last dimension must be input_size={self.input_size}, "
                             f"got shape {tuple(input.shape)}")
        check_like(getattr(self, self._flat_names[0]), input=input)
        return input.dim() == 3

    def _state_parts(self, hx, batch: int | None) -> tuple | None:
        """``hx`` as a tuple of parts, each checked to be (L * D, B, size) ((L * D, size) unbatched)."""
        if hx is None:
            return None
        names, sizes = self._state_names, self._state_sizes()
        parts = (hx,) if len(names) == 1 else hx
        if not isinstance(parts, (tuple, list)) or len(parts) != len(names):
            raise ValueError(f"hx must be a tuple ({', '.join(names)}), got {type(hx).__name__}"
                             + (f" of length {len(hx)}" if isinstance(hx, (tuple, list)) else ""))
        LD = self.num_layers * (2 if self.bidirectional else 1)
        for name, part, size in zip(names, parts, sizes):
            want = (LD, batch, size) if batch is not None else (LD, size)
            if not isinstance(part, torch.Tensor) or tuple(part.shape) != want:
                got = tuple(part.shape) if isinstance(part, torch.Tensor) else type(part).__name__
                raise ValueError(f"{name} must have shape {want} (num_layers * directions, B, {size}), got {got}")
            check_like(getattr(self, self._flat_names[0]), **{name: part})
        return tuple(parts)

    def forward(self, input: torch.Tensor, hx=None):
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        batched = self._check_input(input)
        B = input.shape[0 if self.batch_first else 1] if batched else None
        parts = self._state_parts(hx, B)
        if not batched:  # (T, I) -> (T, 1, I), as torch does
            input = input.unsqueeze(1 if not self.batch_first else 0)
            parts = tuple(p.unsqueeze(1) for p in parts) if parts is not None else None
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
        if parts is None:
            LD = self.num_layers * (2 if self.bidirectional else 1)
            parts = tuple(x.new_zeros(LD, x.shape[1], size) for size in self._state_sizes())  # (L * D, B, size)
        if self.fused and self._can_fuse():
            output, parts = self._forward_fused(x, parts)
        else:
            output, parts = self._forward_reference(x, parts)
        if self.batch_first:
            output = output.transpose(0, 1)  # (B, T, D * H)
        if not batched:
            output = output.squeeze(1 if not self.batch_first else 0)
            parts = tuple(p.squeeze(1) for p in parts)
        return output, (parts[0] if len(parts) == 1 else tuple(parts))

    def _forward_packed(self, packed: PackedSequence, hx):
        """A PackedSequence in, one out, as torch's layers: h_n at each sequence's own true end.

        The packed data (N, I) holds the sequences sorted by decreasing length (``sorted_indices``
        says which is which); the state is permuted into that order and back, as torch does.
        """
        data, batch_sizes, sorted_indices, unsorted_indices = packed
        if not isinstance(data, torch.Tensor) or data.dim() != 2 or data.shape[-1] != self.input_size:
            got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
            raise ValueError(f"a PackedSequence's data must have shape (N, input_size={self.input_size}), got {got}")
        check_like(getattr(self, self._flat_names[0]), input=data)
        B = int(batch_sizes[0])
        parts = self._state_parts(hx, B)
        if parts is None:
            LD = self.num_layers * (2 if self.bidirectional else 1)
            parts = tuple(data.new_zeros(LD, B, size) for size in self._state_sizes())  # (L * D, B, size)
        elif sorted_indices is not None:
            parts = tuple(p.index_select(1, sorted_indices) for p in parts)  # into the packed order
        if self.fused and self._can_fuse():
            output, parts = self._forward_fused(data, parts, batch_sizes)  # output: (N, D * H)
        else:
            x, lengths = pad_packed_sequence(PackedSequence(data, batch_sizes))  # (T, B, I), sorted order
            output, parts = self._forward_reference(x, parts, lengths)  # (T, B, D * H)
            output = pack_padded_sequence(output, lengths).data  # (N, D * H)
        if unsorted_indices is not None:
            parts = tuple(p.index_select(1, unsorted_indices) for p in parts)  # back to the caller's order
        output = PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices)
        return output, (parts[0] if len(parts) == 1 else tuple(parts))

    def _forward_reference(self, x, parts, lengths=None):
        """The from-scratch path: one ``BoundCell`` per layer and direction, through ``run_stacked``."""
        D = 2 if self.bidirectional else 1
        cells = [BoundCell(self._step, self._params(k // D, reverse=k % D == 1)) for k in range(self.num_layers * D)]
        states = [self._to_cell_state([p[k] for p in parts]) for k in range(len(cells))]
        # run_stacked is batch first, as every library function: (T, B, I) -> (B, T, I) and back
        output, finals = run_stacked(cells, x.transpose(0, 1), states, self.bidirectional, self.dropout,
                                     self.training, lengths)
        per_part = zip(*(self._from_cell_state(s) for s in finals))  # each part's L * D final values
        return output.transpose(0, 1), tuple(torch.stack(values) for values in per_part)  # (T, B, D * H), (L * D, B, size)

    def flatten_parameters(self) -> None:
        """Kept for code written for torch's layers; a no-op here (the parameters stay as registered).

        On cuDNN, the fused kernel copies weights that are not in one buffer into one at each call.
        """

    def _to_cell_state(self, parts: list):
        return parts[0] if self._state_type is None else self._state_type(*parts)

    def _from_cell_state(self, state) -> tuple:
        return (state,) if isinstance(state, torch.Tensor) else tuple(state)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s
