"""seqmem.pointer's metrics on hand-computed cases (chapter 7).

Pinned here: exact match of hulls as cyclic sequences (any rotation, not the reverse); the area
coverage of a square's hull and of polygons inside it, 0 for every kind of invalid prediction
(too short, repeated, out of range, clockwise, self-intersecting, folded back); tour length
of a unit square's tours, an invalid tour refused; the optimality gap.
"""
import math

import pytest
import torch

from seqmem import pointer as P

#  3 (0,2) ------------- 2 (2,2)
#  |        4 (1,1)            |
#  0 (0,0) ---- 5 (1,0) ---- 1 (2,0)
SQUARE = torch.tensor([(0, 0), (2, 0), (2, 2), (0, 2), (1, 1), (1, 0)], dtype=torch.float64)
HULL = [0, 1, 2, 3]


def test_hull_exact_is_cyclic_and_oriented():
    assert P.hull_exact([0, 1, 2, 3], HULL)
    assert P.hull_exact([2, 3, 0, 1], HULL)  # another start, the same cycle
    assert not P.hull_exact([0, 3, 2, 1], HULL)  # clockwise
    assert not P.hull_exact([0, 1, 2], HULL)
    assert not P.hull_exact([0, 5, 1, 2, 3], HULL)  # an edge point is not a vertex
    assert P.canonical_hull([3, 1, 2]) == [1, 2, 3] and P.canonical_hull([]) == []


def test_area_coverage_by_hand():
    assert P.hull_area_coverage(SQUARE, [0, 1, 2, 3]) == 1.0
    assert P.hull_area_coverage(SQUARE, [1, 2, 3, 0]) == 1.0
    assert P.hull_area_coverage(SQUARE, [0, 1, 2]) == 0.5  # half the square
    assert P.hull_area_coverage(SQUARE, [0, 1, 2, 4]) == 0.5  # a dart (0,0), (2,0), (2,2), (1,1): area 2 of 4
    assert P.hull_area_coverage(SQUARE, [0, 5, 1, 2, 3]) == 1.0  # a collinear edge point: still the whole square
    assert P.hull_area_coverage(SQUARE, [0, 1, 2, 3], hull=HULL) == 1.0


@pytest.mark.parametrize("seq,why", [
    ([0, 1], "fewer than 3 points"),
    ([0, 1, 2, 2], "a repeated point"),
    ([0, 1, 2, 0], "the start repeated"),
    ([0, 1, 6], "out of range"),
    ([0, 3, 2, 1], "clockwise"),
    ([0, 2, 1, 3], "self-intersecting (a bow tie)"),
    ([0, 1, 5], "zero area (collinear)"),
    ([0, 1, 5, 3], "folds back along an edge"),
])
def test_invalid_predictions_score_zero(seq, why):
    assert not P.valid_polygon(SQUARE, seq), why
    assert P.hull_area_coverage(SQUARE, seq) == 0.0, why


def test_valid_polygons():
    assert P.valid_polygon(SQUARE, [0, 1, 2, 3])
    assert P.valid_polygon(SQUARE, [0, 1, 2, 4])  # not convex, but simple and counter-clockwise
    assert P.valid_polygon(SQUARE, [4, 1, 2])


def test_tour_length_by_hand():
    unit = [(0, 0), (1, 0), (1, 1), (0, 1)]
    assert P.tour_length(unit, [0, 1, 2, 3]) == pytest.approx(4.0)
    assert P.tour_length(unit, [2, 3, 0, 1]) == pytest.approx(4.0)
    assert P.tour_length(unit, [0, 2, 1, 3]) == pytest.approx(2 + 2 * math.sqrt(2))
    assert P.tour_length([(0, 0), (3, 4)], [1, 0]) == pytest.approx(10.0)
    for bad in ([0, 1, 2], [0, 1, 2, 2], [0, 1, 2, 3, 0], [0, 1, 2, 4]):
        assert not P.valid_tour(bad, 4)
        with pytest.raises(ValueError, match="not a tour"):
            P.tour_length(unit, bad)


def test_optimality_gap():
    assert P.optimality_gap(2 + 2 * math.sqrt(2), 4.0) == pytest.approx((2 + 2 * math.sqrt(2)) / 4 - 1)
    assert P.optimality_gap(4.0, 4.0) == 0.0
    with pytest.raises(ValueError):
        P.optimality_gap(4.0, 0.0)
