"""Homework 8's checks: ACT's halting bookkeeping for a batch, and one soft step of the Neural
Programmer over a batch of tables with several columns.

Each item is a sibling of what chapter 9 shows: the chapter runs ACT's ponder steps for one example
in a Python loop that stops at N(t), and the library's ``act.act_step`` for a batch; here the
halting units of all M ponder steps of a batch come at once and the bookkeeping is masks and
cumulative sums, for every example together. The chapter computes a soft program step for one
example with one column; here a batch of tables with C columns, with the paper's nine operations
(the library's ``programmer.operation_step`` has two more, argmax and argmin). As in the other
homework modules: the student's function runs through ``guard.call`` on fresh inputs drawn from
``guard.item_seed``; its result is validated, then compared with the reference computed here, in
float64.
"""
from __future__ import annotations

from typing import Callable

import torch

from .guard import call, close, guard_tuple, item_seed, register, torch_compilers

__all__ = ["check_act_halting", "check_soft_step", "act_halting_reference", "soft_step_reference", "EPSILON",
           "PAPER_OPERATIONS"]

#: ACT's threshold: the halting sum need only reach 1 - EPSILON.
EPSILON = 0.01
#: The operations of item 2, in the order of alpha_op's last axis (Neelakantan et al. 2016, table 1).
PAPER_OPERATIONS = ("sum", "count", "difference", "greater", "lesser", "and", "or", "assign", "reset")


def _chapter_references() -> list:
    """Every function and class method of the library's chapter 9 modules."""
    from .. import act, programmer

    functions = [f for m in (act, programmer) for n, f in vars(m).items()
                 if callable(f) and getattr(f, "__module__", None) == m.__name__ and not isinstance(f, type)]
    methods = [(cls, n) for m in (act, programmer) for cls in vars(m).values()
               if isinstance(cls, type) and getattr(cls, "__module__", None) == m.__name__
               for n, f in vars(cls).items() if callable(f) and not n.startswith("__")]
    return [*functions, *methods, *torch_compilers()]


register({item: _chapter_references for item in ("act_halting", "soft_step")})


def _dtype(k: int) -> torch.dtype:
    return torch.float64 if k % 2 else torch.float32


# ------------------------------------------------------------------------------ 1. ACT's halting for a batch

def act_halting_reference(h, states, outputs) -> tuple:
    """(p (B, M), state (B, H), y (B, O), ponder (B,)): N the first n with h_1 + ... + h_n >= 1 - EPSILON
    (or M), R = 1 - (h_1 + ... + h_{N-1}), p = h before N, R at N, 0 after; the p-weighted state and
    output; the ponder cost N + R."""
    dtype = h.dtype
    h, states, outputs = h.double(), states.double(), outputs.double()
    B, M = h.shape
    p = torch.zeros_like(h)
    ponder = torch.zeros(B, dtype=torch.float64)
    for b in range(B):
        total = 0.0
        for n in range(M):
            value = float(h[b, n])
            if total + value >= 1 - EPSILON or n == M - 1:
                p[b, n] = 1 - total
                ponder[b] = (n + 1) + (1 - total)
                break
            p[b, n] = value
            total += value
    state = torch.einsum("bm,bmh->bh", p, states)
    y = torch.einsum("bm,bmo->bo", p, outputs)
    return p.to(dtype), state.to(dtype), y.to(dtype), ponder.to(dtype)


def check_act_halting(fn: Callable, trials: int = 8, seed: int = 601) -> None:
    """Check ``fn(h, states, outputs) -> (p, state, y, ponder)``.

    h (B, M) the halting units of M ponder steps in (0, 1), states (B, M, H) and outputs (B, M, O)
    the cell's after each step. Tried in float32 and float64, with M = 1 (one step, R = 1), an
    example that halts at its first step (h_1 >= 0.99), one that never reaches the threshold (the
    cap M) and one that crosses it mid-way, side by side in one batch.
    """
    item = "act_halting"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        dtype = _dtype(k)
        B, M, H, O = (1, 1, 1, 1) if k == 0 else tuple(int(x) for x in torch.randint(1, 7, (4,), generator=g))
        if k in (2, 3):
            B, M = max(B, 3), max(M, 3)
        h = torch.rand(B, M, generator=g, dtype=torch.float64) * 0.6 + 0.02  # (0.02, 0.62)
        if k in (2, 3):
            h[0, 0] = 0.995  # halts at once: N = 1
            h[1] = 0.2 / M  # never reaches 0.99: the cap, N = M
            h[2, 0], h[2, 1] = 0.45, 0.3  # 0.75 after two steps; crosses later if at all
        h = h.to(dtype)
        states = torch.randn(B, M, H, generator=g, dtype=dtype)
        outputs = torch.randn(B, M, O, generator=g, dtype=dtype)
        out = call(item, fn, h.clone(), states.clone(), outputs.clone())
        got = guard_tuple(item, out, ((B, M), (B, H), (B, O), (B,)), dtype, ("p", "state", "y", "ponder"))
        want = act_halting_reference(h, states, outputs)
        what = f"for B={B}, M={M}, h={h.tolist()} ({dtype})"
        for name, a, b in zip(("halting probabilities p", "state", "output y", "ponder cost"), got, want):
            close(item, a, b, what=f"{name} {what}")


# ------------------------------------------------------------------------------ 2. one soft program step

def soft_step_reference(table, row_select, row_select_before, scalars, alpha_op, alpha_col, pivots) -> tuple:
    """(row_select (B, M), scalar (B,), lookup (B, M, C)): the nine operations on every column, weighed
    by alpha_op (in ``PAPER_OPERATIONS`` order) and alpha_col, written out per example and column."""
    dtype = table.dtype
    T, rs, before, s = table.double(), row_select.double(), row_select_before.double(), scalars.double()
    a_op, a_col, piv = alpha_op.double(), alpha_col.double(), pivots.double()
    B, M, C = T.shape
    op = {name: i for i, name in enumerate(PAPER_OPERATIONS)}
    new_rs = torch.zeros(B, M, dtype=torch.float64)
    scalar = torch.zeros(B, dtype=torch.float64)
    lookup = torch.zeros(B, M, C, dtype=torch.float64)
    for b in range(B):
        w = {name: a_op[b, i] for name, i in op.items()}
        scalar[b] = w["count"] * rs[b].sum() + w["difference"] * (s[b, 2] - s[b, 0])
        new_rs[b] = (w["and"] * torch.minimum(rs[b], before[b]) + w["or"] * torch.maximum(rs[b], before[b])
                     + w["reset"])
        for j in range(C):
            scalar[b] += w["sum"] * a_col[b, j] * (rs[b] * T[b, :, j]).sum()
            greater = (T[b, :, j] > piv[b, 0]).double()
            lesser = (T[b, :, j] < piv[b, 1]).double()
            new_rs[b] += a_col[b, j] * (w["greater"] * greater + w["lesser"] * lesser)
            lookup[b, :, j] = w["assign"] * a_col[b, j] * rs[b]
    return new_rs.to(dtype), scalar.to(dtype), lookup.to(dtype)


def check_soft_step(fn: Callable, trials: int = 8, seed: int = 607) -> None:
    """Check ``fn(table, row_select, row_select_before, scalars, alpha_op, alpha_col, pivots)``.

    table (B, M, C) integers as floats; row_select and row_select_before (B, M) in [0, 1]; scalars
    (B, 3) the scalar outputs of the three steps before, the last first; alpha_op (B, 9) and
    alpha_col (B, C) distributions; pivots (B, 2), greater's and lesser's. Returns (row_select
    (B, M), scalar (B,), lookup (B, M, C)). Tried in float32 and float64, with C = 1, one-hot
    choices of each operation, pivots equal to table values (strict comparisons) and soft mixtures.
    """
    item = "soft_step"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    O = len(PAPER_OPERATIONS)
    for k in range(trials):
        dtype = _dtype(k)
        B, M, C = (1, 1, 1) if k == 0 else tuple(int(x) for x in torch.randint(1, 6, (3,), generator=g))
        B = max(B, O) if k in (2, 3) else B
        C = 1 if k == 1 else C
        table = torch.randint(-9, 10, (B, M, C), generator=g).to(dtype)
        rs = torch.rand(B, M, generator=g, dtype=dtype)
        before = torch.rand(B, M, generator=g, dtype=dtype)
        scalars = (torch.randn(B, 3, generator=g, dtype=torch.float64) * 10).to(dtype)
        alpha_op = torch.softmax(2 * torch.randn(B, O, generator=g, dtype=torch.float64), -1).to(dtype)
        alpha_col = torch.softmax(2 * torch.randn(B, C, generator=g, dtype=torch.float64), -1).to(dtype)
        pivots = torch.randint(-9, 10, (B, 2), generator=g).to(dtype)
        if k in (2, 3):  # example i does operation i alone, on column 0, with pivots that are table values
            alpha_op = torch.eye(O, dtype=dtype)[torch.arange(B) % O]
            alpha_col = torch.zeros(B, C, dtype=dtype)
            alpha_col[:, 0] = 1.0
            pivots = table[:, 0, :1].expand(B, 2).clone()
        out = call(item, fn, table.clone(), rs.clone(), before.clone(), scalars.clone(), alpha_op.clone(),
                   alpha_col.clone(), pivots.clone())
        got = guard_tuple(item, out, ((B, M), (B,), (B, M, C)), dtype, ("row_select", "scalar", "lookup"))
        want = soft_step_reference(table, rs, before, scalars, alpha_op, alpha_col, pivots)
        what = f"for B={B}, M={M}, C={C}, alpha_op={[[round(v, 3) for v in r] for r in alpha_op.tolist()]} ({dtype})"
        for name, a, b in zip(("row selector", "scalar answer", "lookup answer"), got, want):
            close(item, a, b, what=f"{name} {what}")


GRADER_HELPERS: list = []  # the references above are whole: no helper of theirs to block
