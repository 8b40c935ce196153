"""Homework 8's grading pipeline, end to end (as tests/test_grading.py for homework 1): canned
submissions and the adversarial corpus autograded in one batch by nbgrader with a real gradebook.
The checks themselves, called directly, are in tests/test_grading_checks_hw8.py."""
import pytest

from corpus_checks import *  # noqa: F401,F403 (the adversarial corpus's tests, run on this homework)
from corpus_checks import automatic_homework
from grading_helpers import answer_source
from test_grading_checks_hw8 import _soft_by_library

pytestmark = [pytest.mark.grading, pytest.mark.slow]

HW = "hw8-act-neural-programmer"

RIGHT = {  # right answers written differently from the source's
    "act_halting": '''
def act_halting(h, states, outputs, epsilon=0.01):
    B, M = h.shape
    p = torch.zeros_like(h)
    ponder = torch.zeros(B, dtype=h.dtype)
    for b in range(B):
        total = 0.0
        for n in range(M):
            if total + float(h[b, n]) >= 1 - epsilon or n == M - 1:
                p[b, n] = 1 - total
                ponder[b] = n + 1 + (1 - total)
                break
            p[b, n] = h[b, n]
            total += float(h[b, n])
    return p, (p[:, :, None] * states).sum(1), (p[:, :, None] * outputs).sum(1), ponder
''',
    "soft_step": '''
def soft_step(table, row_select, row_select_before, scalars, alpha_op, alpha_col, pivots):
    B, M, C = table.shape
    rows = torch.zeros(B, M, dtype=table.dtype)
    scalar = torch.zeros(B, dtype=table.dtype)
    lookup = torch.zeros(B, M, C, dtype=table.dtype)
    for b in range(B):
        rs, old, a = row_select[b], row_select_before[b], alpha_op[b]
        scalar[b] = a[1] * rs.sum() + a[2] * (scalars[b, 2] - scalars[b, 0])
        rows[b] = a[5] * torch.min(rs, old) + a[6] * torch.max(rs, old) + a[8]
        for j in range(C):
            column = table[b, :, j]
            scalar[b] += a[0] * alpha_col[b, j] * (rs * column).sum()
            rows[b] += alpha_col[b, j] * (a[3] * (column > pivots[b, 0]).to(table.dtype)
                                          + a[4] * (column < pivots[b, 1]).to(table.dtype))
            lookup[b, :, j] = a[7] * alpha_col[b, j] * rs
    return rows, scalar, lookup
''',
}
WRONG_SOFT = '''
def soft_step(table, row_select, row_select_before, scalars, alpha_op, alpha_col, pivots):
    a = alpha_op.unbind(1)  # the difference the wrong way round: s_{t-1} - s_{t-3}
    sums = torch.einsum("bm,bmc->bc", row_select, table)
    scalar = a[1] * row_select.sum(1) + a[2] * (scalars[:, 0] - scalars[:, 2]) + a[0] * (alpha_col * sums).sum(1)
    compared = (a[3][:, None, None] * (table > pivots[:, :1, None]).to(table.dtype)
                + a[4][:, None, None] * (table < pivots[:, 1:, None]).to(table.dtype))
    rows = (a[5][:, None] * torch.minimum(row_select, row_select_before)
            + a[6][:, None] * torch.maximum(row_select, row_select_before) + a[8][:, None]
            + torch.einsum("bc,bmc->bm", alpha_col, compared))
    return rows, scalar, a[7][:, None, None] * row_select[:, :, None] * alpha_col[:, None, :]
'''
CALLS_LIBRARY = {  # the library's step, padded to its eleven operations
    "soft_step": "from seqmem import programmer\n\n" + answer_source(_soft_by_library, "soft_step"),
}
# Right on the visible tests, which are all float32: the probabilities made in float32 whatever came
VISIBLE_ONLY = '''
def act_halting(h, states, outputs, epsilon=0.01):
    B, M = h.shape
    p = torch.zeros(B, M)
    for b in range(B):
        total = 0.0
        for n in range(M):
            if total + float(h[b, n]) >= 1 - epsilon or n == M - 1:
                p[b, n] = 1 - total
                break
            p[b, n] = float(h[b, n])
            total += float(h[b, n])
    N = (p > 0).sum(1)
    R = p.gather(1, (N - 1)[:, None])[:, 0]
    return p, torch.einsum("bm,bmh->bh", p, states), torch.einsum("bm,bmo->bo", p, outputs), N + R
'''
FULL = {"test_act_halting": 5, "test_soft_step": 5}

SUBMISSIONS = {
    "source": ("source", FULL),
    "canned_right": (RIGHT, FULL),
    "partial": ({**RIGHT, "soft_step": WRONG_SOFT}, {**FULL, "test_soft_step": 0}),
    "calls_library": ({**RIGHT, **CALLS_LIBRARY}, {**FULL, "test_soft_step": 0}),
    "visible_only": ({**RIGHT, "act_halting": VISIBLE_ONLY}, {**FULL, "test_act_halting": 0}),
}


globals().update(automatic_homework(HW, SUBMISSIONS, {"partial": 5.0, "honest": 10.0, "blank": 0.0}))
