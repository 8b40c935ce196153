"""Homework 6's grading pipeline, end to end (as tests/test_grading.py for homework 1): canned
submissions and the adversarial corpus autograded in one batch by nbgrader with a real gradebook.
The checks themselves, called directly, are in tests/test_grading_checks_hw6.py."""
import pytest

from corpus_checks import *  # noqa: F401,F403 (the adversarial corpus's tests, run on this homework)
from corpus_checks import automatic_homework
from grading_helpers import answer_source
from test_grading_checks_hw6 import _coverage_by_library, _log_probs_by_library

pytestmark = [pytest.mark.grading, pytest.mark.slow]

HW = "hw6-pointer-networks"

RIGHT = {  # right answers written differently from the source's
    "pointer_log_probs": '''
def pointer_log_probs(d, e, W1, W2, v, lengths, previous):
    B, T, _ = d.shape
    N = e.shape[1]
    out = torch.full((B, T, N), -math.inf, dtype=d.dtype)
    for b in range(B):
        allowed = list(range(int(lengths[b])))
        for t in range(T):
            u = torch.tanh(e[b, allowed] @ W1.T + W2 @ d[b, t]) @ v
            out[b, t, allowed] = torch.log_softmax(u, dim=0)
            allowed.remove(int(previous[b, t]))
    return out
''',
    "greedy_pointer_step": '''
def greedy_pointer_step(scores, allowed, done):
    B, S = scores.shape
    choice = torch.full((B,), S - 1, dtype=torch.int64)
    log_prob = torch.zeros(B, dtype=scores.dtype)
    new_allowed, new_done = allowed.clone(), done.clone()
    for b in range(B):
        if done[b]:
            continue
        ok = allowed[b].nonzero().squeeze(1)
        best = ok[scores[b, ok].argmax()]
        choice[b] = best
        log_prob[b] = scores[b, best] - torch.logsumexp(scores[b, ok], 0)
        if best == S - 1:
            new_done[b] = True
        else:
            new_allowed[b, best] = False
    return choice, log_prob, new_allowed, new_done
''',
    "hull_coverage": '''
def hull_coverage(points, predicted, hull):
    P = [tuple(p) for p in points.tolist()]
    m = len(predicted)
    if m < 3 or len(set(predicted)) != m or any(j < 0 or j >= len(P) for j in predicted):
        return 0.0

    def shoelace(idx):
        return sum(P[idx[i]][0] * P[idx[(i + 1) % len(idx)]][1] - P[idx[(i + 1) % len(idx)]][0] * P[idx[i]][1]
                   for i in range(len(idx))) / 2

    def side(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    seg = [(P[predicted[i]], P[predicted[(i + 1) % m]]) for i in range(m)]
    for i in range(m):
        for k in range(m):
            if k in (i, (i + 1) % m, (i - 1) % m):
                continue
            (a, b), (c, d) = seg[i], seg[k]
            if side(a, b, c) * side(a, b, d) <= 0 and side(c, d, a) * side(c, d, b) <= 0:
                return 0.0
    area = shoelace(predicted)
    return area / shoelace(hull) if area > 0 else 0.0
''',
    "tour_length": '''
def tour_length(points, tour):
    n = len(points)
    if len(tour) != n or set(tour) != set(range(n)):
        return math.inf
    total = 0.0
    for i in range(n):
        a, b = points[tour[i]], points[tour[(i + 1) % n]]
        total += math.hypot(float(a[0] - b[0]), float(a[1] - b[1]))
    return total
''',
}
WRONG_TOUR = '''
def tour_length(points, tour):
    if sorted(tour) != list(range(len(points))):
        return math.inf
    p = points[tour]
    return float((p[1:] - p[:-1]).norm(dim=1).sum())  # forgets the way back to the first city
'''
CALLS_LIBRARY = {  # the checks module's answers through the library, as cells
    "pointer_log_probs": answer_source(_log_probs_by_library, "pointer_log_probs"),
    "hull_coverage": answer_source(_coverage_by_library, "hull_coverage"),
}
# No crossing check: right on the visible tests, which have no self-crossing polygon
VISIBLE_ONLY = '''
def hull_coverage(points, predicted, hull):
    P = points.tolist()
    m = len(predicted)
    if m < 3 or len(set(predicted)) != m or any(j < 0 or j >= len(P) for j in predicted):
        return 0.0
    area = lambda idx: sum(P[a][0] * P[b][1] - P[b][0] * P[a][1] for a, b in zip(idx, idx[1:] + idx[:1])) / 2
    return area(predicted) / area(hull) if area(predicted) > 0 else 0.0
'''
FULL = {"test_pointer_log_probs": 3, "test_greedy_pointer_step": 3, "test_hull_coverage": 2, "test_tour_length": 2}

SUBMISSIONS = {
    "source": ("source", FULL),
    "canned_right": (RIGHT, FULL),
    "partial": ({**RIGHT, "tour_length": WRONG_TOUR}, {**FULL, "test_tour_length": 0}),
    "calls_library": ({**RIGHT, **CALLS_LIBRARY}, {**FULL, "test_pointer_log_probs": 0, "test_hull_coverage": 0}),
    "visible_only": ({**RIGHT, "hull_coverage": VISIBLE_ONLY}, {**FULL, "test_hull_coverage": 0}),
}


globals().update(automatic_homework(HW, SUBMISSIONS, {"partial": 8.0, "honest": 10.0, "blank": 0.0}))
