r"""Nested LSTM (Moniz and Krueger, 2018): the memory cell is itself an LSTM.

An LSTM writes its memory by addition, c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t. Stacking LSTMs adds depth
between layers; *nesting* adds it inside the memory: the sum is replaced by a learned function
m_t(f_t ⊙ c_{t-1}, i_t ⊙ g_t), and that function is a second (inner) LSTM. What the outer LSTM
would have kept, f_t ⊙ c_{t-1}, becomes the inner LSTM's previous hidden state; what it would have
added, i_t ⊙ g_t, becomes the inner LSTM's input; the outer memory c_t is the inner hidden state.

The equations of Moniz and Krueger (2018), in the order the code runs them. The outer gates,
as in an LSTM:

.. math::

    i_t &= \sigma(W_{xi} x_t + W_{hi} h_{t-1} + b_i) \qquad
    f_t  = \sigma(W_{xf} x_t + W_{hf} h_{t-1} + b_f) \\
    g_t &= \tanh(W_{xc} x_t + W_{hc} h_{t-1} + b_c) \qquad
    o_t  = \sigma(W_{xo} x_t + W_{ho} h_{t-1} + b_o)

the inner LSTM's input and previous hidden state:

.. math::

    \tilde x_t = i_t \odot g_t, \qquad \tilde h_{t-1} = f_t \odot c_{t-1}

the inner LSTM, with its own memory \tilde c and its own weights:

.. math::

    \tilde i_t &= \sigma(\tilde W_{xi} \tilde x_t + \tilde W_{hi} \tilde h_{t-1} + \tilde b_i), \quad
    \tilde f_t, \tilde o_t \text{ likewise}, \quad
    \tilde g_t = \tanh(\tilde W_{xc} \tilde x_t + \tilde W_{hc} \tilde h_{t-1} + \tilde b_c) \\
    \tilde c_t &= \tilde f_t \odot \tilde c_{t-1} + \tilde i_t \odot \tilde g_t, \qquad
    \tilde h_t = \tilde o_t \odot \tanh(\tilde c_t)

and the outer memory and output:

.. math::

    c_t = \tilde h_t, \qquad h_t = o_t \odot \tanh(c_t)

The paper writes the activations generically (σ_c, σ_h and their inner counterparts); this cell
uses the standard LSTM's: sigmoid gates, tanh elsewhere. One level of nesting (an LSTM inside an
LSTM), as in the paper's experiments.

Dimensions: B batch, I input size, H hidden size (outer and inner alike).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .layers import check_like

__all__ = ["NestedLSTMState", "NestedLSTMCell", "lstm_gates"]


class NestedLSTMState(NamedTuple):
    """A nested LSTM's state: the output h, the outer memory c (= the inner h~) and the inner memory c~."""

    h: torch.Tensor  # (B, H)
    c: torch.Tensor  # (B, H)
    inner_c: torch.Tensor  # (B, H)


def lstm_gates(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """The four LSTM gates (i, f, g, o) from x (B, I) and h (B, H), torch's weight layout (4H, ...)."""
    z = x @ weight_ih.T + h @ weight_hh.T  # (B, 4H): the four pre-activations side by side
    if bias_ih is not None:
        z = z + bias_ih + bias_hh
    z_i, z_f, z_g, z_o = z.chunk(4, dim=1)  # each (B, H)
    return torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g), torch.sigmoid(z_o)


class NestedLSTMCell(nn.Module):
    """A nested LSTM step: ``state, h = cell(state, x)`` with ``NestedLSTMState(h, c, inner_c)``.

    Parameters, in torch's ``LSTMCell`` layout (gates stacked i, f, g, o):

    - the outer LSTM: ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih``, ``bias_hh`` (4H,);
    - the inner LSTM: ``inner_weight_ih`` (4H, H), ``inner_weight_hh`` (4H, H), ``inner_bias_ih``,
      ``inner_bias_hh`` (4H,). The inner LSTM is an ordinary LSTM cell of input and hidden size H:
      ``torch.nn.LSTMCell(H, H)`` with these weights computes (h~_t, c~_t).

    All initialised from U(-1/sqrt(H), 1/sqrt(H)), as torch initialises its LSTM.

    Shape:
        state: ``NestedLSTMState`` of three (B, H) tensors; x: (B, I).
        returns ``(state', y)`` with y = h' (B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        H, kw = hidden_size, {"device": device, "dtype": dtype}
        shapes = {"weight_ih": (4 * H, input_size), "weight_hh": (4 * H, H),
                  "inner_weight_ih": (4 * H, H), "inner_weight_hh": (4 * H, H)}
        if bias:
            shapes.update(bias_ih=(4 * H,), bias_hh=(4 * H,), inner_bias_ih=(4 * H,), inner_bias_hh=(4 * H,))
        else:
            for name in ("bias_ih", "bias_hh", "inner_bias_ih", "inner_bias_hh"):
                self.register_parameter(name, None)
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.empty(*shape, **kw)))
        bound = 1.0 / math.sqrt(H)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def initial_state(self, batch_size: int) -> NestedLSTMState:
        """Zeros (B, H) for h, c and c~, on the parameters' device and dtype."""
        zeros = self.weight_hh.new_zeros(batch_size, self.hidden_size)
        return NestedLSTMState(zeros, zeros.clone(), zeros.clone())

    def forward(self, state: NestedLSTMState, x: torch.Tensor):
        h, c, inner_c = self._check(state, x)
        i, f, g, o = lstm_gates(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        x_inner = i * g  # x~_t = i_t ⊙ g_t: what an LSTM would add to its memory
        h_inner = f * c  # h~_{t-1} = f_t ⊙ c_{t-1}: what an LSTM would keep of it
        i_, f_, g_, o_ = lstm_gates(x_inner, h_inner, self.inner_weight_ih, self.inner_weight_hh,
                                    self.inner_bias_ih, self.inner_bias_hh)  # the inner gates, each (B, H)
        inner_c = f_ * inner_c + i_ * g_  # c~_t = f~_t ⊙ c~_{t-1} + i~_t ⊙ g~_t
        c = o_ * torch.tanh(inner_c)  # c_t = h~_t = o~_t ⊙ tanh(c~_t)
        h = o * torch.tanh(c)  # h_t = o_t ⊙ tanh(c_t)
        return NestedLSTMState(h, c, inner_c), h

    def _check(self, state, x):
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.input_size:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {self.input_size}), got {got}")
        if not isinstance(state, tuple) or len(state) != 3:
            raise ValueError(f"state must be a NestedLSTMState (h, c, inner_c), got {type(state).__name__}")
        want = (x.shape[0], self.hidden_size)
        for name, part in zip(NestedLSTMState._fields, state):
            if not isinstance(part, torch.Tensor) or tuple(part.shape) != want:
                got = tuple(part.shape) if isinstance(part, torch.Tensor) else type(part).__name__
                raise ValueError(f"state.{name} must have shape {want}, got {got}")
        check_like(self.weight_hh, x=x, **{f"state.{n}": t for n, t in zip(NestedLSTMState._fields, state)})
        return state

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"
