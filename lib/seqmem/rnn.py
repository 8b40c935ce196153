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

import torch
from torch import nn

from .cell import Cell, activation
from .layers import RecurrentLayer

__all__ = ["rnn_step", "rnn_parameter_shapes", "RNNCell", "NaiveRNNCell", "RNN", "NONLINEARITIES"]

#: The nonlinearities σ a naive RNN accepts (names of ``seqmem.cell.ACTIVATIONS``). torch's fused
#: kernels exist for tanh and relu only; the identity (a linear RNN, as in the lecture's worked
#: example) always takes the reference path.
NONLINEARITIES = ("tanh", "relu", "identity")


def rnn_step(params: dict, h: torch.Tensor, x: torch.Tensor, nonlinearity: str = "tanh"):
    """One step of the naive RNN: h' = σ(W^i x + b^i + W^h h + b^h).

    Args:
        params: ``weight_ih`` (H, I) W^i, ``weight_hh`` (H, H) W^h, and optionally ``bias_ih``,
            ``bias_hh`` (H,).
        h: (B, H) the previous hidden state. x: (B, I) the input at this step.

    Returns:
        ``(h', y)`` with y = h' (B, H).
    """
    a = x @ params["weight_ih"].T + h @ params["weight_hh"].T  # (B, H): W^i x + W^h h, one row per example
    if params.get("bias_ih") is not None:
        a = a + params["bias_ih"] + params["bias_hh"]
    h_next = activation(nonlinearity, NONLINEARITIES)(a)
    return h_next, h_next


def rnn_parameter_shapes(input_size: int, hidden_size: int, bias: bool = True) -> dict[str, tuple]:
    """One cell's parameters and shapes, as ``torch.nn.RNNCell``: W^i (H, I), W^h (H, H), b^i, b^h (H,)."""
    shapes = {"weight_ih": (hidden_size, input_size), "weight_hh": (hidden_size, hidden_size)}
    if bias:
        shapes.update(bias_ih=(hidden_size,), bias_hh=(hidden_size,))
    return shapes


class RNNCell(Cell):
    """The lecture's f for the naive RNN: ``h_next, y = cell(h, x)`` with y = h_next.

    Parameters and their names are those of ``torch.nn.RNNCell`` (``weight_ih`` (H, I),
    ``weight_hh`` (H, H), ``bias_ih`` and ``bias_hh`` (H,)), so a torch cell's state dict loads.

    Shape:
        h: (B, H); x: (B, I); returns (h_next, y), both (B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None):
        activation(nonlinearity, NONLINEARITIES)  # fail early on an unknown name
        super().__init__(input_size, hidden_size, rnn_parameter_shapes(input_size, hidden_size, bias),
                         absent=() if bias else ("bias_ih", "bias_hh"), device=device, dtype=dtype)
        self.bias, self.nonlinearity = bias, nonlinearity

    def step(self, params, h, x):
        return rnn_step(params, h, x, self.nonlinearity)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}, nonlinearity={self.nonlinearity!r}"


class NaiveRNNCell(RNNCell):
    """The slide's naive RNN as one f: h' = σ(W^h h + W^i x), y = g(W^o h').

    The parameters of ``RNNCell`` and the output layer ``out`` (W^o, ``torch.nn.Linear(H, O)``).
    ``output`` names g: ``"identity"`` (logits, or the linear outputs of the worked example),
    ``"softmax"`` (a distribution over classes, as on the slide) or ``"sigmoid"``.

    Shape:
        h: (B, H); x: (B, I); returns (h', y) with h' (B, H) and y (B, O).
    """

    OUTPUTS = ("identity", "softmax", "sigmoid")

    def __init__(self, input_size: int, hidden_size: int, output_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", output: str = "identity", device=None, dtype=None):
        activation(output, self.OUTPUTS, what="output")
        super().__init__(input_size, hidden_size, bias, nonlinearity, device=device, dtype=dtype)
        self.out = nn.Linear(hidden_size, output_size, bias=bias, device=device, dtype=dtype)  # W^o
        self.output = output

    @property
    def output_size(self) -> int:
        return self.out.out_features

    def step(self, params, h, x):
        h_next, _ = rnn_step(params, h, x, self.nonlinearity)
        return h_next, activation(self.output)(self.out(h_next))  # y: (B, O)


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
        input: (T, B, I), or (B, T, I) with ``batch_first``, or (T, I) unbatched, or a
        ``PackedSequence`` (then the output is packed, the final state at each true end).
        hx: (L * D, B, H) or (L * D, H) unbatched; zeros when omitted.
        returns output (T, B, D * H) (batch first if asked) and h_n (L * D, B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None, fused: bool = True):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         fused=fused)
        activation(nonlinearity, NONLINEARITIES)
        self.nonlinearity = nonlinearity
        self._register_cells(device, dtype)

    def _cell_shapes(self, input_size: int) -> dict[str, tuple]:
        return rnn_parameter_shapes(input_size, self.hidden_size, self.bias)

    def _step(self, params, h, x):
        return rnn_step(params, h, x, self.nonlinearity)

    def _can_fuse(self) -> bool:
        return self.nonlinearity in ("tanh", "relu")  # torch has no fused kernel for the identity

    def _forward_fused(self, x, parts, batch_sizes=None):
        kernel = torch._VF.rnn_tanh if self.nonlinearity == "tanh" else torch._VF.rnn_relu
        output, h_n = self._run_kernel(kernel, x, parts[0], batch_sizes)
        return output, (h_n,)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (f", nonlinearity={self.nonlinearity!r}" if self.nonlinearity != "tanh" else "")
