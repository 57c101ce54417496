"""Stacking and stretching: pure functions from a small pattern to one of a given depth.

Both follow the Composer paper. *Stretching* splits the pattern into runs of one
kind (p_g, h_g) and scales each run to ⌈s·h_g⌉ layers with s = depth / m.
*Stacking* repeats the whole m-layer block ⌊depth/m⌋ times and fills the
remaining depth mod m layers with the block stretched (shrunk) to that length.

The ceilings can add up to more than ``depth``; :func:`scale_runs` then removes
the excess one layer at a time so that every result has exactly ``depth`` layers.
"""

from __future__ import annotations

from typing import Callable

from composer_automl.patterns import Pattern, PatternError


def scale_runs(pattern: Pattern, depth: int) -> Pattern:
    """Scale every run (p_g, h_g) of ``pattern`` to about s·h_g layers, s = depth/m; exactly ``depth`` layers.

    Each run first gets ⌈s·h_g⌉ layers (the paper's rule). While the total exceeds
    ``depth``, one layer is taken from the run whose length most exceeds s·h_g
    (ties: the later run, so the opening of the pattern, where the paper finds
    attention, stays intact). A run keeps at least one layer whenever ``depth`` is
    at least the number of runs; below that (a short stacking tail) runs may vanish.
    """
    pattern = Pattern.parse(pattern)
    if depth < 1:
        raise PatternError(f"cannot scale {pattern.run_length()} to depth {depth}; depth must be >= 1")
    m, runs = len(pattern), pattern.runs()
    lengths = [-(-depth * h // m) for _, h in runs]  # ⌈depth·h/m⌉ in integers
    floor = 1 if depth >= len(runs) else 0
    while sum(lengths) > depth:
        # overshoot of run g in units of 1/m: lengths[g]·m − depth·h_g (exact integers)
        g = max(
            (g for g in range(len(runs)) if lengths[g] > floor),
            key=lambda g: (lengths[g] * m - depth * runs[g][1], g),
        )
        lengths[g] -= 1
    return Pattern(tuple(kind for (kind, _), n in zip(runs, lengths) for _ in range(n)))


def stretch(pattern: Pattern, depth: int) -> Pattern:
    """Stretch ``pattern`` to ``depth`` >= len(pattern) layers by scaling its runs (see :func:`scale_runs`)."""
    pattern = Pattern.parse(pattern)
    _check_not_smaller(pattern, depth)
    return scale_runs(pattern, depth)


def stack(pattern: Pattern, depth: int) -> Pattern:
    """Repeat ``pattern`` ⌊depth/m⌋ times, then a tail of ``pattern`` shrunk to depth mod m layers."""
    pattern = Pattern.parse(pattern)
    _check_not_smaller(pattern, depth)
    repeats, rest = divmod(depth, len(pattern))
    out = pattern * repeats
    return out + scale_runs(pattern, rest) if rest else out


def _check_not_smaller(pattern: Pattern, depth: int) -> None:
    if depth < len(pattern):
        raise PatternError(
            f"target depth {depth} is smaller than the pattern {pattern.run_length()} "
            f"({len(pattern)} layers); extrapolation only grows a pattern"
        )


STRATEGIES: dict[str, Callable[[Pattern, int], Pattern]] = {"stack": stack, "stretch": stretch}
"""Extrapolation method name → function (pattern, depth) → pattern of that depth."""
