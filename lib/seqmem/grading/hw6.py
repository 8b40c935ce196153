"""Homework 6's checks: the pointer distribution over a teacher-forced decoding (padding and the
positions already chosen masked), one greedy step of constrained decoding with an end position,
the area coverage of a predicted hull and the length of a decoded tour, both with their validity
checks.

Each item is a sibling of what chapter 7 shows through the library (``seqmem.pointer``): the
chapter states the equations and calls the library; here they are written for every step of a
decoding at once, with the end position, or as the metric of one prediction. As in the other
homework modules: the student's function runs through ``guard.call`` on fresh inputs drawn from
``guard.item_seed``; its result is validated, then compared with the reference computed here.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from .guard import call, close, fail, guard_tensor, item_seed, register, torch_compilers

__all__ = ["check_pointer_log_probs", "check_greedy_pointer_step", "check_hull_coverage", "check_tour_length",
           "pointer_log_probs_reference", "greedy_pointer_step_reference", "hull_coverage_reference",
           "tour_length_reference"]


def _pointer_references() -> list:
    """The library's pointer network and its additive score, and the masked softmaxes."""
    from .. import attention, pointer

    decoders = [getattr(f, "__wrapped__", f) for f in (pointer.greedy, pointer.beam_search)]  # torch.no_grad's
    return [pointer.pointer_log_probs, pointer.pointer_scores, pointer.pointer_distribution, pointer.greedy_step,
            *decoders, pointer._step_log_probs,
            *[(pointer.PointerNetwork, n) for n, f in vars(pointer.PointerNetwork).items()
              if callable(f) and not n.startswith("__")],
            attention.masked_softmax, attention.attend,
            *[(attention.AdditiveScore, n) for n in ("forward", "prepare", "compare", "_scores")
              if n in vars(attention.AdditiveScore)], *torch_compilers()]


def _metric_references() -> list:
    """The library's metrics and geometry, and the geometry of scipy and shapely where installed."""
    from .. import pointer
    from ..tasks import geometry

    found = [pointer.hull_area_coverage, pointer.valid_polygon, pointer._segments_meet, pointer._orientation,
             pointer._on_segment, pointer.valid_tour, pointer.tour_length, pointer.optimality_gap,
             pointer.canonical_hull, pointer.hull_exact, geometry.polygon_area, geometry.convex_hull,
             geometry.cycle_length, geometry._distances, geometry.held_karp, geometry.brute_force_tsp]
    try:
        from scipy.spatial import ConvexHull, distance
        found += [(ConvexHull, "__init__"), distance.cdist, distance.pdist, distance.euclidean]
    except ImportError:
        pass
    try:
        import shapely.geometry
        found += [(shapely.geometry.Polygon, "__new__"), (shapely.geometry.LineString, "__new__")]
    except ImportError:
        pass
    return found


register({"pointer_log_probs": _pointer_references, "greedy_pointer_step": _pointer_references,
          "hull_coverage": _metric_references, "tour_length": _metric_references})


def _dtype(k: int) -> torch.dtype:
    return torch.float64 if k % 2 else torch.float32


def _guard_float(item: str, out: Any) -> float:
    """Exactly a Python float or int (not a bool), or a NumPy floating-point scalar."""
    if type(out) in (float, int) or isinstance(out, np.floating):
        return float(out)
    fail(item, f"expected a Python float, got {type(out).__name__}")


# ------------------------------------------------------------------------------ 1. the pointer distribution

def _allowed(lengths: torch.Tensor, previous: torch.Tensor, N: int) -> torch.Tensor:
    """(B, T, N): position j is real (j < lengths[b]) and not chosen at a step before t."""
    B, T = previous.shape
    allowed = (torch.arange(N)[None, :] < lengths[:, None]).unsqueeze(1).repeat(1, T, 1)
    for t in range(1, T):
        allowed[:, t] = allowed[:, t - 1]
        allowed[torch.arange(B), t, previous[:, t - 1]] = False
    return allowed


def pointer_log_probs_reference(d, e, W1, W2, v, lengths, previous) -> torch.Tensor:
    """(B, T, N): log softmax over the allowed positions of u = v . tanh(W1 e_j + W2 d_t); -inf elsewhere."""
    d64, e64, W1, W2, v = (t.double() for t in (d, e, W1, W2, v))
    u = torch.tanh((e64 @ W1.T)[:, None] + (d64 @ W2.T)[:, :, None]) @ v  # (B, T, N)
    allowed = _allowed(lengths, previous, e.shape[1])
    u = torch.where(allowed, u, -math.inf)
    return (u - torch.logsumexp(u, dim=-1, keepdim=True)).to(d.dtype)


def check_pointer_log_probs(fn: Callable, trials: int = 8, seed: int = 479) -> None:
    """Check ``fn(d, e, W1, W2, v, lengths, previous) -> (B, T, N)``.

    d (B, T, H) the decoder's states at T steps, e (B, N, H) the encoder's (padded), W1 and W2
    (A, H), v (A,), lengths (B,) int64 the real inputs of each sample, previous (B, T) int64 the
    position chosen at each step (teacher forcing: step t may not point at the padding or at a
    position chosen before t). Tried in float32 and float64, with junk in the padding, T = 1,
    T = the shortest length (the last step has one position left), B = N = 1.
    """
    item = "pointer_log_probs"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        dtype = _dtype(k)
        B, N, H, A = (1, 1, 1, 1) if k == 0 else tuple(int(x) for x in torch.randint(1, 7, (4,), generator=g))
        lengths = torch.randint(1, N + 1, (B,), generator=g)
        lengths[0] = N
        T = int(lengths.min()) if k in (2, 5) else int(torch.randint(1, int(lengths.min()) + 1, (), generator=g))
        previous = torch.stack([torch.randperm(int(n), generator=g)[:T] for n in lengths])  # (B, T)

        def randn(*shape):
            return torch.randn(*shape, generator=g, dtype=dtype)
        d, e, W1, W2, v = randn(B, T, H), randn(B, N, H), randn(A, H), randn(A, H), 2 * randn(A)
        padding = torch.arange(N)[None, :] >= lengths[:, None]
        e[padding] = 1e3 * randn(int(padding.sum()), H)
        out = call(item, fn, d.clone(), e.clone(), W1.clone(), W2.clone(), v.clone(), lengths.clone(),
                   previous.clone())
        guard_tensor(item, out, (B, T, N), dtype)
        close(item, out, pointer_log_probs_reference(d, e, W1, W2, v, lengths, previous),
              what=f"log-probabilities for B={B}, T={T}, N={N}, H={H}, A={A}, lengths={lengths.tolist()}, "
                   f"previous={previous.tolist()} ({dtype})")


# ------------------------------------------------------------------------------ 2. one greedy step

def greedy_pointer_step_reference(scores, allowed, done):
    """(choice, log_prob, new_allowed, new_done): the step of constrained greedy decoding."""
    B, S = scores.shape
    end = S - 1
    s = torch.where(allowed, scores.double(), -math.inf)
    log_p = s - torch.logsumexp(torch.where(done[:, None], 0.0, s), dim=-1, keepdim=True)
    choice = torch.where(done, end, s.argmax(-1))
    log_prob = torch.where(done, 0.0, log_p.gather(1, choice[:, None])[:, 0])
    new_allowed = allowed.clone()
    live = (~done) & (choice != end)
    new_allowed[live.nonzero()[:, 0], choice[live]] = False
    return choice, log_prob.to(scores.dtype), new_allowed, done | (choice == end)


def check_greedy_pointer_step(fn: Callable, trials: int = 8, seed: int = 487) -> None:
    """Check ``fn(scores, allowed, done) -> (choice, log_prob, new_allowed, new_done)``.

    scores (B, S) over the inputs and, last, the end position (index S - 1); allowed (B, S) bool
    (True where a position may be chosen; a row not done allows at least one); done (B,) bool.
    Tried in float32 and float64, with junk (large scores) at positions not allowed, rows already
    done, rows with one position left, the end position chosen and not allowed.
    """
    item = "greedy_pointer_step"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        dtype = _dtype(k)
        B, S = (1, 2) if k == 0 else (int(torch.randint(1, 7, (), generator=g)), int(torch.randint(2, 9, (), generator=g)))
        scores = torch.randn(B, S, generator=g, dtype=dtype)
        allowed = torch.rand(B, S, generator=g) < 0.6
        if k == 3:
            allowed[:, -1] = False  # the end not allowed yet (a hull needs three points first)
        if k == 4:
            allowed[:] = False
            allowed[:, 0] = True  # one position left
        allowed[torch.arange(B), torch.randint(0, S - (k == 3), (B,), generator=g)] = True  # never an empty row
        if k == 5:
            scores[:, -1] = 5.0  # the end wins
        scores[~allowed] = 1e3 * torch.rand(int((~allowed).sum()), generator=g, dtype=dtype)  # what must not win
        done = torch.rand(B, generator=g) < 0.3 if k > 1 else torch.zeros(B, dtype=torch.bool)
        out = call(item, fn, scores.clone(), allowed.clone(), done.clone())
        expected = greedy_pointer_step_reference(scores, allowed, done)
        names = ("choice", "log_prob", "new_allowed", "new_done")
        if not isinstance(out, tuple) or tuple.__len__(out) != 4:
            fail(item, f"expected a tuple ({', '.join(names)}) of 4 tensors, got {type(out).__name__}"
                       + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
        for i, (name, want) in enumerate(zip(names, expected)):
            value = tuple.__getitem__(out, i)
            guard_tensor(f"{item} ({name})", value, tuple(want.shape), want.dtype)
            close(item, value.detach(), want, what=f"{name} for scores={scores.tolist()}, "
                                                   f"allowed={allowed.int().tolist()}, done={done.tolist()} ({dtype})")


# ------------------------------------------------------------------------------ 3. hull area coverage

def _area(p: np.ndarray, order) -> float:
    """The signed area of the polygon p[order] by the shoelace formula (positive counter-clockwise)."""
    x, y = p[list(order), 0], p[list(order), 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _cross(o, a, b) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _meet(a, b, c, d) -> bool:
    """Closed segments ab and cd share a point."""
    d1, d2, d3, d4 = _cross(c, d, a), _cross(c, d, b), _cross(a, b, c), _cross(a, b, d)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4):
        return True

    def within(p, q, r):  # r on segment pq, given collinear
        return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])
    return any(v == 0 and within(*s, r) for v, s, r in ((d1, (c, d), a), (d2, (c, d), b), (d3, (a, b), c),
                                                        (d4, (a, b), d)))


def _simple(p: np.ndarray, order) -> bool:
    """No two edges of the closed polygon p[order] meet except adjacent ones at their shared vertex."""
    m = len(order)
    edges = [(p[order[i]], p[order[(i + 1) % m]]) for i in range(m)]
    for i in range(m):
        for j in range(i + 1, m):
            adjacent = j == i + 1 or (i == 0 and j == m - 1)
            if not adjacent and _meet(*edges[i], *edges[j]):
                return False
            if adjacent and m > 3:  # adjacent edges meet only at their vertex: no folding back along a line
                a, b = edges[i] if j == i + 1 else edges[j]
                c = (edges[j] if j == i + 1 else edges[i])[1]
                if _cross(a, b, c) == 0 and float(np.dot(b - a, c - b)) < 0:
                    return False
    return True


def hull_coverage_reference(points, predicted, hull) -> float:
    """A(predicted) / A(hull) for a valid prediction (>= 3 distinct indices in range, simple,
    counter-clockwise); 0.0 otherwise."""
    p = points.double().numpy()
    n, seq = len(p), list(predicted)
    if len(seq) < 3 or len(set(seq)) != len(seq) or not all(type(j) is int and 0 <= j < n for j in seq):
        return 0.0
    area = _area(p, seq)
    if area <= 0 or not _simple(p, seq):
        return 0.0
    return area / _area(p, list(hull))


def _hull(p: np.ndarray) -> list[int]:
    """The convex hull's indices, counter-clockwise from the lowest index (monotone chain)."""
    order = sorted(range(len(p)), key=lambda i: (p[i, 0], p[i, 1]))

    def chain(indices):
        out = []
        for i in indices:
            while len(out) >= 2 and _cross(p[out[-2]], p[out[-1]], p[i]) <= 0:
                out.pop()
            out.append(i)
        return out[:-1]
    ring = chain(order) + chain(order[::-1])
    start = ring.index(min(ring))
    return ring[start:] + ring[:start]


def _predictions(g: torch.Generator, p: np.ndarray, hull: list[int]) -> list[tuple[str, list[int]]]:
    """Predictions of every kind for one point set: right, rotated, missing or extra points, and invalid."""
    n, h = len(p), len(hull)
    inside = [i for i in range(n) if i not in hull]
    cases = [("the hull", hull), ("the hull from another start", hull[1:] + hull[:1]),
             ("clockwise", hull[::-1]), ("two points", hull[:2]), ("a repeated point", hull + hull[:1]),
             ("an index out of range", hull[:-1] + [n]), ("a negative index", hull[:-1] + [-1])]
    if h >= 4:
        cases += [("one hull point missing", hull[:-1]),
                  ("two points swapped (self-crossing)", [hull[0], hull[2], hull[1]] + hull[3:])]
    if inside:  # an interior point between two hull points: a simple polygon, smaller than the hull
        j = int(torch.randint(0, h, (), generator=g))
        cases.append(("an interior point added", hull[:j + 1] + [inside[0]] + hull[j + 1:]))
    return cases


def check_hull_coverage(fn: Callable, trials: int = 6, seed: int = 491) -> None:
    """Check ``fn(points, predicted, hull) -> float``: A(predicted) / A(hull) by the shoelace
    formula, 0.0 for an invalid prediction (fewer than 3 points, a repeated or out-of-range index,
    clockwise, zero area, self-crossing).

    points (n, 2) float64, predicted and hull lists of Python ints (hull counter-clockwise).
    Tried on the hull itself from any start, clockwise, with points missing, added inside,
    swapped, repeated, out of range, and three collinear points.
    """
    item = "hull_coverage"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        n = int(torch.randint(7 if k == 0 else 5, 12, (), generator=g))
        points = torch.rand(n, 2, generator=g, dtype=torch.float64)
        if k == 0:  # three collinear points inside four corners: a triangle of area 0 is no polygon
            points[:7] = torch.tensor([[0.25, 0.5], [0.5, 0.5], [0.75, 0.5], [0.1, 0.0], [1.0, 0.1], [0.9, 1.0],
                                       [0.0, 0.9]], dtype=torch.float64)
        hull = _hull(points.numpy())
        cases = _predictions(g, points.numpy(), hull) + ([("three collinear points", [0, 1, 2])] if k == 0 else [])
        for what, predicted in cases:
            out = call(item, fn, points.clone(), list(predicted), list(hull))
            got = _guard_float(item, out)
            expected = hull_coverage_reference(points, predicted, hull)
            if not math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12):
                fail(item, f"the coverage of {what} differs from the reference:\npoints {points.tolist()}\n"
                           f"hull {hull}\npredicted {predicted}\nexpected {expected!r}\ngot      {got!r}")


# ------------------------------------------------------------------------------ 4. tour length

def tour_length_reference(points, tour) -> float:
    """The closed tour's length, back to its first city; inf unless tour is a permutation of 0..n-1."""
    p = points.double().numpy()
    n, tour = len(p), list(tour)
    if sorted(tour) != list(range(n)) or not all(type(j) is int for j in tour):
        return math.inf
    return float(sum(np.linalg.norm(p[tour[i]] - p[tour[(i + 1) % n]]) for i in range(n)))


def check_tour_length(fn: Callable, trials: int = 8, seed: int = 499) -> None:
    """Check ``fn(points, tour) -> float``: the length of the closed tour, ``math.inf`` for a tour
    that is not a permutation of 0 ... n - 1.

    points (n, 2) float64, tour a list of Python ints. Tried with n = 1 and 2, random permutations,
    and invalid tours: a city repeated, one missing, the first city again at the end, an index out
    of range, the empty tour.
    """
    item = "tour_length"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        n = (1, 2)[k] if k < 2 else int(torch.randint(3, 11, (), generator=g))
        points = torch.rand(n, 2, generator=g, dtype=torch.float64)
        tour = torch.randperm(n, generator=g).tolist()
        cases = [("a permutation", tour), ("the same tour reversed", tour[::-1])]
        if n >= 2:
            cases += [("a city repeated", tour[:-1] + tour[:1]), ("a city missing", tour[:-1]),
                      ("the first city again at the end", tour + tour[:1]),
                      ("an index out of range", tour[:-1] + [n]), ("the empty tour", [])]
        for what, t in cases:
            out = call(item, fn, points.clone(), list(t))
            got = _guard_float(item, out)
            expected = tour_length_reference(points, t)
            if not (got == expected or math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12)):
                fail(item, f"the length of {what} differs from the reference:\npoints {points.tolist()}\n"
                           f"tour {t}\nexpected {expected!r}\ngot      {got!r}")


# the reference answers' helpers, blocked with the *_reference functions while a student's code runs
GRADER_HELPERS = [_allowed, _area, _cross, _meet, _simple, _hull]
