r"""Recurrent neural networks: one function f, applied at every step.

The lecture's first slide: given a function f, ``h', y = f(h, x)``, where h and h' have the same
size. However long the sequence, one f serves every step. The naive (Elman) RNN chooses

.. math::

    h' = \sigma(W^i x + b^i + W^h h + b^h), \qquad y = g(W^o h' + b^o)

with σ = tanh (or ReLU) and g = softmax for classification. Following ``torch.nn.RNNCell``, the
cell's output y is h' itself; ``NaiveRNNCell`` adds the output layer W^o of the slide.

``RNN`` stacks such cells in layers and, optionally, runs a second one backwards in time
(bidirectional). It is a drop-in for ``torch.nn.RNN``: same arguments, outputs and ``state_dict``
keys. Its forward pass has two paths, tested equal: ``fused`` calls the fused kernel
``torch.nn.RNN`` itself uses (fast; cuDNN on a GPU), the reference path unrolls ``rnn_step``, the
few lines the chapter explains, with the stacking loop of ``seqmem.layers`` that LSTM and GRU share.

Dimensions: B batch, T time, I input size, H hidden size, L layers, D directions (1 or 2).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .layers import RecurrentLayer, check_positive_int, check_step, register_cell_parameters

__all__ = ["rnn_step", "rnn_parameter_shapes", "RNNCell", "NaiveRNNCell", "RNN", "NONLINEARITIES"]

#: The nonlinearities σ a cell accepts. torch's fused kernels exist for tanh and relu only; the
#: identity (a linear RNN, as in the lecture's worked example) always takes the reference path.
NONLINEARITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "identity": lambda a: a,
}


def _nonlinearity(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {name!r}")
    return NONLINEARITIES[name]


def rnn_step(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity: str = "tanh"):
    """One step of the naive RNN: h' = σ(W^i x + b^i + W^h h + b^h).

    Args:
        x: (B, I) the input at this step.
        h: (B, H) the previous hidden state.
        weight_ih: (H, I) W^i. weight_hh: (H, H) W^h. bias_ih, bias_hh: (H,) or None.

    Returns:
        h': (B, H).
    """
    a = x @ weight_ih.T + h @ weight_hh.T  # (B, H): W^i x + W^h h, one row per example
    if bias_ih is not None:
        a = a + bias_ih + bias_hh
    return _nonlinearity(nonlinearity)(a)


def rnn_parameter_shapes(input_size: int, hidden_size: int, bias: bool = True) -> dict[str, tuple]:
    """One cell's parameters and shapes, as ``torch.nn.RNNCell``: W^i (H, I), W^h (H, H), b^i, b^h (H,)."""
    shapes = {"weight_ih": (hidden_size, input_size), "weight_hh": (hidden_size, hidden_size)}
    if bias:
        shapes.update(bias_ih=(hidden_size,), bias_hh=(hidden_size,))
    return shapes


class RNNCell(nn.Module):
    """The lecture's f for the naive RNN: ``h_next, y = cell(h, x)`` with y = h_next.

    Parameters and their names are those of ``torch.nn.RNNCell`` (``weight_ih`` (H, I),
    ``weight_hh`` (H, H), ``bias_ih`` and ``bias_hh`` (H,)), so a torch cell's state dict loads.

    Shape:
        h: (B, H); x: (B, I); returns (h_next, y), both (B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None):
        super().__init__()
        check_positive_int("input_size", input_size)
        check_positive_int("hidden_size", hidden_size)
        _nonlinearity(nonlinearity)  # fail early on an unknown name
        self.input_size, self.hidden_size = input_size, hidden_size
        self.bias, self.nonlinearity = bias, nonlinearity
        register_cell_parameters(self, rnn_parameter_shapes(input_size, hidden_size, bias), hidden_size, bias, device, dtype)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """The zero state (B, H), on the device and dtype of the parameters."""
        return self.weight_hh.new_zeros(batch_size, self.hidden_size)

    def forward(self, h: torch.Tensor, x: torch.Tensor):
        check_step(x, h, self.input_size, self.hidden_size, like=self.weight_hh)
        h_next = rnn_step(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity)
        return h_next, h_next

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}, nonlinearity={self.nonlinearity!r}"


class NaiveRNNCell(nn.Module):
    """The slide's naive RNN as one f: h' = σ(W^h h + W^i x), y = g(W^o h').

    ``output`` names g: ``"identity"`` (logits, or the linear outputs of the worked example),
    ``"softmax"`` (a distribution over classes, as on the slide) or ``"sigmoid"``.

    Shape:
        h: (B, H); x: (B, I); returns (h', y) with h' (B, H) and y (B, O).
    """

    _OUTPUTS = {"identity": lambda a: a, "softmax": lambda a: torch.softmax(a, dim=-1), "sigmoid": torch.sigmoid}

    def __init__(self, input_size: int, hidden_size: int, output_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", output: str = "identity", device=None, dtype=None):
        super().__init__()
        if output not in self._OUTPUTS:
            raise ValueError(f"output must be one of {sorted(self._OUTPUTS)}, got {output!r}")
        self.cell = RNNCell(input_size, hidden_size, bias, nonlinearity, device=device, dtype=dtype)
        self.out = nn.Linear(hidden_size, output_size, bias=bias, device=device, dtype=dtype)  # W^o
        self.output = output

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.cell.initial_state(batch_size)

    def forward(self, h: torch.Tensor, x: torch.Tensor):
        h_next, _ = self.cell(h, x)
        return h_next, self._OUTPUTS[self.output](self.out(h_next))  # y: (B, O)


class RNN(RecurrentLayer):
    """A multi-layer, optionally bidirectional naive RNN: a drop-in for ``torch.nn.RNN``.

    Arguments, outputs and parameter names are torch's: ``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}``, with the suffix ``_reverse`` for the backward direction.
    Layer k > 0 reads the concatenated outputs of both directions of layer k - 1. ``dropout``
    is applied to the outputs of every layer but the last, in training mode.

    ``fused=True`` (the default) runs torch's fused kernel when ``nonlinearity`` is tanh or relu;
    ``fused=False``, or ``nonlinearity="identity"``, runs the reference path: ``rnn_step`` for every
    layer and direction, through ``seqmem.layers.run_stacked`` (the loop LSTM and GRU share).

    Shape:
        input: (T, B, I), or (B, T, I) with ``batch_first``, or (T, I) unbatched.
        hx: (L * D, B, H) or (L * D, H) unbatched; zeros when omitted.
        returns output (T, B, D * H) (batch first if asked) and h_n (L * D, B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None, fused: bool = True):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         fused=fused)
        _nonlinearity(nonlinearity)
        self.nonlinearity = nonlinearity
        self._register_cells(device, dtype)

    def _cell_shapes(self, input_size: int) -> dict[str, tuple]:
        return rnn_parameter_shapes(input_size, self.hidden_size, self.bias)

    def _step(self, x, h, params):
        h_next = rnn_step(x, h, params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
                          params.get("bias_hh"), self.nonlinearity)
        return h_next, h_next

    def _can_fuse(self) -> bool:
        return self.nonlinearity in ("tanh", "relu")  # torch has no fused kernel for the identity

    def _forward_fused(self, x, parts):
        kernel = torch._VF.rnn_tanh if self.nonlinearity == "tanh" else torch._VF.rnn_relu
        output, h_n = self._run_kernel(kernel, x, parts[0])
        return output, (h_n,)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (f", nonlinearity={self.nonlinearity!r}" if self.nonlinearity != "tanh" else "")
