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
few lines the chapter explains.

Dimensions: B batch, T time, I input size, H hidden size, L layers, D directions (1 or 2).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .core import unroll

__all__ = ["rnn_step", "RNNCell", "NaiveRNNCell", "RNN", "NONLINEARITIES"]

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


def _check_sizes(input_size, hidden_size):
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _init_uniform(module: nn.Module, hidden_size: int) -> None:
    # torch's initialisation for recurrent layers: every weight and bias from U(-1/sqrt(H), 1/sqrt(H)).
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


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
        _check_sizes(input_size, hidden_size)
        _nonlinearity(nonlinearity)  # fail early on an unknown name
        self.input_size, self.hidden_size = input_size, hidden_size
        self.bias, self.nonlinearity = bias, nonlinearity
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(hidden_size, **kw))
            self.bias_hh = nn.Parameter(torch.empty(hidden_size, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        _init_uniform(self, hidden_size)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """The zero state (B, H), on the device and dtype of the parameters."""
        return self.weight_hh.new_zeros(batch_size, self.hidden_size)

    def forward(self, h: torch.Tensor, x: torch.Tensor):
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"x must have shape (B, {self.input_size}), got {tuple(x.shape)}")
        if tuple(h.shape) != (x.shape[0], self.hidden_size):
            raise ValueError(f"h must have shape ({x.shape[0]}, {self.hidden_size}), got {tuple(h.shape)}")
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


class RNN(nn.Module):
    """A multi-layer, optionally bidirectional naive RNN: a drop-in for ``torch.nn.RNN``.

    Arguments, outputs and parameter names are torch's: ``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}``, with the suffix ``_reverse`` for the backward direction.
    Layer k > 0 reads the concatenated outputs of both directions of layer k - 1. ``dropout``
    is applied to the outputs of every layer but the last, in training mode.

    ``fused=True`` (the default) runs torch's fused kernel when ``nonlinearity`` is tanh or relu;
    ``fused=False``, or ``nonlinearity="identity"``, runs the reference loop over ``rnn_step``.

    Shape:
        input: (T, B, I), or (B, T, I) with ``batch_first``, or (T, I) unbatched.
        hx: (L * D, B, H) or (L * D, H) unbatched; zeros when omitted.
        returns output (T, B, D * H) (batch first if asked) and h_n (L * D, B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None, fused: bool = True):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        _nonlinearity(nonlinearity)
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive int, got {num_layers!r}")
        if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.nonlinearity, self.bias, self.batch_first = nonlinearity, bias, batch_first
        self.dropout, self.bidirectional, self.fused = float(dropout), bidirectional, fused
        D = 2 if bidirectional else 1
        kw = {"device": device, "dtype": dtype}
        # Registered in torch's order (layer, direction, ih, hh, bias_ih, bias_hh): the fused
        # kernel takes the weights as one flat list in exactly this order.
        self._flat_names: list[str] = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else D * hidden_size
            for suffix in ("", "_reverse")[:D]:
                shapes = {"weight_ih": (hidden_size, layer_in), "weight_hh": (hidden_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(hidden_size,), bias_hh=(hidden_size,))
                for kind, shape in shapes.items():
                    name = f"{kind}_l{layer}{suffix}"
                    self.register_parameter(name, nn.Parameter(torch.empty(*shape, **kw)))
                    self._flat_names.append(name)
        _init_uniform(self, hidden_size)

    def _weights(self, layer: int, reverse: bool):
        suffix = "_reverse" if reverse else ""
        w = [getattr(self, f"weight_ih_l{layer}{suffix}"), getattr(self, f"weight_hh_l{layer}{suffix}")]
        if self.bias:
            w += [getattr(self, f"bias_ih_l{layer}{suffix}"), getattr(self, f"bias_hh_l{layer}{suffix}")]
        else:
            w += [None, None]
        return w

    def _check_input(self, input, hx):
        if isinstance(input, nn.utils.rnn.PackedSequence):
            raise TypeError("seqmem.RNN takes padded tensors, not a PackedSequence: pad the batch "
                            "(torch.nn.utils.rnn.pad_packed_sequence) and mask the padded steps")
        if not isinstance(input, torch.Tensor) or input.dim() not in (2, 3):
            got = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
            order = "(B, T, I)" if self.batch_first else "(T, B, I)"
            raise ValueError(f"input must have shape {order} or (T, I) unbatched, got {got}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"input's last dimension must be input_size={self.input_size}, "
                             f"got shape {tuple(input.shape)}")
        batched = input.dim() == 3
        LD = self.num_layers * (2 if self.bidirectional else 1)
        if hx is not None:
            B = input.shape[0 if self.batch_first else 1] if batched else None
            want = (LD, B, self.hidden_size) if batched else (LD, self.hidden_size)
            if not isinstance(hx, torch.Tensor) or tuple(hx.shape) != want:
                got = tuple(hx.shape) if isinstance(hx, torch.Tensor) else type(hx).__name__
                raise ValueError(f"hx must have shape {want} (num_layers * directions, B, H), got {got}")
        return batched

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None):
        batched = self._check_input(input, hx)
        if not batched:  # (T, I) -> (T, 1, I), as torch does
            input = input.unsqueeze(1 if not self.batch_first else 0)
            hx = hx.unsqueeze(1) if hx is not None else None
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
        if hx is None:
            D = 2 if self.bidirectional else 1
            hx = x.new_zeros(self.num_layers * D, x.shape[1], self.hidden_size)  # (L * D, B, H)
        if self.fused and self.nonlinearity in ("tanh", "relu"):
            output, h_n = self._forward_fused(x, hx)
        else:
            output, h_n = self._forward_reference(x, hx)
        if self.batch_first:
            output = output.transpose(0, 1)  # (B, T, D * H)
        if not batched:
            output, h_n = output.squeeze(1 if not self.batch_first else 0), h_n.squeeze(1)
        return output, h_n

    def _forward_fused(self, x, hx):
        kernel = torch._VF.rnn_tanh if self.nonlinearity == "tanh" else torch._VF.rnn_relu
        flat = [getattr(self, name) for name in self._flat_names]
        with warnings.catch_warnings():
            # On cuDNN the kernel compacts weights that are not in one buffer, and says so each call.
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
            return kernel(x, hx, flat, self.bias, self.num_layers, self.dropout, self.training,
                          self.bidirectional, False)

    def _forward_reference(self, x, hx):
        """The loop the chapter explains: each layer and direction unrolls ``rnn_step``."""
        D = 2 if self.bidirectional else 1
        h_n = []
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                w = self._weights(layer, reverse=d == 1)
                seq = x.flip(0) if d == 1 else x  # the backward direction reads time reversed
                step = _Step(w, self.nonlinearity)
                ys, h_last = unroll(step, seq, hx[layer * D + d])  # ys: (T, B, H)
                outs.append(ys.flip(0) if d == 1 else ys)
                h_n.append(h_last)
            x = torch.cat(outs, dim=-1)  # (T, B, D * H), the next layer's input
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, torch.stack(h_n)  # (T, B, D * H), (L * D, B, H)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s


class _Step:
    """``rnn_step`` with fixed weights, in the cell convention ``h', y = f(h, x)``, for ``unroll``."""

    def __init__(self, weights, nonlinearity):
        self.weights, self.nonlinearity = weights, nonlinearity

    def __call__(self, h, x):
        h_next = rnn_step(x, h, *self.weights, nonlinearity=self.nonlinearity)
        return h_next, h_next
