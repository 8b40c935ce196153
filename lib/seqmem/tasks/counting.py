r"""The lecture's counting memory (Seed 003, pages 19-25): the job, the slide's example, the hand-built cell.

One LSTM cell reads x = (x_1, x_2, x_3) at every step: when x_2 = 1 the input gate opens and x_1
is added to the memory, when x_2 = -1 the forget gate closes and the memory is reset, and when
x_3 = 1 the output gate opens and the memory is shown. Everything about it lives here:

- the rule itself, ``counting_targets(x)``: what the memory shows at every step;
- the slide's sequence and numbers, ``SLIDE_INPUTS``, ``SLIDE_MEMORY`` and ``SLIDE_OUTPUTS``;
- random sequences with their targets, ``counting_memory`` (a task to train a network on);
- the slide's weights, ``counting_cell_weights``, and ``counting_cell()``, a ``seqmem.LSTMCell``
  that holds them and does the job by hand.

Dimensions: B batch, T time.
"""
from __future__ import annotations

import torch

from ..lstm import LSTMCell
from ._common import check_sizes, gen_device

__all__ = ["counting_targets", "counting_memory", "SLIDE_INPUTS", "SLIDE_MEMORY", "SLIDE_OUTPUTS",
           "counting_cell_weights", "counting_cell"]


def counting_targets(x: torch.Tensor) -> torch.Tensor:
    """The counter's outputs: x (B, T, 3) rows (value, write/reset, read) -> (B, T) what it shows.

    The memory starts at 0; at each step x_2 = -1 resets it to 0, x_2 = 1 adds x_1 to it; the
    output is the memory after the update where x_3 = 1, and 0 elsewhere.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != 3:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape (B, T, 3), got {got}")
    memory, shown = x.new_zeros(x.shape[0]), []  # memory: (B,)
    for step in x.unbind(1):  # (B, 3): one step of every sequence
        value, x2, x3 = step.unbind(-1)  # (B,) each
        memory = torch.where(x2 < 0, 0.0, memory + value * (x2 > 0))  # reset, or add
        shown.append(memory * x3)
    return torch.stack(shown, dim=1)  # (B, T)


def counting_memory(batch_size: int, T: int, p_write: float = 0.3, p_reset: float = 0.1, p_read: float = 0.2,
                    max_value: int = 9, generator=None, device=None):
    """The job of the lecture's hand-built LSTM cell (Seed 003, page 19), on random sequences.

    Each step carries x = (x_1, x_2, x_3): a value x_1 drawn from 1 ... ``max_value``; x_2 = 1 (with
    probability ``p_write``: add x_1 to the memory), -1 (``p_reset``: reset the memory to 0) or 0
    (leave it); x_3 = 1 (``p_read``: show the memory) or 0. The target is the memory after the
    step's update where x_3 = 1, and 0 elsewhere. ``counting_cell()`` solves it by hand.

    Returns:
        x: (B, T, 3) floats.
        y: (B, T) floats, the memory shown at each step (0 where x_3 = 0).
    """
    check_sizes(batch_size=batch_size, T=T, max_value=max_value)
    if p_write < 0 or p_reset < 0 or p_write + p_reset > 1 or not 0 <= p_read <= 1:
        raise ValueError(f"need p_write, p_reset >= 0 with p_write + p_reset <= 1 and p_read in [0, 1], "
                         f"got {p_write}, {p_reset}, {p_read}")
    gdev = gen_device(generator)
    value = torch.randint(1, max_value + 1, (batch_size, T), generator=generator, device=gdev).float()
    u = torch.rand(batch_size, T, generator=generator, device=gdev)
    x2 = (u < p_write).float() - ((u >= p_write) & (u < p_write + p_reset)).float()  # 1, -1 or 0
    x3 = (torch.rand(batch_size, T, generator=generator, device=gdev) < p_read).float()
    x = torch.stack([value, x2, x3], dim=-1)  # (B, T, 3)
    return x.to(device or gdev), counting_targets(x).to(device or gdev)  # (B, T)


# ----------------------------------------------------------------------------------------------
# The slide's example and its hand-built cell

#: The slide's input sequence x^1 ... x^9, one row (x_1, x_2, x_3) per step: (9, 3).
SLIDE_INPUTS = torch.tensor([[1.0, 0, 0], [3, 1, 0], [2, 0, 0], [4, 1, 0], [2, 0, 0],
                             [1, 0, 1], [3, -1, 0], [6, 1, 0], [1, 0, 1]])
#: The memory c after each step (the slide draws the memory above each input: 0 before the
#: first, then these values shifted by one step).
SLIDE_MEMORY = torch.tensor([0.0, 3, 3, 7, 7, 7, 0, 6, 6])
#: The cell's output y at each step.
SLIDE_OUTPUTS = torch.tensor([0.0, 0, 0, 0, 0, 7, 0, 0, 6])


def counting_cell_weights(dtype: torch.dtype = torch.float32, device=None) -> dict:
    """The slide's weights, laid out as ``torch.nn.LSTMCell``'s (gates in the order i, f, g, o).

    Each gate reads (x_1, x_2, x_3) and a bias (the slide's constant input 1); nothing reads h:

    ========================  =========  =====  ===========================================
    gate                      weights    bias   effect
    ========================  =========  =====  ===========================================
    input gate   z_i          (0, 100, 0)  -10  open (σ ≈ 1) only when x_2 = 1
    forget gate  z_f          (0, 100, 0)   10  keeps the memory unless x_2 = -1
    cell input   z            (1, 0, 0)      0  the value x_1 (a linear g)
    output gate  z_o          (0, 0, 100)  -10  open only when x_3 = 1
    ========================  =========  =====  ===========================================

    Returns:
        ``{"weight_ih": (4, 3), "weight_hh": (4, 1), "bias_ih": (4,), "bias_hh": (4,)}``, the keys
        of the state dict of an LSTM cell with input size 3 and hidden size 1.
    """
    kw = {"dtype": dtype, "device": device}
    weight_ih = torch.tensor([[0.0, 100, 0],   # z_i, the input gate
                              [0.0, 100, 0],   # z_f, the forget gate
                              [1.0, 0, 0],     # z, the cell input
                              [0.0, 0, 100]], **kw)  # z_o, the output gate
    bias_ih = torch.tensor([-10.0, 10, 0, -10], **kw)
    return {"weight_ih": weight_ih, "weight_hh": torch.zeros(4, 1, **kw),
            "bias_ih": bias_ih, "bias_hh": torch.zeros(4, **kw)}


def counting_cell(dtype: torch.dtype = torch.float32, device=None):
    """The lecture's hand-built memory cell: a ``seqmem.LSTMCell(3, 1)`` with the slide's weights.

    The gates are sigmoids; the cell input g and the output activation h are linear, as on the
    slide (so the memory holds the sum itself, not its tanh). No peepholes (variant "NP").
    Running it over ``SLIDE_INPUTS`` gives ``SLIDE_MEMORY`` and ``SLIDE_OUTPUTS`` up to the
    gates' saturation (σ(10) = 0.99995, not 1).
    """
    cell = LSTMCell(3, 1, bias=True, variant="NP", input_activation="identity", output_activation="identity")
    cell.load_state_dict(counting_cell_weights())
    return cell.to(device=device, dtype=dtype)
