"""Rank-agreement statistics against hand computations on small tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from composer_automl.calibrate import stats
from composer_automl.table import Row


def row(pattern: str, rung: str, seed: int, loss: float | None, wall: float = 1.0, status: str = "ok") -> Row:
    return Row(pattern=pattern, rung=rung, seed=seed, status=status, loss=loss, wall_time_s=wall, cpu_time_s=wall / 2)


# four patterns; rung "ref" orders them a < b < c < d; on seed means "cheap" ties b and d (0.5) and puts c last
# (losses are exact binary fractions so the tie is exact)
ROWS = [
    row("a", "ref", 0, 1.0), row("b", "ref", 0, 2.0), row("c", "ref", 0, 3.0), row("d", "ref", 0, 4.0),
    row("a", "ref", 1, 1.2), row("b", "ref", 1, 2.2), row("c", "ref", 1, 3.2), row("d", "ref", 1, 4.2),
    row("a", "cheap", 0, 0.125, 3), row("b", "cheap", 0, 0.25, 5), row("c", "cheap", 0, 1.0, 4),
    row("d", "cheap", 0, 0.5, 9), row("a", "cheap", 1, 0.125, 3), row("b", "cheap", 1, 0.75, 5),
    row("c", "cheap", 1, 1.0, 4), row("d", "cheap", 1, 0.5, 9),
    row("a", "cheap", 2, None, 1, status="failed"),
]


def test_seed_means_skip_failures():
    """Seed means average the successful rows only."""
    assert stats.seed_means(ROWS, "cheap") == {"a": 0.125, "b": 0.5, "c": 1.0, "d": 0.5}


def test_spearman_and_kendall_against_hand_computation():
    """cheap ranks a=1, b=2.5, c=4, d=2.5 (ties averaged) against ref 1..4."""
    a = stats.agreement(ROWS, "cheap", "ref", n_boot=200)
    # Spearman = Pearson of ranks: x=(1,2.5,4,2.5), y=(1,2,3,4)
    x, y = np.array([1, 2.5, 4, 2.5]), np.array([1, 2, 3, 4])
    assert a["spearman"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    # tau-b: pairs (ab)+ (ac)+ (ad)+ (bc)+ (bd)tie-in-x (cd)−: (4 − 1) / sqrt((6 − 1)·6)
    assert a["kendall"] == pytest.approx(3 / math.sqrt(5 * 6))
    assert a["n_patterns"] == 4 and a["spearman_lo"] <= a["spearman"] <= a["spearman_hi"]


def test_noise_ceiling_is_the_mean_spearman_between_seeds():
    """ref's two seeds agree perfectly; cheap's seeds 0 and 1 are compared on their shared patterns."""
    assert stats.noise_ceiling(ROWS, "ref") == pytest.approx(1.0)
    s0, s1 = [0.125, 0.25, 1.0, 0.5], [0.125, 0.75, 1.0, 0.5]  # ranks 1,2,4,3 vs 1,3,4,2
    assert stats.noise_ceiling(ROWS, "cheap") == pytest.approx(1 - 6 * (0 + 1 + 0 + 1) / (4 * 15))
    assert stats.noise_ceiling(ROWS, "cheap") == pytest.approx(stats.spearman(s0, s1))
    assert math.isnan(stats.noise_ceiling([row("a", "one", 0, 1.0), row("b", "one", 0, 2.0)], "one"))  # one seed


def test_top_overlap_and_median_cost():
    """Top-k overlap with k = ceil(10% · n) = 1: both rungs put a first; median cost per evaluation."""
    means = stats.seed_means(ROWS, "cheap"), stats.seed_means(ROWS, "ref")
    assert stats.top_overlap(*means) == 1.0
    assert stats.top_overlap({"a": 2.0, "b": 1.0}, {"a": 1.0, "b": 2.0}, fraction=0.5) == 0.0
    assert stats.median_cost(ROWS, "cheap") == 4.5 and stats.median_cost(ROWS, "cheap", "cpu_time_s") == 2.25


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    """The same seed gives the same interval; a perfectly monotone relation gives [1, 1]."""
    x = np.arange(10.0)
    assert stats.bootstrap_interval(x, x ** 2, stats.spearman, 300, seed=1) == pytest.approx((1.0, 1.0))
    noisy = x + np.array([0, 3, -2, 1, 0, -1, 2, 0, 1, -3])
    first = stats.bootstrap_interval(x, noisy, stats.spearman, 300, seed=1)
    assert first == stats.bootstrap_interval(x, noisy, stats.spearman, 300, seed=1)
    assert first[0] < stats.spearman(x, noisy) < first[1]


def test_metric_agreement_flips_accuracies_and_ranks_metrics_against_the_reference_loss():
    """Per-metric Spearman vs the reference's loss: a loss ordered like the reference gives +1, an accuracy
    ordered the same way (higher is better) also +1 after negation, an anti-ordered loss −1."""
    ref = [row(p, "ref", 0, loss) for p, loss in zip("abcd", (1.0, 2.0, 3.0, 4.0))]
    cheap = [Row(pattern=p, rung="cheap", seed=0, status="ok", loss=0.5, metrics={"recall/loss": loss, "recall/acc": 1 - loss / 10, "bad/loss": -loss,
                                             "wall": 1.0}, wall_time_s=1.0, cpu_time_s=1.0)
             for p, loss in zip("abcd", (1.0, 2.0, 3.0, 4.0))]
    figures = stats.metric_agreement(ref + cheap, "cheap", "ref")
    assert figures == {"bad/loss": pytest.approx(-1.0), "recall/acc": pytest.approx(1.0),
                       "recall/loss": pytest.approx(1.0)}
    assert stats.seed_means(cheap, "cheap", "recall/loss") == {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
