r"""Long short-term memory: a cell state c that changes slowly, and gates that decide what it keeps.

The lecture's picture: c changes slowly (c^t is c^{t-1} plus something), h changes fast. The
vanilla LSTM of Greff et al. (*LSTM: A Search Space Odyssey*, 2017), with block input z, input,
forget and output gates i, f, o, peepholes p (diagonal: element-wise products), input and output
activations g and h (tanh by default) and the logistic sigmoid σ, computes, from x^t and the
previous state (h^{t-1}, c^{t-1}):

.. math::

    z^t &= g(W_z x^t + R_z h^{t-1} + b_z)                              && \text{block input}\\
    i^t &= \sigma(W_i x^t + R_i h^{t-1} + p_i \odot c^{t-1} + b_i)      && \text{input gate}\\
    f^t &= \sigma(W_f x^t + R_f h^{t-1} + p_f \odot c^{t-1} + b_f)      && \text{forget gate}\\
    c^t &= f^t \odot c^{t-1} + i^t \odot z^t                            && \text{cell state}\\
    o^t &= \sigma(W_o x^t + R_o h^{t-1} + p_o \odot c^t + b_o)          && \text{output gate (sees the new } c^t)\\
    h^t &= o^t \odot h(c^t)                                             && \text{block output}

Greff et al.'s eight variants change one thing each (``variant=``):

====== ======================================================================================
NIG    no input gate: i^t = 1
NFG    no forget gate: f^t = 1
NOG    no output gate: o^t = 1
NIAF   no input activation function: g(x) = x
NOAF   no output activation function: h(x) = x
NP     no peepholes (the default: exactly ``torch.nn.LSTMCell``)
CIFG   coupled input and forget gate: f^t = 1 - i^t
FGR    full gate recurrence: each gate's pre-activation also reads all gates' previous activations,
       + R_{ia} i^{t-1} + R_{fa} f^{t-1} + R_{oa} o^{t-1} for gate a in (i, f, o)
====== ======================================================================================

"V" is the vanilla LSTM itself. Every variant but NP keeps V's peepholes.

**Parameter layout** (torch's names, so NP loads a ``torch.nn.LSTMCell``'s state dict). The rows of
the input weights W (torch's ``weight_ih``), recurrent weights R (``weight_hh``) and biases come in
blocks of H, one per *present* row block of torch's order (i, f, z, o) (torch calls z "g"); a variant
without a gate has no block for it:

- ``weight_ih`` (G * H, I), ``weight_hh`` (G * H, H), ``bias_ih`` and ``bias_hh`` (G * H,) (with
  ``bias``; the two biases add up, as in torch). G = 4 for V, NP, NIAF, NOAF, FGR; G = 3 for NIG
  (f, z, o), NFG (i, z, o), NOG (i, f, z) and CIFG (i, z, o).
- ``peephole`` (P, H), every variant but NP: rows p_a for the present gates a, in the order
  (i, f, o): P = 3 for V, NIAF, NOAF, FGR; P = 2 for NIG (p_f, p_o), NFG (p_i, p_o), NOG (p_i, p_f)
  and CIFG (p_i, p_o).
- ``weight_gg`` (3 * H, 3 * H), FGR only: the nine gate-to-gate matrices R_{ba}; row block a (the
  gate fed) and column block b (the previous gate read), both in the order (i, f, o).

The state is ``LSTMState(h, c)``; FGR's also carries the gates' previous activations,
``FGRState(h, c, gates)`` with gates = [i; f; o] (B, 3H). The cell's output y is h.

``LSTM`` is the drop-in for ``torch.nn.LSTM``: torch's fused kernel for NP with tanh activations,
the cells above through ``seqmem.layers.run_stacked`` otherwise.

Dimensions: B batch, T time, I input size, H hidden size, L layers, D directions (1 or 2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .layers import RecurrentLayer, check_positive_int, check_step, register_cell_parameters

__all__ = ["LSTMState", "FGRState", "LSTMVariant", "VARIANTS", "lstm_parameter_shapes", "lstm_step",
           "LSTMCell", "LSTM"]


class LSTMState(NamedTuple):
    """An LSTM's state: h (B, H), the output, and c (B, H), the cell state."""

    h: torch.Tensor
    c: torch.Tensor


class FGRState(NamedTuple):
    """The full-gate-recurrence LSTM's state: h, c (B, H) and the previous gates [i; f; o] (B, 3H)."""

    h: torch.Tensor
    c: torch.Tensor
    gates: torch.Tensor


@dataclass(frozen=True)
class LSTMVariant:
    """What a variant of Greff et al. keeps: its gates, peepholes, activations and couplings."""

    name: str
    gates: tuple = ("i", "f", "o")  # the gates with their own weights, in the order (i, f, o)
    peepholes: bool = True
    input_identity: bool = False  # NIAF: g(x) = x
    output_identity: bool = False  # NOAF: h(x) = x
    coupled: bool = False  # CIFG: f = 1 - i
    full_recurrence: bool = False  # FGR: gates read the previous gates

    @property
    def rows(self) -> tuple:
        """The row blocks of weight_ih / weight_hh, in torch's order (i, f, z, o)."""
        return tuple(r for r in ("i", "f", "z", "o") if r == "z" or r in self.gates)


VARIANTS: dict[str, LSTMVariant] = {v.name: v for v in (
    LSTMVariant("V"),
    LSTMVariant("NIG", gates=("f", "o")),
    LSTMVariant("NFG", gates=("i", "o")),
    LSTMVariant("NOG", gates=("i", "f")),
    LSTMVariant("NIAF", input_identity=True),
    LSTMVariant("NOAF", output_identity=True),
    LSTMVariant("NP", peepholes=False),
    LSTMVariant("CIFG", gates=("i", "o"), coupled=True),
    LSTMVariant("FGR", full_recurrence=True),
)}


def _variant(name) -> LSTMVariant:
    if name not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {name!r}")
    return VARIANTS[name]


def _identity(a: torch.Tensor) -> torch.Tensor:
    return a


def _activations(v: LSTMVariant, input_activation: Callable, output_activation: Callable):
    """Greff's g and h for variant ``v``: NIAF and NOAF set one of them to the identity."""
    for removed, given, flag in (("input", input_activation, v.input_identity),
                                 ("output", output_activation, v.output_identity)):
        if not callable(given):
            raise TypeError(f"{removed}_activation must be callable, got {type(given).__name__}")
        if flag and given is not torch.tanh and given is not _identity:
            raise ValueError(f"variant {v.name!r} sets the {removed} activation to the identity: "
                             f"do not pass {removed}_activation={given!r}")
    g = _identity if v.input_identity else input_activation
    h = _identity if v.output_identity else output_activation
    return g, h


def lstm_parameter_shapes(input_size: int, hidden_size: int, variant: str = "NP",
                          bias: bool = True) -> dict[str, tuple]:
    """One cell's parameters and their shapes for ``variant`` (the layout of the module docstring)."""
    v, H = _variant(variant), hidden_size
    G = len(v.rows)
    shapes = {"weight_ih": (G * H, input_size), "weight_hh": (G * H, H)}
    if bias:
        shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
    if v.peepholes:
        shapes["peephole"] = (len(v.gates), H)
    if v.full_recurrence:
        shapes["weight_gg"] = (3 * H, 3 * H)
    return shapes


def _gate(a: dict, p: dict, name: str, c: torch.Tensor):
    """σ(a_name + p_name ⊙ c), or 1.0 for a gate the variant removed (NIG, NFG, NOG)."""
    if name not in a:
        return 1.0
    pre = a[name] + p[name] * c if name in p else a[name]
    return torch.sigmoid(pre)


def lstm_step(x: torch.Tensor, state, params: dict, variant: str = "NP",
              g: Callable = torch.tanh, h: Callable = torch.tanh):
    """One step of the LSTM ``variant``: the equations of the module docstring.

    Args:
        x: (B, I). state: ``LSTMState(h, c)`` (``FGRState(h, c, gates)`` for FGR), each (B, H).
        params: the cell's parameters by name (``lstm_parameter_shapes``); missing biases are None.
        g, h: the input and output activations (already the identity for NIAF / NOAF).

    Returns:
        ``(state', y)`` with y = h' (B, H).
    """
    v = VARIANTS[variant]
    h_prev, c_prev = state[0], state[1]
    H = c_prev.shape[-1]
    # W x + b + R h + b for every row block at once: (B, G * H), then one (B, H) block per row
    pre = F.linear(x, params["weight_ih"], params.get("bias_ih")) + F.linear(h_prev, params["weight_hh"],
                                                                             params.get("bias_hh"))
    a = dict(zip(v.rows, pre.split(H, dim=-1)))
    if v.full_recurrence:  # FGR: + R_{ia} i^{t-1} + R_{fa} f^{t-1} + R_{oa} o^{t-1}
        extra = F.linear(state[2], params["weight_gg"]).split(H, dim=-1)  # 3 x (B, H)
        a.update({k: a[k] + e for k, e in zip(("i", "f", "o"), extra)})
    p = dict(zip(v.gates, params["peephole"])) if v.peepholes else {}  # p_a: (H,)
    z = g(a["z"])  # block input
    i = _gate(a, p, "i", c_prev)  # input gate, peeking at c^{t-1}
    f = 1 - i if v.coupled else _gate(a, p, "f", c_prev)  # forget gate (CIFG: coupled to i)
    c = f * c_prev + i * z  # the cell state: kept part plus written part
    o = _gate(a, p, "o", c)  # output gate, peeking at the new c^t
    y = o * h(c)  # (B, H)
    if v.full_recurrence:
        return FGRState(y, c, torch.cat([i, f, o], dim=-1)), y  # gates: (B, 3H)
    return LSTMState(y, c), y


class LSTMCell(nn.Module):
    """The lecture's f for the LSTM: ``state, y = cell(state, x)`` with state ``LSTMState(h, c)``, y = h.

    ``variant`` picks one of Greff et al.'s variants (``VARIANTS``); the default ``"NP"`` is exactly
    ``torch.nn.LSTMCell``: same parameters (``weight_ih`` (4H, I), ``weight_hh`` (4H, H),
    ``bias_ih``, ``bias_hh`` (4H,); gates in the order i, f, g, o), so a torch cell's state dict
    loads and the outputs match. Other variants have exactly the parameters their equations use
    (the module docstring gives the layout). ``input_activation`` and ``output_activation`` are
    Greff's g and h. With ``fused=True``, NP with tanh activations runs torch's fused
    ``lstm_cell`` kernel; otherwise (or ``fused=False``) ``lstm_step``, tested equal.

    Shape:
        state: ``LSTMState(h, c)``, each (B, H) (FGR: ``FGRState(h, c, gates)``, gates (B, 3H));
        x: (B, I); returns (state', y) with y = h' (B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, variant: str = "NP",
                 input_activation: Callable = torch.tanh, output_activation: Callable = torch.tanh,
                 device=None, dtype=None, fused: bool = True):
        super().__init__()
        check_positive_int("input_size", input_size)
        check_positive_int("hidden_size", hidden_size)
        v = _variant(variant)
        self.input_size, self.hidden_size, self.bias, self.variant, self.fused = (
            input_size, hidden_size, bias, variant, fused)
        self.input_activation, self.output_activation = _activations(v, input_activation, output_activation)
        register_cell_parameters(self, lstm_parameter_shapes(input_size, hidden_size, variant, bias), hidden_size, bias, device, dtype)

    def initial_state(self, batch_size: int):
        """The zero state, on the device and dtype of the parameters."""
        zeros = self.weight_hh.new_zeros(batch_size, self.hidden_size)  # (B, H)
        if self.variant == "FGR":
            return FGRState(zeros, zeros.clone(), self.weight_hh.new_zeros(batch_size, 3 * self.hidden_size))
        return LSTMState(zeros, zeros.clone())

    def _can_fuse(self) -> bool:
        return (self.fused and self.variant == "NP" and self.input_activation is torch.tanh
                and self.output_activation is torch.tanh)

    def forward(self, state, x: torch.Tensor):
        self._check_state(state, x)
        if self._can_fuse():
            h, c = torch._VF.lstm_cell(x, (state[0], state[1]), self.weight_ih, self.weight_hh,
                                       self.bias_ih, self.bias_hh)
            return LSTMState(h, c), h
        params = {name: p for name, p in self.named_parameters(recurse=False)}
        return lstm_step(x, state, params, self.variant, self.input_activation, self.output_activation)

    def _check_state(self, state, x) -> None:
        n = 3 if self.variant == "FGR" else 2
        kind = "FGRState(h, c, gates)" if n == 3 else "LSTMState(h, c)"
        if not isinstance(state, tuple) or len(state) != n:
            raise ValueError(f"state must be an {kind}, got {type(state).__name__}"
                             + (f" of length {len(state)}" if isinstance(state, tuple) else ""))
        check_step(x, state[0], self.input_size, self.hidden_size, "h", like=self.weight_hh)
        check_step(x, state[1], self.input_size, self.hidden_size, "c", like=self.weight_hh)
        if n == 3 and tuple(state[2].shape) != (x.shape[0], 3 * self.hidden_size):
            raise ValueError(f"gates must have shape ({x.shape[0]}, {3 * self.hidden_size}), "
                             f"got {tuple(state[2].shape)}")

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}, variant={self.variant!r}"


class LSTM(RecurrentLayer):
    """A multi-layer, optionally bidirectional LSTM: a drop-in for ``torch.nn.LSTM``.

    Arguments, outputs and parameter names are torch's (``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}``, suffix ``_reverse``); ``proj_size`` is not supported (a
    nonzero value raises ``ValueError``). ``variant`` (default ``"NP"``, torch's LSTM) and the
    activations are those of ``LSTMCell``; a variant's layer has that cell's parameters, named
    ``{name}_l{k}`` (e.g. ``peephole_l0``, ``weight_gg_l1_reverse``).

    ``fused=True`` (the default) runs torch's fused kernel ``torch._VF.lstm`` for NP with tanh
    activations; every other configuration, or ``fused=False``, runs ``lstm_step`` for every layer
    and direction through ``seqmem.layers.run_stacked``.

    Shape:
        input: (T, B, I), or (B, T, I) with ``batch_first``, or (T, I) unbatched.
        hx: ``(h_0, c_0)``, each (L * D, B, H) ((L * D, H) unbatched); zeros when omitted. FGR's
        state has a third part, the previous gates (L * D, B, 3H): pass ``(h_0, c_0, gates_0)``.
        returns ``output, (h_n, c_n)`` (FGR: ``(h_n, c_n, gates_n)``) with output (T, B, D * H)
        (batch first if asked).
    """

    _state_names = ("h_0", "c_0")
    _state_type = LSTMState

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, variant: str = "NP",
                 input_activation: Callable = torch.tanh, output_activation: Callable = torch.tanh,
                 fused: bool = True):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         fused=fused)
        if proj_size != 0:
            raise ValueError(f"seqmem.LSTM does not support proj_size (LSTM with projections), got "
                             f"proj_size={proj_size!r}: use proj_size=0, or torch.nn.LSTM")
        v = _variant(variant)
        self.variant, self.proj_size = variant, 0
        self.input_activation, self.output_activation = _activations(v, input_activation, output_activation)
        if v.full_recurrence:
            self._state_names, self._state_type = ("h_0", "c_0", "gates_0"), FGRState
        self._register_cells(device, dtype)

    def _cell_shapes(self, input_size: int) -> dict[str, tuple]:
        return lstm_parameter_shapes(input_size, self.hidden_size, self.variant, self.bias)

    def _state_sizes(self) -> tuple[int, ...]:
        H = self.hidden_size
        return (H, H, 3 * H) if self.variant == "FGR" else (H, H)

    def _step(self, x, state, params):
        return lstm_step(x, state, params, self.variant, self.input_activation, self.output_activation)

    def _can_fuse(self) -> bool:
        return (self.variant == "NP" and self.input_activation is torch.tanh
                and self.output_activation is torch.tanh)

    def _forward_fused(self, x, parts):
        output, h_n, c_n = self._run_kernel(torch._VF.lstm, x, parts)
        return output, (h_n, c_n)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (f", variant={self.variant!r}" if self.variant != "NP" else "")
