"""Homework 6's checks, called directly on local functions: wrong answers fail with a message
naming the item, and an answer that calls a reference is blocked (and would otherwise be right).
That the source's answers pass under any grading seed is tested with every homework's in
test_grading_checks.py; the pipeline is in test_grading_hw6.py. The references are checked against
the library's own pointer network and metrics here."""
import math

import pytest
import torch

import seqmem
from test_grading_checks import assert_blocked_and_otherwise_right, assert_fails_with_a_message
from test_grading_checks import source  # noqa: F401 (the fixture: every homework's source answers)
from seqmem.grading import guard, hw6

CHECKS = {"pointer_log_probs": hw6.check_pointer_log_probs, "greedy_pointer_step": hw6.check_greedy_pointer_step,
          "hull_coverage": hw6.check_hull_coverage, "tour_length": hw6.check_tour_length}


# ------------------------------------------------------------------------------ the references against the library

def test_the_distribution_reference_is_the_librarys_step_by_step():
    g = torch.Generator().manual_seed(0)
    B, T, N, H, A = 3, 3, 5, 4, 6
    d, e = torch.randn(B, T, H, generator=g, dtype=torch.float64), torch.randn(B, N, H, generator=g, dtype=torch.float64)
    W1, W2, v = (torch.randn(A, H, generator=g, dtype=torch.float64), torch.randn(A, H, generator=g, dtype=torch.float64),
                 torch.randn(A, generator=g, dtype=torch.float64))
    lengths, previous = torch.tensor([5, 3, 4]), torch.tensor([[4, 0, 2], [2, 1, 0], [0, 3, 1]])
    out = hw6.pointer_log_probs_reference(d, e, W1, W2, v, lengths, previous)
    mask = torch.arange(N)[None, :] < lengths[:, None]
    for t in range(T):
        torch.testing.assert_close(out[:, t], seqmem.pointer.pointer_distribution(d[:, t], e, W1, W2, v, mask))
        mask = mask.scatter(1, previous[:, t:t + 1], False)  # constrained: chosen positions leave the mask


def test_the_step_reference_is_the_librarys_greedy_step_on_rows_not_done():
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(4, 6, generator=g, dtype=torch.float64)
    allowed = torch.rand(4, 6, generator=g) < 0.6
    allowed[:, 0] = True
    allowed[:, -1] = False  # the end not allowed: every choice leaves the mask, as in the library's step
    done = torch.zeros(4, dtype=torch.bool)
    choice, log_prob, new_allowed, new_done = hw6.greedy_pointer_step_reference(scores, allowed, done)
    log_p = seqmem.pointer.pointer_log_probs(scores, allowed)
    lib_choice, lib_mask = seqmem.pointer.greedy_step(log_p, allowed)
    assert torch.equal(choice, lib_choice) and torch.equal(new_allowed, lib_mask) and not new_done.any()
    torch.testing.assert_close(log_prob, log_p.gather(1, choice[:, None])[:, 0])


def test_the_metric_references_are_the_librarys():
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        points = torch.rand(9, 2, generator=g, dtype=torch.float64)
        hull = seqmem.tasks.geometry.convex_hull(points)
        assert hw6._hull(points.numpy()) == hull
        for predicted in (hull, hull[::-1], hull[:-1], [hull[0], hull[2], hull[1]] + hull[3:], hull + hull[:1]):
            assert hw6.hull_coverage_reference(points, predicted, hull) == pytest.approx(
                seqmem.pointer.hull_area_coverage(points, predicted, hull), abs=1e-12)
        tour = torch.randperm(9, generator=g).tolist()
        assert hw6.tour_length_reference(points, tour) == pytest.approx(seqmem.pointer.tour_length(points, tour))
        assert hw6.tour_length_reference(points, tour[:-1]) == math.inf


# ------------------------------------------------------------------------------ wrong answers

def _then(item, change):
    return lambda s: lambda *args: change(s[item](*args), *args)


def _log_probs_with(chosen_mask):
    """The source's computation with the mask of chosen positions replaced."""
    def answer(d, e, W1, W2, v, lengths, previous):
        N = e.shape[1]
        u = torch.einsum("btna,a->btn", torch.tanh((e @ W1.T).unsqueeze(1) + (d @ W2.T).unsqueeze(2)), v)
        real = torch.arange(N) < lengths[:, None]
        u = u.masked_fill(chosen_mask(previous, N) | ~real[:, None, :], -math.inf)
        return u - torch.logsumexp(u, dim=-1, keepdim=True)
    return answer


def _hits(previous, N):
    return torch.nn.functional.one_hot(previous, N)


def _step_with(change):
    def answer(scores, allowed, done):
        end = scores.shape[1] - 1
        log_p = scores.masked_fill(~allowed, -math.inf).log_softmax(-1)
        best = log_p.argmax(-1)
        choice = torch.where(done, torch.full_like(best, end), best)
        log_prob = torch.where(done, torch.zeros_like(scores[:, 0]), log_p.gather(1, best[:, None])[:, 0])
        new_allowed = allowed.clone()
        rows = (~done & (choice != end)).nonzero()[:, 0]
        new_allowed[rows, choice[rows]] = False
        return change(scores, allowed, done, choice, log_prob, new_allowed, done | (choice == end))
    return answer


def _coverage_without(*skipped):
    """The source's coverage with some of its validity checks left out."""
    def answer(points, predicted, hull):
        n, m = len(points), len(predicted)
        if "length" not in skipped and m < 3:
            return 0.0
        if "repeats" not in skipped and len(set(predicted)) < m:
            return 0.0
        if "range" not in skipped and (min(predicted) < 0 or max(predicted) >= n):
            return 0.0
        xy = points.tolist()

        def area(order):
            return 0.5 * sum(xy[a][0] * xy[b][1] - xy[b][0] * xy[a][1] for a, b in zip(order, order[1:] + order[:1]))

        def turn(o, a, b):
            return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
        corners = [xy[j] for j in predicted]
        if "crossing" not in skipped:
            for i in range(m):
                for k in range(i + 2, m - (i == 0)):
                    p, q, r, s = corners[i], corners[(i + 1) % m], corners[k], corners[(k + 1) % m]
                    if turn(p, q, r) * turn(p, q, s) <= 0 and turn(r, s, p) * turn(r, s, q) <= 0:
                        return 0.0
        covered = area(predicted)
        if "orientation" in skipped:
            covered = abs(covered)
        return covered / area(hull) if covered > 0 else 0.0
    return answer


def _open_path(points, tour):
    """The length without the way back to the first city."""
    if sorted(tour) != list(range(len(points))):
        return math.inf
    p = points[tour]
    return float((p[1:] - p[:-1]).norm(dim=1).sum())


def _tour_no_checks(points, tour):
    p = points[[j % len(points) for j in tour]] if tour else points[:0]
    return float((p - p.roll(-1, dims=0)).norm(dim=1).sum())


def _tour_set_check(points, tour):
    """Accepts a tour whose set of cities is right even when a city repeats."""
    if set(tour) != set(range(len(points))):
        return math.inf
    p = points[tour]
    return float((p - p.roll(-1, dims=0)).norm(dim=1).sum())


def _end_removed(scores, allowed, done, choice, log_prob, new_allowed, new_done):
    """Removes the end position from the mask when it is chosen, like any other position."""
    ended = (~done & (choice == scores.shape[1] - 1)).nonzero()[:, 0]
    new_allowed[ended, -1] = False
    return choice, log_prob, new_allowed, new_done


WRONG = {  # case -> (item, answer made from the source's answers, a phrase of the message)
    "log-probs: no mask of chosen positions": ("pointer_log_probs", lambda s: _log_probs_with(
        lambda previous, N: torch.zeros(*previous.shape, N, dtype=torch.bool)), "differs"),
    "log-probs: the current target masked too": ("pointer_log_probs", lambda s: _log_probs_with(
        lambda previous, N: _hits(previous, N).cumsum(1) > 0), "differs"),
    "log-probs: only the previous step's choice masked": ("pointer_log_probs", lambda s: _log_probs_with(
        lambda previous, N: torch.cat([torch.zeros_like(_hits(previous, N)[:, :1]), _hits(previous, N)[:, :-1]], 1)
        > 0), "differs"),
    "log-probs: probabilities, not logs": ("pointer_log_probs", _then("pointer_log_probs", lambda out, *a: out.exp()),
                                           "differs"),
    "log-probs: padding not masked": ("pointer_log_probs", lambda s: lambda d, e, W1, W2, v, lengths, prev: s[
        "pointer_log_probs"](d, e, W1, W2, v, torch.full_like(lengths, e.shape[1]), prev), "differs"),
    "log-probs: float64 always": ("pointer_log_probs", _then("pointer_log_probs", lambda out, *a: out.double()),
                                  "dtype"),
    "step: the end position removed": ("greedy_pointer_step", lambda s: _step_with(_end_removed), "new_allowed"),
    "step: done rows keep choosing": ("greedy_pointer_step", lambda s: lambda scores, allowed, done: s[
        "greedy_pointer_step"](scores, allowed, torch.zeros_like(done)), "differs"),
    "step: unmasked argmax": ("greedy_pointer_step", lambda s: lambda scores, allowed, done: s["greedy_pointer_step"](
        scores, torch.ones_like(allowed), done), "differs"),
    "step: the raw score for log_prob": ("greedy_pointer_step", lambda s: _step_with(
        lambda sc, al, dn, c, lp, na, nd: (c, torch.where(dn, lp, sc.gather(1, c[:, None])[:, 0]), na, nd)), "log_prob"),
    "step: never done": ("greedy_pointer_step", lambda s: _step_with(
        lambda sc, al, dn, c, lp, na, nd: (c, lp, na, dn)), "new_done"),
    "step: choice as float": ("greedy_pointer_step", lambda s: _step_with(
        lambda sc, al, dn, c, lp, na, nd: (c.to(sc.dtype), lp, na, nd)), "dtype"),
    "coverage: no crossing check": ("hull_coverage", lambda s: _coverage_without("crossing"), "self-crossing"),
    "coverage: clockwise accepted": ("hull_coverage", lambda s: _coverage_without("orientation"), "clockwise"),
    "coverage: no range check": ("hull_coverage", lambda s: _coverage_without("range"), "IndexError"),
    "coverage: a tensor": ("hull_coverage", _then("hull_coverage", lambda out, *a: torch.tensor(out)), "float"),
    "tour: no way back": ("tour_length", lambda s: _open_path, "permutation"),
    "tour: no validity check": ("tour_length", lambda s: _tour_no_checks, "differs"),
    "tour: a set check": ("tour_length", lambda s: _tour_set_check, "again at the end"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_wrong_answers_fail_with_a_message(source, case):
    item, make, phrase = WRONG[case]
    assert_fails_with_a_message(CHECKS[item], make(source), item, phrase)


def test_the_shared_answers_of_the_tests_above_are_right_where_they_should_be():
    """The helpers the wrong answers are built from are right themselves (so each case fails for its
    own reason)."""
    CHECKS["pointer_log_probs"](_log_probs_with(lambda previous, N: (_hits(previous, N).cumsum(1) - _hits(previous, N))
                                                > 0))
    CHECKS["greedy_pointer_step"](_step_with(lambda sc, al, dn, c, lp, na, nd: (c, lp, na, nd)))
    CHECKS["hull_coverage"](_coverage_without())


# ------------------------------------------------------------------------------ blocked references

def _log_probs_by_library(d, e, W1, W2, v, lengths, previous):
    mask = torch.arange(e.shape[1])[None, :] < lengths[:, None]
    steps = []
    for t in range(d.shape[1]):
        steps.append(seqmem.pointer.pointer_distribution(d[:, t], e, W1, W2, v, mask))
        mask = mask.scatter(1, previous[:, t:t + 1], False)
    return torch.stack(steps, 1)


def _step_by_library(scores, allowed, done):
    end = scores.shape[1] - 1
    live = allowed | done[:, None]  # the library refuses an empty row; done rows are overwritten below
    log_p = seqmem.pointer.pointer_log_probs(scores, live)
    choice, new_mask = seqmem.pointer.greedy_step(log_p, live)
    choice = torch.where(done, end, choice)
    log_prob = torch.where(done, 0.0, log_p.gather(1, choice[:, None])[:, 0])
    keep = done | (choice == end)
    return choice, log_prob.to(scores.dtype), torch.where(keep[:, None], allowed, new_mask), done | (choice == end)


def _coverage_by_library(points, predicted, hull):
    if not all(0 <= j < len(points) for j in predicted):
        return 0.0
    return float(seqmem.pointer.hull_area_coverage(points, predicted, hull))


def _tour_by_library(points, tour):
    if not seqmem.pointer.valid_tour(tour, len(points)) or not all(type(j) is int for j in tour):
        return math.inf
    return float(seqmem.pointer.tour_length(points, tour))


BLOCKED = {
    "seqmem.pointer.pointer_distribution": ("pointer_log_probs", _log_probs_by_library),
    "seqmem.pointer.greedy_step": ("greedy_pointer_step", _step_by_library),
    "seqmem.pointer.hull_area_coverage": ("hull_coverage", _coverage_by_library),
    "seqmem.pointer.tour_length": ("tour_length", _tour_by_library),
}


@pytest.mark.parametrize("case", list(BLOCKED))
def test_calling_a_reference_is_blocked_and_would_otherwise_be_right(case, monkeypatch):
    item, answer = BLOCKED[case]
    assert_blocked_and_otherwise_right(CHECKS[item], answer, item, monkeypatch)


def test_the_hidden_cases_cover_the_edges(monkeypatch):
    """The last step with one position left, rows done, the end chosen and not allowed, collinear
    points, crossings and every invalid tour are among the cases the checks draw."""
    monkeypatch.setattr(guard, "references", lambda item: [])
    seen = {"one position left": False, "done rows": False, "end chosen": False, "end not allowed": False,
            "crossing": False, "collinear": False, "tour of one city": False, "inf": False}

    def log_probs(d, e, W1, W2, v, lengths, previous):
        seen["one position left"] |= previous.shape[1] == int(lengths.min()) and previous.shape[1] > 1
        return hw6.pointer_log_probs_reference(d, e, W1, W2, v, lengths, previous)

    def step(scores, allowed, done):
        out = hw6.greedy_pointer_step_reference(scores, allowed, done)
        seen["done rows"] |= bool(done.any())
        seen["end chosen"] |= bool(((out[0] == scores.shape[1] - 1) & ~done).any())
        seen["end not allowed"] |= bool((~allowed[:, -1]).all())
        return out

    def coverage(points, predicted, hull):
        seen["crossing"] |= len(hull) >= 4 and predicted[:3] == [hull[0], hull[2], hull[1]]
        seen["collinear"] |= predicted == [0, 1, 2] and hw6._area(points.numpy(), [0, 1, 2]) == 0
        return hw6.hull_coverage_reference(points, predicted, hull)

    def tour(points, t):
        seen["tour of one city"] |= len(points) == 1
        out = hw6.tour_length_reference(points, t)
        seen["inf"] |= out == math.inf
        return out

    for check, fn in ((hw6.check_pointer_log_probs, log_probs), (hw6.check_greedy_pointer_step, step),
                      (hw6.check_hull_coverage, coverage), (hw6.check_tour_length, tour)):
        check(fn)
    assert all(seen.values()), seen
