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

from .cell import ACTIVATIONS, Cell, activation
from .layers import RecurrentLayer

__all__ = ["LSTMState", "FGRState", "LSTMVariant", "VARIANTS", "lstm_parameter_shapes", "lstm_step",
           "LSTMCell", "LSTM", "init_forget_bias_"]


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


_PROBE = torch.linspace(-3.0, 3.0, 13, dtype=torch.float64)


def _acts_as_identity(fn: Callable) -> bool:
    """Whether ``fn`` returns its input: how a function of the caller's is read for NIAF and NOAF."""
    try:
        out = fn(_PROBE)
    except Exception:  # noqa: BLE001 - a function that cannot take a tensor is no identity
        return False
    return isinstance(out, torch.Tensor) and out.shape == _PROBE.shape and torch.equal(out, _PROBE)


def _resolve(given, which: str):
    """An activation given by name (of ``seqmem.cell.ACTIVATIONS``) or as a function: (function, name).
    The name of a function is that of the table's entry it is, or None for a function of the caller's."""
    if isinstance(given, str):
        return activation(given, what=f"{which}_activation"), given
    if not callable(given):
        raise TypeError(f"{which}_activation must be a name or a function, got {type(given).__name__}")
    return given, next((name for name, fn in ACTIVATIONS.items() if fn is given), None)


def _activations(v: LSTMVariant, input_activation, output_activation):
    """Greff's g and h for variant ``v``, and whether they are torch's (tanh, tanh).

    ``None`` means the variant's own: tanh, or the identity where NIAF or NOAF removes it. A variant
    that removes an activation accepts only the identity for it (by name, or a function that
    returns its input).
    """
    out = []
    for which, given, removed in (("input", input_activation, v.input_identity),
                                  ("output", output_activation, v.output_identity)):
        fn, name = _resolve(given if given is not None else ("identity" if removed else "tanh"), which)
        if removed and name != "identity" and not (name is None and _acts_as_identity(fn)):
            raise ValueError(f"variant {v.name!r} sets the {which} activation to the identity: "
                             f"do not pass {which}_activation={given!r}")
        out.append((fn, name))
    (g, g_name), (h, h_name) = out
    return g, h, (g_name, h_name) == ("tanh", "tanh")


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


def lstm_step(params: dict, state, x: torch.Tensor, variant: str = "NP",
              g: Callable = torch.tanh, h: Callable = torch.tanh):
    """One step of the LSTM ``variant``: the equations of the module docstring.

    Args:
        params: the cell's parameters by name (``lstm_parameter_shapes``); missing biases are None.
        state: ``LSTMState(h, c)`` (``FGRState(h, c, gates)`` for FGR), each (B, H). x: (B, I).
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


class LSTMCell(Cell):
    """The lecture's f for the LSTM: ``state, y = cell(state, x)`` with state ``LSTMState(h, c)``, y = h.

    ``variant`` picks one of Greff et al.'s variants by name (``VARIANTS``); the default ``"NP"`` is
    exactly ``torch.nn.LSTMCell``: same parameters (``weight_ih`` (4H, I), ``weight_hh`` (4H, H),
    ``bias_ih``, ``bias_hh`` (4H,); gates in the order i, f, g, o), so a torch cell's state dict
    loads and the outputs match. Other variants have exactly the parameters their equations use
    (the module docstring gives the layout). ``input_activation`` and ``output_activation`` are
    Greff's g and h, by name (``"tanh"``, ``"identity"``, ...) or as functions; ``None`` is the
    variant's own (tanh; the identity that NIAF or NOAF prescribe). With ``fused=True``, NP with
    tanh activations runs torch's fused ``lstm_cell`` kernel; otherwise ``lstm_step``, tested equal.

    Shape:
        state: ``LSTMState(h, c)``, each (B, H) (FGR: ``FGRState(h, c, gates)``, gates (B, 3H));
        x: (B, I); returns (state', y) with y = h' (B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, variant: str = "NP",
                 input_activation=None, output_activation=None, device=None, dtype=None, fused: bool = True):
        v = _variant(variant)
        g, h, tanh = _activations(v, input_activation, output_activation)
        super().__init__(input_size, hidden_size, lstm_parameter_shapes(input_size, hidden_size, variant, bias),
                         absent=() if bias else ("bias_ih", "bias_hh"), device=device, dtype=dtype)
        self.bias, self.variant, self.fused = bias, variant, fused
        self.input_activation, self.output_activation, self._fusable = g, h, tanh and variant == "NP"
        self.state_type = FGRState if v.full_recurrence else LSTMState

    def state_sizes(self) -> tuple[int, ...]:
        H = self.hidden_size
        return (H, H, 3 * H) if self.variant == "FGR" else (H, H)

    def forward(self, state, x: torch.Tensor):
        self.check(state, x)
        if self.fused and self._fusable:
            h, c = torch._VF.lstm_cell(x, (state[0], state[1]), self.weight_ih, self.weight_hh,
                                       self.bias_ih, self.bias_hh)
            return LSTMState(h, c), h
        return self.step(self.params(), state, x)

    def step(self, params, state, x):
        return lstm_step(params, state, x, self.variant, self.input_activation, self.output_activation)

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
        input: (T, B, I), or (B, T, I) with ``batch_first``, or (T, I) unbatched, or a
        ``PackedSequence`` (then the output is packed, the final state at each true end).
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
                 input_activation=None, output_activation=None, fused: bool = True):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         fused=fused)
        if proj_size != 0:
            raise ValueError(f"seqmem.LSTM does not support proj_size (LSTM with projections), got "
                             f"proj_size={proj_size!r}: use proj_size=0, or torch.nn.LSTM")
        v = _variant(variant)
        self.variant, self.proj_size = variant, 0
        self.input_activation, self.output_activation, tanh = _activations(v, input_activation, output_activation)
        self._fusable = tanh and variant == "NP"
        if v.full_recurrence:
            self._state_names, self._state_type = ("h_0", "c_0", "gates_0"), FGRState
        self._register_cells(device, dtype)

    def _cell_shapes(self, input_size: int) -> dict[str, tuple]:
        return lstm_parameter_shapes(input_size, self.hidden_size, self.variant, self.bias)

    def _state_sizes(self) -> tuple[int, ...]:
        H = self.hidden_size
        return (H, H, 3 * H) if self.variant == "FGR" else (H, H)

    def _step(self, params, state, x):
        return lstm_step(params, state, x, self.variant, self.input_activation, self.output_activation)

    def _can_fuse(self) -> bool:
        return self._fusable

    def _forward_fused(self, x, parts, batch_sizes=None):
        output, h_n, c_n = self._run_kernel(torch._VF.lstm, x, parts, batch_sizes)
        return output, (h_n, c_n)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (f", variant={self.variant!r}" if self.variant != "NP" else "")


def init_forget_bias_(module: nn.Module, value: float = 1.0) -> nn.Module:
    """Start an LSTM remembering: the forget gate's bias set to ``value``, in place (Gers et al. 2000).

    With f = σ(... + b_f), a bias of 1 starts every forget gate at σ(1) = 0.73 rather than 0.5, so
    the cell state's gradient, a product of forget gates through time, fades more slowly (chapter
    3). Works on every module with torch's LSTM layout and names: ``seqmem.LSTM`` and ``LSTMCell``
    (of any variant that has a forget gate) and ``torch.nn.LSTM`` and ``LSTMCell``. In every
    layer and direction the forget block of ``bias_ih*`` becomes ``value`` and that of
    ``bias_hh*`` zero, so that the two biases, which add up, give ``value``. Returns the module.
    """
    v = _variant(getattr(module, "variant", "NP"))
    if "f" not in v.rows:
        raise ValueError(f"variant {v.name!r} has no forget gate of its own: there is no forget bias to set")
    H, k = module.hidden_size, v.rows.index("f")  # the forget gate's row block, (k H : (k + 1) H)
    biases = [(n, p) for n, p in module.named_parameters() if n.startswith(("bias_ih", "bias_hh"))]
    if not biases:
        raise ValueError(f"{type(module).__name__} has no biases (bias=False): there is no forget bias to set")
    with torch.no_grad():
        for name, p in biases:
            p[k * H:(k + 1) * H] = value if name.startswith("bias_ih") else 0.0
    return module
