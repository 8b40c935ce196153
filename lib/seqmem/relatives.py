r"""The LSTM's relatives of chapter 3: the nested LSTM and the structurally constrained RNN.

Two ways to give a network a memory that lasts, other than the LSTM's gated cell state: nest an LSTM
inside the memory of an LSTM (``NestedLSTMCell``), or add a slow state whose recurrence is fixed
(``SCRNCell``). (The GRU, the LSTM's closest relative, has its own module, ``seqmem.gru``.) Both
cells keep the library's step convention: ``nested_lstm_step(params, state, x)`` and
``scrn_step(params, state, x, alpha, nonlinearity)`` return ``(state, y)``.

**Nested LSTM (Moniz and Krueger, 2018): the memory cell is itself an LSTM.**

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

**The structurally constrained recurrent network (SCRN; Mikolov et al., 2015).**

A simple RNN forgets fast: its state is squashed and mixed by R at every step. Mikolov et al. add a
second, *slow* state, the context s, whose recurrent matrix is fixed to α times the identity, so
that s is an exponential moving average of (a projection of) the inputs, and let the usual *fast*
hidden state h read it:

.. math::

    s_t &= (1 - \alpha)\, B x_t + \alpha\, s_{t-1} \\
    h_t &= \sigma(P s_t + A x_t + R h_{t-1}) \\
    y_t &= f(U h_t + V s_t)

with σ the sigmoid and f the softmax. Unrolled, s_t = (1 - α) Σ_k α^{t-k} B x_k: an input's trace
fades by α per step (by a factor α^20 ≈ 0.36 after 20 steps at α = 0.95), where h's fades at
the rate its learned R and σ allow. The constraint is the structure: s has no nonlinearity and no
learned recurrence, so its gradient through time is exactly α per step; it neither vanishes fast
nor explodes.

**Output.** The cell returns y = [h_t; s_t], the two states side by side (B, H + S), and leaves U,
V and f to the model: a ``torch.nn.Linear(H + S, O)`` on y computes U h_t + V s_t exactly (its
weight is [U V]), and f belongs to the loss (``cross_entropy`` applies the softmax). So one cell
serves as the paper's language model and as a layer to stack (``cell.output_size`` = H + S).

**Bias.** The paper's equation for h has no bias; ``bias=True`` (the default) adds one, b_h, as
torch's recurrent cells do. ``bias=False`` gives the paper's equations exactly.

Dimensions: B batch, I input size, H hidden size (the nested LSTM's outer and inner alike; the
SCRN's fast state), S the SCRN's context (slow) size.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from .cell import Cell, activation, check_positive_int
from .lstm import LSTMState, lstm_step

__all__ = ["NestedLSTMState", "nested_lstm_step", "NestedLSTMCell", "SCRNState", "scrn_step", "SCRNCell"]


# ------------------------------------------------------------------ the nested LSTM


class NestedLSTMState(NamedTuple):
    """A nested LSTM's state: the output h, the outer memory c (= the inner h~) and the inner memory c~."""

    h: torch.Tensor  # (B, H)
    c: torch.Tensor  # (B, H)
    inner_c: torch.Tensor  # (B, H)


def _outer_gates(params: dict, h: torch.Tensor, x: torch.Tensor):
    """The outer LSTM's gates i, f, g, o, each (B, H), from torch's layout (rows i, f, g, o)."""
    z = F.linear(x, params["weight_ih"], params.get("bias_ih")) + F.linear(h, params["weight_hh"],
                                                                           params.get("bias_hh"))  # (B, 4H)
    z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)  # each (B, H)
    return torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g), torch.sigmoid(z_o)


def nested_lstm_step(params: dict, state: NestedLSTMState, x: torch.Tensor):
    """One nested-LSTM step, the equations above; ``params`` as ``NestedLSTMCell``'s. Returns (state', h')."""
    i, f, g, o = _outer_gates(params, state.h, x)
    inner = {name.removeprefix("inner_"): p for name, p in params.items() if name.startswith("inner_")}
    # the inner LSTM reads x~_t = i_t ⊙ g_t (what an LSTM would add to its memory) with the previous
    # hidden state h~_{t-1} = f_t ⊙ c_{t-1} (what it would keep of it), and its own memory c~
    new_inner, h_inner = lstm_step(inner, LSTMState(f * state.c, state.inner_c), i * g)
    h = o * torch.tanh(h_inner)  # h_t = o_t ⊙ tanh(c_t), with c_t = h~_t
    return NestedLSTMState(h, h_inner, new_inner.c), h


class NestedLSTMCell(Cell):
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

    state_type = NestedLSTMState

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        H = hidden_size
        shapes = {"weight_ih": (4 * H, input_size), "weight_hh": (4 * H, H),
                  "inner_weight_ih": (4 * H, H), "inner_weight_hh": (4 * H, H)}
        biases = ("bias_ih", "bias_hh", "inner_bias_ih", "inner_bias_hh")
        if bias:
            shapes.update({name: (4 * H,) for name in biases})
        super().__init__(input_size, hidden_size, shapes, absent=() if bias else biases, device=device, dtype=dtype)
        self.bias = bias

    def step(self, params, state, x):
        return nested_lstm_step(params, state, x)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


# ------------------------------------------------------------------ the SCRN

#: The hidden state's nonlinearities σ an SCRN accepts (names of ``seqmem.cell.ACTIVATIONS``).
SCRN_NONLINEARITIES = ("sigmoid", "tanh")


class SCRNState(NamedTuple):
    """An SCRN's state: the fast hidden state h (B, H) and the slow context s (B, S)."""

    h: torch.Tensor
    s: torch.Tensor


def scrn_step(params: dict, state: SCRNState, x: torch.Tensor, alpha: float, nonlinearity: str = "sigmoid"):
    """One SCRN step, the equations above; ``params`` as ``SCRNCell``'s. Returns (state', [h'; s'])."""
    h, s = state
    s = (1 - alpha) * (x @ params["B"].T) + alpha * s  # (B, S): s_t = (1 - α) B x_t + α s_{t-1}
    a = s @ params["P"].T + x @ params["A"].T + h @ params["R"].T  # (B, H): P s_t + A x_t + R h_{t-1}
    if params.get("b_h") is not None:
        a = a + params["b_h"]
    h = activation(nonlinearity, SCRN_NONLINEARITIES)(a)  # h_t = σ(...)
    return SCRNState(h, s), torch.cat([h, s], dim=1)  # y: (B, H + S)


class SCRNCell(Cell):
    """One SCRN step: ``state, y = cell(state, x)`` with ``SCRNState(h, s)`` and y = [h; s].

    Parameters, named as in the paper: ``B`` (S, I) the input's projection into the context,
    ``A`` (H, I) input to hidden, ``P`` (H, S) context to hidden, ``R`` (H, H) hidden to hidden,
    and ``b_h`` (H,) with ``bias``. α is a fixed number, not learned (the paper fixes it at 0.95).
    All weights start from U(-1/sqrt(H), 1/sqrt(H)), as torch initialises recurrent layers.

    Args:
        alpha: the context's decay, in [0, 1]: 0 makes s_t = B x_t (no memory), 1 freezes s.
        nonlinearity: σ of the hidden state, ``"sigmoid"`` (the paper's) or ``"tanh"``.

    Shape:
        state: ``SCRNState`` with h (B, H) and s (B, S); x: (B, I).
        returns ``(state', y)`` with y (B, H + S).
    """

    state_type = SCRNState

    def __init__(self, input_size: int, hidden_size: int, context_size: int, alpha: float = 0.95,
                 bias: bool = True, nonlinearity: str = "sigmoid", device=None, dtype=None):
        check_positive_int("context_size", context_size)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
        activation(nonlinearity, SCRN_NONLINEARITIES)
        H, S, I = hidden_size, context_size, input_size
        shapes = {"B": (S, I), "A": (H, I), "P": (H, S), "R": (H, H), **({"b_h": (H,)} if bias else {})}
        super().__init__(input_size, hidden_size, shapes, absent=() if bias else ("b_h",), device=device, dtype=dtype)
        self.context_size, self.alpha, self.bias, self.nonlinearity = context_size, float(alpha), bias, nonlinearity

    @property
    def output_size(self) -> int:
        return self.hidden_size + self.context_size  # y = [h; s]: what a stacking layer reads

    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size, self.context_size)

    def step(self, params, state, x):
        return scrn_step(params, state, x, self.alpha, self.nonlinearity)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, context_size={self.context_size}, alpha={self.alpha}, "
                f"bias={self.bias}, nonlinearity={self.nonlinearity!r}")
