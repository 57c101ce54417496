"""Pareto fronts on hand-made sets: dominance, hypervolume, knee."""

from __future__ import annotations

import itertools
import random

import pytest

from composer_automl.pareto import dominates, hypervolume, knee, non_dominated


def test_non_dominated_keeps_the_front_and_never_a_dominated_point():
    """(1,3), (2,2), (3,1) form the front; (2,3) and (3,3) are dominated; a duplicate front point stays."""
    points = [(2, 3), (1, 3), (2, 2), (3, 1), (3, 3), (2, 2)]
    assert non_dominated(points) == [1, 2, 3, 5]
    rng = random.Random(0)
    cloud = [(rng.random(), rng.random(), rng.random()) for _ in range(60)]
    front = non_dominated(cloud)
    for i in front:
        assert not any(dominates(cloud[j], cloud[i]) for j in range(60))
    for i in set(range(60)) - set(front):
        assert any(dominates(cloud[j], cloud[i]) for j in front)


def test_hypervolume_against_hand_computation():
    """2-D staircase: (1,3), (2,2), (3,1) within reference (4,4) cover 3 + 2 + 1 = 6; 3-D unit cubes add up."""
    assert hypervolume([(1, 3), (2, 2), (3, 1)], (4, 4)) == pytest.approx(6.0)
    assert hypervolume([(1, 3), (2, 2), (3, 1), (3, 3)], (4, 4)) == pytest.approx(6.0)  # dominated adds nothing
    assert hypervolume([(5, 0)], (4, 4)) == 0.0  # outside the reference box
    assert hypervolume([(0, 0, 0)], (1, 2, 3)) == pytest.approx(6.0)
    # two boxes [0,2]x[0,1]x[0,1] and [0,1]x[0,2]x[0,1] overlap in a unit cube: 2 + 2 − 1
    assert hypervolume([(0, 1, 0), (1, 0, 0)], (2, 2, 1)) == pytest.approx(3.0)


def test_hypervolume_matches_a_grid_count():
    """On integer points the exact volume equals counting the dominated unit cells."""
    rng = random.Random(1)
    points = [(rng.randint(0, 5), rng.randint(0, 5), rng.randint(0, 5)) for _ in range(12)]
    ref = (6, 6, 6)
    cells = sum(any(all(p[d] <= c[d] for d in range(3)) for p in points)
                for c in itertools.product(range(6), repeat=3))
    assert hypervolume(points, ref) == pytest.approx(cells)


def test_knee_is_the_balanced_point():
    """On a convex front the middle point is nearest the ideal once objectives are scaled."""
    assert knee([(0, 10), (1, 2), (10, 0)]) == 1
    assert knee([(5, 5)]) == 0
    with pytest.raises(ValueError):
        knee([])
