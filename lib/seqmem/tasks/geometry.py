r"""Geometry: point sets whose answer is a sequence of the input's own positions (chapter 7).

The lecture's motivation for pointer networks: the convex hull of n points is a selection of the
points, so its "vocabulary" is the input itself and grows with n. Three such problems, each labelled
exactly by a classic algorithm:

- ``convex_hull``: Andrew's monotone chain, O(n log n). The canonical order: counter-clockwise,
  starting at the lowest input index on the hull; points on an edge (collinear) are not hull
  vertices.
- ``argsort``: sorting n scalars, the answer the permutation that sorts them (stable).
- ``held_karp``: the shortest closed tour through n <= 12 cities by Held and Karp's dynamic
  programme over subsets, O(2^n n^2):

  .. math::

      C(S, j) = \min_{k \in S \setminus \{j\}} C(S \setminus \{j\}, k) + d(k, j), \qquad
      C(\{j\}, j) = d(0, j)

  the cost of the cheapest path from city 0 through the set S ending at j; the tour's length is
  min_j C({1..n-1}, j) + d(j, 0). The canonical tour starts at city 0 and runs in the direction
  where its second city has a lower index than its last. ``held_karp_batch`` solves B instances
  of one n at once.

``points(batch_size, n)`` draws points uniformly in the unit square; ``convex_hulls``,
``sorting_problems`` and ``tsp_problems`` draw whole data sets (``PointerData``): padded points,
their lengths, and padded target sequences of positions. Deterministic by the generator's seed;
nothing is cached on disk. The labels are computed on the CPU in float64, whatever the device.

Dimensions: B batch, N the largest n of a batch, T the longest target, D the point size (2).
"""
from __future__ import annotations

import itertools
from typing import NamedTuple, Sequence

import numpy as np
import torch

from ..core import IGNORE_INDEX
from ._common import check_sizes, gen_device

__all__ = ["points", "convex_hull", "polygon_area", "argsort", "held_karp", "held_karp_batch", "cycle_length",
           "brute_force_tsp", "PointerData", "convex_hulls", "sorting_problems", "tsp_problems"]


def _as_array(pts) -> np.ndarray:
    """(n, D) points as a float64 numpy array (a tensor is copied to the CPU)."""
    if isinstance(pts, torch.Tensor):
        pts = pts.detach().cpu().double().numpy()
    arr = np.asarray(pts, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"points must have shape (n, D), got {arr.shape}")
    return arr


def points(batch_size: int, n: int, generator: torch.Generator | None = None, device=None,
           dim: int = 2) -> torch.Tensor:
    """Points drawn uniformly in the unit square (cube for ``dim`` != 2): (B, n, dim) float32."""
    check_sizes(batch_size=batch_size, n=n, dim=dim)
    gdev = gen_device(generator)
    return torch.rand(batch_size, n, dim, generator=generator, device=gdev).to(device or gdev)


# -- convex hull --------------------------------------------------------------------------------------


def _cross(o, a, b) -> float:
    """(a - o) x (b - o): > 0 when o, a, b turn counter-clockwise, 0 when collinear."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _chain(order: Sequence[int], p: np.ndarray) -> list[int]:
    """One half of Andrew's chain: keep only left turns (a collinear middle point is dropped)."""
    chain: list[int] = []
    for i in order:
        while len(chain) >= 2 and _cross(p[chain[-2]], p[chain[-1]], p[i]) <= 0:
            chain.pop()
        chain.append(i)
    return chain


def convex_hull(pts) -> list[int]:
    """The convex hull of (n, 2) points as input indices, counter-clockwise from the lowest index.

    Andrew's monotone chain: sort by (x, y); the lower hull left to right and the upper hull right
    to left, each keeping only left turns; their concatenation (without the repeated ends) is the
    hull counter-clockwise. Collinear boundary points are excluded; of coincident points one is
    kept. Degenerate sets: one point gives [i], all points on a line give its two ends.
    """
    p = _as_array(pts)
    if p.shape[1] != 2:
        raise ValueError(f"convex_hull needs planar points (n, 2), got {p.shape}")
    order = sorted(range(len(p)), key=lambda i: (p[i, 0], p[i, 1], i))
    if len(order) < 3:
        hull = order if len(order) < 2 or tuple(p[order[0]]) != tuple(p[order[1]]) else order[:1]
    else:
        lower, upper = _chain(order, p), _chain(order[::-1], p)
        hull = lower[:-1] + upper[:-1]
    start = hull.index(min(hull))
    return hull[start:] + hull[:start]  # the canonical rotation


def polygon_area(pts, order: Sequence[int]) -> float:
    r"""The signed area of the polygon visiting ``pts[order]`` (the shoelace formula).

    .. math::  A = \tfrac12 \sum_{i=1}^{m} (x_i y_{i+1} - x_{i+1} y_i), \quad (x_{m+1}, y_{m+1}) = (x_1, y_1)

    Positive for a counter-clockwise polygon, negative for a clockwise one.
    """
    p = _as_array(pts)[list(order)]
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


# -- sorting and the travelling salesman -----------------------------------------------------------------


def argsort(values) -> list[int]:
    """The positions of n scalars in increasing order (stable: ties by position)."""
    v = values.detach().cpu().double().reshape(-1).tolist() if isinstance(values, torch.Tensor) else list(values)
    return sorted(range(len(v)), key=lambda i: (v[i], i))


def _distances(p: np.ndarray) -> np.ndarray:
    return np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))  # (n, n)


def cycle_length(pts, tour: Sequence[int]) -> float:
    """The length of the closed path pts[tour[0]] -> ... -> pts[tour[-1]] -> pts[tour[0]] (no checks)."""
    p = _as_array(pts)[list(tour)]
    return float(np.sqrt(((p - np.roll(p, -1, axis=0)) ** 2).sum(-1)).sum())


def _canonical_tour(tour: list[int]) -> list[int]:
    """Rotate to start at 0; reverse if the second city's index is above the last's."""
    start = tour.index(0)
    tour = tour[start:] + tour[:start]
    return tour if len(tour) < 3 or tour[1] < tour[-1] else [0] + tour[1:][::-1]


def held_karp(pts) -> tuple[list[int], float]:
    """The optimal tour of (n, D) points and its length, by Held and Karp's dynamic programme.

    Returns the canonical tour (from 0, second index < last index) and its length; one row of
    ``held_karp_batch``.
    """
    tours, lengths = held_karp_batch(_as_array(pts)[None])
    return tours[0], lengths[0]


def held_karp_batch(pts) -> tuple[list[list[int]], list[float]]:
    """Held-Karp for B instances of n cities at once, (B, n, D): the canonical tours and their lengths.

    Cities 1 ... n-1 are the bits of a subset mask (city c is bit c - 1); ``C[:, mask, j]`` is the
    cost of the cheapest path from city 0 through the cities of mask ending at city j + 1 (inf if
    j + 1 is not in mask). Subsets are filled by size, every subset of a size and every instance
    at once (numpy), so B instances cost about as many numpy calls as one.
    """
    p = np.asarray(pts.detach().cpu().double() if isinstance(pts, torch.Tensor) else pts, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"held_karp_batch takes points of shape (B, n, D), got {p.shape}")
    B, n, _ = p.shape
    if not 1 <= n <= 12:
        raise ValueError(f"held_karp takes 1 <= n <= 12 cities, got {n}")
    if n <= 2:
        return [list(range(n)) for _ in range(B)], [cycle_length(x, range(n)) for x in p]
    d, m = np.sqrt(((p[:, :, None] - p[:, None]) ** 2).sum(-1)), n - 1  # (B, n, n)
    C = np.full((B, 1 << m, m), np.inf)  # (B, 2^m, m)
    parent = np.full((B, 1 << m, m), -1, dtype=np.int64)
    C[:, 1 << np.arange(m), np.arange(m)] = d[:, 0, 1:]  # C({j}, j) = d(0, j)
    masks = np.arange(1 << m)
    sizes = np.array([bin(s).count("1") for s in masks])
    for size in range(2, m + 1):
        S = masks[sizes == size]  # (K,) every subset of this size
        for j in range(m):
            S_j = S[(S >> j) & 1 == 1]
            prev = C[:, S_j ^ (1 << j)] + d[:, None, 1:, j + 1]  # (B, K_j, m): through k, then k -> j
            parent[:, S_j, j] = prev.argmin(axis=2)
            C[:, S_j, j] = prev.min(axis=2)
    full, rows = (1 << m) - 1, np.arange(B)
    closing = C[:, full] + d[:, 1:, 0]  # (B, m) back to city 0
    j, mask, backwards = closing.argmin(axis=1), np.full(B, full), []
    for _ in range(m):  # walk the parents back to the first city after 0
        backwards.append(j + 1)
        j, mask = parent[rows, mask, j], mask ^ (1 << j)
    tours = np.stack([np.zeros(B, dtype=np.int64)] + backwards[::-1], axis=1)  # (B, n)
    return [_canonical_tour(t.tolist()) for t in tours], closing.min(axis=1).tolist()


def brute_force_tsp(pts) -> tuple[list[int], float]:
    """The optimal tour by trying all (n - 1)! orders from city 0 (the tests' reference, n <= 8)."""
    p = _as_array(pts)
    best = min(([0, *rest] for rest in itertools.permutations(range(1, len(p)))), key=lambda t: cycle_length(p, t))
    return _canonical_tour(best), cycle_length(p, best)


# -- data sets ------------------------------------------------------------------------------------------


class PointerData(NamedTuple):
    """A batch of pointer problems, padded to the largest n of the batch.

    points: (B, N, D) float, zeros beyond each sample's n; lengths: (B,) int64, each n.
    targets: (B, T) int64 input positions, ``IGNORE_INDEX`` beyond each target's end. With
    ``end`` (the convex hull), every target ends with the end position, index N (the pointer
    network's extra "end" position after the N inputs).
    target_lengths: (B,) int64, the end position included; optimal: (B,) float64 tour lengths
    (``tsp_problems`` only, else None).
    """

    points: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    end: bool
    optimal: torch.Tensor | None = None


def _ns(batch_size: int, n, generator) -> list[int]:
    """Each sample's n: an int, or (lo, hi) for a uniform draw from lo ... hi per sample."""
    if isinstance(n, int):
        check_sizes(n=n)
        return [n] * batch_size
    lo, hi = n
    check_sizes(lo=lo, hi=hi)
    if lo > hi:
        raise ValueError(f"n = (lo, hi) needs lo <= hi, got {n}")
    return torch.randint(lo, hi + 1, (batch_size,), generator=generator, device=gen_device(generator)).tolist()


def _each(label):
    """A labeller of a padded batch from a labeller of one point set."""
    return lambda x, ns: [label(x[b, :n_b]) for b, n_b in enumerate(ns)]


def _optimal_tours(x: torch.Tensor, ns: list[int]) -> list:
    """(tour, length) of every instance: Held-Karp over the whole batch when all have one n."""
    if len(set(ns)) == 1:
        return list(zip(*held_karp_batch(x)))
    return _each(held_karp)(x, ns)


def _pointer_data(batch_size, n, labels_of, end, generator, device, dim=2, optimal=False) -> PointerData:
    check_sizes(batch_size=batch_size)
    ns = _ns(batch_size, n, generator)
    N = max(ns)
    x = points(batch_size, N, generator, dim=dim).cpu()  # (B, N, D), drawn whole then cut to each n
    for b, n_b in enumerate(ns):
        x[b, n_b:] = 0.0
    labels = labels_of(x, ns)
    seqs = [lab[0] if optimal else lab for lab in labels]
    seqs = [s + [N] if end else s for s in seqs]
    T = max(len(s) for s in seqs)
    targets = torch.full((batch_size, T), IGNORE_INDEX, dtype=torch.long)
    for b, s in enumerate(seqs):
        targets[b, :len(s)] = torch.tensor(s)
    out = device or gen_device(generator)
    opt = torch.tensor([lab[1] for lab in labels], dtype=torch.float64).to(out) if optimal else None
    return PointerData(x.to(out), torch.tensor(ns).to(out), targets.to(out),
                       torch.tensor([len(s) for s in seqs]).to(out), end, opt)


def convex_hulls(batch_size: int, n, generator: torch.Generator | None = None, device=None) -> PointerData:
    """Points in the unit square and their convex hulls, each target ending with the end position N.

    ``n``: an int, or (lo, hi) for n uniform in lo ... hi per sample.
    """
    return _pointer_data(batch_size, n, _each(convex_hull), True, generator, device)


def sorting_problems(batch_size: int, n, generator: torch.Generator | None = None, device=None) -> PointerData:
    """n scalars in [0, 1) as points (B, N, 1) and the permutation that sorts each set."""
    return _pointer_data(batch_size, n, _each(lambda x: argsort(x[:, 0])), False, generator, device, dim=1)


def tsp_problems(batch_size: int, n, generator: torch.Generator | None = None, device=None) -> PointerData:
    """Cities in the unit square, their optimal tours (Held-Karp, canonical) and lengths (n <= 12)."""
    return _pointer_data(batch_size, n, _optimal_tours, False, generator, device, optimal=True)
