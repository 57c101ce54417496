"""Candidates at one budget and the choice of the top set (top-k or best K-means cluster).

Lower loss is better. A pattern evaluated several times at the chosen budget
(two hpbandster configs can map to one pattern) becomes one candidate with the
mean of its losses. Candidates are ranked by (loss, pattern string), so equal
losses have a fixed order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

from composer_automl.config import ConfigError
from composer_automl.efficiency import COST_NAMES
from composer_automl.pareto import knee, non_dominated
from composer_automl.patterns import Pattern
from composer_automl.search.results import TrialRecord


@dataclass(frozen=True)
class Candidate:
    """One distinct pattern evaluated at the aggregation budget."""

    pattern: Pattern
    """The evaluated pattern."""
    loss: float
    """Mean loss of its ok trials at this budget (lower is better)."""
    trial_ids: tuple[str, ...]
    """The trials that were averaged."""
    cost: dict[str, float] | None = None
    """Target-scale cost ratios the search recorded for the pattern (None for searches that did not)."""


def check_lengths(records: Sequence[TrialRecord], length: int | None) -> list[TrialRecord]:
    """Keep records of pattern length ``length``; with None, fail if the results mix lengths."""
    n_layers = [len(Pattern.parse(r.pattern)) for r in records]  # the log may hold either spelling
    lengths = Counter(n_layers)
    if length is not None:
        kept = [r for r, n in zip(records, n_layers) if n == length]
        if not kept:
            raise ConfigError(f"length={length} matches no trial; pattern lengths present: {dict(sorted(lengths.items()))}")
        return kept
    if len(lengths) > 1:
        raise ConfigError(
            f"the results mix pattern lengths {dict(sorted(lengths.items()))} (layers: trials); "
            f"aggregation votes layer by layer over equal-length (one-shot) patterns: "
            f"pass length=<one of {sorted(lengths)}>"
        )
    return list(records)


def candidates_by_budget(records: Sequence[TrialRecord]) -> dict[float, list[Candidate]]:
    """Budget → its candidates ranked best first (mean loss per distinct pattern)."""
    groups: dict[float, dict[str, list[TrialRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        groups[float(r.budget)][str(Pattern.parse(r.pattern))].append(r)
    out = {}
    for budget, by_pattern in groups.items():
        cands = [
            Candidate(Pattern.parse(p), sum(r.loss for r in rs) / len(rs), tuple(r.trial_id for r in rs),
                      rs[0].cost or None)
            for p, rs in by_pattern.items()
        ]
        out[budget] = sorted(cands, key=lambda c: (c.loss, str(c.pattern)))
    return out


def choose_budget(by_budget: dict[float, list[Candidate]], needed: int, budget: float | None) -> float:
    """The given ``budget``, or the highest one with at least ``needed`` distinct patterns."""
    counts = {b: len(c) for b, c in sorted(by_budget.items())}
    if budget is not None:
        if float(budget) not in by_budget:
            raise ConfigError(f"budget={budget} has no ok trials; budgets present (budget: patterns): {counts}")
        if counts[float(budget)] < needed:
            raise ConfigError(
                f"budget={budget} has {counts[float(budget)]} distinct patterns, fewer than the {needed} "
                f"needed (min_trials / top); budgets present (budget: patterns): {counts}"
            )
        return float(budget)
    enough = [b for b, n in counts.items() if n >= needed]
    if not enough:
        raise ConfigError(
            f"no budget has {needed} distinct patterns (needed by min_trials / top); the most is "
            f"{max(counts.values())} (budget: patterns {counts}); lower top or min_trials"
        )
    return max(enough)


def kmeans_1d(values: Sequence[float], k: int) -> list[int]:
    """Optimal 1-D K-means (least within-cluster squared error) by dynamic programming.

    Returns one label per value; labels 0..k-1 number the clusters from the smallest
    values up. In 1-D the optimal clusters are contiguous in sorted order, so an exact
    O(k·n²) DP replaces Lloyd's randomly initialised iterations (deterministic, no seed).
    Ties between equally good splits go to the earliest split point.
    """
    n = len(values)
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be between 1 and the number of values ({n})")
    order = sorted(range(n), key=lambda i: (values[i], i))
    xs = [float(values[i]) for i in order]
    s1, s2 = [0.0], [0.0]  # prefix sums of x and x²
    for x in xs:
        s1.append(s1[-1] + x)
        s2.append(s2[-1] + x * x)

    def sse(i: int, j: int) -> float:  # squared error of xs[i:j] around its mean
        total = s1[j] - s1[i]
        return max(0.0, (s2[j] - s2[i]) - total * total / (j - i))

    inf = float("inf")
    cost = [[inf] * (n + 1) for _ in range(k + 1)]  # cost[c][j]: best for xs[:j] in c clusters
    split = [[0] * (n + 1) for _ in range(k + 1)]
    cost[0][0] = 0.0
    for c in range(1, k + 1):
        for j in range(c, n + 1):
            for i in range(c - 1, j):
                value = cost[c - 1][i] + sse(i, j)
                if value < cost[c][j] - 1e-12:
                    cost[c][j], split[c][j] = value, i
    labels = [0] * n
    j = n
    for c in range(k, 0, -1):
        i = split[c][j]
        for pos in range(i, j):
            labels[order[pos]] = c - 1
        j = i
    return labels


def select_topk(candidates: Sequence[Candidate], top: int, clusters: int) -> list[Candidate]:
    """The ``top`` best candidates."""
    return list(candidates[:top])


def select_best_cluster(candidates: Sequence[Candidate], top: int, clusters: int) -> list[Candidate]:
    """Composer's rule: K-means over the losses (``clusters`` groups), keep the lowest-loss cluster.

    With fewer distinct losses than ``clusters``, k is the number of distinct losses.
    """
    losses = [c.loss for c in candidates]
    k = min(clusters, len(set(losses)))
    labels = kmeans_1d(losses, k)
    return [c for c, label in zip(candidates, labels) if label == 0]


def _objectives(candidates: Sequence[Candidate]) -> list[tuple[float, ...]]:
    """(loss, KV-cache ratio, FLOPs ratio) of each candidate; a ConfigError if the search recorded no costs."""
    if any(c.cost is None for c in candidates):
        raise ConfigError("select=pareto/knee needs the target-scale costs a search records per trial "
                          "(search.target); this run's trials have none: use select=topk or cluster")
    return [(c.loss, *(c.cost[n] for n in COST_NAMES)) for c in candidates]


def select_pareto(candidates: Sequence[Candidate], top: int, clusters: int) -> list[Candidate]:
    """The non-dominated candidates in (loss, KV-cache ratio, FLOPs ratio), best loss first."""
    return [candidates[i] for i in non_dominated(_objectives(candidates))]


def select_knee(candidates: Sequence[Candidate], top: int, clusters: int) -> list[Candidate]:
    """The knee of the Pareto front alone (nearest the ideal point, objectives scaled to [0, 1])."""
    front = select_pareto(candidates, top, clusters)
    return [front[knee(_objectives(front))]]


SELECTORS: dict[str, Callable[[Sequence[Candidate], int, int], list[Candidate]]] = {
    "topk": select_topk,
    "cluster": select_best_cluster,
    "pareto": select_pareto,
    "knee": select_knee,
}
"""Top-set rule name → function (ranked candidates, top, clusters) → members, best first."""
