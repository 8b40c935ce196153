r"""Pointer networks (Vinyals, Fortunato and Jaitly, 2015): attention whose weights are the output.

The lecture's problem: a convex hull, a sorted order or a tour is a sequence of the input's own
positions, so its vocabulary has n entries and n changes from one input to the next; a
sequence-to-sequence decoder's softmax has a fixed size. The pointer network keeps the encoder and
decoder of chapter 4 and the additive score of chapter 5, and uses the scores over the input
positions as the output distribution itself, with no context vector and no vocabulary:

.. math::

    u^i_j = v^T \tanh(W_1 e_j + W_2 d_i), \qquad
    p(C_i \mid C_1, \dots, C_{i-1}, \mathcal{P}) = \mathrm{softmax}(u^i)

for the encoder states e_1 ... e_n (an LSTM over the embedded points) and the decoder state d_i
(an LSTM whose input is the previously chosen point, a learned vector for the first step).

Choices made here, each an option:

- ``end=True`` adds a learned "end" position after the inputs: its key e_{N+1} is a parameter, so
  with N (padded) inputs the distribution has N + 1 entries and index N means "stop". The convex
  hull needs it (its length varies); a permutation (sorting, a tour) does not: it stops after n.
- ``constrained=True`` masks the positions already chosen (a permutation is decoded as one; the
  paper's hulls were decoded unconstrained, the default). The end position is never masked out
  this way.
- Batches of different n are padded: ``lengths`` masks the padding out of every distribution.

``pointer_log_probs(scores, mask)`` is the masked log-softmax, ``greedy_step`` one masked greedy
step with its mask update; ``greedy`` and ``beam_search`` decode (beam search with chapter 4's
``seqmem.decoding.beam_step``). The metrics: exact match of hulls as cyclic sequences, hull area
coverage by the shoelace formula, tour length and optimality gap; an invalid prediction is scored
as invalid, never repaired.

``PositionSeq2Seq`` is the paper's baseline for contrast: the same encoder and decoder with
chapter 5's attention for a context vector and a fixed softmax over n_max position classes and an
end class, so it cannot name a position >= n_max.

Dimensions: B batch, N inputs (the largest n of a batch), S = N + 1 with the end position (else
N), T output steps, D point size, E embedding size, H hidden size, A the score's hidden size, K
beam size.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .attention import AdditiveScore, attend
from .core import IGNORE_INDEX
from .decoding import beam_step
from .lstm import LSTM
from .tasks.geometry import convex_hull, cycle_length, polygon_area

__all__ = ["PointerNetwork", "PositionSeq2Seq", "PointerMemory", "pointer_scores", "pointer_distribution", "pointer_log_probs",
           "pointer_loss", "greedy_step", "greedy", "beam_search", "canonical_hull", "hull_exact", "valid_polygon",
           "hull_area_coverage", "valid_tour", "tour_length", "optimality_gap"]


# -- the pointer distribution ----------------------------------------------------------------------------


def pointer_log_probs(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""log p over input positions: a log-softmax of the scores over the allowed positions only.

    .. math::  \log p_j = u_j - \log \sum_{k \in \mathrm{allowed}} \exp u_k \ (j\ \mathrm{allowed}),
               \qquad \log p_j = -\infty \ \mathrm{otherwise}

    Args:
        scores: (..., S) the scores u_j; mask: (..., S) bool (or broadcastable), True where a
            position may be chosen; None allows all.
    Returns (..., S). Never NaN: a row with no position allowed has no distribution, and raises
    ``ValueError``.
    """
    if mask is None:
        return scores.log_softmax(dim=-1)
    mask = mask.expand_as(scores)
    if not bool(mask.any(dim=-1).all()):
        raise ValueError("pointer_log_probs: a row of the mask allows no position (every input masked)")
    return scores.masked_fill(~mask, float("-inf")).log_softmax(dim=-1)


def pointer_scores(d: torch.Tensor, e: torch.Tensor, W_1: torch.Tensor, W_2: torch.Tensor,
                   v: torch.Tensor) -> torch.Tensor:
    r"""The paper's scores, u_j = v^T tanh(W_1 e_j + W_2 d), for every position j at once.

    Args: d (B, H) the decoder state; e (B, S, H) the encoder states; W_1 (A, H), W_2 (A, H), v (A,).
    Returns (B, S). ``PointerNetwork``'s ``AdditiveScore`` is this with W_1 = ``W_k.weight``,
    W_2 = ``W_q.weight``, v = ``w_2.weight[0]``.
    """
    hidden = torch.tanh(e @ W_1.T + (d @ W_2.T).unsqueeze(1))  # (B, S, A) + (B, 1, A): (B, S, A)
    return hidden @ v  # (B, S)


def pointer_distribution(d: torch.Tensor, e: torch.Tensor, W_1: torch.Tensor, W_2: torch.Tensor, v: torch.Tensor,
                         mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""log p(C_i = j | C_<i, P) = log softmax_{j allowed}(u_j): the pointer distribution, (B, S).

    ``pointer_log_probs(pointer_scores(d, e, W_1, W_2, v), mask)``; mask (B, S) True where allowed.
    """
    return pointer_log_probs(pointer_scores(d, e, W_1, W_2, v), mask)


def pointer_loss(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean negative log-likelihood of the target positions, ``IGNORE_INDEX`` steps skipped.

    log_probs (B, T, S), targets (B, T). A target at a masked position costs inf (a mask that
    forbids the answer is a bug worth seeing).
    """
    return F.nll_loss(log_probs.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)


def greedy_step(log_probs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One masked greedy step: C_i = argmax_{j allowed} log p_j, then C_i is no longer allowed.

    Args: log_probs (B, S); mask (B, S) bool, True where allowed.
    Returns: ``(choice, new_mask)``: choice (B,) int64, new_mask (B, S) = mask with each row's
    choice set False (the mask of constrained decoding; unconstrained decoding keeps ``mask``).
    A row with nothing allowed raises ``ValueError``.
    """
    if not bool(mask.any(dim=-1).all()):
        raise ValueError("greedy_step: a row of the mask allows no position")
    choice = log_probs.masked_fill(~mask, float("-inf")).argmax(dim=-1)  # (B,)
    new_mask = mask.scatter(1, choice.unsqueeze(1), False)  # (B, S)
    return choice, new_mask


# -- the network --------------------------------------------------------------------------------------------


class PointerMemory(NamedTuple):
    """What the encoder leaves for the decoder, batch first.

    keys: (B, S, A), W_1 e_j for every position (the end position's last with ``end``);
    inputs: (B, N + 1, E), the embedded points and, at index N, the learned first input;
    allowed: (B, S) bool, the positions that are not padding; state: the decoder's (h, c), each
    (1, B, H), from the encoder's final state at each true end; lengths: (B,) the n of each sample.
    """

    keys: torch.Tensor
    inputs: torch.Tensor
    allowed: torch.Tensor
    state: tuple
    lengths: torch.Tensor


class PointerNetwork(nn.Module):
    """A pointer network: LSTM encoder, LSTM decoder, additive scores as the output distribution.

    Args:
        input_size: D, the features of a point (2 for the plane).
        hidden_size: H, the encoder's and decoder's hidden size (the embedding has E = H).
        attention_size: A, the additive score's hidden size (default H).
        end: add the learned end position (index N of N padded inputs).

    Parameters: ``embed`` (Linear D -> E), ``encoder`` and ``decoder`` (``seqmem.LSTM``),
    ``first_input`` (E), ``end_key`` (H, with ``end``), ``score`` (``seqmem.AdditiveScore``:
    W_2 is ``score.W_q``, W_1 ``score.W_k``, v ``score.w_2``).
    """

    def __init__(self, input_size: int = 2, hidden_size: int = 128, attention_size: int | None = None,
                 end: bool = False):
        super().__init__()
        H, A = hidden_size, attention_size or hidden_size
        self.input_size, self.hidden_size, self.end = input_size, H, end
        self.embed = nn.Linear(input_size, H)
        self.encoder = LSTM(H, H, batch_first=True)
        self.decoder = LSTM(H, H, batch_first=True)
        self.first_input = nn.Parameter(torch.empty(H).uniform_(-1, 1))  # d_0's input, the paper's "=>"
        self.end_key = nn.Parameter(torch.empty(H).uniform_(-1, 1)) if end else None
        self.score = AdditiveScore(H, H, A)

    def _check(self, points: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if points.dim() != 3 or points.shape[-1] != self.input_size:
            raise ValueError(f"points must have shape (B, N, {self.input_size}), got {tuple(points.shape)}")
        B, N, _ = points.shape
        if lengths is None:
            return torch.full((B,), N, dtype=torch.long, device=points.device)
        if lengths.shape != (B,) or int(lengths.min()) < 1 or int(lengths.max()) > N:
            raise ValueError(f"lengths must have shape ({B},) with values in 1 ... {N}, got {lengths.tolist()}")
        return lengths.to(points.device)

    def _encoder_states(self, points: torch.Tensor, lengths: torch.Tensor | None):
        """x (B, N, E) the embedded points, e (B, N, H) their encodings, the final state, lengths,
        allowed (B, N)."""
        lengths = self._check(points, lengths)
        N = points.shape[1]
        x = self.embed(points)  # (B, N, E)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.encoder(packed)
        e, _ = pad_packed_sequence(out, batch_first=True, total_length=N)  # (B, N, H), zeros on padding
        allowed = torch.arange(N, device=points.device) < lengths.unsqueeze(1)  # (B, N)
        return x, e, state, lengths, allowed

    def encode(self, points: torch.Tensor, lengths: torch.Tensor | None = None) -> PointerMemory:
        """Embed and encode the points (B, N, D) of ``lengths`` (B,) (None: all N)."""
        x, e, state, lengths, allowed = self._encoder_states(points, lengths)
        B = points.shape[0]
        if self.end:
            e = torch.cat([e, self.end_key.expand(B, 1, -1)], dim=1)  # (B, N + 1, H)
            allowed = torch.cat([allowed, allowed.new_ones(B, 1)], dim=1)
        inputs = torch.cat([x, self.first_input.expand(B, 1, -1)], dim=1)  # (B, N + 1, E)
        return PointerMemory(self.score.prepare(e), inputs, allowed, tuple(state), lengths)

    def _decoder_inputs(self, memory: PointerMemory, previous: torch.Tensor) -> torch.Tensor:
        """The embedded points at ``previous`` (B, T); the end, padding or IGNORE read the first input."""
        N = memory.inputs.shape[1] - 1
        index = torch.where((previous >= 0) & (previous < N), previous, N)  # (B, T)
        return memory.inputs.gather(1, index.unsqueeze(-1).expand(-1, -1, memory.inputs.shape[-1]))  # (B, T, E)

    def step(self, memory: PointerMemory, state: tuple, previous: torch.Tensor) -> tuple[tuple, torch.Tensor]:
        """One decoder step after the positions ``previous`` (B,) (N: the first step): state, scores (B, S)."""
        out, state = self.decoder(self._decoder_inputs(memory, previous.unsqueeze(1)), state)  # (B, 1, H)
        return state, self._output(memory, out)[:, 0]  # u^i_j, (B, S)

    def _output(self, memory: PointerMemory, d: torch.Tensor) -> torch.Tensor:
        """The scores of the decoder states d (B, T, H) over the positions: u^i_j, (B, T, S)."""
        return self.score.compare(d, memory.keys)

    def forward(self, points: torch.Tensor, lengths: torch.Tensor | None, targets: torch.Tensor,
                constrained: bool = False) -> torch.Tensor:
        """Teacher-forced log p(C_i = j | C_<i, P) for every step: (B, T, S).

        targets (B, T): positions, the end position N (with ``end``), ``IGNORE_INDEX`` as padding.
        Step i's decoder input is the point of targets[:, i - 1]. With ``constrained``, the points
        of targets[:, :i] are masked at step i; padding steps get the padding mask only.
        """
        memory = self.encode(points, lengths)
        B, N = points.shape[:2]
        if targets.dim() != 2 or targets.shape[0] != B or targets.dtype != torch.long:
            raise ValueError(f"targets must be int64 positions of shape ({B}, T), got {targets.dtype} "
                             f"{tuple(targets.shape)}")
        previous = torch.cat([targets.new_full((B, 1), N), targets[:, :-1]], dim=1)  # (B, T)
        d, _ = self.decoder(self._decoder_inputs(memory, previous), memory.state)  # (B, T, H)
        u = self._output(memory, d)  # (B, T, S)
        mask = memory.allowed.unsqueeze(1).expand_as(u)  # (B, T, S)
        if constrained:
            mask = mask & ~self._chosen_before(targets, u.shape[-1])
        mask = torch.where((targets == IGNORE_INDEX).unsqueeze(-1), memory.allowed.unsqueeze(1), mask)
        return pointer_log_probs(u, mask)

    def _chosen_before(self, targets: torch.Tensor, S: int) -> torch.Tensor:
        """(B, T, S) True at the input positions chosen by the targets before each step."""
        N = S - 1 if self.end else S
        valid = (targets >= 0) & (targets < N)
        one_hot = F.one_hot(torch.where(valid, targets, S), S + 1)[..., :S].bool()  # (B, T, S)
        chosen = one_hot.cumsum(dim=1) > 0  # chosen at or before step i
        return torch.cat([torch.zeros_like(chosen[:, :1]), chosen[:, :-1]], dim=1)  # strictly before


class PositionSeq2Seq(PointerNetwork):
    r"""The sequence-to-sequence baseline of Vinyals et al.: positions as a fixed vocabulary.

    The same embedding, LSTM encoder and decoder as ``PointerNetwork`` (the decoder reads the
    point chosen last, so the two differ in their output only); at each step chapter 5's additive
    attention mixes the encoder states into a context c_i, and a linear layer scores n_max + 1
    classes, class j < n_max meaning "position j" and class n_max "end":

    .. math::  \alpha^i = \mathrm{softmax}_j(v^\top \tanh(W_1 e_j + W_2 d_i)), \quad
               c_i = \sum_j \alpha^i_j e_j, \quad z^i = W_o [d_i; c_i] + b_o \in \mathbb{R}^{n_{\max} + 1}

    Its scores come in the pointer network's layout (B, T, N + 1), end at index N, so that
    ``pointer_loss``, ``greedy`` and ``beam_search`` run it unchanged: position j < n_max scores
    z_j, a position j >= n_max scores -inf (no class names it), classes n ... n_max - 1 of a
    sample of n points are masked out as the pointer network's padding is. A target at a
    position >= n_max raises ``ValueError``: the loss cannot be written down.

    Args: input_size D, hidden_size H, n_max (the number of position classes), attention_size A.
    Parameters: the pointer network's (no ``end_key``; ``score`` is the attention's) and ``out``
    (Linear 2H -> n_max + 1).
    """

    def __init__(self, input_size: int = 2, hidden_size: int = 128, n_max: int = 10,
                 attention_size: int | None = None):
        if n_max < 1:
            raise ValueError(f"n_max must be a positive number of position classes, got {n_max}")
        super().__init__(input_size, hidden_size, attention_size, end=False)
        self.end, self.n_max = True, n_max  # index N of the scores is the end, as a pointer's
        self.out = nn.Linear(2 * hidden_size, n_max + 1)  # W_o, b_o

    def encode(self, points: torch.Tensor, lengths: torch.Tensor | None = None) -> PointerMemory:
        """As the pointer network's, but the keys are the encoder states e (B, N, H) themselves."""
        x, e, state, lengths, allowed = self._encoder_states(points, lengths)
        B = points.shape[0]
        allowed = torch.cat([allowed, allowed.new_ones(B, 1)], dim=1)  # (B, N + 1), the end allowed
        inputs = torch.cat([x, self.first_input.expand(B, 1, -1)], dim=1)  # (B, N + 1, E)
        return PointerMemory(e, inputs, allowed, tuple(state), lengths)

    def _output(self, memory: PointerMemory, d: torch.Tensor) -> torch.Tensor:
        """z^i in the pointer layout: (B, T, N + 1) for the decoder states d (B, T, H)."""
        e = memory.keys  # (B, N, H)
        c, _ = attend(d, self.score.prepare(e), e, self.score.compare, memory.allowed[:, :-1])  # (B, T, H)
        z = self.out(torch.cat([d, c], dim=-1))  # (B, T, n_max + 1)
        N = e.shape[1]
        m = min(N, self.n_max)
        unnamed = z.new_full((*z.shape[:-1], N - m), float("-inf"))  # positions n_max ... N - 1
        return torch.cat([z[..., :m], unnamed, z[..., -1:]], dim=-1)  # (B, T, N + 1)

    def forward(self, points: torch.Tensor, lengths: torch.Tensor | None, targets: torch.Tensor,
                constrained: bool = False) -> torch.Tensor:
        """Teacher-forced log p (B, T, N + 1), as ``PointerNetwork.forward``; targets at a position
        >= n_max (other than the end N) raise ``ValueError``."""
        N = points.shape[1]
        if isinstance(targets, torch.Tensor) and bool(((targets >= self.n_max) & (targets < N)).any()):
            raise ValueError(f"a seq2seq decoder of {self.n_max} position classes cannot name positions >= "
                             f"{self.n_max}, got targets up to {int(targets[targets < N].max())}")
        return super().forward(points, lengths, targets, constrained)


# -- decoding -----------------------------------------------------------------------------------------------


def _decode_setup(model: PointerNetwork, points, lengths, max_len):
    memory = model.encode(points, lengths)
    N = points.shape[1]
    return memory, N, (max_len if max_len is not None else (N + 1 if model.end else N))


@torch.no_grad()
def greedy(model: PointerNetwork, points: torch.Tensor, lengths: torch.Tensor | None = None,
           max_len: int | None = None, constrained: bool = False) -> list[list[int]]:
    """Greedy decoding: at each step the most probable allowed position, fed back as the next input.

    A model with an end position stops at it (or after ``max_len`` steps, default N + 1); one
    without stops each sample after its n steps. Returns each sample's positions (no end).
    """
    memory, N, max_len = _decode_setup(model, points, lengths, max_len)
    B = points.shape[0]
    state, previous, mask = memory.state, torch.full((B,), N, device=points.device), memory.allowed
    done, steps = torch.zeros(B, dtype=torch.bool, device=points.device), []
    for t in range(max_len):
        state, u = model.step(memory, state, previous)
        allowed = torch.where(done.unsqueeze(1), memory.allowed, mask if constrained else memory.allowed)
        choice, new_mask = greedy_step(pointer_log_probs(u, allowed), allowed)
        mask = torch.where(done.unsqueeze(1), mask, new_mask)
        steps.append(torch.where(done, -1, choice))
        done = done | (choice == N if model.end else memory.lengths <= t + 1)
        previous = choice
        if done.all():
            break
    rows = torch.stack(steps, dim=1).tolist()  # (B, steps)
    return [[j for j in row if 0 <= j < N] for row in rows]


def _step_log_probs(model, memory, state, previous, mask, constrained, t, N):
    """(B*K, V) log p of the next position, V = S + 1 without an end position (a virtual end at S,
    certain once a sample's n positions are out and impossible before)."""
    state, u = model.step(memory, state, previous)
    allowed = mask if constrained else memory.allowed
    allowed = torch.where(allowed.any(-1, keepdim=True), allowed, memory.allowed)  # empty slots: any row
    log_p = pointer_log_probs(u, allowed)  # (B*K, S)
    if not model.end:
        over = (memory.lengths <= t).unsqueeze(1)  # (B*K, 1): n positions already out
        log_p = torch.cat([log_p.masked_fill(over, float("-inf")),
                           torch.where(over, 0.0, float("-inf")).to(log_p)], dim=1)  # (B*K, S + 1)
    return state, log_p


@torch.no_grad()
def beam_search(model: PointerNetwork, points: torch.Tensor, lengths: torch.Tensor | None = None,
                beam_size: int = 4, max_len: int | None = None, constrained: bool = False) -> list[list[int]]:
    """Beam search over pointers: the K most probable partial sequences, by log p (no length norm).

    Each step extends every live sequence by every allowed position and keeps the best K
    extensions (``seqmem.decoding.beam_step``); one that points at the end leaves the beam,
    finished. A sample is done when its best finished sequence beats every live one (log p only
    falls). Returns each sample's best sequence (without the end); at ``max_len`` with none
    finished, its best live one.
    """
    memory, N, max_len = _decode_setup(model, points, lengths, max_len)
    B, K, dev = points.shape[0], beam_size, points.device
    eos = N  # the end position, or the virtual one after the N inputs
    memory = PointerMemory(*(t.repeat_interleave(K, 0) for t in (memory.keys, memory.inputs, memory.allowed)),
                           tuple(s.repeat_interleave(K, 1) for s in memory.state),
                           memory.lengths.repeat_interleave(K, 0))  # every tensor (B*K, ...)
    scores = torch.full((B, K), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # one live beam at first
    state, mask, previous = memory.state, memory.allowed, torch.full((B * K,), N, device=dev)
    history = torch.zeros(B, K, 0, dtype=torch.long, device=dev)
    best: list[tuple[float, list[int]]] = [(float("-inf"), [])] * B
    for t in range(max_len):
        state, log_p = _step_log_probs(model, memory, state, previous, mask, constrained, t, N)
        step = beam_step(scores, log_p.view(B, K, -1), K, eos_id=eos)
        rows = (torch.arange(B, device=dev).unsqueeze(1) * K + step.parents).flatten()  # (B*K,) parents' rows
        history = torch.cat([history.gather(1, step.parents.unsqueeze(-1).expand_as(history)),
                             step.tokens.unsqueeze(-1)], dim=2)  # (B, K, t + 1)
        for b, k in (step.finished > float("-inf")).nonzero().tolist():
            if step.finished[b, k] > best[b][0]:
                best[b] = (float(step.finished[b, k]), history[b, k, :-1].tolist())
        state = tuple(s[:, rows] for s in state)
        mask = mask[rows].scatter(1, step.tokens.flatten().clamp(max=mask.shape[1] - 1).unsqueeze(1), False)
        previous, scores = step.tokens.flatten(), step.live
        beaten = torch.tensor([f for f, _ in best], device=dev) >= scores.max(dim=1).values
        if beaten.all():
            break
    for b in range(B):  # max_len reached without a finished sequence: the best live one
        if best[b][0] == float("-inf"):
            best[b] = (0.0, history[b, int(scores[b].argmax())].tolist())
    return [[j for j in seq if 0 <= j < N] for _, seq in best]


# -- metrics ------------------------------------------------------------------------------------------------


def canonical_hull(seq: Sequence[int]) -> list[int]:
    """A cyclic sequence rotated to start at its lowest index (the canonical start of hulls)."""
    seq = list(seq)
    if not seq:
        return seq
    start = seq.index(min(seq))
    return seq[start:] + seq[:start]


def hull_exact(predicted: Sequence[int], hull: Sequence[int]) -> bool:
    """A predicted hull is exact if it equals the canonical hull as a cyclic sequence: the same
    points in the same (counter-clockwise) order from any start. A clockwise answer is wrong."""
    return canonical_hull(predicted) == list(hull)


def _orientation(a, b, c) -> int:
    cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (cross > 0) - (cross < 0)


def _on_segment(a, b, c) -> bool:
    """c, collinear with a and b, lies within their bounding box."""
    return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])


def _segments_meet(p1, p2, p3, p4) -> bool:
    """Segments p1p2 and p3p4 share a point (crossing or touching)."""
    o1, o2 = _orientation(p1, p2, p3), _orientation(p1, p2, p4)
    o3, o4 = _orientation(p3, p4, p1), _orientation(p3, p4, p2)
    if o1 != o2 and o3 != o4:
        return True
    return any(o == 0 and _on_segment(a, b, c)
               for o, a, b, c in ((o1, p1, p2, p3), (o2, p1, p2, p4), (o3, p3, p4, p1), (o4, p3, p4, p2)))


def valid_polygon(points, seq: Sequence[int]) -> bool:
    """A prediction is a valid polygon if it has at least 3 positions, all distinct and in range,
    its edges meet only at shared vertices (simple), and it is counter-clockwise (area > 0)."""
    n, seq = len(points), list(seq)
    if len(seq) < 3 or len(set(seq)) != len(seq) or not all(0 <= j < n for j in seq):
        return False
    p = [tuple(float(c) for c in points[j]) for j in seq]
    m = len(p)
    edges = [(p[i], p[(i + 1) % m]) for i in range(m)]
    for i in range(m):
        for k in range(i + 2, m):
            if i == 0 and k == m - 1:
                continue  # the first and last edges share the first vertex
            if _segments_meet(*edges[i], *edges[k]):
                return False
    for i in range(m):  # adjacent edges that fold back onto each other
        a, b, c = p[i - 1], p[i], p[(i + 1) % m]
        if _orientation(a, b, c) == 0 and (b[0] - a[0]) * (c[0] - b[0]) + (b[1] - a[1]) * (c[1] - b[1]) < 0:
            return False
    return polygon_area(points, seq) > 0


def hull_area_coverage(points, predicted: Sequence[int], hull: Sequence[int] | None = None) -> float:
    r"""Area of the predicted polygon over the area of the true hull, both by the shoelace formula.

    .. math::  \mathrm{coverage} = \frac{A(\hat C)}{A(C)}, \quad
               A = \tfrac12 \sum_i (x_i y_{i+1} - x_{i+1} y_i)

    points (n, 2); predicted: input positions; hull: the true hull (default: computed). An invalid
    prediction (``valid_polygon`` false) scores 0, never repaired. A valid polygon of input points
    lies inside the hull, so coverage is at most 1.
    """
    if not valid_polygon(points, predicted):
        return 0.0
    hull = convex_hull(points) if hull is None else hull
    return polygon_area(points, predicted) / polygon_area(points, hull)


def valid_tour(tour: Sequence[int], n: int) -> bool:
    """A tour is valid if it is a permutation of 0 ... n - 1 (each city exactly once)."""
    return sorted(tour) == list(range(n))


def tour_length(points, tour: Sequence[int]) -> float:
    r"""The length of the closed tour: \sum_i |P_{\pi(i)} - P_{\pi(i+1)}|_2 with \pi(n+1) = \pi(1).

    points (n, D). A tour that is not a permutation of 0 ... n - 1 raises ``ValueError``: an
    invalid tour has no length (count it as invalid; never repair it).
    """
    if not valid_tour(list(tour), len(points)):
        raise ValueError(f"not a tour of {len(points)} cities: {list(tour)}")
    return cycle_length(points, tour)


def optimality_gap(length: float, optimal: float) -> float:
    """length / optimal - 1: 0 for an optimal tour, 0.05 for one 5% longer."""
    if not optimal > 0 or math.isnan(length):
        raise ValueError(f"optimality_gap needs a positive optimal length and a length, got {length}, {optimal}")
    return length / optimal - 1.0
