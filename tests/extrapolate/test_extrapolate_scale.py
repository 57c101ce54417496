"""Stacking and stretching of the paper's patterns (pure functions)."""

from __future__ import annotations

import pytest

from composer_automl.extrapolate.scale import STRATEGIES, scale_runs, stack, stretch
from composer_automl.patterns import Pattern, PatternError

SIX = Pattern.parse("2A+4M")
SIXTEEN = Pattern.parse("2A+5M+2A+3M+1A+3M")


@pytest.mark.parametrize("depth", range(16, 65))
@pytest.mark.parametrize("method", sorted(STRATEGIES))
def test_every_depth_is_exact(method, depth):
    """Both strategies return exactly the requested number of layers, for every depth."""
    assert len(STRATEGIES[method](SIXTEEN, depth)) == depth
    assert len(STRATEGIES[method](SIX, depth)) == depth


def test_stack_repeats_block_and_stretches_tail():
    """2A+4M stacked to 26 layers is four copies of the block and a 2-layer tail AM."""
    out = stack(SIX, 26)
    assert out[:24] == SIX * 4
    assert str(out[24:]) == "AM"
    assert out.run_length() == "2A+4M+2A+4M+2A+4M+2A+4M+1A+1M"


def test_stack_multiple_keeps_ratio_exactly():
    """At a multiple of the block length stacking keeps the 1:2 attention:MLP ratio exactly."""
    for copies in (1, 4, 8):
        out = stack(SIX, 6 * copies)
        assert out == SIX * copies
        assert out.counts() == {"A": 2 * copies, "M": 4 * copies}


def test_stretch_scales_runs_by_ceiling():
    """Doubling depth doubles every run of the 16-layer pattern; 1.5x gives ⌈1.5·h_g⌉ trimmed to 24."""
    assert stretch(SIXTEEN, 32).runs() == [("A", 4), ("M", 10), ("A", 4), ("M", 6), ("A", 2), ("M", 6)]
    # s = 1.5: ceilings 3,8,3,5,2,5 = 26 > 24; four runs overshoot by 0.5, the two latest are
    # trimmed: the last M run (4.5 → 5 → 4) and the last A run (1.5 → 2 → 1).
    out = stretch(SIXTEEN, 24)
    assert [kind for kind, _ in out.runs()] == ["A", "M", "A", "M", "A", "M"]
    assert out.runs() == [("A", 3), ("M", 8), ("A", 3), ("M", 5), ("A", 1), ("M", 4)]


@pytest.mark.parametrize("depth", [24, 26, 32, 48])
def test_stretch_keeps_run_structure_and_ratio(depth):
    """Stretching keeps the run order and kinds, and the attention fraction stays near 1/3."""
    out = stretch(SIXTEEN, depth)
    assert [k for k, _ in out.runs()] == [k for k, _ in SIXTEEN.runs()]
    assert abs(out.attention_fraction - 1 / 3) < 0.05
    assert out[0] == "A"  # attention stays early


def test_stacked_ratio_near_one_third():
    """Stacking 2A+4M keeps the attention fraction within 1/3 ± 0.02 for depths 24..64."""
    for depth in range(24, 65):
        assert abs(stack(SIX, depth).attention_fraction - 1 / 3) <= 0.02


def test_short_tails_are_deterministic():
    """Shrinking 2A+4M to 1..5 layers gives fixed tails (ties trim the later run)."""
    assert [str(scale_runs(SIX, r)) for r in range(1, 6)] == ["M", "AM", "AMM", "AMMM", "AAMMM"]


@pytest.mark.parametrize("method", sorted(STRATEGIES))
def test_target_smaller_than_pattern_is_an_error(method):
    """A depth below the pattern's own length is refused with a message naming both."""
    with pytest.raises(PatternError, match="smaller than the pattern 2A\\+4M"):
        STRATEGIES[method](SIX, 5)
