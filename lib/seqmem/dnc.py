r"""The Differentiable Neural Computer: an LSTM that allocates, frees and links the slots of its memory.

The DNC (Graves et al. 2016, *Hybrid computing using a neural network with dynamic external
memory*, Nature) keeps the NTM's picture, a controller that reads and writes a memory $M$ of N
slots of W numbers, and repairs three of its weaknesses (the lecture's three repairs):

1. **Dynamic allocation.** The NTM cannot promise that two writes do not overlap. The DNC keeps a
   *usage* $u_i \in [0, 1]$ per slot and can write to the least used one (the allocation weighting).
2. **Free gates.** The NTM never frees a slot: a long sequence fills its memory. In the DNC each
   read head has a free gate $f^i$ that, after reading a slot, can mark it free again.
3. **The temporal link matrix.** After a jump to another region the NTM forgets where it was. The
   DNC records in $L[i, j]$ how much slot i was written right after slot j, so a read head can
   walk the writes forwards or backwards in the order they happened.

One step $t$ (Methods, "Controller network" and "Memory addressing"), for R read heads and one
write head. The controller (an LSTM) reads $\chi_t = [x_t; r^1_{t-1}; \dots; r^R_{t-1}]$ and emits
$h_t$; the **interface vector** $\xi_t = W_\xi h_t$ (R W + 3 W + 5 R + 3 numbers) is cut into

$$
\xi_t = [k^{r,1..R}_t;\ \hat\beta^{r,1..R}_t;\ k^w_t;\ \hat\beta^w_t;\ \hat e_t;\ v_t;\
\hat f^{1..R}_t;\ \hat g^a_t;\ \hat g^w_t;\ \hat\pi^{1..R}_t]
$$

with strengths $\beta = \mathrm{oneplus}(\hat\beta) = 1 + \log(1 + e^{\hat\beta})$, gates and the
erase vector through the logistic sigmoid $\sigma$, and each head's read modes $\pi^i$ a softmax
over 3. Then, in this order,

$$
\begin{aligned}
\psi_t &= \textstyle\prod_{i=1}^R \left(1 - f^i_t \, w^{r,i}_{t-1}\right)
    && \text{retention vector}\\
u_t &= \left(u_{t-1} + w^w_{t-1} - u_{t-1} \circ w^w_{t-1}\right) \circ \psi_t
    && \text{usage vector}\\
a_t[\phi_t[j]] &= \left(1 - u_t[\phi_t[j]]\right) \textstyle\prod_{i=1}^{j-1} u_t[\phi_t[i]]
    && \text{allocation weighting } (\phi_t: \text{slots by ascending usage})\\
w^w_t &= g^w_t \left[g^a_t \, a_t + (1 - g^a_t) \, \mathcal{C}(M_{t-1}, k^w_t, \beta^w_t)\right]
    && \text{write weighting}\\
M_t &= M_{t-1} \circ (E - w^w_t e_t^\top) + w^w_t v_t^\top && \text{the write}\\
L_t[i, j] &= (1 - w^w_t[i] - w^w_t[j]) \, L_{t-1}[i, j] + w^w_t[i] \, p_{t-1}[j],\ L_t[i, i] = 0
    && \text{temporal link matrix}\\
p_t &= \left(1 - \textstyle\sum_i w^w_t[i]\right) p_{t-1} + w^w_t && \text{precedence weighting}\\
f^i_t &= L_t w^{r,i}_{t-1}, \quad b^i_t = L_t^\top w^{r,i}_{t-1}
    && \text{forward and backward weightings}\\
w^{r,i}_t &= \pi^i_t[1] \, b^i_t + \pi^i_t[2] \, \mathcal{C}(M_t, k^{r,i}_t, \beta^{r,i}_t)
    + \pi^i_t[3] \, f^i_t && \text{read weighting}\\
r^i_t &= M_t^\top w^{r,i}_t && \text{read vectors}
\end{aligned}
$$

and the output is $y_t = W_y [h_t; r^1_t; \dots; r^R_t]$ (the paper's $\nu_t + W_r [r_t]$ with
$\nu_t = W_y h_t$: one linear map of $[h_t; r_t]$). $\mathcal{C}$ is content addressing,
``seqmem.addressing.content_addressing``; the write and the reads are ``addressing.write`` and
``addressing.read``. Each mechanism is one function below, in the order above; ``dnc_step`` runs
them and ``DNCCell`` is the lecture's f, ``state, y = cell(state, x)``, whose state ``DNCState``
holds everything (memory, usage, links, weightings), so one cell serves any batch and device.

The allocation weighting sums to $1 - \prod_i u_i \le 1$, and so the write weighting
($g^w, g^a \le 1$) and the precedence weighting sum to at most one, as do the forward and
backward weightings (rows and columns of $L$ sum to at most one) and with them the read
weightings; the content weightings and the read modes sum to one. Every product of usages is
taken of $\epsilon + (1 - \epsilon) u$ (as DeepMind's implementation does), so it never
multiplies exact zeros, and $\epsilon$ guards every norm of the content addressing.

Dimensions: B batch, I input size, H controller size, R read heads, N memory slots, W word size,
Y output size.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from .addressing import EPSILON, content_addressing, read, write
from .cell import Cell, check_like
from .core import check_positive_int, check_shape
from .lstm import LSTMCell, LSTMState

__all__ = ["DNCInterface", "DNCState", "DNCCell", "oneplus", "interface_size", "parse_interface",
           "retention_vector", "usage_vector", "allocation_weighting", "write_weighting",
           "temporal_link_matrix", "precedence_weighting", "directional_weightings", "read_weighting",
           "memory_step", "dnc_step", "DNCTrace", "trace", "ReuseTrace", "hand_interface", "reuse_after_free"]


# ------------------------------------------------------------------ the interface vector

def oneplus(x: torch.Tensor) -> torch.Tensor:
    r"""$\mathrm{oneplus}(x) = 1 + \log(1 + e^x) \in [1, \infty)$: the paper's map to key strengths."""
    return 1 + F.softplus(x)


def interface_size(R: int, W: int) -> int:
    """The length of the interface vector for R read heads and words of W: R W + 3 W + 5 R + 3."""
    return R * W + 3 * W + 5 * R + 3


class DNCInterface(NamedTuple):
    """The interface vector cut into its parts, each already through its nonlinearity (Methods)."""

    read_keys: torch.Tensor  # k^{r,i}: (B, R, W)
    read_strengths: torch.Tensor  # beta^{r,i} >= 1: (B, R)
    write_key: torch.Tensor  # k^w: (B, W)
    write_strength: torch.Tensor  # beta^w >= 1: (B,)
    erase: torch.Tensor  # e in [0, 1]: (B, W)
    write_vector: torch.Tensor  # v: (B, W)
    free_gates: torch.Tensor  # f^i in [0, 1]: (B, R)
    allocation_gate: torch.Tensor  # g^a in [0, 1]: (B,)
    write_gate: torch.Tensor  # g^w in [0, 1]: (B,)
    read_modes: torch.Tensor  # pi^i (backward, content, forward), each row sums to one: (B, R, 3)


def parse_interface(xi: torch.Tensor, R: int, W: int) -> DNCInterface:
    r"""Cut the interface vector $\xi_t$ (B, R W + 3 W + 5 R + 3) into a ``DNCInterface`` (Methods).

    oneplus for the strengths, $\sigma$ for the erase vector and the gates, a softmax over the 3
    read modes of each head; keys and the write vector are used as they come.
    """
    check_shape(xi, ("B", interface_size(R, W)), "xi")
    B = xi.shape[0]
    sizes = [R * W, R, W, 1, W, W, R, 1, 1, 3 * R]
    k_r, b_r, k_w, b_w, e, v, f, g_a, g_w, pi = xi.split(sizes, dim=-1)
    return DNCInterface(
        read_keys=k_r.reshape(B, R, W),  # (B, R, W)
        read_strengths=oneplus(b_r),  # (B, R)
        write_key=k_w,
        write_strength=oneplus(b_w).squeeze(-1),  # (B,)
        erase=torch.sigmoid(e),
        write_vector=v,
        free_gates=torch.sigmoid(f),  # (B, R)
        allocation_gate=torch.sigmoid(g_a).squeeze(-1),  # (B,)
        write_gate=torch.sigmoid(g_w).squeeze(-1),  # (B,)
        read_modes=torch.softmax(pi.reshape(B, R, 3), dim=-1),  # (B, R, 3)
    )


# ------------------------------------------------------------------ dynamic memory allocation

def retention_vector(free_gates: torch.Tensor, read_weights: torch.Tensor) -> torch.Tensor:
    r"""$\psi_t = \prod_i (1 - f^i_t w^{r,i}_{t-1})$: how much of each slot survives the free gates.

    free_gates (B, R) in [0, 1], the previous read weightings (B, R, N) -> psi (B, N) in [0, 1].
    A slot that head i read at t - 1 with a free gate of 1 is released entirely (psi = 0).
    """
    B, R, N = check_shape(read_weights, ("B", "R", "N"), "read_weights").values()
    check_shape(free_gates, (B, R), "free_gates")
    return torch.prod(1 - free_gates.unsqueeze(-1) * read_weights, dim=1)  # Methods: (B, N)


def usage_vector(u_prev: torch.Tensor, w_w_prev: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    r"""$u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} \circ w^w_{t-1}) \circ \psi_t$: the usage of each slot.

    u_prev, the previous write weighting w_w_prev and the retention psi, all (B, N) in [0, 1]
    -> u (B, N) in [0, 1]. Writing raises usage towards 1 (u + w - u w = 1 - (1 - u)(1 - w));
    freeing multiplies it by psi.
    """
    B, N = check_shape(u_prev, ("B", "N"), "u_prev").values()
    check_shape(w_w_prev, (B, N), "w_w_prev")
    check_shape(psi, (B, N), "psi")
    return (u_prev + w_w_prev - u_prev * w_w_prev) * psi  # Methods, usage: (B, N)


def allocation_weighting(u: torch.Tensor, eps: float = EPSILON) -> torch.Tensor:
    r"""$a_t[\phi_t[j]] = (1 - u_t[\phi_t[j]]) \prod_{i<j} u_t[\phi_t[i]]$: where to write something new.

    usage u (B, N) in [0, 1] -> a (B, N) in [0, 1], summing to $1 - \prod_i u_i \le 1$. $\phi_t$
    lists the slots by ascending usage (ties in slot order), so the least used slot gets
    $1 - u$ and every further slot only what the ones before it leave. The usages are shifted to
    $\epsilon + (1 - \epsilon) u$ first (DeepMind's guard): the products never hold exact zeros.
    The sort is a permutation, so the gradient flows through the values, not the order.
    """
    check_shape(u, ("B", "N"), "u")
    u = eps + (1 - eps) * u  # keep every factor of the products away from 0
    u_sorted, phi = torch.sort(u, dim=-1, stable=True)  # phi_t: slot indices, ascending usage, (B, N)
    before = torch.cumprod(u_sorted, dim=-1)  # prod_{i <= j} u[phi[i]]: (B, N)
    before = torch.cat([torch.ones_like(before[:, :1]), before[:, :-1]], dim=-1)  # prod_{i < j}
    a_sorted = (1 - u_sorted) * before  # a_t[phi_t[j]]: (B, N)
    return torch.zeros_like(a_sorted).scatter(-1, phi, a_sorted)  # slot order: a[phi[j]] = a_sorted[j]


def write_weighting(a: torch.Tensor, c_w: torch.Tensor, g_a: torch.Tensor, g_w: torch.Tensor) -> torch.Tensor:
    r"""$w^w_t = g^w_t [g^a_t a_t + (1 - g^a_t) c^w_t]$: allocate, or write where the key points.

    allocation a (B, N), content weighting c_w (B, N), allocation gate g_a (B,) and write gate
    g_w (B,) in [0, 1] -> w_w (B, N), summing to at most one (nothing is written when g_w = 0).
    """
    B, N = check_shape(a, ("B", "N"), "a").values()
    check_shape(c_w, (B, N), "c_w")
    check_shape(g_a, (B,), "g_a")
    check_shape(g_w, (B,), "g_w")
    g_a, g_w = g_a.unsqueeze(-1), g_w.unsqueeze(-1)  # (B, 1)
    return g_w * (g_a * a + (1 - g_a) * c_w)  # Methods, write weighting: (B, N)


# ------------------------------------------------------------------ temporal memory linkage

def temporal_link_matrix(L_prev: torch.Tensor, w_w: torch.Tensor, p_prev: torch.Tensor) -> torch.Tensor:
    r"""$L_t[i, j] = (1 - w^w_t[i] - w^w_t[j]) L_{t-1}[i, j] + w^w_t[i] p_{t-1}[j]$, zero diagonal.

    The previous links L_prev (B, N, N), this step's write weighting w_w (B, N) and the previous
    precedence p_prev (B, N) -> L (B, N, N). $L[i, j]$ is how much slot i was written right
    after slot j: writing slot i replaces its row by the precedence (what was written last) and
    fades the links into and out of it. Rows and columns each sum to at most one; a slot is
    never its own successor (the diagonal is 0).
    """
    B, N = check_shape(L_prev, ("B", "N", "N"), "L_prev").values()
    check_shape(w_w, (B, N), "w_w")
    check_shape(p_prev, (B, N), "p_prev")
    w_i, w_j = w_w.unsqueeze(2), w_w.unsqueeze(1)  # (B, N, 1) and (B, 1, N)
    L = (1 - w_i - w_j) * L_prev + w_i * p_prev.unsqueeze(1)  # Methods, link update: (B, N, N)
    off_diagonal = 1 - torch.eye(N, dtype=L.dtype, device=L.device)  # L_t[i, i] = 0
    return L * off_diagonal


def precedence_weighting(p_prev: torch.Tensor, w_w: torch.Tensor) -> torch.Tensor:
    r"""$p_t = (1 - \sum_i w^w_t[i]) p_{t-1} + w^w_t$: how much each slot was the last one written.

    p_prev and w_w (B, N) -> p (B, N), summing to at most one; a full write (sum 1) replaces it.
    """
    B, N = check_shape(p_prev, ("B", "N"), "p_prev").values()
    check_shape(w_w, (B, N), "w_w")
    return (1 - w_w.sum(-1, keepdim=True)) * p_prev + w_w  # Methods, precedence: (B, N)


def directional_weightings(L: torch.Tensor, w_r_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The forward and backward weightings $f^i_t = L_t w^{r,i}_{t-1}$, $b^i_t = L_t^\top w^{r,i}_{t-1}$.

    links L (B, N, N), previous read weightings w_r_prev (B, R, N) -> (f, b), each (B, R, N),
    each summing to at most one. f moves every head one write forwards in time (to what was
    written after the slots it read), b one write backwards.
    """
    B, N = check_shape(L, ("B", "N", "N"), "L").values()
    check_shape(w_r_prev, (B, None, N), "w_r_prev")
    f = w_r_prev @ L.transpose(1, 2)  # f[r, i] = sum_j L[i, j] w[r, j]: (B, R, N)
    b = w_r_prev @ L  # b[r, j] = sum_i L[i, j] w[r, i]: (B, R, N)
    return f, b


def read_weighting(b: torch.Tensor, c: torch.Tensor, f: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
    r"""$w^{r,i}_t = \pi^i_t[1] b^i_t + \pi^i_t[2] c^{r,i}_t + \pi^i_t[3] f^i_t$: each head's read mode.

    backward b, content c and forward f weightings (B, R, N), read modes pi (B, R, 3) in the
    paper's order (backward, content, forward) -> w_r (B, R, N).
    """
    B, R, N = check_shape(c, ("B", "R", "N"), "c").values()
    check_shape(b, (B, R, N), "b")
    check_shape(f, (B, R, N), "f")
    check_shape(pi, (B, R, 3), "pi")
    return pi[..., 0:1] * b + pi[..., 1:2] * c + pi[..., 2:3] * f  # Methods, read weighting: (B, R, N)


# ------------------------------------------------------------------ one step and the cell

class DNCState(NamedTuple):
    """Everything a DNC carries from one step to the next (Methods), batch first."""

    controller: LSTMState  # the controller's (h, c), each (B, H)
    memory: torch.Tensor  # M_t: (B, N, W)
    usage: torch.Tensor  # u_t: (B, N)
    link: torch.Tensor  # L_t: (B, N, N)
    precedence: torch.Tensor  # p_t: (B, N)
    read_weights: torch.Tensor  # w^{r,i}_t: (B, R, N)
    write_weights: torch.Tensor  # w^w_t: (B, N)
    read_vectors: torch.Tensor  # r^i_t: (B, R, W)


def memory_step(state: DNCState, xi: DNCInterface, eps: float = EPSILON) -> DNCState:
    """The memory's part of a step: retention, usage, allocation, the write, the links, the reads.

    The previous ``state`` and this step's ``DNCInterface`` -> the new state (its controller part
    unchanged). Everything but the controller: a chapter can drive the memory by hand with it.
    """
    psi = retention_vector(xi.free_gates, state.read_weights)  # (B, N)
    u = usage_vector(state.usage, state.write_weights, psi)  # (B, N)
    a = allocation_weighting(u, eps)  # (B, N)
    c_w = content_addressing(state.memory, xi.write_key, xi.write_strength, eps)  # C(M_{t-1}, k^w, beta^w)
    w_w = write_weighting(a, c_w, xi.allocation_gate, xi.write_gate)  # (B, N)
    M = write(state.memory, w_w, xi.erase, xi.write_vector)  # M_t: (B, N, W)
    L = temporal_link_matrix(state.link, w_w, state.precedence)  # (B, N, N), from p_{t-1}
    p = precedence_weighting(state.precedence, w_w)  # (B, N)
    f, b = directional_weightings(L, state.read_weights)  # (B, R, N) each
    c_r = content_addressing(M, xi.read_keys, xi.read_strengths, eps)  # C(M_t, k^r, beta^r): (B, R, N)
    w_r = read_weighting(b, c_r, f, xi.read_modes)  # (B, R, N)
    r = read(M, w_r)  # r^i_t = M_t^T w^{r,i}_t: (B, R, W)
    return DNCState(state.controller, M, u, L, p, w_r, w_w, r)


def _step(params: dict, state: DNCState, x: torch.Tensor, controller, eps: float):
    """``dnc_step`` with the step's interface: ``(state', y, xi)``."""
    B, R, W = state.read_vectors.shape
    chi = torch.cat([x, state.read_vectors.reshape(B, R * W)], dim=-1)  # [x_t; r_{t-1}]: (B, I + R W)
    ctrl, h = controller(state.controller, chi)  # h_t: (B, H)
    xi = parse_interface(F.linear(h, params["weight_xi"], params["bias_xi"]), R, W)  # xi_t = W_xi h_t
    new = memory_step(state, xi, eps)._replace(controller=ctrl)
    y = F.linear(torch.cat([h, new.read_vectors.reshape(B, R * W)], dim=-1),
                 params["weight_y"], params["bias_y"])  # y_t = W_y [h_t; r_t]: (B, Y)
    return new, y, xi


def dnc_step(params: dict, state: DNCState, x: torch.Tensor, controller, eps: float = EPSILON):
    r"""One DNC step, the equations of the module docstring: ``(state', y)``.

    Args:
        params: ``weight_xi`` (R W + 3 W + 5 R + 3, H), ``bias_xi``, ``weight_y`` (Y, H + R W),
            ``bias_y`` (Y,), as ``DNCCell``'s.
        state: a ``DNCState``; x: (B, I).
        controller: the controller cell, ``state, h = controller(state, chi)`` with chi (B, I + R W).

    Returns:
        ``(state', y)`` with y = W_y [h_t; r_t] (B, Y).
    """
    new, y, _ = _step(params, state, x, controller, eps)
    return new, y


class DNCTrace(NamedTuple):
    """What ``trace`` records at every step t of a sequence, stacked along time (dimension 1)."""

    outputs: torch.Tensor  # y_t: (B, T, Y)
    usage: torch.Tensor  # u_t: (B, T, N)
    write_weights: torch.Tensor  # w^w_t: (B, T, N)
    read_weights: torch.Tensor  # w^r_t: (B, T, R, N)
    free_gates: torch.Tensor  # f^i_t: (B, T, R)
    allocation_gate: torch.Tensor  # g^a_t: (B, T)
    write_gate: torch.Tensor  # g^w_t: (B, T)
    read_modes: torch.Tensor  # pi^i_t: (B, T, R, 3)


def trace(cell: "DNCCell", inputs: torch.Tensor) -> tuple[DNCTrace, DNCState]:
    """Run ``cell`` over inputs (B, T, I) as ``seqmem.unroll`` does, and record every step's memory
    weightings and gates (the interface vector's, which the state does not keep).

    Returns ``(DNCTrace, the last state)``; ``trace.outputs`` are ``unroll``'s outputs. For looking
    inside a trained DNC: what it writes where, what it frees, how its usage evolves.
    """
    if not isinstance(cell, DNCCell):
        raise ValueError(f"trace runs a DNCCell, got {type(cell).__name__}")
    check_shape(inputs, ("B", "T", cell.input_size), "inputs")
    if inputs.shape[1] == 0:
        raise ValueError("inputs must have at least one step (T >= 1), got T = 0")
    state = cell.initial_state(inputs.shape[0])
    cell.check(state, inputs[:, 0])
    params, steps = cell.params(), []
    for t in range(inputs.shape[1]):
        state, y, xi = _step(params, state, inputs[:, t], cell.controller, cell.eps)
        steps.append((y, state.usage, state.write_weights, state.read_weights, xi.free_gates,
                      xi.allocation_gate, xi.write_gate, xi.read_modes))
    return DNCTrace(*(torch.stack(parts, dim=1) for parts in zip(*steps))), state


class DNCCell(Cell):
    """The lecture's f for the DNC: ``state, y = cell(state, x)`` with a ``DNCState``.

    An LSTM controller of size H (``controller``, a ``seqmem.LSTMCell(I + R W, H)``) reads x with
    the previous read vectors; its parameters ``weight_xi`` (R W + 3 W + 5 R + 3, H) and
    ``bias_xi`` give the interface vector, ``weight_y`` (Y, H + R W) and ``bias_y`` the output
    y = W_y [h; r]. The memory of N slots of W numbers, read by R heads, lives in the state only:
    ``initial_state(B)`` gives zeros (an empty memory, nothing used, linked, read or written) on
    the parameters' device and dtype.

    Shape:
        state: ``DNCState``; x: (B, I); returns ``(state', y)`` with y (B, Y).
    """

    state_type = DNCState

    def __init__(self, input_size: int, hidden_size: int, output_size: int, memory_slots: int = 16,
                 word_size: int = 8, read_heads: int = 1, eps: float = EPSILON, device=None, dtype=None):
        for name, value in (("output_size", output_size), ("memory_slots", memory_slots),
                            ("word_size", word_size), ("read_heads", read_heads)):
            check_positive_int(name, value)
        H, Y, N, W, R = hidden_size, output_size, memory_slots, word_size, read_heads
        shapes = {"weight_xi": (interface_size(R, W), H), "bias_xi": (interface_size(R, W),),
                  "weight_y": (Y, H + R * W), "bias_y": (Y,)}
        super().__init__(input_size, hidden_size, shapes, device=device, dtype=dtype)
        self.controller = LSTMCell(input_size + R * W, H, device=device, dtype=dtype)
        self._output_size, self.memory_slots, self.word_size, self.read_heads = Y, N, W, R
        self.eps = eps

    @property
    def output_size(self) -> int:
        return self._output_size

    def state_sizes(self) -> tuple[int, ...]:
        raise ValueError("a DNC's state is not a tuple of (B, size) vectors (its memory is (B, N, W), its "
                         "links (B, N, N)): use DNCCell.state_shapes(B) or initial_state(B)")

    def state_shapes(self, batch_size: int) -> dict[str, tuple[int, ...]]:
        """The shape of each memory part of the state (every field but the controller's)."""
        B, N, W, R = batch_size, self.memory_slots, self.word_size, self.read_heads
        return {"memory": (B, N, W), "usage": (B, N), "link": (B, N, N), "precedence": (B, N),
                "read_weights": (B, R, N), "write_weights": (B, N), "read_vectors": (B, R, W)}

    def initial_state(self, batch_size: int) -> DNCState:
        """The zero state on the parameters' device and dtype: ``DNCState`` with an empty memory."""
        check_positive_int("batch_size", batch_size)
        like = self.weight_xi
        parts = {name: like.new_zeros(shape) for name, shape in self.state_shapes(batch_size).items()}
        return DNCState(controller=self.controller.initial_state(batch_size), **parts)

    def check(self, state, x: torch.Tensor) -> None:
        """x (B, I); state a ``DNCState`` whose parts have ``state_shapes(B)``, dtype and device."""
        check_shape(x, ("B", self.input_size), "x")
        check_like(self.weight_xi, x=x)
        if not isinstance(state, DNCState):
            raise ValueError(f"state must be DNCState({', '.join(DNCState._fields)}), "
                             f"got {type(state).__name__}")
        for name, shape in self.state_shapes(x.shape[0]).items():
            part = getattr(state, name)
            check_shape(part, shape, f"state.{name}")
            check_like(self.weight_xi, **{f"state.{name}": part})

    def step(self, params, state, x):
        return dnc_step(params, state, x, self.controller, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, {self.output_size}, "
                f"memory_slots={self.memory_slots}, word_size={self.word_size}, read_heads={self.read_heads}")


# ------------------------------------------------------------------ a demonstration: free, then reuse

class ReuseTrace(NamedTuple):
    """What ``reuse_after_free`` records after every step, each (T, N) with T = N + 2."""

    usage: torch.Tensor  # u_t
    allocation: torch.Tensor  # a_t
    write_weights: torch.Tensor  # w^w_t
    read_weights: torch.Tensor  # w^r_t (one head)


def hand_interface(read_key: torch.Tensor, write_vector: torch.Tensor, *, free: float = 0.0,
                   write: float = 1.0, strength: float = 50.0) -> DNCInterface:
    """A ``DNCInterface`` set by hand for one example and one read head (B = R = 1).

    It writes ``write_vector`` (W,) by allocation alone (g^a = 1, write gate ``write``, erasing
    everything where it writes) and reads by content alone with key ``read_key`` (W,) of strength
    ``strength``; the free gate is ``free``.
    """
    W = check_shape(write_vector, ("W",), "write_vector")["W"]
    check_shape(read_key, (W,), "read_key")
    one = write_vector.new_ones(1)  # (1,): B = 1
    modes = torch.zeros(1, 1, 3, dtype=one.dtype, device=one.device)
    modes[..., 1] = 1.0  # content only
    row = lambda v: v.reshape(1, W)  # noqa: E731  (W,) -> (B, W) with B = 1
    return DNCInterface(read_keys=read_key.reshape(1, 1, W), read_strengths=strength * one.reshape(1, 1),
                        write_key=row(torch.zeros_like(write_vector)), write_strength=one,
                        erase=row(torch.ones_like(write_vector)), write_vector=row(write_vector),
                        free_gates=free * one.reshape(1, 1), allocation_gate=one, write_gate=write * one,
                        read_modes=modes)


def reuse_after_free(memory_slots: int = 4, freed_word: int = 1, dtype=torch.float64,
                     device=None) -> ReuseTrace:
    """Dynamic allocation with a free gate, step by step: a freed slot is written again.

    N = ``memory_slots`` slots of W = N + 1 numbers, one read head. Steps 0 ... N - 1 write the
    one-hot words e_0 ... e_{N-1} by allocation: each goes to a slot nobody used, and the memory
    fills, slot 0 first, then in an order that the epsilon-sized leftovers of the earlier
    allocations decide (not 0, 1, 2, ...: each allocation leaves about epsilon on the next slots
    in line, which makes them look used). Step N writes nothing and reads, by content, the slot that
    holds e_{freed_word}: usage is now 1 everywhere and the allocation 0 (nowhere left to
    write). Step N + 1 sets the read head's free gate to 1: the slot it read is released (its
    usage falls to 0) and the same step's allocating write, e_N, goes to that slot.

    Returns the ``ReuseTrace`` of the N + 2 steps, each part (N + 2, N).
    """
    check_positive_int("memory_slots", memory_slots)
    if not (isinstance(freed_word, int) and 0 <= freed_word < memory_slots):
        raise ValueError(f"freed_word must be one of the words written, in [0, {memory_slots}), "
                         f"got {freed_word!r}")
    N, W = memory_slots, memory_slots + 1
    e = torch.eye(W, dtype=dtype, device=device)  # the words e_0 ... e_N, (W, W)
    z = lambda *shape: torch.zeros(*shape, dtype=dtype, device=device)  # noqa: E731
    state = DNCState(LSTMState(z(1, 1), z(1, 1)), z(1, N, W), z(1, N), z(1, N, N), z(1, N), z(1, 1, N),
                     z(1, N), z(1, 1, W))  # an empty memory (the controller's part is not used)
    key = e[freed_word]  # the read head looks for this word
    steps = [hand_interface(key, e[t]) for t in range(N)]  # fill the memory
    steps.append(hand_interface(key, e[N], write=0.0))  # read e_freed's slot, write nothing
    steps.append(hand_interface(key, e[N], free=1.0))  # free what was read, write e_N
    trace = []
    for xi in steps:
        state = memory_step(state, xi)
        trace.append((state.usage[0], allocation_weighting(state.usage)[0], state.write_weights[0],
                      state.read_weights[0, 0]))
    return ReuseTrace(*(torch.stack(parts) for parts in zip(*trace)))  # each (N + 2, N)
