r"""The structurally constrained recurrent network (SCRN; Mikolov et al., 2015).

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

Dimensions: B batch, I input size, H hidden (fast) size, S context (slow) size.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .layers import check_like

__all__ = ["SCRNState", "SCRNCell"]

_NONLINEARITIES = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}


class SCRNState(NamedTuple):
    """An SCRN's state: the fast hidden state h (B, H) and the slow context s (B, S)."""

    h: torch.Tensor
    s: torch.Tensor


class SCRNCell(nn.Module):
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

    def __init__(self, input_size: int, hidden_size: int, context_size: int, alpha: float = 0.95,
                 bias: bool = True, nonlinearity: str = "sigmoid", device=None, dtype=None):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("context_size", context_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {sorted(_NONLINEARITIES)}, got {nonlinearity!r}")
        self.input_size, self.hidden_size, self.context_size = input_size, hidden_size, context_size
        self.alpha, self.bias, self.nonlinearity = float(alpha), bias, nonlinearity
        self.output_size = hidden_size + context_size  # y = [h; s]: what a stacking layer reads
        H, S, I, kw = hidden_size, context_size, input_size, {"device": device, "dtype": dtype}
        self.B = nn.Parameter(torch.empty(S, I, **kw))
        self.A = nn.Parameter(torch.empty(H, I, **kw))
        self.P = nn.Parameter(torch.empty(H, S, **kw))
        self.R = nn.Parameter(torch.empty(H, H, **kw))
        self.b_h = nn.Parameter(torch.empty(H, **kw)) if bias else None
        bound = 1.0 / math.sqrt(H)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def initial_state(self, batch_size: int) -> SCRNState:
        """Zeros: h (B, H) and s (B, S), on the parameters' device and dtype."""
        return SCRNState(self.R.new_zeros(batch_size, self.hidden_size),
                         self.R.new_zeros(batch_size, self.context_size))

    def forward(self, state: SCRNState, x: torch.Tensor):
        h, s = self._check(state, x)
        s = (1 - self.alpha) * (x @ self.B.T) + self.alpha * s  # (B, S): s_t = (1 - α) B x_t + α s_{t-1}
        a = s @ self.P.T + x @ self.A.T + h @ self.R.T  # (B, H): P s_t + A x_t + R h_{t-1}
        if self.b_h is not None:
            a = a + self.b_h
        h = _NONLINEARITIES[self.nonlinearity](a)  # h_t = σ(...)
        return SCRNState(h, s), torch.cat([h, s], dim=1)  # y: (B, H + S)

    def _check(self, state, x):
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.input_size:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {self.input_size}), got {got}")
        if not isinstance(state, tuple) or len(state) != 2:
            raise ValueError(f"state must be an SCRNState (h, s), got {type(state).__name__}")
        for name, part, size in (("h", state[0], self.hidden_size), ("s", state[1], self.context_size)):
            if not isinstance(part, torch.Tensor) or tuple(part.shape) != (x.shape[0], size):
                got = tuple(part.shape) if isinstance(part, torch.Tensor) else type(part).__name__
                raise ValueError(f"state.{name} must have shape ({x.shape[0]}, {size}), got {got}")
        check_like(self.A, x=x, **{"state.h": state[0], "state.s": state[1]})
        return state

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, context_size={self.context_size}, alpha={self.alpha}, "
                f"bias={self.bias}, nonlinearity={self.nonlinearity!r}")
