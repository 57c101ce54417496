"""Pareto fronts of minimised objectives: the non-dominated set, its hypervolume and its knee.

Pure functions over tuples of floats (every objective is minimised). Used by the
efficiency-aware search: quality (loss at the top budget) against the target-scale cost
ratios of a pattern (KV cache, FLOPs per token).
"""

from __future__ import annotations

import math
from typing import Sequence

Point = Sequence[float]


def dominates(a: Point, b: Point) -> bool:
    """``a`` is no worse than ``b`` in every objective and better in at least one."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def non_dominated(points: Sequence[Point]) -> list[int]:
    """Indices of the points no other point dominates (duplicates are all kept), in input order."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]


def hypervolume(points: Sequence[Point], reference: Point) -> float:
    """Volume dominated by ``points`` and bounded by ``reference`` (exact; any number of objectives).

    Points not strictly better than the reference in every objective add nothing.
    Recursive slicing over the last objective: fine for the few dozen points of a front.
    """
    inside = [tuple(p) for p in points if all(x < r for x, r in zip(p, reference))]
    if not inside:
        return 0.0
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in inside)
    front = [inside[i] for i in non_dominated(inside)]
    levels = sorted({p[-1] for p in front}) + [reference[-1]]
    volume = 0.0
    for low, high in zip(levels, levels[1:]):
        slab = [p[:-1] for p in front if p[-1] <= low]
        volume += (high - low) * hypervolume(slab, reference[:-1])
    return volume


def knee(points: Sequence[Point]) -> int:
    """Index of the knee of a front: the point nearest the ideal point once each objective is
    scaled to [0, 1] over the points (the best balance; ties go to the first)."""
    if not points:
        raise ValueError("knee of an empty front")
    dims = range(len(points[0]))
    lo = [min(p[d] for p in points) for d in dims]
    hi = [max(p[d] for p in points) for d in dims]

    def distance(p: Point) -> float:
        return math.sqrt(sum(((p[d] - lo[d]) / (hi[d] - lo[d]) if hi[d] > lo[d] else 0.0) ** 2 for d in dims))

    return min(range(len(points)), key=lambda i: (distance(points[i]), i))
