r"""The depth-gated LSTM (Yao, Cohn, Vylomova, Duh and Dyer 2015): a memory path across layers.

In a stacked LSTM each layer's memory cell c carries information along time, and only the fast
output h goes up to the next layer. Yao et al. add a path *up* for the slow memory too: layer
L + 1's memory cell receives, through a gate of its own, the memory cell of the layer below at the
same time step. The depth gate $d$ is computed like the other gates, from the layer's input and
from the two memory cells it links:

.. math::

    d^{L+1}_t &= \sigma(W_{xd} x^{L+1}_t + w_{cd} \odot c^{L+1}_{t-1} + w_{ld} \odot c^{L}_t + b_d)
                 && \text{depth gate}\\
    c^{L+1}_t &= d^{L+1}_t \odot c^{L}_t + f^{L+1}_t \odot c^{L+1}_{t-1} + i^{L+1}_t \odot z^{L+1}_t
                 && \text{cell state}

with $x^{L+1}_t = h^{L}_t$, the layer below's output, and the input gate i, forget gate f, block
input z and output gate o of the library's LSTM (``seqmem.lstm``, variant ``"NP"``: no
peepholes, exactly ``torch.nn.LSTMCell``; the paper's LSTM has peepholes on its gates, which the
depth gate does not need). $w_{cd}$ and $w_{ld}$ are vectors (element-wise, like peepholes). The
gate is a highway for the memory: with $d = 1$ and $f = i = 0$, layer L + 1 copies layer L's
cell.

**On the stacking machinery.** ``seqmem.Stacked`` runs one layer over the whole sequence and hands
its outputs up. So that the layer above can read $c^L_t$, a ``DepthGatedLSTMCell`` outputs
$y_t = [h_t; c_t]$ (B, 2H): the layer above reads $[x^{L+1}_t; c^L_t]$ from it, and no new loop is
needed. The bottom layer has no cell below (``below=False``): its input is the sequence itself and
it has no depth gate. ``depth_gate=False`` removes the gate from every layer, and the model is then
exactly a stacked LSTM (tested).

Dimensions: B batch, T time, I input size, H hidden size (every layer), L layers.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .cell import Cell
from .core import check_positive_int
from .layers import Stacked
from .lstm import LSTMState, lstm_parameter_shapes

__all__ = ["DepthGatedLSTMCell", "DepthGatedLSTM", "depth_gated_step"]


def depth_gated_step(params: dict, state: LSTMState, x: torch.Tensor, c_below: torch.Tensor | None = None):
    """One step of a depth-gated LSTM layer: the equations of the module docstring.

    Args:
        params: ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih``, ``bias_hh`` (4H,) in
            torch's gate order (i, f, z, o); with a depth gate also ``weight_xd`` (H, I),
            ``bias_d`` (H,), ``w_cd`` and ``w_ld`` (H,).
        state: ``LSTMState(h, c)``, each (B, H). x: (B, I), the layer's input $x^{L+1}_t$.
        c_below: (B, H), the memory cell of the layer below at this step, or ``None`` (no depth gate).

    Returns:
        ``(state', y)`` with y = [h'; c'] (B, 2H).
    """
    h_prev, c_prev = state
    H = c_prev.shape[-1]
    pre = F.linear(x, params["weight_ih"], params["bias_ih"]) + F.linear(h_prev, params["weight_hh"],
                                                                         params["bias_hh"])  # (B, 4H)
    a_i, a_f, a_z, a_o = pre.split(H, dim=-1)  # each (B, H)
    i, f, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.sigmoid(a_o)
    c = f * c_prev + i * torch.tanh(a_z)  # the LSTM's cell state
    if c_below is not None:  # the depth gate and the memory from below
        d = torch.sigmoid(F.linear(x, params["weight_xd"], params["bias_d"]) + params["w_cd"] * c_prev
                          + params["w_ld"] * c_below)  # (B, H)
        c = c + d * c_below
    h = o * torch.tanh(c)  # (B, H)
    return LSTMState(h, c), torch.cat([h, c], dim=-1)  # y: (B, 2H)


class DepthGatedLSTMCell(Cell):
    """One layer of the depth-gated LSTM: ``state, y = cell(state, x)``, state ``LSTMState(h, c)``.

    Args:
        input_size: the size of what the cell reads per step: I for the bottom layer
            (``below=False``); 2H' for a layer above another, whose output $[h'; c']$ it reads.
        hidden_size: H.
        below: whether a layer lies below: the input's last H entries are then its memory cell
            $c^L_t$ and the first ``input_size - H`` the layer's input $x^{L+1}_t = h^L_t$.
        depth_gate: the depth gate; ``False`` drops the memory from below, and the cell is the
            library's ``LSTMCell`` (NP) on $x^{L+1}_t$ with the same parameter names.

    Shape: state (h, c) each (B, H); x (B, input_size); returns (state', y) with y = [h'; c'] (B, 2H).
    """

    state_type = LSTMState

    def __init__(self, input_size: int, hidden_size: int, below: bool = True, depth_gate: bool = True,
                 device=None, dtype=None):
        check_positive_int("input_size", input_size)
        check_positive_int("hidden_size", hidden_size)
        own = input_size - hidden_size if below else input_size  # the size of x^{L+1}
        if own < 1:
            raise ValueError(f"a depth-gated cell with a layer below reads [x; c_below], so input_size must "
                             f"exceed hidden_size ({hidden_size}), got {input_size}")
        shapes = lstm_parameter_shapes(own, hidden_size)
        if below and depth_gate:
            shapes.update(weight_xd=(hidden_size, own), bias_d=(hidden_size,), w_cd=(hidden_size,),
                          w_ld=(hidden_size,))
        super().__init__(input_size, hidden_size, shapes, device=device, dtype=dtype)
        self.below, self.depth_gate, self.own_size = bool(below), bool(depth_gate), own

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size  # y = [h; c]

    def step(self, params, state, x):
        if not self.below:
            return depth_gated_step(params, state, x)
        x_own, c_below = x[:, :self.own_size], x[:, self.own_size:]  # (B, I'), (B, H)
        return depth_gated_step(params, state, x_own, c_below if self.depth_gate else None)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, below={self.below}, depth_gate={self.depth_gate}"


class DepthGatedLSTM(nn.Module):
    """A stack of ``num_layers`` depth-gated LSTM layers, batch first, on ``seqmem.Stacked``.

    Layer 0 reads the sequence (I features) and has no depth gate; each layer above reads the
    output $[h; c]$ of the one below. ``forward(x, states=None)`` returns ``(h, finals)``: the top
    layer's h (B, T, H) and the list of the L final ``LSTMState``s. ``self.stack`` is the
    ``Stacked`` (its output carries every layer's [h; c] at the top: ``self.stack(x)``).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 2, depth_gate: bool = True,
                 device=None, dtype=None):
        super().__init__()
        check_positive_int("num_layers", num_layers)
        layer = iter(range(num_layers))

        def factory(n_in: int, n_hidden: int) -> DepthGatedLSTMCell:
            below = next(layer) > 0
            return DepthGatedLSTMCell(n_in, n_hidden, below=below, depth_gate=depth_gate, device=device,
                                      dtype=dtype)

        self.hidden_size, self.depth_gate = hidden_size, depth_gate
        self.stack = Stacked(factory, input_size, hidden_size, num_layers)

    def initial_state(self, batch_size: int) -> list:
        return self.stack.initial_state(batch_size)

    def forward(self, x: torch.Tensor, states=None):
        y, finals = self.stack(x, states)  # y: (B, T, 2H), the top layer's [h; c]
        return y[..., :self.hidden_size], finals  # (B, T, H)
