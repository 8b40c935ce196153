r"""Adaptive Computation Time (Graves 2016): a cell that decides how many times to run per input.

A recurrent cell does the same amount of computation at every input step: one call of f. ACT lets
it run f several times on the same input, a number $N(t)$ of *ponder steps* that it chooses
itself. That number is set by a threshold and has no gradient; what is differentiable is, as in
attention, a distribution over the ponder steps 1 ... N(t): the result is the weighted mean of
theirs, and the training moves the weights. For input $x_t$ and the state $s_{t-1}$ (section 2
of the paper):

1. ponder step n = 1, 2, ...: $s^n_t, y^n_t = f(s^{n-1}_t, [x_t; \delta_{n,1}])$ with
   $s^0_t = s_{t-1}$; the input carries a flag that is 1 at the first ponder step only, so that
   the cell can tell a new input from a repeated one;
2. a halting unit reads each result: $h^n_t = \sigma(W_h y^n_t + b_h)$. The paper's unit reads
   the state $s^n_t$; here it reads the cell's output $y^n_t$, which is the hidden state $h$ for
   the RNN, GRU and LSTM cells, but only the O output logits for an NTM or a DNC (give such a
   cell enough outputs, and a read-out on top, if its halting needs more);
3. $N(t)$ is the first n at which $\sum_{m \le n} h^m_t \ge 1 - \epsilon$, or the cap M if the sum
   never gets there; the *remainder* $R(t) = 1 - \sum_{n < N(t)} h^n_t$, and the halting
   probabilities are $p^n_t = h^n_t$ for $n < N(t)$ and $p^{N(t)}_t = R(t)$: a distribution over
   the ponder steps (it sums to one), with $\epsilon$ = 0.01 so that one step can be enough;
4. $s_t = \sum_n p^n_t s^n_t$ and $y_t = \sum_n p^n_t y^n_t$ (every part of the state is averaged,
   the memory of an NTM included, by ``map_state``);
5. the *ponder cost* $\mathcal{P}(t) = N(t) + R(t)$ charges the computation: the training loss is
   the task's plus $\tau \sum_t \mathcal{P}(t)$, with a time penalty $\tau$. $N(t)$ is a step
   function of the parameters (its gradient is zero), so the cost's gradient reaches the halting
   unit only through $R(t)$: lowering the cost means halting earlier, by raising the $h^n_t$ before
   the last step.

Within a batch every example has its own $N(t)$. The ponder steps run for the whole batch (no
Python loop over examples) until every example has halted; an example that has halted gets
$p^n_t = 0$ for the steps after, so what the cell computes for it there counts for nothing.

``ACTCell(cell)`` is the lecture's f again, ``state, y = act(state, x)``: its state ``ACTState``
holds the wrapped cell's state $s_t$, the ponder cost summed over the inputs so far (for the loss)
and the last input's $N(t)$; so ``seqmem.unroll`` runs it, and ``trace`` returns every input
step's halting probabilities, $N(t)$ and $R(t)$. ``RepeatCell(cell, repeats)`` is the baseline
of Fojo, Campos and Giro-i-Nieto (2018): the same cell run a fixed number of times per input, with
the same first-step flag, and the last step's state and output.

Dimensions: B batch, T time, I input size (the wrapped cell takes I + 1, the flag), O the wrapped
cell's output size, M the cap on ponder steps.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .cell import Cell, check_like
from .core import check_positive_int, map_state

__all__ = ["ACTState", "ACTStep", "ACTTrace", "act_step", "ACTCell", "trace", "RepeatCell"]

EPSILON = 0.01  # Graves 2016: the halting sum need only reach 1 - epsilon


class ACTState(NamedTuple):
    r"""An ``ACTCell``'s state.

    cell: the wrapped cell's state $s_t$ (the halting-weighted mean over the ponder steps);
    ponder (B, 1): the ponder cost $\sum_t N(t) + R(t)$ over the inputs so far, differentiable
    through the remainders; steps (B, 1): $N(t)$ of the last input, as a float.
    """

    cell: object
    ponder: torch.Tensor
    steps: torch.Tensor


class ACTStep(NamedTuple):
    r"""What one input step did: halting (B, M) the $p^n_t$ (zero after $N(t)$, summing to one),
    steps (B,) $N(t)$ (int64, 1 ... M) and remainder (B,) $R(t)$ in $(\epsilon, 1]$."""

    halting: torch.Tensor
    steps: torch.Tensor
    remainder: torch.Tensor


def _weighted(p: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """p (B,) times a part (B, ...) of a state or output, example by example."""
    return p.view(-1, *([1] * (part.dim() - 1))) * part


def _wrapped_input_size(cell) -> int:
    """The input size I + 1 of a cell to wrap (a cell of the library, I >= 1), or a ValueError."""
    if not isinstance(cell, nn.Module) or not hasattr(cell, "initial_state"):
        raise ValueError(f"cell must be a cell of the library (a module with initial_state), got "
                         f"{type(cell).__name__}")
    size = getattr(cell, "input_size", None)
    if not isinstance(size, int) or size < 2:
        raise ValueError(f"the wrapped cell's input_size must be I + 1 >= 2 (the input and the first-step "
                         f"flag), got {size!r}")
    return size


def _first_parameter(cell) -> torch.Tensor:
    """A parameter of the cell, whose device and dtype the wrapper takes, or a ValueError."""
    like = next(cell.parameters(), None)
    if like is None:
        raise ValueError(f"the wrapped cell must have parameters (their device and dtype are the wrapper's), "
                         f"{type(cell).__name__} has none")
    return like


def _check_input(x, size: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != size:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape (B, {size}) (the wrapped cell's input without the first-step "
                         f"flag), got {got}")


def act_step(cell, halting: nn.Module, state, x: torch.Tensor, max_steps: int, epsilon: float = EPSILON):
    """One input step of ACT (the module docstring's 1-5) around ``cell``; checks M and the halting
    unit's shape, while the cell checks its own state and input.

    Args:
        cell: any cell ``state, y = cell(state, x1)`` whose input x1 is (B, I + 1).
        halting: a module from y (B, O) to the halting unit's pre-activation (B, 1).
        state: the wrapped cell's state $s_{t-1}$.
        x: (B, I), the input $x_t$.
        max_steps: M, the cap on ponder steps.
        epsilon: the halting sum must reach 1 - epsilon.

    Returns:
        ``(state, y, ACTStep)``: $s_t$, $y_t$ (B, O) and what the step did.
    """
    check_positive_int("max_steps", max_steps)
    B = x.shape[0]
    flag = x.new_zeros(B, 1)
    inputs = (torch.cat([x, flag + 1], dim=-1), torch.cat([x, flag], dim=-1))  # (B, I + 1): first, later
    running = torch.ones(B, dtype=torch.bool, device=x.device)  # (B,): not halted yet
    total = x.new_zeros(B)  # (B,): the sum of h^m before this ponder step
    steps = torch.zeros(B, dtype=torch.long, device=x.device)
    remainder = x.new_zeros(B)
    mean_state = mean_y = None
    probabilities = []
    s = state
    for n in range(1, max_steps + 1):
        s, y = cell(s, inputs[0] if n == 1 else inputs[1])
        a = halting(y)
        if tuple(a.shape) != (B, 1):
            raise ValueError(f"the halting unit must map y {tuple(y.shape)} to (B, 1) = ({B}, 1), got "
                             f"{tuple(a.shape)}")
        h = torch.sigmoid(a).squeeze(-1)  # (B,): the halting unit h^n_t
        stop = running & ((total + h >= 1 - epsilon) | (n == max_steps))  # (B,): N(t) = n
        r = 1 - total  # (B,): R(t) where it stops here
        p = torch.where(stop, r, torch.where(running, h, torch.zeros_like(h)))  # (B,): p^n_t
        remainder = torch.where(stop, r, remainder)
        steps = torch.where(stop, torch.full_like(steps, n), steps)
        total = torch.where(running & ~stop, total + h, total)
        running = running & ~stop
        if mean_state is None:
            mean_state = map_state(lambda part: _weighted(p, part), s)
            mean_y = _weighted(p, y)
        else:
            mean_state = map_state(lambda acc, part: acc + _weighted(p, part), mean_state, s)
            mean_y = mean_y + _weighted(p, y)
        probabilities.append(p)
        if not bool(running.any()):  # every example has halted
            break
    halting_p = torch.stack(probabilities, dim=1)  # (B, n)
    halting_p = torch.cat([halting_p, halting_p.new_zeros(B, max_steps - halting_p.shape[1])], dim=1)  # (B, M)
    return mean_state, mean_y, ACTStep(halting_p, steps, remainder)


class ACTCell(Cell):
    r"""ACT around any cell of the library: ``state, y = act(state, x)`` with ``ACTState``.

    Args:
        cell: the cell to run several times per input, ``state, y = cell(state, x1)``, with an
            ``input_size`` of I + 1 (the last input channel is the first-step flag), an
            ``output_size`` O and ``initial_state(B)``: an RNN, GRU, LSTM, NTM or DNC cell.
        max_steps: M >= 1, the cap on ponder steps per input.
        epsilon: in (0, 1); the halting sum must reach 1 - epsilon (Graves: 0.01).
        halting_bias: the initial bias $b_h$ of the halting unit (positive: the first steps' h are
            large, so that training starts from few ponder steps).

    The output y (B, O) is the wrapped cell's output averaged over the ponder steps; a read-out
    (``seqmem.heads``) goes on top as for any cell.
    """

    state_type = ACTState

    def __init__(self, cell: nn.Module, max_steps: int = 10, epsilon: float = EPSILON, halting_bias: float = 1.0):
        size = _wrapped_input_size(cell)
        check_positive_int("max_steps", max_steps)
        if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or not 0 < epsilon < 1:
            raise ValueError(f"epsilon must be a number in (0, 1), got {epsilon!r}")
        if not isinstance(halting_bias, (int, float)) or isinstance(halting_bias, bool):
            raise ValueError(f"halting_bias must be a number, got {halting_bias!r}")
        like = _first_parameter(cell)
        super().__init__(size - 1, cell.output_size, {}, device=like.device, dtype=like.dtype)
        self.cell, self.max_steps, self.epsilon = cell, max_steps, float(epsilon)
        self.halting_bias = float(halting_bias)
        self.halting = nn.Linear(cell.output_size, 1, device=like.device, dtype=like.dtype)
        nn.init.constant_(self.halting.bias, self.halting_bias)

    @property
    def output_size(self) -> int:
        return self.cell.output_size

    def state_sizes(self) -> tuple[int, ...]:
        """Not defined: an ACT state holds the wrapped cell's state, whatever its structure."""
        raise ValueError("an ACT state is not a tuple of (B, size) vectors (it holds the wrapped cell's state): "
                         "use ACTCell.initial_state(B)")

    def reset_parameters(self) -> None:
        """The wrapped cell's own initialisation, torch's for the halting unit, then its bias $b_h$."""
        for child in self.children():
            child.reset_parameters()
        if hasattr(self, "halting"):
            nn.init.constant_(self.halting.bias, self.halting_bias)

    def initial_state(self, batch_size: int) -> ACTState:
        """The wrapped cell's initial state, no ponder cost yet, no steps."""
        check_positive_int("batch_size", batch_size)
        like = self.halting.weight
        return ACTState(self.cell.initial_state(batch_size), like.new_zeros(batch_size, 1),
                        like.new_zeros(batch_size, 1))

    def step(self, params: dict, state: ACTState, x: torch.Tensor):
        """One input step, unchecked; ``params`` is unused (the parameters are the parts')."""
        state, y, _ = self.advance(state, x)
        return state, y

    def advance(self, state: ACTState, x: torch.Tensor):
        """One input step, unchecked: ``(ACTState, y, ACTStep)``, the ponder cost added to the state's."""
        s, y, did = act_step(self.cell, self.halting, state.cell, x, self.max_steps, self.epsilon)
        steps = did.steps.to(x.dtype).unsqueeze(-1)  # (B, 1): N(t)
        return ACTState(s, state.ponder + steps + did.remainder.unsqueeze(-1), steps), y, did

    def forward(self, state: ACTState, x: torch.Tensor):
        self.check(state, x)
        return self.step({}, state, x)

    def check(self, state, x: torch.Tensor) -> None:
        """x (B, I) of the parameters' dtype and device, and an ``ACTState`` whose ponder and steps
        are (B, 1); the wrapped cell checks its own state when it is called."""
        _check_input(x, self.input_size)
        if not isinstance(state, ACTState):
            raise ValueError(f"state must be an ACTState(cell, ponder, steps) (act.initial_state(B)), got "
                             f"{type(state).__name__}")
        check_like(self.halting.weight, x=x)
        for name in ("ponder", "steps"):
            part = getattr(state, name)
            if not isinstance(part, torch.Tensor) or tuple(part.shape) != (x.shape[0], 1):
                got = tuple(part.shape) if isinstance(part, torch.Tensor) else type(part).__name__
                raise ValueError(f"state.{name} must have shape ({x.shape[0]}, 1), got {got}")
            check_like(self.halting.weight, **{f"state.{name}": part})

    def extra_repr(self) -> str:
        return f"max_steps={self.max_steps}, epsilon={self.epsilon}, halting_bias={self.halting_bias}"


class ACTTrace(NamedTuple):
    r"""``trace``'s result: ys (B, T, O), the final ``ACTState``, and per input step halting
    (B, T, M), steps (B, T) int64 and remainder (B, T)."""

    ys: torch.Tensor
    state: ACTState
    halting: torch.Tensor
    steps: torch.Tensor
    remainder: torch.Tensor


def trace(act: ACTCell, xs: torch.Tensor, state: ACTState | None = None) -> ACTTrace:
    """Run ``act`` along xs (B, T, I) as ``seqmem.unroll`` does, keeping what every input step did."""
    if not isinstance(act, ACTCell):
        raise ValueError(f"trace runs an ACTCell, got {type(act).__name__}")
    if not isinstance(xs, torch.Tensor) or xs.dim() != 3 or xs.shape[1] == 0 or xs.shape[2] != act.input_size:
        got = tuple(xs.shape) if isinstance(xs, torch.Tensor) else type(xs).__name__
        raise ValueError(f"xs must have shape (B, T, {act.input_size}) with T >= 1, got {got}")
    if state is None:
        state = act.initial_state(xs.shape[0])
    ys, did = [], []
    for x in xs.unbind(1):  # x: (B, I)
        act.check(state, x)
        state, y, step = act.advance(state, x)
        ys.append(y)
        did.append(step)
    return ACTTrace(torch.stack(ys, 1), state, torch.stack([d.halting for d in did], 1),
                    torch.stack([d.steps for d in did], 1), torch.stack([d.remainder for d in did], 1))


class RepeatCell(Cell):
    r"""A cell run a fixed $\rho$ times per input (Fojo et al. 2018's "repeat RNN"): ``state, y = rep(state, x)``.

    Ponder step n = 1 ... $\rho$ computes $s^n, y^n = f(s^{n-1}, [x; \delta_{n,1}])$ as in ACT, and
    the result is the last step's $s^\rho, y^\rho$: ACT's computation with $N(t) = \rho$ for every
    input and no halting unit. The state is the wrapped cell's own.

    Args:
        cell: as for ``ACTCell``: ``input_size`` I + 1 (the last channel is the first-step flag).
        repeats: $\rho \ge 1$.
    """

    def __init__(self, cell: nn.Module, repeats: int):
        size = _wrapped_input_size(cell)
        check_positive_int("repeats", repeats)
        like = _first_parameter(cell)
        super().__init__(size - 1, cell.output_size, {}, device=like.device, dtype=like.dtype)
        self.cell, self.repeats = cell, repeats
        self.state_type = cell.state_type  # the state is the wrapped cell's own

    def state_sizes(self) -> tuple[int, ...]:
        """The wrapped cell's (its state is this cell's)."""
        return self.cell.state_sizes()

    @property
    def output_size(self) -> int:
        return self.cell.output_size

    def initial_state(self, batch_size: int):
        """The wrapped cell's initial state."""
        return self.cell.initial_state(batch_size)

    def reset_parameters(self) -> None:
        for child in self.children():
            child.reset_parameters()

    def forward(self, state, x: torch.Tensor):
        _check_input(x, self.input_size)
        return self.step({}, state, x)

    def step(self, params: dict, state, x: torch.Tensor):
        """The $\rho$ ponder steps; the wrapped cell checks its state and input at each."""
        flag = x.new_zeros(x.shape[0], 1)
        y = None
        for n in range(self.repeats):
            state, y = self.cell(state, torch.cat([x, flag + (n == 0)], dim=-1))  # (B, I + 1) in
        return state, y

    def extra_repr(self) -> str:
        return f"repeats={self.repeats}"
