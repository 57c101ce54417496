"""Rank agreement between rungs: pure functions of the calibration table.

All comparisons are over patterns, on each rung's *seed mean* loss, unless said
otherwise. The bootstrap resamples patterns with replacement (seeded), so its
interval says how much the figure depends on which patterns were evaluated.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from statistics import fmean, median
from typing import Callable, Iterable, Sequence

import numpy as np
from scipy import stats

from composer_automl.table import Row, ok_rows

Statistic = Callable[[Sequence[float], Sequence[float]], float]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get average ranks); NaN when either side is constant."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b; NaN when either side is constant."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


def losses_by_seed(rows: Iterable[Row], rung: str) -> dict[int, dict[str, float]]:
    """seed → pattern → loss of the successful rows of ``rung``."""
    out: dict[int, dict[str, float]] = defaultdict(dict)
    for r in ok_rows(rows):
        if r.rung == rung:
            out[r.seed][r.pattern] = float(r.loss)
    return dict(out)


def seed_means(rows: Iterable[Row], rung: str, metric: str | None = None) -> dict[str, float]:
    """pattern → mean loss (or ``metrics[metric]``) over its successful seeds at ``rung``."""
    per_pattern: dict[str, list[float]] = defaultdict(list)
    for r in ok_rows(rows):
        value = r.loss if metric is None else r.metrics.get(metric)
        if r.rung == rung and value is not None:
            per_pattern[r.pattern].append(float(value))
    return {p: fmean(v) for p, v in sorted(per_pattern.items())}


HIGHER_IS_BETTER = ("/acc", "mad_score", "val_acc", "tokens_per_s")
"""Metric names (suffixes) where a larger value is better; their sign is flipped when ranked."""
DIAGNOSTIC_METRICS = ("/acc", "/loss", "mad_score", "mad_loss", "train_loss", "val_loss", "n_params")
"""Metric names (suffixes) whose agreement with the reference the report lists per rung."""


def metric_agreement(rows: Sequence[Row], rung: str, reference: str) -> dict[str, float]:
    """Spearman of each diagnostic metric of ``rung`` (seed means; accuracies negated, so that a positive
    value means "ranks like the reference's loss") against the reference's loss."""
    names = sorted({k for r in ok_rows(rows) if r.rung == rung for k in r.metrics
                    if k.endswith(DIAGNOSTIC_METRICS)})
    ref = seed_means(rows, reference)
    out = {}
    for name in names:
        sign = -1.0 if name.endswith(HIGHER_IS_BETTER) else 1.0
        _, x, y = paired(seed_means(rows, rung, name), ref)
        out[name] = spearman(sign * x, y)
    return out


def paired(a: dict[str, float], b: dict[str, float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Patterns present in both mappings (sorted) and their two value arrays."""
    common = sorted(set(a) & set(b))
    return common, np.array([a[p] for p in common]), np.array([b[p] for p in common])


def noise_ceiling(rows: Iterable[Row], rung: str) -> float:
    """Mean Spearman between the losses of two seeds, over every pair of seeds (NaN with < 2 seeds).

    How well one seed of the rung ranks like another: the agreement no other rung can
    exceed against a single seed of it. Seed means are less noisy than this.
    """
    by_seed = losses_by_seed(rows, rung)
    values = []
    for s1, s2 in itertools.combinations(sorted(by_seed), 2):
        _, x, y = paired(by_seed[s1], by_seed[s2])
        values.append(spearman(x, y))
    values = [v for v in values if not math.isnan(v)]
    return fmean(values) if values else math.nan


def bootstrap_interval(x: np.ndarray, y: np.ndarray, statistic: Statistic, n_boot: int = 2000,
                       seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(x, y)``, resampling the pairs (patterns)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    if n < 3:
        return (math.nan, math.nan)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        value = statistic(x[idx], y[idx])
        if not math.isnan(value):
            draws.append(value)
    if not draws:
        return (math.nan, math.nan)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return float(lo), float(hi)


def top_overlap(a: dict[str, float], b: dict[str, float], fraction: float = 0.1) -> float:
    """Share of ``b``'s best ``ceil(fraction·n)`` patterns (lowest loss) that are also among ``a``'s."""
    common, x, y = paired(a, b)
    if not common:
        return math.nan
    k = max(1, math.ceil(fraction * len(common)))
    top_a = {common[i] for i in np.argsort(x, kind="stable")[:k]}
    top_b = {common[i] for i in np.argsort(y, kind="stable")[:k]}
    return len(top_a & top_b) / k


def median_cost(rows: Iterable[Row], rung: str, field: str = "wall_time_s") -> float:
    """Median ``field`` (wall or CPU seconds) of the successful evaluations of ``rung``."""
    values = [getattr(r, field) for r in ok_rows(rows) if r.rung == rung]
    return float(median(values)) if values else math.nan


def agreement(rows: Sequence[Row], rung: str, reference: str, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Spearman and Kendall of ``rung`` against ``reference`` (seed means) with bootstrap intervals."""
    names, x, y = paired(seed_means(rows, rung), seed_means(rows, reference))
    rho_lo, rho_hi = bootstrap_interval(x, y, spearman, n_boot, seed)
    tau_lo, tau_hi = bootstrap_interval(x, y, kendall, n_boot, seed)
    return {
        "n_patterns": len(names),
        "spearman": spearman(x, y),
        "spearman_lo": rho_lo,
        "spearman_hi": rho_hi,
        "kendall": kendall(x, y),
        "kendall_lo": tau_lo,
        "kendall_hi": tau_hi,
        "top10_overlap": top_overlap(seed_means(rows, rung), seed_means(rows, reference)),
    }
