r"""The Neural Programmer (Neelakantan, Le and Sutskever 2016): a network that writes a short program.

A question about a table ("what is the sum of pears greater than 17 ?") is answered by a program of
a few table operations: select the rows whose pears are greater than 17, then sum their pears. The
Neural Programmer learns such programs from the answers alone, with the lecture's trick: "run every
operation, then use attention to weigh their results". At each of T steps a controller picks,
softly, an operation and a column, every operation runs on every column, and the step's results are
the attention-weighted mixture, so the whole program is differentiable. Four parts (section 2 of
the paper):

1. **the question RNN**: the question's words (its numbers replaced by ``<num>``) through a tanh
   RNN, $z_i = \tanh(W^{q}[z_{i-1}; V(w_i)])$; the question is $q = z_L$, the last state;
2. **the selector**: at step t, from $q$ and the history $h_{t-1}$, a distribution over the O
   operations, $\alpha^{op}_t = \mathrm{softmax}(U \tanh(W^{op}[q; h_{t-1}]))$, with U (O, d) the
   operations' embeddings, and one over the C columns, $\alpha^{col}_t = \mathrm{softmax}(P
   \tanh(W^{col}[q; h_{t-1}]))$, with P (C, d) the embeddings of the columns' names (the question's
   word embeddings: a question that names a column can find it);
3. **the operations** (the paper's table 1, and argmax and argmin of its successor, Neelakantan et
   al. 2017), on the row selector of the step before $rs_{t-1}$ (M,), a soft set of rows that
   starts as every row, and the scalars of the steps before:

   ==============  ============================================================  ==============
   operation       result                                                        kind
   ==============  ============================================================  ==============
   sum             $\sum_i rs_{t-1}[i]\,\mathrm{table}[i][j]$, per column j      scalar
   count           $\sum_i rs_{t-1}[i]$                                          scalar
   difference      $s_{t-3} - s_{t-1}$                                           scalar
   greater         $\mathrm{table}[i][j] > \mathrm{pivot}_g$                     rows, per column
   lesser          $\mathrm{table}[i][j] < \mathrm{pivot}_l$                     rows, per column
   and, or         $\min$, $\max$ of $rs_{t-1}[i]$ and $rs_{t-2}[i]$             rows
   assign          $rs_{t-1}[i]$, per column j (print the cells)                 lookup
   reset           1 (every row)                                                 rows
   argmax, argmin  $rs_{t-1}[i] \prod_{k:\ \mathrm{table}[k][j] > \mathrm{table}[i][j]}  rows, per column
                   (1 - rs_{t-1}[k])$ (``<`` for argmin): the selected row that
                   no selected row beats
   ==============  ============================================================  ==============

   and the step's outputs are the mixtures: the scalar
   $s_t = \alpha^{op}(\mathrm{count})\,\mathrm{count} + \alpha^{op}(\mathrm{difference})\,\mathrm{diff}
   + \alpha^{op}(\mathrm{sum}) \sum_j \alpha^{col}(j)\,\mathrm{sum}[j]$, the lookup
   $\ell_t[i][j] = \alpha^{op}(\mathrm{assign})\,\alpha^{col}(j)\,rs_{t-1}[i]$ and the row selector
   $rs_t = \alpha(\mathrm{and})\,\mathrm{and} + \alpha(\mathrm{or})\,\mathrm{or} +
   \alpha(\mathrm{reset}) + \sum_j \alpha^{col}(j)\,[\alpha(\mathrm{greater})\,g[:, j] + \dots]$.
   A comparison's pivot is one of the question's numbers, chosen by attention too:
   $\beta_{op} = \mathrm{softmax}_k(z_{p_k - 1} \cdot U_{op})$ over the states at the words left of
   the numbers (at positions $p_k$), $\mathrm{pivot}_{op} = \sum_k \beta_{op}(k)\, n_k$. The
   comparisons are step functions of the pivot, so in the paper no gradient reaches $\beta$ (it can
   only align by way of U and the question RNN, which the selector trains); here ``width`` > 0
   gives the comparisons the gradient of a sigmoid of that width (their values stay exact), and
   $\beta$ learns which number belongs to which comparison;
4. **the history RNN**: $h_t = \tanh(W^{h}[c_t; h_{t-1}])$ with $c_t = [\alpha^{op\top}_t U;
   \alpha^{col\top}_t P]$, what was chosen, so that the next step can choose what follows.

The answer is the last step's: the scalar $s_T$ or the lookup $\ell_T$. The loss (section 2.6) is
the Huber loss of $a = |s_T - y|$, $\frac12 a^2$ for $a \le \delta$ and $\delta a - \frac12
\delta^2$ beyond (sums are large numbers; a squared error's gradients would be huge), for the scalar
questions, and $\lambda$ times the cross-entropy of $\ell_T$ against the answer's cells, averaged
over the M x C cells, for the lookup questions. The model answers with the lookup when it gives
the assign operation more than half its last step's weight. Training is hard, the paper found, and
much helped by annealed Gaussian noise on the gradient, of variance $\eta / (1 + t)^{0.55}$ at
update t (``add_gradient_noise``; Neelakantan et al. 2015).

``operation_step(state, alpha_op, alpha_col, table, pivots)`` is one step of the soft program (item
3) for a batch; ``NeuralProgrammer`` is the whole model; ``forward(batch, hard=True)`` runs the
program the soft model prefers, exactly: at every step the argmax operation and column and the
argmax pivot, while the history RNN reads the soft weights as in the soft run (as the paper's
released code does at test time), so that the choices are the soft run's argmaxes. With ties in a
column, argmax and argmin keep every tied row (``tasks.table_questions`` draws distinct values).

Dimensions: B batch, L question words, K numbers in a question, M rows, C columns, O operations,
T program steps, d the embedding and RNN size.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .core import check_positive_int, unroll
from .rnn import RNNCell

__all__ = ["OPERATIONS", "SCALAR_OPERATIONS", "ROW_OPERATIONS", "ProgramState", "ProgramOutput",
           "initial_program_state", "operation_step", "NeuralProgrammer", "programmer_loss", "answers_correct",
           "chosen_programs", "add_gradient_noise"]

#: The operations, in the order of ``alpha_op``'s last axis.
OPERATIONS = ("sum", "count", "difference", "greater", "lesser", "and", "or", "assign", "reset", "argmax", "argmin")
SCALAR_OPERATIONS = ("sum", "count", "difference")
ROW_OPERATIONS = ("greater", "lesser", "and", "or", "reset", "argmax", "argmin")
_OP = {name: i for i, name in enumerate(OPERATIONS)}


class ProgramState(NamedTuple):
    """What a program step reads from the steps before it.

    ``row_select`` (B, M) the row selector of the step before, $rs_{t-1}$; ``row_select_before``
    (B, M) $rs_{t-2}$; ``scalars`` (B, 3) the scalar outputs $s_{t-1}, s_{t-2}, s_{t-3}$; ``lookup``
    (B, M, C) the step's lookup output $\\ell_t$ (the answer, after the last step).
    """

    row_select: torch.Tensor
    row_select_before: torch.Tensor
    scalars: torch.Tensor
    lookup: torch.Tensor


def initial_program_state(table: torch.Tensor) -> ProgramState:
    """Before the first step: every row selected (twice), the scalars 0, no lookup. ``table`` (B, M, C)."""
    _check_table(table)
    B, M, C = table.shape
    ones = table.new_ones(B, M)
    return ProgramState(ones, ones, table.new_zeros(B, 3), table.new_zeros(B, M, C))


def _check_table(table) -> None:
    if not isinstance(table, torch.Tensor) or table.dim() != 3 or not table.is_floating_point():
        got = f"{tuple(table.shape)} {table.dtype}" if isinstance(table, torch.Tensor) else type(table).__name__
        raise ValueError(f"table must be a float tensor (B, M, C) (batch, rows, columns), got {got}")


def _check(name: str, t, shape: tuple, like: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must have shape {shape}, got {got}")
    if t.dtype != like.dtype or t.device != like.device:
        raise ValueError(f"{name} must be {like.dtype} on {like.device} like the table, got {t.dtype} on {t.device}")


def _extremes(row_select: torch.Tensor, table: torch.Tensor, beats: str) -> torch.Tensor:
    """argmax (``beats`` = ">") or argmin ("<"), per column: rs[i] prod_{k beats i} (1 - rs[k]). (B, M, C)."""
    other = table[:, None, :, :]  # (B, 1, M, C): row k
    this = table[:, :, None, :]  # (B, M, 1, C): row i
    wins = other > this if beats == ">" else other < this  # (B, M, M, C): does row k beat row i?
    keep = torch.where(wins, 1 - row_select[:, None, :, None], torch.ones_like(wins, dtype=table.dtype))
    return row_select[:, :, None] * keep.prod(dim=2)  # (B, M, C)


def _compare(difference: torch.Tensor, width: float) -> torch.Tensor:
    """1 where ``difference`` > 0, else 0; with ``width`` > 0 its gradient is that of
    sigmoid(difference / width) (straight through: the value stays exact, the pivot gets a gradient)."""
    hard = (difference > 0).to(difference.dtype)
    if width <= 0 or not difference.requires_grad:
        return hard
    soft = torch.sigmoid(difference / width)
    return hard + (soft - soft.detach())  # hard + exactly 0: the values stay exact


def operation_step(state: ProgramState, alpha_op: torch.Tensor, alpha_col: torch.Tensor, table: torch.Tensor,
                   pivots: torch.Tensor, width: float = 0.0) -> ProgramState:
    """One soft step of the program: every operation on every column, weighed by the selector.

    Args:
        state: the ``ProgramState`` the step starts from (``initial_program_state(table)`` first).
        alpha_op: (B, O) the weights of the operations, in the order of ``OPERATIONS``.
        alpha_col: (B, C) the weights of the columns.
        table: (B, M, C) the tables' values.
        pivots: (B, 2) the pivots of greater and of lesser.
        width: 0, the paper's comparisons, whose gradient with respect to the pivot is zero; > 0,
            the same values with the gradient of a sigmoid of that width (in the table's units).

    Returns:
        The next ``ProgramState``: $rs_t$, $rs_{t-1}$, $(s_t, s_{t-1}, s_{t-2})$ and $\\ell_t$.
    """
    _check_table(table)
    B, M, C = table.shape
    _check("alpha_op", alpha_op, (B, len(OPERATIONS)), table)
    _check("alpha_col", alpha_col, (B, C), table)
    _check("pivots", pivots, (B, 2), table)
    _check("state.row_select", state.row_select, (B, M), table)
    _check("state.row_select_before", state.row_select_before, (B, M), table)
    _check("state.scalars", state.scalars, (B, 3), table)
    rs, rs_before = state.row_select, state.row_select_before
    a = {name: alpha_op[:, i] for name, i in _OP.items()}  # each (B,)
    # scalar operations
    sums = (rs[:, :, None] * table).sum(dim=1)  # (B, C): sum_i rs[i] table[i][j]
    count = rs.sum(dim=1)  # (B,)
    difference = state.scalars[:, 2] - state.scalars[:, 0]  # s_{t-3} - s_{t-1}
    scalar = a["count"] * count + a["difference"] * difference + a["sum"] * (alpha_col * sums).sum(dim=1)
    # row operations
    greater = _compare(table - pivots[:, 0, None, None], width)  # (B, M, C)
    lesser = _compare(pivots[:, 1, None, None] - table, width)
    per_column = (a["greater"][:, None, None] * greater + a["lesser"][:, None, None] * lesser
                  + a["argmax"][:, None, None] * _extremes(rs, table, ">")
                  + a["argmin"][:, None, None] * _extremes(rs, table, "<"))  # (B, M, C)
    row_select = (a["and"][:, None] * torch.minimum(rs, rs_before) + a["or"][:, None] * torch.maximum(rs, rs_before)
                  + a["reset"][:, None] + (per_column * alpha_col[:, None, :]).sum(dim=2))  # (B, M)
    # the lookup: assign prints the selected rows' cells of the chosen column
    lookup = a["assign"][:, None, None] * alpha_col[:, None, :] * rs[:, :, None]  # (B, M, C)
    scalars = torch.stack([scalar, state.scalars[:, 0], state.scalars[:, 1]], dim=1)  # (B, 3)
    return ProgramState(row_select, rs, scalars, lookup)


class ProgramOutput(NamedTuple):
    """What ``NeuralProgrammer`` returns for B questions.

    ``scalar`` (B,) $s_T$ and ``lookup`` (B, M, C) $\\ell_T$, the answers; ``alpha_op`` (B, T, O)
    and ``alpha_col`` (B, T, C), the selections at every step; ``beta`` (B, 2, K), the attention of
    greater and of lesser over the question's numbers, and ``pivots`` (B, 2); ``row_select``
    (B, T, M) and ``scalars`` (B, T), every step's row selector and scalar output.
    """

    scalar: torch.Tensor
    lookup: torch.Tensor
    alpha_op: torch.Tensor
    alpha_col: torch.Tensor
    beta: torch.Tensor
    pivots: torch.Tensor
    row_select: torch.Tensor
    scalars: torch.Tensor


def _hard(weights: torch.Tensor) -> torch.Tensor:
    """One-hot at the argmax of the last axis (the chosen item)."""
    return F.one_hot(weights.argmax(dim=-1), weights.shape[-1]).to(weights.dtype)


class NeuralProgrammer(nn.Module):
    """The Neural Programmer of Neelakantan et al. (2016), for ``seqmem.tasks.table_questions``.

    Args:
        vocab_size: the question and column-name vocabulary (``len(tasks.table_vocab())``).
        d: the size of the word and operation embeddings and of both RNNs (the paper's 256).
        steps: T, the program's length (the paper's 4; 5 lets a difference of two counts be written).
        width: the comparisons' gradient with respect to the pivots, a sigmoid's width in the table's
            units (``operation_step``); 0 is the paper's, which gives the pivot attention no gradient.

    ``forward(batch, hard=False)`` takes a ``seqmem.tasks.Tables`` (or anything with its fields) and
    returns a ``ProgramOutput``.
    """

    def __init__(self, vocab_size: int, d: int = 64, steps: int = 5, width: float = 1.0):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("d", d), ("steps", steps)):
            check_positive_int(name, value)
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width < 0:
            raise ValueError(f"width must be a finite number >= 0, got {width!r}")
        self.width = float(width)
        self.d, self.steps = d, steps
        self.embedding = nn.Embedding(vocab_size, d, padding_idx=0)  # V, and P for the column names
        self.question_rnn = RNNCell(d, d)
        self.operations = nn.Parameter(torch.randn(len(OPERATIONS), d) / math.sqrt(d))  # U (O, d)
        self.select_op = nn.Linear(2 * d, d)  # W^op
        self.select_col = nn.Linear(2 * d, d)  # W^col
        self.history_rnn = RNNCell(2 * d, d)  # W^history

    def _question(self, batch):
        questions, lengths = batch.questions, batch.lengths
        if not isinstance(questions, torch.Tensor) or questions.dim() != 2 or questions.dtype != torch.long:
            raise ValueError(f"questions must be long word ids (B, L), got {_describe(questions)}")
        B, L = questions.shape
        if (not isinstance(lengths, torch.Tensor) or tuple(lengths.shape) != (B,) or lengths.dtype != torch.long
                or int(lengths.min()) < 1 or int(lengths.max()) > L):
            raise ValueError(f"lengths must be long (B,) = ({B},) in 1 ... {L}, got {_describe(lengths)}")
        z, _ = unroll(self.question_rnn, self.embedding(questions))  # (B, L, d)
        q = z[torch.arange(B, device=z.device), lengths - 1]  # (B, d): the state at the last word
        return z, q

    def _pivots(self, z: torch.Tensor, batch):
        numbers, positions, mask = batch.numbers, batch.number_positions, batch.number_mask
        B = z.shape[0]
        shapes_agree = positions.shape == numbers.shape and mask.shape == numbers.shape
        if numbers.dim() != 2 or numbers.shape[0] != B or not shapes_agree:
            raise ValueError(f"numbers, number_positions and number_mask must share one shape (B, K) with B = {B}, "
                             f"got {tuple(numbers.shape)}, {tuple(positions.shape)}, {tuple(mask.shape)}")
        if mask.dtype != torch.bool or positions.dtype != torch.long:
            raise ValueError(f"number_mask must be bool and number_positions long, got {mask.dtype} and "
                             f"{positions.dtype}")
        if numbers.dtype != z.dtype:
            raise ValueError(f"numbers must have the model's dtype {z.dtype}, got {numbers.dtype}")
        inside = (positions >= 1) & (positions < batch.lengths[:, None])  # a word to the left, in the question
        if bool((mask & ~inside).any()):
            raise ValueError("every number's position must be in 1 ... length - 1 (the model reads the word left of "
                             f"it), got positions {positions[mask & ~inside].tolist()}")
        left = (positions - 1).clamp(min=0)  # the word left of each number
        keys = z.gather(1, left[:, :, None].expand(-1, -1, z.shape[2]))  # (B, K, d)
        U = self.operations[[_OP["greater"], _OP["lesser"]]]  # (2, d)
        scores = torch.einsum("bkd,od->bok", keys, U)  # (B, 2, K)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        beta = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # a question without numbers: no pivot (0)
        return beta

    def forward(self, batch, hard: bool = False) -> ProgramOutput:
        table = batch.tables
        _check_table(table)
        B, M, C = table.shape
        if table.dtype != self.operations.dtype or table.device != self.operations.device:
            raise ValueError(f"tables must be {self.operations.dtype} on {self.operations.device} like the model's "
                             f"parameters, got {table.dtype} on {table.device}")
        if tuple(batch.columns.shape) != (B, C):
            raise ValueError(f"columns must be (B, C) = ({B}, {C}) column-name ids, got {tuple(batch.columns.shape)}")
        z, q = self._question(batch)
        beta = self._pivots(z, batch)
        if hard:
            beta = torch.where(batch.number_mask.any(dim=1)[:, None, None], _hard(beta), beta)
        pivots = (beta * batch.numbers[:, None, :]).sum(dim=-1)  # (B, 2)
        P = self.embedding(batch.columns)  # (B, C, d)
        U = self.operations
        h = q.new_zeros(B, self.d)
        state = initial_program_state(table)
        alphas_op, alphas_col, selects, scalars = [], [], [], []
        for _ in range(self.steps):
            x = torch.cat([q, h], dim=1)  # (B, 2d)
            alpha_op = torch.softmax(torch.tanh(self.select_op(x)) @ U.T, dim=-1)  # (B, O)
            alpha_col = torch.softmax(torch.einsum("bcd,bd->bc", P, torch.tanh(self.select_col(x))), dim=-1)  # (B, C)
            run_op, run_col = (_hard(alpha_op), _hard(alpha_col)) if hard else (alpha_op, alpha_col)
            state = operation_step(state, run_op, run_col, table, pivots, self.width)
            c = torch.cat([alpha_op @ U, torch.einsum("bc,bcd->bd", alpha_col, P)], dim=1)  # (B, 2d): soft always
            h, _ = self.history_rnn(h, c)
            alphas_op.append(run_op)
            alphas_col.append(run_col)
            selects.append(state.row_select)
            scalars.append(state.scalars[:, 0])
        return ProgramOutput(state.scalars[:, 0], state.lookup, torch.stack(alphas_op, 1), torch.stack(alphas_col, 1),
                             beta, pivots, torch.stack(selects, 1), torch.stack(scalars, 1))


def _describe(t) -> str:
    return f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__


def _check_answers(out: ProgramOutput, batch) -> None:
    """The answers' shapes must match the output's: no broadcasting of a (B, 1) against a (B,)."""
    B = out.scalar.shape[0]
    expected = {"scalar_answers": (B,), "is_scalar": (B,), "lookup_answers": tuple(out.lookup.shape)}
    for name, shape in expected.items():
        t = getattr(batch, name)
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} to match the output, got {_describe(t)}")
    if batch.is_scalar.dtype != torch.bool:
        raise ValueError(f"is_scalar must be bool, got {batch.is_scalar.dtype}")


def programmer_loss(out: ProgramOutput, batch, delta: float = 10.0, lookup_weight: float = 50.0,
                    empty_lookup: bool = False) -> torch.Tensor:
    """The paper's loss, averaged over the batch: Huber(delta) on the scalar answers, lookup_weight times
    the cells' mean binary cross-entropy on the lookup answers. ``out.scalar`` and the batch's
    ``scalar_answers`` and ``is_scalar`` are (B,), ``out.lookup`` and ``lookup_answers`` (B, M, C).

    ``empty_lookup``: score the lookup of the scalar questions too, against their answer's cells:
    none. Without it nothing stops a scalar answer from being shrunk by the weight of assign (whose
    scalar is 0): 0.97 assign and 0.03 sum give about a count.
    """
    _check_answers(out, batch)
    a = (out.scalar - batch.scalar_answers).abs()
    huber = torch.where(a <= delta, 0.5 * a ** 2, delta * a - 0.5 * delta ** 2)  # (B,)
    y, ell = batch.lookup_answers, out.lookup
    eps = 1e-6  # inside the logarithms, so that a cell at 0 or 1 still gets its gradient
    cells = -(y * torch.log(ell + eps) + (1 - y) * torch.log(1 - ell + eps)).mean(dim=(1, 2))  # (B,)
    scalar = batch.is_scalar.to(huber.dtype)
    lookup_part = lookup_weight * cells if empty_lookup else (1 - scalar) * lookup_weight * cells
    return (scalar * huber + lookup_part).mean()


def answers_correct(out: ProgramOutput, batch) -> torch.Tensor:
    """(B,) bool: the model's answer is right. It answers with the lookup when its last step gives assign
    more than half the weight: then the cells above 0.5 must be exactly the answer's; else the scalar,
    rounded, must equal the answer."""
    _check_answers(out, batch)
    says_lookup = out.alpha_op[:, -1, _OP["assign"]] > 0.5
    scalar_right = (out.scalar - batch.scalar_answers).abs() < 0.5
    cells = (out.lookup > 0.5).to(batch.lookup_answers.dtype)
    lookup_right = (cells == batch.lookup_answers).flatten(1).all(dim=1)
    return torch.where(batch.is_scalar, ~says_lookup & scalar_right, says_lookup & lookup_right)


def chosen_programs(out: ProgramOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """The program the selector prefers: (B, T) operation indices (into ``OPERATIONS``) and (B, T) columns."""
    return out.alpha_op.argmax(dim=-1), out.alpha_col.argmax(dim=-1)


def add_gradient_noise(parameters, step: int, eta: float, gamma: float = 0.55,
                       generator: torch.Generator | None = None) -> float:
    """Add N(0, eta / (1 + step)^gamma) to every gradient (Neelakantan et al. 2015); returns the standard
    deviation. Call it after ``backward()`` and before the optimizer's step; ``eta = 0`` adds nothing."""
    if eta < 0 or step < 0:
        raise ValueError(f"eta and step must be >= 0, got eta={eta}, step={step}")
    std = math.sqrt(eta / (1 + step) ** gamma)
    if std == 0:
        return 0.0
    for p in parameters:
        if p.grad is not None:
            noise = torch.randn(p.grad.shape, generator=generator, dtype=p.grad.dtype,
                                device=generator.device if generator is not None else p.grad.device)
            p.grad.add_(noise.to(p.grad.device), alpha=std)
    return std
