r"""The gated recurrent unit (Cho et al., 2014): an LSTM with the cell state merged into h.

Two gates instead of three: the update gate z blends the old state with a candidate n (it plays
the coupled forget and input gates of the LSTM's CIFG variant), and the reset gate r decides how
much of the old state the candidate sees. From x and the previous state h, with σ the logistic
sigmoid, following ``torch.nn.GRU`` (gates in the order r, z, n):

.. math::

    r &= \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr})           && \text{reset gate}\\
    z &= \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz})           && \text{update gate}\\
    n &= \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn}))  && \text{candidate, reset after the product}\\
    h' &= (1 - z) \odot n + z \odot h                            && \text{update}

The lectures (and Cho et al.) apply the reset gate *before* the product, to the state itself:

.. math::

    n = \tanh(W_{in} x + b_{in} + W_{hn} (r \odot h) + b_{hn})

``reset_after=True`` (the default) is torch's form, which lets the fused kernels compute W_h h for
all three gates in one product; ``reset_after=False`` is the textbook form (same parameters). Some
slides write the update with z and 1 - z swapped (z weighting the candidate): that is the same
model with z's sign flipped; we keep torch's convention, z weighting the old state.

Parameters, as ``torch.nn.GRUCell``: ``weight_ih`` (3H, I) = [W_ir; W_iz; W_in], ``weight_hh``
(3H, H) = [W_hr; W_hz; W_hn], ``bias_ih`` and ``bias_hh`` (3H,).

Dimensions: B batch, T time, I input size, H hidden size, L layers, D directions (1 or 2).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .cell import Cell
from .layers import RecurrentLayer

__all__ = ["gru_parameter_shapes", "gru_step", "GRUCell", "GRU"]


def gru_parameter_shapes(input_size: int, hidden_size: int, bias: bool = True) -> dict[str, tuple]:
    """One cell's parameters and shapes: W_i (3H, I), W_h (3H, H), b_i and b_h (3H,)."""
    H = hidden_size
    shapes = {"weight_ih": (3 * H, input_size), "weight_hh": (3 * H, H)}
    if bias:
        shapes.update(bias_ih=(3 * H,), bias_hh=(3 * H,))
    return shapes


def _blocks(w, b, part: slice):
    """Rows ``part`` of a weight (3H, *) and of its bias (3H,) (None without bias)."""
    return w[part], (b[part] if b is not None else None)


def gru_step(params: dict, h: torch.Tensor, x: torch.Tensor, reset_after: bool = True):
    """One GRU step: the equations of the module docstring.

    Args:
        params: ``weight_ih``, ``weight_hh`` and optionally ``bias_ih``, ``bias_hh``, in torch's
            layout. h: (B, H). x: (B, I). reset_after: torch's form (True) or the textbook one.

    Returns:
        ``(h', y)`` with y = h' (B, H).
    """
    H = h.shape[-1]
    W_i, W_h, b_i, b_h = params["weight_ih"], params["weight_hh"], params.get("bias_ih"), params.get("bias_hh")
    gi_r, gi_z, gi_n = F.linear(x, W_i, b_i).split(H, dim=-1)  # W_i x + b_i: 3 x (B, H)
    if reset_after:
        gh_r, gh_z, gh_n = F.linear(h, W_h, b_h).split(H, dim=-1)  # W_h h + b_h: 3 x (B, H)
        r, z = torch.sigmoid(gi_r + gh_r), torch.sigmoid(gi_z + gh_z)  # reset and update gates
        n = torch.tanh(gi_n + r * gh_n)  # reset after the product (torch)
    else:
        gh_r, gh_z = F.linear(h, *_blocks(W_h, b_h, slice(0, 2 * H))).split(H, dim=-1)  # 2 x (B, H)
        r, z = torch.sigmoid(gi_r + gh_r), torch.sigmoid(gi_z + gh_z)
        n = torch.tanh(gi_n + F.linear(r * h, *_blocks(W_h, b_h, slice(2 * H, 3 * H))))  # reset before
    h_next = (1 - z) * n + z * h  # (B, H): z keeps the old state, 1 - z takes the candidate
    return h_next, h_next


class GRUCell(Cell):
    """The lecture's f for the GRU: ``h_next, y = cell(h, x)`` with y = h_next.

    Parameters as ``torch.nn.GRUCell`` (a torch cell's state dict loads). ``reset_after=True`` is
    torch's GRU and, with ``fused=True``, runs torch's fused ``gru_cell`` kernel; ``fused=False``
    runs ``gru_step``, tested equal. ``reset_after=False`` is the textbook form (always ``gru_step``).

    Shape:
        h: (B, H); x: (B, I); returns (h_next, y), both (B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None,
                 *, reset_after: bool = True, fused: bool = True):
        super().__init__(input_size, hidden_size, gru_parameter_shapes(input_size, hidden_size, bias),
                         absent=() if bias else ("bias_ih", "bias_hh"), device=device, dtype=dtype)
        self.bias, self.reset_after, self.fused = bias, reset_after, fused

    def forward(self, h: torch.Tensor, x: torch.Tensor):
        self.check(h, x)
        if self.fused and self.reset_after:
            h_next = torch._VF.gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
            return h_next, h_next
        return self.step(self.params(), h, x)

    def step(self, params, h, x):
        return gru_step(params, h, x, self.reset_after)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}, reset_after={self.reset_after}"


class GRU(RecurrentLayer):
    """A multi-layer, optionally bidirectional GRU: a drop-in for ``torch.nn.GRU``.

    Arguments, outputs and parameter names are torch's (``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}``, suffix ``_reverse``). ``fused=True`` (the default) runs
    torch's fused kernel ``torch._VF.gru`` when ``reset_after`` (torch's form); the textbook form
    ``reset_after=False``, or ``fused=False``, runs ``gru_step`` for every layer and direction
    through ``seqmem.layers.run_stacked``.

    Shape:
        input: (T, B, I), or (B, T, I) with ``batch_first``, or (T, I) unbatched, or a
        ``PackedSequence`` (then the output is packed, the final state at each true end).
        hx: (L * D, B, H) or (L * D, H) unbatched; zeros when omitted.
        returns output (T, B, D * H) (batch first if asked) and h_n (L * D, B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, reset_after: bool = True, fused: bool = True):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         fused=fused)
        self.reset_after = reset_after
        self._register_cells(device, dtype)

    def _cell_shapes(self, input_size: int) -> dict[str, tuple]:
        return gru_parameter_shapes(input_size, self.hidden_size, self.bias)

    def _step(self, params, h, x):
        return gru_step(params, h, x, self.reset_after)

    def _can_fuse(self) -> bool:
        return self.reset_after

    def _forward_fused(self, x, parts, batch_sizes=None):
        output, h_n = self._run_kernel(torch._VF.gru, x, parts[0], batch_sizes)
        return output, (h_n,)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (", reset_after=False" if not self.reset_after else "")
