"""Candidates per budget, budget choice, top-k and best-cluster selection."""

from __future__ import annotations

import pytest

from composer_automl.aggregate.select import (
    candidates_by_budget, check_lengths, choose_budget, kmeans_1d, select_best_cluster, select_topk,
)
from composer_automl.config import ConfigError
from composer_automl.search.results import TrialRecord


def rec(pattern, budget, loss, i=[0]):
    i[0] += 1
    return TrialRecord(trial_id=f"t{i[0]}", pattern=pattern, budget=budget, rung="sim", status="ok", loss=loss)


def test_duplicates_are_averaged_and_ranked():
    """One pattern seen twice at a budget becomes one candidate with the mean loss; ranking is by loss then name."""
    by = candidates_by_budget([rec("AAMM", 1, 0.5), rec("AAMM", 1, 0.3), rec("MMAA", 1, 0.4), rec("AMAM", 1, 0.4)])
    cands = by[1.0]
    assert [str(c.pattern) for c in cands] == ["AAMM", "AMAM", "MMAA"]  # all 0.4: name order
    assert cands[0].loss == pytest.approx(0.4) and len(cands[0].trial_ids) == 2


def test_highest_budget_with_enough_patterns():
    """The highest budget with >= needed distinct patterns wins; an explicit budget is checked."""
    rows = [rec(p, 1, 0.1 * i) for i, p in enumerate(["AM", "MA", "AA", "MM"])]
    rows += [rec(p, 3, 0.1 * i) for i, p in enumerate(["AM", "MA", "AA"])]
    rows += [rec("AM", 9, 0.1)]
    by = candidates_by_budget(rows)
    assert choose_budget(by, 3, None) == 3.0
    assert choose_budget(by, 4, None) == 1.0
    assert choose_budget(by, 1, None) == 9.0
    assert choose_budget(by, 2, 1.0) == 1.0
    with pytest.raises(ConfigError, match="budget=9.0 has 1 distinct patterns, fewer than the 2"):
        choose_budget(by, 2, 9.0)
    with pytest.raises(ConfigError, match="budget=5 has no ok trials"):
        choose_budget(by, 2, 5)
    with pytest.raises(ConfigError, match="no budget has 5 distinct patterns.*the most is 4"):
        choose_budget(by, 5, None)


def test_mixed_lengths_are_refused_or_filtered():
    """Mixed pattern lengths are one clear error unless length= picks one."""
    rows = [rec("AMAM", 1, 0.1), rec("AMAMAM", 1, 0.2), rec("AAMM", 1, 0.3)]
    with pytest.raises(ConfigError, match=r"mix pattern lengths \{4: 2, 6: 1\}.*length=<one of \[4, 6\]>"):
        check_lengths(rows, None)
    assert [r.pattern for r in check_lengths(rows, 4)] == ["AMAM", "AAMM"]
    assert len(check_lengths([rec("2A+4M", 1, 0.1), rec("AMAMAM", 1, 0.2)], None)) == 2  # both 6 layers
    with pytest.raises(ConfigError, match="length=5 matches no trial"):
        check_lengths(rows, 5)


def test_kmeans_1d_is_optimal_and_ordered():
    """1-D K-means finds the obvious groups; label 0 is the lowest-valued cluster."""
    values = [0.90, 0.10, 0.52, 0.11, 1.00, 0.50, 0.12]
    assert kmeans_1d(values, 3) == [2, 0, 1, 0, 2, 1, 0]
    assert kmeans_1d(values, 1) == [0] * 7
    assert kmeans_1d(values, 7) == [5, 0, 4, 1, 6, 3, 2]
    with pytest.raises(ValueError):
        kmeans_1d(values, 8)


def test_kmeans_1d_beats_every_contiguous_split():
    """The DP's split has the least squared error of all two-cluster contiguous splits (brute force)."""
    import random

    rng = random.Random(0)
    values = sorted(rng.random() for _ in range(12))

    def sse(group):
        mean = sum(group) / len(group)
        return sum((v - mean) ** 2 for v in group)

    labels = kmeans_1d(values, 2)
    k = labels.count(0)
    best = min(range(1, 12), key=lambda i: sse(values[:i]) + sse(values[i:]))
    assert k == best


def test_topk_and_cluster_selection():
    """top-k keeps the k best; the cluster rule keeps exactly the low-loss group."""
    rows = [rec(p, 1, loss) for p, loss in [
        ("AAMM", 0.30), ("AMAM", 0.31), ("AMMA", 0.32),  # good cluster
        ("MAAM", 0.60), ("MAMA", 0.62), ("MMAA", 0.90), ("AAAA", 0.95), ("MMMM", 1.5),
    ]]
    cands = candidates_by_budget(rows)[1.0]
    assert [str(c.pattern) for c in select_topk(cands, 2, 5)] == ["AAMM", "AMAM"]
    assert [str(c.pattern) for c in select_best_cluster(cands, 0, 3)] == ["AAMM", "AMAM", "AMMA"]
    # more clusters than distinct losses: every pattern is its own cluster → the single best
    few = candidates_by_budget([rec("AM", 1, 0.2), rec("MA", 1, 0.4)])[1.0]
    assert [str(c.pattern) for c in select_best_cluster(few, 0, 5)] == ["AM"]


def test_pareto_and_knee_selection_over_loss_and_target_scale_costs():
    """The front keeps every pattern no other beats on loss, KV cache and FLOPs at once; the knee is one member."""
    from composer_automl.aggregate.select import select_knee, select_pareto
    from composer_automl.efficiency import target_cost

    losses = {"AAAAAA": 1.30, "AMMAAM": 1.31, "AAMAAM": 1.35, "AMMMMM": 1.40, "MMMMMM": 1.80, "AAAAMM": 1.50}
    rows = [TrialRecord(trial_id=f"c{i}", pattern=p, budget=3, rung="sim", status="ok", loss=loss, cost=target_cost(p).as_dict())
            for i, (p, loss) in enumerate(losses.items())]
    cands = candidates_by_budget(rows)[3.0]
    front = [str(c.pattern) for c in select_pareto(cands, 0, 0)]
    # AAAAMM: more loss than AMMAAM and more KV cache and FLOPs; AAMAAM: worse than AMMAAM in all three
    assert front == ["AAAAAA", "AMMAAM", "AMMMMM", "MMMMMM"]
    [knee] = select_knee(cands, 0, 0)
    assert str(knee.pattern) in front
    no_costs = candidates_by_budget([rec("AM", 1, 0.2), rec("MA", 1, 0.4)])[1.0]
    with pytest.raises(ConfigError, match="select=pareto/knee needs the target-scale costs"):
        select_pareto(no_costs, 0, 0)
