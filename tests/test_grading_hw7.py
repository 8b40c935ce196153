"""Homework 7's grading pipeline, end to end (as tests/test_grading.py for homework 1): canned
submissions and the adversarial corpus autograded in one batch by nbgrader with a real gradebook.
The checks themselves, called directly, are in tests/test_grading_checks_hw7.py."""
import pytest

from corpus_checks import *  # noqa: F401,F403 (the adversarial corpus's tests, run on this homework)
from corpus_checks import automatic_homework
from grading_helpers import answer_source
from test_grading_checks_hw7 import _allocation_by_library, _content_by_library

pytestmark = [pytest.mark.grading, pytest.mark.slow]

HW = "hw7-ntm-dnc"

RIGHT = {  # right answers written differently from the source's
    "content_weights": '''
def content_weights(memory, keys, beta):
    B, R, _ = keys.shape
    N = memory.shape[1]
    out = torch.empty(B, R, N, dtype=memory.dtype)
    for b in range(B):
        rows = memory[b] / torch.sqrt((memory[b] ** 2).sum(1, keepdim=True) + 1e-6)
        for r in range(R):
            k = keys[b, r] / torch.sqrt((keys[b, r] ** 2).sum() + 1e-6)
            out[b, r] = torch.softmax(beta[b, r] * (rows @ k), 0)
    return out
''',
    "location_weights": '''
def location_weights(w_c, w_prev, g, s, gamma):
    S = s.shape[1] // 2
    w = g.unsqueeze(1) * w_c + (1 - g.unsqueeze(1)) * w_prev
    moved = torch.zeros_like(w)
    for shift in range(-S, S + 1):
        moved += s[:, shift + S].unsqueeze(1) * torch.roll(w, shift, dims=1)
    sharp = moved.pow(gamma.unsqueeze(1))
    return sharp / sharp.sum(dim=1, keepdim=True)
''',
    "write_heads": '''
def write_heads(memory, w, e, a):
    out = memory.clone()
    for h in range(w.shape[1]):
        out = out * (1 - torch.einsum("bn,bw->bnw", w[:, h], e[:, h]))
    for h in range(w.shape[1]):
        out = out + torch.einsum("bn,bw->bnw", w[:, h], a[:, h])
    return out
''',
    "allocation_weights": '''
def allocation_weights(usage, write_gates):
    B, N = usage.shape
    K = write_gates.shape[1]
    out = torch.zeros(B, K, N, dtype=usage.dtype)
    for b in range(B):
        u = [float(x) for x in usage[b]]
        for k in range(K):
            order = sorted(range(N), key=lambda i: (u[i], i))
            left = 1.0
            for j in order:
                out[b, k, j] = (1 - u[j]) * left
                left *= u[j]
            u = [u[i] + (1 - u[i]) * float(write_gates[b, k]) * float(out[b, k, i]) for i in range(N)]
    return out
''',
}
WRONG_WRITE = '''
def write_heads(memory, w, e, a):
    out = memory.clone()
    for h in range(w.shape[1]):  # one head after the other: a later head erases an earlier head's add
        out = out * (1 - w[:, h, :, None] * e[:, h, None, :]) + w[:, h, :, None] * a[:, h, None, :]
    return out
'''
CALLS_LIBRARY = {  # the checks module's answers through the library, as cells
    "content_weights": answer_source(_content_by_library, "content_weights"),
    "allocation_weights": answer_source(_allocation_by_library, "allocation_weights"),
}
# No epsilon: right on the visible tests' nonzero rows only if the empty row is skipped; here the
# empty row is guarded by a nan_to_num, which turns its similarity into 0 but misses the epsilon
VISIBLE_ONLY = '''
def content_weights(memory, keys, beta):
    K = (keys @ memory.transpose(1, 2)) / (keys.norm(dim=2).unsqueeze(2) * memory.norm(dim=2).unsqueeze(1))
    return torch.softmax(beta.unsqueeze(2) * torch.nan_to_num(K), dim=2)
'''
FULL = {"test_content_weights": 2, "test_location_weights": 3, "test_write_heads": 2, "test_allocation_weights": 3}

SUBMISSIONS = {
    "source": ("source", FULL),
    "canned_right": (RIGHT, FULL),
    "partial": ({**RIGHT, "write_heads": WRONG_WRITE}, {**FULL, "test_write_heads": 0}),
    "calls_library": ({**RIGHT, **CALLS_LIBRARY}, {**FULL, "test_content_weights": 0, "test_allocation_weights": 0}),
    "visible_only": ({**RIGHT, "content_weights": VISIBLE_ONLY}, {**FULL, "test_content_weights": 0}),
}


globals().update(automatic_homework(HW, SUBMISSIONS, {"partial": 8.0, "honest": 10.0, "blank": 0.0}))
