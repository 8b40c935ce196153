r"""The Neural Turing Machine (Graves, Wayne and Danihelka 2014): a controller with a memory it addresses.

A controller network (an LSTM or a feed-forward layer) reads the input $x_t$ and the heads' last
reads, and emits, for every head, the parameters of where to look. The memory $M$ (B, N, W) is
N slots of W numbers. Each head finds its weighting $w_t$ over the slots in four stages, in the
paper's order (section 3.3, figure 2):

1. **content**: $w^c_t = \mathrm{softmax}(\beta_t K[k_t, M_i])$, cosine similarity sharpened by
   the key strength $\beta_t \ge 0$ (eq. 5-6; ``seqmem.addressing.content_addressing``);
2. **interpolation** with the head's previous weighting by the gate $g_t \in [0, 1]$ (eq. 7),
   $w^g_t = g_t w^c_t + (1 - g_t) w_{t-1}$: g = 0 ignores the content and keeps the old place;
3. **circular shift** by the distribution $s_t$ over the allowed shifts (eq. 8),
   $\tilde w_i = \sum_j w^g_j \, s_{(i - j) \bmod N}$: a convolution that moves the focus;
4. **sharpening** by $\gamma_t \ge 1$ (eq. 9), $w_i = \tilde w_i^{\gamma} / \sum_j \tilde w_j^{\gamma}$,
   which undoes the blur that a shift spread over several offsets causes.

A read head reads $r_t = \sum_i w_i M_i$ (eq. 2); the write head erases then adds,
$M_i \leftarrow M_i \circ (1 - w_i e_t) + w_i a_t$ (eq. 3-4); both are ``seqmem.addressing``'s.

**Numerics.** The functions here never divide by zero and never take the log of zero, so that
all-zero memories, one-hot weightings and thousands of steps stay finite. The direct formula
fails for a sharp head: in float32, $0.6^{300}$ is 0, so a $\gamma$ of 300 makes every
$\tilde w_i^\gamma$ 0 and the weighting 0/0 (NaN). So sharpening is computed in log space,
$\mathrm{softmax}(\gamma \log \max(\tilde w, \epsilon))$ with $\epsilon$ the smallest normal
number of float32 (about $10^{-38}$; half types are computed in float32): eq. 9 up to that
$\epsilon$ (an $\epsilon$ added to
every weight instead, as some implementations do, changes every sharpened weighting a little and
keeps a head from ever reaching one slot); the head
parameters are squashed as the paper requires: $\beta = \mathrm{softplus}$, $g = \sigma$,
$s = \mathrm{softmax}$ over the shifts $-S, \dots, S$ (S = ``shift_range``, 1 by default),
$\gamma = 1 + \mathrm{softplus}$, the erase vector $e = \sigma$ and the add vector $a = \tanh$
(bounded, so that the memory grows at most by one per step and slot). Gradient clipping belongs
to training (``seqmem.fit(..., clip_grad_norm=...)``), not to the cell.

``NTMCell`` is the lecture's f, ``state, y = cell(state, x)``. Its state ``NTMState`` holds
everything that changes: the controller's state, the memory, the heads' previous weightings and
the last reads. Nothing lives in a module attribute, so ``seqmem.unroll`` runs it, any batch size
and device work, and chapter 9's ACT can wrap it (``map_state`` reaches every part).

Dimensions: B batch, I input size, H controller size, O output size, R read heads, N memory slots,
W word size, K = 2S + 1 shifts.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .addressing import EPSILON, content_addressing, read, write
from .cell import Cell, check_like
from .core import check_positive_int
from .lstm import LSTMCell

__all__ = ["interpolate", "shift", "sharpen", "address", "NTMState", "NTMHeadParams", "split_head_params",
           "head_param_size", "FeedForwardController", "NTMCell"]


# -- the location stages of a head's addressing (eq. 7-9) -----------------------------------------

def _per_head(x: torch.Tensor, lead: tuple, name: str) -> torch.Tensor:
    """A per-head scalar given as ``lead`` or ``lead + (1,)``, as ``lead + (1,)`` to broadcast over N."""
    if tuple(x.shape) == lead:
        return x.unsqueeze(-1)
    if tuple(x.shape) != lead + (1,):
        raise ValueError(f"{name} must have shape {lead} or {lead + (1,)} (one value per head), "
                         f"got shape {tuple(x.shape)}")
    return x


def _weighting(w: torch.Tensor, name: str) -> None:
    if w.dim() not in (2, 3):
        raise ValueError(f"{name} must be a weighting (B, N) or (B, R, N), got shape {tuple(w.shape)}")


def interpolate(w_c: torch.Tensor, w_prev: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    r"""$w^g = g \, w^c + (1 - g) \, w_{t-1}$ (eq. 7): blend the content weighting with the last one.

    w_c and w_prev (B, N) with g (B,) or (B, 1); or (B, R, N) with g (B, R) or (B, R, 1); g in [0, 1].
    A convex combination of two weightings is a weighting (sums to one, in [0, 1]).
    """
    _weighting(w_c, "w_c")
    if w_prev.shape != w_c.shape:
        raise ValueError(f"w_prev must have the shape of w_c, {tuple(w_c.shape)}, got shape {tuple(w_prev.shape)}")
    g = _per_head(g, tuple(w_c.shape[:-1]), "g")  # (B, 1) or (B, R, 1)
    return g * w_c + (1 - g) * w_prev  # eq. 7


def shift(w_g: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    r"""$\tilde w_i = \sum_j w^g_j \, s_{(i - j) \bmod N}$ (eq. 8): a circular convolution over the slots.

    w_g (B, N) with s (B, K), or (B, R, N) with s (B, R, K); K = 2S + 1 is odd and s[..., k] is the
    weight of moving the focus by k - S slots (k = S: stay; k = S + 1: one slot forward, from slot
    i to slot i + 1 mod N). Shifts past the end wrap around; with N < K several shifts land on the
    same slot and their weights add. s must be a distribution (a softmax), so the result is a weighting.
    """
    _weighting(w_g, "w_g")
    lead = tuple(w_g.shape[:-1])
    if s.dim() != w_g.dim() or tuple(s.shape[:-1]) != lead or s.shape[-1] % 2 != 1:
        raise ValueError(f"s must have shape {lead + ('K',)} with K = 2S + 1 odd (a weight per shift "
                         f"-S..S), got shape {tuple(s.shape)}")
    N, S = w_g.shape[-1], s.shape[-1] // 2
    offsets = torch.arange(-S, S + 1, device=w_g.device)  # (K,): the shifts -S..S
    j = (torch.arange(N, device=w_g.device).unsqueeze(1) - offsets) % N  # (N, K): the slot i - k comes from
    moved = w_g[..., j]  # (..., N, K): moved[..., i, k] = w_g[..., (i - k) mod N]
    return (moved @ s.unsqueeze(-1)).squeeze(-1)  # eq. 8: (..., N, K) @ (..., K, 1) -> (..., N)


def sharpen(w_tilde: torch.Tensor, gamma: torch.Tensor, eps: float | None = None) -> torch.Tensor:
    r"""$w_i = \tilde w_i^{\gamma} / \sum_j \tilde w_j^{\gamma}$ (eq. 9), computed stably.

    w_tilde (B, N) with gamma (B,) or (B, 1); or (B, R, N) with gamma (B, R) or (B, R, 1); gamma >= 1.
    Computed as softmax(gamma * log(max(w_tilde, tiny))), tiny the smallest normal number of
    float32 or float64 (half types are computed in float32): eq. 9 up to the tiny's share in the
    denominator, the denominator never zero, a weight of exactly 0 with a zero gradient (the clamp
    passes nothing below tiny) rather than NaN, and a large gamma gives the one-hot argmax where
    every $\tilde w_i^\gamma$ would underflow to 0 and the ratio be 0/0. ``eps`` (a float) adds
    an epsilon to every weight instead, softmax(gamma * log(w_tilde + eps)); ``eps=0.0`` is the
    plain formula, for hand checks.
    """
    _weighting(w_tilde, "w_tilde")
    gamma = _per_head(gamma, tuple(w_tilde.shape[:-1]), "gamma")  # (B, 1) or (B, R, 1)
    dtype = w_tilde.dtype
    if w_tilde.element_size() < 4:  # float16's smallest normal number, 6e-5, is not small next to 1/N
        w_tilde, gamma = w_tilde.float(), gamma.float()
    if eps is None:
        logs = torch.log(w_tilde.clamp_min(torch.finfo(w_tilde.dtype).tiny))  # (..., N), finite
    else:
        logs = torch.log(w_tilde + eps)
    return torch.softmax(gamma * logs, dim=-1).to(dtype)  # eq. 9 in log space: (..., N)


def address(memory: torch.Tensor, k: torch.Tensor, beta: torch.Tensor, g: torch.Tensor, s: torch.Tensor,
            gamma: torch.Tensor, w_prev: torch.Tensor, eps: float = EPSILON) -> torch.Tensor:
    r"""A head's whole addressing (figure 2): content, interpolation, shift, sharpening.

    memory (B, N, W). One head: key k (B, W), beta, g, gamma (B,) or (B, 1), shifts s (B, K),
    previous weighting w_prev (B, N) -> (B, N). R heads at once: k (B, R, W), beta, g, gamma
    (B, R) or (B, R, 1), s (B, R, K), w_prev (B, R, N) -> (B, R, N). ``eps`` is the content
    addressing's (under its norms); sharpening guards its log itself (``sharpen``).
    """
    w_c = content_addressing(memory, k, beta, eps)  # eq. 5-6: (B, [R,] N)
    w_g = interpolate(w_c, w_prev, g)  # eq. 7
    w_tilde = shift(w_g, s)  # eq. 8
    return sharpen(w_tilde, gamma)  # eq. 9


# -- the heads' parameters, from the controller's output --------------------------------------

class NTMHeadParams(NamedTuple):
    """What the controller emits for a group of heads' addressing, squashed to its range.

    k (B, R, W) keys, beta (B, R) >= 0, g (B, R) in [0, 1], s (B, R, K) a distribution over the
    shifts, gamma (B, R) >= 1.
    """

    k: torch.Tensor
    beta: torch.Tensor
    g: torch.Tensor
    s: torch.Tensor
    gamma: torch.Tensor


def head_param_size(W: int, K: int) -> int:
    """The number of controller outputs one head's addressing needs: k (W), beta, g, s (K), gamma."""
    return W + 1 + 1 + K + 1


def split_head_params(xi: torch.Tensor, W: int, K: int) -> NTMHeadParams:
    """Cut the raw outputs xi (B, R, head_param_size(W, K)) into R heads' parameters and squash each.

    The squashings keep every parameter in the range the paper requires (section 3.3):
    beta = softplus, g = sigmoid, s = softmax over the K shifts, gamma = 1 + softplus.
    """
    P = head_param_size(W, K)
    if xi.dim() != 3 or xi.shape[-1] != P:
        raise ValueError(f"xi must have shape (B, R, {P}), got shape {tuple(xi.shape)}")
    k, beta, g, s, gamma = xi.split([W, 1, 1, K, 1], dim=-1)
    return NTMHeadParams(k, F.softplus(beta).squeeze(-1), torch.sigmoid(g).squeeze(-1), torch.softmax(s, dim=-1),
                         1 + F.softplus(gamma).squeeze(-1))


# -- the cell ---------------------------------------------------------------------------------

class NTMState(NamedTuple):
    """An NTM's state: all that changes from step to step.

    controller: the controller's state (``LSTMState(h, c)``, each (B, H); for a feed-forward
    controller an empty (B, 0) tensor); memory (B, N, W); read_weights (B, R, N) and write_weights
    (B, N), the heads' last weightings (the $w_{t-1}$ of eq. 7); reads (B, R, W), the last reads,
    which the controller gets with the next input.
    """

    controller: object
    memory: torch.Tensor
    read_weights: torch.Tensor
    write_weights: torch.Tensor
    reads: torch.Tensor


class FeedForwardController(Cell):
    """The paper's feed-forward controller: h = tanh(W x + b), (B, I) -> (B, H), no state of its own.

    It keeps the cell interface (``state, h = controller(state, x)``) with an empty state (B, 0),
    so that an NTM's state has the same structure whatever its controller.
    """

    def __init__(self, input_size: int, hidden_size: int, device=None, dtype=None):
        super().__init__(input_size, hidden_size, {"weight": (hidden_size, input_size), "bias": (hidden_size,)},
                         device=device, dtype=dtype)

    def state_sizes(self) -> tuple[int, ...]:
        return (0,)

    def step(self, params: dict, state, x: torch.Tensor):
        h = torch.tanh(F.linear(x, params["weight"], params["bias"]))  # (B, H)
        return state, h


class NTMCell(Cell):
    r"""The NTM as the lecture's f: ``state, y = cell(state, x)`` with ``NTMState``, y (B, O) logits.

    One step, from x (B, I) and the state of the previous step:

    1. the controller reads $[x_t; r_{t-1}]$ (B, I + R W) and gives h (B, H);
    2. a linear layer of h gives the R read heads' and the write head's addressing parameters
       (``split_head_params``) and the write head's erase and add vectors e, a (B, W);
    3. all R + 1 heads address the memory as it came, $M_{t-1}$, at once (``address``, the write
       head last): weightings (B, R + 1, N);
    4. the read heads read $r_t$ (B, R, W) from $M_{t-1}$; the write head erases then adds, $M_t$;
    5. the output is $y_t = W_y [h; r_t] + b_y$ (B, O), logits (a sigmoid gives the bits of the
       copy tasks).

    The initial state (``initial_state(B)``) is the same for every sequence: a memory of constant
    ``memory_init`` (small, not zero: the paper leaves it open; a constant works best in Collier
    and Beel's comparison), every head's weighting on slot 0 (a uniform start would never break
    the slots' symmetry: every slot would be written alike forever), the reads of that memory, and
    the controller's zero state.

    Args:
        input_size: I. output_size: O. controller_size: H.
        memory_size: N slots. word_size: W. read_heads: R >= 1 (one write head).
        controller: ``"lstm"`` (``seqmem.LSTMCell``) or ``"feedforward"`` (``FeedForwardController``).
        shift_range: S; the heads may shift by -S, ..., S slots (K = 2S + 1).
        memory_init: the value of every memory cell at the start.
    """

    state_type = NTMState

    def __init__(self, input_size: int, output_size: int, controller_size: int = 100, memory_size: int = 128,
                 word_size: int = 20, read_heads: int = 1, controller: str = "lstm", shift_range: int = 1,
                 memory_init: float = 1e-6, device=None, dtype=None):
        super().__init__(input_size, controller_size, {}, device=device, dtype=dtype)
        for name, value in (("output_size", output_size), ("memory_size", memory_size),
                            ("word_size", word_size), ("read_heads", read_heads)):
            check_positive_int(name, value)
        if not isinstance(shift_range, int) or isinstance(shift_range, bool) or shift_range < 0:
            raise ValueError(f"shift_range must be an int >= 0, got {shift_range!r}")
        if controller not in ("lstm", "feedforward"):
            raise ValueError(f"controller must be 'lstm' or 'feedforward', got {controller!r}")
        self.N, self.W, self.R, self.K = memory_size, word_size, read_heads, 2 * shift_range + 1
        self.shift_range, self.memory_init, self.controller_kind = shift_range, float(memory_init), controller
        self._output_size = output_size
        kinds = {"lstm": LSTMCell, "feedforward": FeedForwardController}
        self.controller = kinds[controller](input_size + read_heads * word_size, controller_size,
                                            device=device, dtype=dtype)
        head_outputs = (read_heads + 1) * head_param_size(word_size, self.K) + 2 * word_size  # + e, a
        self.heads = nn.Linear(controller_size, head_outputs, device=device, dtype=dtype)
        self.output = nn.Linear(controller_size + read_heads * word_size, output_size, device=device, dtype=dtype)

    @property
    def output_size(self) -> int:
        return self._output_size

    def state_sizes(self) -> tuple[int, ...]:
        """Not defined: the NTM's state is not one (B, size) tensor per part (its memory is (B, N, W))."""
        raise ValueError("an NTM's state is not a tuple of (B, size) vectors (its memory is (B, N, W), its "
                         "read weights (B, R, N)): use NTMCell.initial_state(B), and map_state to transform one")

    def reset_parameters(self) -> None:
        """Every part's own initialisation (torch's for the linear layers, the controller's)."""
        for child in self.children():
            child.reset_parameters()

    def initial_state(self, batch_size: int) -> NTMState:
        """The state every sequence starts from, for a batch of B, on the parameters' device and dtype."""
        check_positive_int("batch_size", batch_size)
        like = next(self.parameters())
        B, N, W, R = batch_size, self.N, self.W, self.R
        memory = like.new_full((B, N, W), self.memory_init)  # (B, N, W)
        first = like.new_zeros(N)
        first[0] = 1.0  # every head starts on slot 0
        read_weights = first.expand(B, R, N).clone()  # (B, R, N)
        write_weights = first.expand(B, N).clone()  # (B, N)
        return NTMState(self.controller.initial_state(B), memory, read_weights, write_weights,
                        read(memory, read_weights))  # reads (B, R, W)

    def step(self, params: dict, state: NTMState, x: torch.Tensor):
        """One step (the class docstring's 1-5), unchecked; ``params`` is unused: the NTM's parameters
        are those of its parts (the controller, ``heads``, ``output``), which it calls."""
        B, R, W = x.shape[0], self.R, self.W
        controller_in = torch.cat([x, state.reads.reshape(B, R * W)], dim=-1)  # (B, I + R W)
        controller_state, h = self.controller(state.controller, controller_in)  # h: (B, H)
        xi = self.heads(h)  # (B, (R + 1) P + 2 W)
        heads = split_head_params(xi[:, :-2 * W].reshape(B, R + 1, -1), W, self.K)  # each (B, R + 1, ...)
        e, a = torch.sigmoid(xi[:, -2 * W:-W]), torch.tanh(xi[:, -W:])  # erase in [0, 1], add in [-1, 1]: (B, W)
        w_prev = torch.cat([state.read_weights, state.write_weights.unsqueeze(1)], dim=1)  # (B, R + 1, N)
        w = address(state.memory, *heads, w_prev)  # eq. 5-9 for every head: (B, R + 1, N)
        w_r, w_w = w[:, :R], w[:, R]  # (B, R, N), (B, N)
        reads = read(state.memory, w_r)  # eq. 2: (B, R, W)
        memory = write(state.memory, w_w, e, a)  # eq. 3-4: (B, N, W)
        y = self.output(torch.cat([h, reads.reshape(B, R * W)], dim=-1))  # (B, O)
        return NTMState(controller_state, memory, w_r, w_w, reads), y

    def forward(self, state: NTMState, x: torch.Tensor):
        self.check(state, x)
        return self.step({}, state, x)

    def check(self, state, x: torch.Tensor) -> None:
        """x (B, I) and an ``NTMState`` whose parts have this cell's shapes, dtype and device."""
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.input_size:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {self.input_size}), got {got}")
        if not isinstance(state, NTMState):
            raise ValueError(f"state must be an NTMState(controller, memory, read_weights, write_weights, reads) "
                             f"(cell.initial_state(B)), got {type(state).__name__}")
        B, N, W, R = x.shape[0], self.N, self.W, self.R
        like = next(self.parameters())
        check_like(like, x=x)
        for name, want in (("memory", (B, N, W)), ("read_weights", (B, R, N)), ("write_weights", (B, N)),
                           ("reads", (B, R, W))):
            part = getattr(state, name)
            if not isinstance(part, torch.Tensor) or tuple(part.shape) != want:
                got = tuple(part.shape) if isinstance(part, torch.Tensor) else type(part).__name__
                raise ValueError(f"state.{name} must have shape {want}, got {got}")
            check_like(like, **{f"state.{name}": part})
        # the controller checks its own state when it is called

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, output_size={self.output_size}, controller={self.controller_kind!r}, "
                f"memory_size={self.N}, word_size={self.W}, read_heads={self.R}, shift_range={self.shift_range}")
