"""Homework 8's checks, called directly on local functions: wrong answers fail with a message
naming the item, and an answer that calls a reference is blocked (and would otherwise be right).
That the source's answers pass under any grading seed is tested with every homework's in
test_grading_checks.py; the pipeline is in test_grading_hw8.py. The references are checked against
the library's own ACT step (seqmem.act.act_step) and program step (seqmem.programmer.operation_step)
here."""
import pytest
import torch

import seqmem
from seqmem import act, programmer
from seqmem.grading import guard, hw8
from test_grading_checks import assert_blocked_and_otherwise_right, assert_fails_with_a_message
from test_grading_checks import source  # noqa: F401 (the fixture: every homework's source answers)

CHECKS = {"act_halting": hw8.check_act_halting, "soft_step": hw8.check_soft_step}


def _g(seed):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------ the references against the library

class _Replay(torch.nn.Module):
    """A 'cell' that returns given states and outputs, one ponder step after the other, and a halting
    unit that returns given values: act_step driven by known numbers."""

    def __init__(self, states, outputs, h):
        super().__init__()
        self.states, self.outputs, self.h, self.n = states, outputs, h, 0

    def forward(self, state, x):
        n, self.n = self.n, self.n + 1
        return self.states[:, n], self.outputs[:, n]

    def halting(self, y):
        n = self.n - 1
        return torch.logit(self.h[:, n:n + 1].double()).to(y.dtype)


def test_the_halting_reference_is_the_librarys_act_step():
    g = _g(0)
    B, M, H = 6, 5, 3
    h = torch.rand(B, M, generator=g, dtype=torch.float64) * 0.6 + 0.02
    h[0, 0], h[1] = 0.995, 0.03  # at once; never
    states = torch.randn(B, M, H, generator=g, dtype=torch.float64)
    replay = _Replay(states, states, h)
    state, y, did = act.act_step(replay, replay.halting, torch.zeros(B, H, dtype=torch.float64),
                                 torch.zeros(B, 2, dtype=torch.float64), M, hw8.EPSILON)
    p, want_state, want_y, ponder = hw8.act_halting_reference(h, states, states)
    assert hw8.EPSILON == act.EPSILON
    torch.testing.assert_close(p, did.halting)
    torch.testing.assert_close(want_state, state)
    torch.testing.assert_close(ponder, did.steps.to(ponder.dtype) + did.remainder)


def test_the_soft_step_reference_is_the_librarys_operation_step_without_argmax_and_argmin():
    g = _g(1)
    B, M, C = 5, 6, 3
    table = torch.randint(-9, 10, (B, M, C), generator=g).double()
    rs, before = torch.rand(B, M, generator=g, dtype=torch.float64), torch.rand(B, M, generator=g, dtype=torch.float64)
    scalars = torch.randn(B, 3, generator=g, dtype=torch.float64)
    alpha9 = torch.softmax(torch.randn(B, 9, generator=g, dtype=torch.float64), -1)
    alpha_col = torch.softmax(torch.randn(B, C, generator=g, dtype=torch.float64), -1)
    pivots = torch.randint(-9, 10, (B, 2), generator=g).double()
    assert programmer.OPERATIONS[:9] == hw8.PAPER_OPERATIONS
    alpha11 = torch.cat([alpha9, torch.zeros(B, 2, dtype=torch.float64)], 1)
    state = programmer.ProgramState(rs, before, scalars, torch.zeros(B, M, C, dtype=torch.float64))
    library = programmer.operation_step(state, alpha11, alpha_col, table, pivots)
    rows, scalar, lookup = hw8.soft_step_reference(table, rs, before, scalars, alpha9, alpha_col, pivots)
    torch.testing.assert_close(rows, library.row_select)
    torch.testing.assert_close(scalar, library.scalars[:, 0])
    torch.testing.assert_close(lookup, library.lookup)


# ------------------------------------------------------------------------------ wrong answers

def _halting(rule=None):
    def answer(h, states, outputs):
        B, M = h.shape
        total = h.cumsum(1)
        reached = total >= (1.0 if rule == "no epsilon" else 0.99)
        if rule != "no cap":
            reached[:, -1] = True
        N = reached.to(h.dtype).argmax(1)  # 0 where nothing reached (no cap: as if at once)
        steps = torch.arange(M)[None]
        upto = steps < N[:, None] if rule != "remainder includes the last" else steps <= N[:, None]
        before = torch.where(upto, h, torch.zeros_like(h))
        R = 1 - before.sum(1)
        p = before + torch.where(steps == N[:, None], R[:, None], torch.zeros_like(h))
        if rule == "h at the last step":
            p = torch.where(steps == N[:, None], h, p)
        ponder = (N + 1).to(h.dtype) + R if rule != "N only" else (N + 1).to(h.dtype)
        return p, torch.einsum("bm,bmh->bh", p, states), torch.einsum("bm,bmo->bo", p, outputs), ponder
    return answer


def _soft(rule=None):
    def answer(table, rs, before, scalars, alpha_op, alpha_col, pivots):
        a = alpha_op.unbind(1)
        sums = torch.einsum("bm,bmc->bc", rs, table)
        diff = scalars[:, 0] - scalars[:, 2] if rule == "difference reversed" else scalars[:, 2] - scalars[:, 0]
        scalar = a[1] * rs.sum(1) + a[2] * diff + a[0] * (alpha_col * sums).sum(1)
        if rule == "sum without the column weights":
            scalar = a[1] * rs.sum(1) + a[2] * diff + a[0] * sums.sum(1)
        le = table <= pivots[:, 1:, None] if rule == "lesser or equal" else table < pivots[:, 1:, None]
        g = (table > pivots[:, :1, None]).to(table.dtype)
        compared = a[3][:, None, None] * g + a[4][:, None, None] * le.to(table.dtype)
        rows = (a[5][:, None] * torch.minimum(rs, before) + a[6][:, None] * torch.maximum(rs, before)
                + a[8][:, None] + torch.einsum("bc,bmc->bm", alpha_col, compared))
        if rule == "and of the new selection":
            rows = rows - a[5][:, None] * torch.minimum(rs, before) + a[5][:, None] * rs
        lookup = a[7][:, None, None] * rs[:, :, None] * alpha_col[:, None, :]
        if rule == "lookup of every row":
            lookup = a[7][:, None, None] * alpha_col[:, None, :].expand_as(table)
        return rows, scalar, lookup
    return answer


WRONG = {  # case -> (item, answer, a phrase of the message)
    "halting: no epsilon": ("act_halting", _halting("no epsilon"), "differs"),
    "halting: no cap": ("act_halting", _halting("no cap"), "differs"),
    "halting: the last step's h, not R": ("act_halting", _halting("h at the last step"), "differs"),
    "halting: the remainder counts the last h": ("act_halting", _halting("remainder includes the last"), "differs"),
    "halting: ponder without R": ("act_halting", _halting("N only"), "ponder cost"),
    "halting: a list, not a tuple": ("act_halting", lambda *a: list(_halting()(*a)), "expected a tuple"),
    "soft step: difference reversed": ("soft_step", _soft("difference reversed"), "scalar answer"),
    "soft step: sums without alpha_col": ("soft_step", _soft("sum without the column weights"), "scalar answer"),
    "soft step: lesser or equal": ("soft_step", _soft("lesser or equal"), "row selector"),
    "soft step: and of one selection": ("soft_step", _soft("and of the new selection"), "row selector"),
    "soft step: a lookup of every row": ("soft_step", _soft("lookup of every row"), "lookup answer"),
    "soft step: float64 always": ("soft_step", lambda *a: _soft()(*(t.double() for t in a)), "dtype"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_wrong_answers_fail_with_a_message(case):
    item, answer, phrase = WRONG[case]
    assert_fails_with_a_message(CHECKS[item], answer, item, phrase)


def test_the_shared_answers_of_the_tests_above_are_right_where_they_should_be():
    CHECKS["act_halting"](_halting())
    CHECKS["soft_step"](_soft())


# ------------------------------------------------------------------------------ blocked references

def _halting_by_library(h, states, outputs):
    B, M = h.shape
    replay = _Replay(states, outputs, h)
    state, y, did = act.act_step(replay, replay.halting, states[:, 0] * 0, h[:, :1] * 0, M, 0.01)
    return did.halting, state, y, did.steps.to(h.dtype) + did.remainder


def _soft_by_library(table, rs, before, scalars, alpha_op, alpha_col, pivots):
    B, M, C = table.shape
    alpha = torch.cat([alpha_op, alpha_op.new_zeros(B, 2)], 1)
    state = programmer.ProgramState(rs, before, scalars, table.new_zeros(B, M, C))
    new = programmer.operation_step(state, alpha, alpha_col, table, pivots)
    return new.row_select, new.scalars[:, 0], new.lookup


BLOCKED = {
    "seqmem.act.act_step": ("act_halting", _halting_by_library),
    "seqmem.programmer.operation_step": ("soft_step", _soft_by_library),
}


@pytest.mark.parametrize("case", list(BLOCKED))
def test_calling_a_reference_is_blocked_and_would_otherwise_be_right(case, monkeypatch):
    item, answer = BLOCKED[case]
    assert_blocked_and_otherwise_right(CHECKS[item], answer, item, monkeypatch)


@pytest.mark.parametrize("grading_seed", [None, "one instructor", "another instructor"])
def test_the_hidden_cases_cover_the_edges(monkeypatch, grading_seed):
    """One ponder step, halting at once, never halting (the cap) and halting mid-way in one batch;
    one column, every operation alone and pivots equal to table values: whatever the grading seed."""
    monkeypatch.setattr(guard, "references", lambda item: [])
    guard.set_grading_seed(grading_seed)
    seen = dict.fromkeys(["M 1", "at once", "cap", "mid-way", "C 1", "every operation alone", "pivot ties",
                          "float32", "float64"], False)

    def halting(h, states, outputs):
        p, *rest = hw8.act_halting_reference(h, states, outputs)
        M = h.shape[1]
        seen["M 1"] |= M == 1
        N = (p > 0).sum(1)
        seen["at once"] |= bool(((N == 1) & (p[:, 0] == 1)).any()) and M > 1
        seen["cap"] |= bool((h.sum(1) < 0.99).any()) and M > 1
        seen["mid-way"] |= bool(((N > 1) & (N < M)).any())
        seen[str(h.dtype).removeprefix("torch.")] = True
        return (p, *rest)

    def soft(table, rs, before, scalars, alpha_op, alpha_col, pivots):
        seen["C 1"] |= table.shape[2] == 1
        one_hot = (alpha_op == 1).any(1)
        seen["every operation alone"] |= bool(one_hot.all()) and set(alpha_op.argmax(1).tolist()) == set(range(9))
        seen["pivot ties"] |= bool((table == pivots[:, :1, None]).any())
        return hw8.soft_step_reference(table, rs, before, scalars, alpha_op, alpha_col, pivots)

    try:
        CHECKS["act_halting"](halting)
        CHECKS["soft_step"](soft)
    finally:
        guard.set_grading_seed(None)
    assert all(seen.values()), seen


def test_the_library_is_blocked_while_an_item_is_graded():
    targets = guard.references("soft_step")
    assert programmer.operation_step in targets and act.act_step in targets
    assert (seqmem.NeuralProgrammer, "forward") in targets
