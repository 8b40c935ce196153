"""seqmem.tasks.geometry: the exact labels of chapter 7's point problems.

Pinned here: the convex hull on hand-made sets (a square with points inside and on its edges,
collinear and degenerate sets), its canonical order (counter-clockwise from the lowest index),
its vertex set against scipy's Qhull on random sets; the shoelace area by hand and against
scipy's hull volume; Held-Karp against brute force over all tours for n <= 7 and its speed at
n = 10; the data sets' padding, end positions and determinism by seed.
"""
import time

import numpy as np
import pytest
import torch

from seqmem.core import IGNORE_INDEX
from seqmem.tasks import geometry
from seqmem.tasks.geometry import (argsort, brute_force_tsp, convex_hull, convex_hulls, cycle_length, held_karp,
                                   held_karp_batch, polygon_area, sorting_problems, tsp_problems)

spatial = pytest.importorskip("scipy.spatial")


def test_hull_of_a_square_with_inner_and_edge_points():
    #        3 (0,1) ---- 6 (0.5,1) ---- 2 (1,1)
    #        |     4 (0.5,0.5)            |
    #        1 (0,0) ---- 5 (0.5,0) ----- 0 (1,0)
    pts = [(1, 0), (0, 0), (1, 1), (0, 1), (0.5, 0.5), (0.5, 0), (0.5, 1)]
    assert convex_hull(pts) == [0, 2, 3, 1]  # from index 0, counter-clockwise, the edge points 5 and 6 excluded


def test_hull_starts_at_lowest_index_and_turns_left():
    pts = [(0.5, 0.5), (0.2, 0.9), (0.9, 0.1), (0.1, 0.1), (0.95, 0.95)]
    hull = convex_hull(pts)
    assert hull == [1, 3, 2, 4]
    assert polygon_area(pts, hull) > 0  # counter-clockwise


def test_degenerate_hulls():
    assert convex_hull([(0.3, 0.4)]) == [0]
    assert convex_hull([(1, 1), (0, 0)]) == [0, 1]
    assert convex_hull([(0, 0), (2, 2), (1, 1), (3, 3)]) == [0, 3]  # collinear: the two ends
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        convex_hull(np.zeros((4, 3)))


@pytest.mark.parametrize("n", [3, 5, 10, 20, 50])
def test_hull_matches_qhull(n):
    g = torch.Generator().manual_seed(n)
    for x in geometry.points(20, n, g):
        hull = convex_hull(x)
        qhull = spatial.ConvexHull(x.double().numpy())
        assert sorted(hull) == sorted(qhull.vertices.tolist())
        assert hull[0] == min(hull)
        assert polygon_area(x, hull) == pytest.approx(qhull.volume, rel=1e-12)  # CCW: positive, the hull's area
        # every turn of the canonical order is a left turn: a convex CCW polygon
        p = x.double().numpy()[hull]
        a, b, c = p, np.roll(p, -1, 0), np.roll(p, -2, 0)
        assert np.all((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]) > 0)


def test_shoelace_by_hand():
    square = [(0, 0), (2, 0), (2, 2), (0, 2)]
    assert polygon_area(square, [0, 1, 2, 3]) == 4.0
    assert polygon_area(square, [3, 2, 1, 0]) == -4.0  # clockwise
    assert polygon_area([(0, 0), (4, 0), (0, 3)], [0, 1, 2]) == 6.0
    assert polygon_area(square, [0, 1]) == 0.0


def test_argsort():
    assert argsort(torch.tensor([0.3, 0.1, 0.2, 0.1])) == [1, 3, 2, 0]  # stable on the tie


def test_cycle_length_by_hand():
    square = [(0, 0), (1, 0), (1, 1), (0, 1)]
    assert cycle_length(square, [0, 1, 2, 3]) == pytest.approx(4.0)
    assert cycle_length(square, [0, 2, 1, 3]) == pytest.approx(2 + 2 * 2 ** 0.5)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
def test_held_karp_matches_brute_force(n):
    g = torch.Generator().manual_seed(100 + n)
    for x in geometry.points(10, n, g):
        tour, length = held_karp(x)
        best, best_length = brute_force_tsp(x)
        assert length == pytest.approx(best_length, rel=1e-12)
        assert length == pytest.approx(cycle_length(x, tour), rel=1e-12)
        assert sorted(tour) == list(range(n)) and tour[0] == 0
        assert n < 3 or tour[1] < tour[-1]  # the canonical direction
        if n >= 3:
            assert tour == best  # random points: the optimum is unique up to direction


def test_held_karp_batch_is_brute_force_row_by_row():
    x = geometry.points(6, 7, torch.Generator().manual_seed(7))
    tours, lengths = held_karp_batch(x)
    for b in range(6):
        best, best_length = brute_force_tsp(x[b])
        assert tours[b] == best and lengths[b] == pytest.approx(best_length, rel=1e-12)
    with pytest.raises(ValueError, match=r"\(B, n, D\)"):
        held_karp_batch(np.zeros((4, 2)))


def test_held_karp_canonical_square():
    # the square's optimal tour is its boundary; from 0 and with tour[1] < tour[-1]
    tour, length = held_karp([(0, 0), (1, 1), (1, 0), (0, 1)])
    assert tour == [0, 2, 1, 3] and length == pytest.approx(4.0)


def test_held_karp_is_fast_at_n10():
    x = geometry.points(3, 10, torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for pts in x:
        held_karp(pts)
    assert (time.perf_counter() - start) / 3 < 0.5
    start = time.perf_counter()
    tours, _ = held_karp_batch(geometry.points(64, 10, torch.Generator().manual_seed(1)))
    assert time.perf_counter() - start < 2.0 and len(tours) == 64
    with pytest.raises(ValueError, match="n <= 12"):
        held_karp(np.zeros((13, 2)))


def test_convex_hulls_data():
    data = convex_hulls(16, (5, 10), torch.Generator().manual_seed(3))
    B, N, _ = data.points.shape
    assert data.end and N == int(data.lengths.max()) and 5 <= int(data.lengths.min())
    for b in range(B):
        n, t = int(data.lengths[b]), int(data.target_lengths[b])
        assert torch.all(data.points[b, n:] == 0)
        assert data.targets[b, :t - 1].tolist() == convex_hull(data.points[b, :n])
        assert int(data.targets[b, t - 1]) == N  # the end position, after the N inputs
        assert torch.all(data.targets[b, t:] == IGNORE_INDEX)
    again = convex_hulls(16, (5, 10), torch.Generator().manual_seed(3))
    assert torch.equal(again.points, data.points) and torch.equal(again.targets, data.targets)


def test_sorting_and_tsp_data():
    s = sorting_problems(8, 6, torch.Generator().manual_seed(0))
    assert s.points.shape == (8, 6, 1) and not s.end
    assert torch.equal(s.targets, s.points[..., 0].argsort(dim=1))
    for n in ((4, 6), 6):  # per instance, and one n: the whole batch at once
        t = tsp_problems(8, n, torch.Generator().manual_seed(0))
        _check_tours(t)


def _check_tours(t):
    for b in range(8):
        n = int(t.lengths[b])
        tour = t.targets[b, :n].tolist()
        assert tour == held_karp(t.points[b, :n])[0]
        assert t.optimal.dtype == torch.float64
        assert float(t.optimal[b]) == pytest.approx(cycle_length(t.points[b, :n], tour), rel=1e-12)
        assert int(t.target_lengths[b]) == n


def test_data_on_device(dev):
    g = torch.Generator().manual_seed(0)
    data = convex_hulls(4, 5, g, device=dev)
    assert data.points.device.type == dev.type and data.targets.device.type == dev.type
    cpu = convex_hulls(4, 5, torch.Generator().manual_seed(0))
    assert torch.equal(data.points.cpu(), cpu.points)


def test_shapely_agrees_if_installed():
    shapely = pytest.importorskip("shapely.geometry")
    x = geometry.points(5, 12, torch.Generator().manual_seed(1))
    for pts in x:
        hull = convex_hull(pts)
        poly = shapely.MultiPoint(pts.double().numpy().tolist()).convex_hull
        assert polygon_area(pts, hull) == pytest.approx(poly.area, rel=1e-12)
