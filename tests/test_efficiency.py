"""Target-scale cost of patterns, cost constraints and ParEGO's scalarization."""

from __future__ import annotations

import numpy as np
import pytest

from composer_automl.config import ConfigError
from composer_automl.efficiency import (Constraints, Scalarizer, bracket_weights, target_cost, tchebycheff)
from composer_automl.extrapolate.fit import cost_report, fit_depth
from composer_automl.patterns import Pattern


def test_target_cost_is_the_extrapolated_specs_cost_next_to_its_baseline():
    """Ratios equal extrapolate's cost report at the same sequence length; MLP-only patterns hold no KV cache."""
    cost = target_cost("AMMAMM", "1B", "stack")
    report = cost_report(fit_depth(Pattern.parse("AMMAMM"), "1B", "stack"), 2048)
    assert cost.kv_cache_ratio == pytest.approx(report["ratios"]["kv_cache_bytes"])
    assert cost.flops_ratio == pytest.approx(report["ratios"]["flops_per_token"])
    assert cost.params_ratio == pytest.approx(report["ratios"]["params"])
    assert cost.n_layers == report["n_layers"] and cost.kv_cache_bytes == report["kv_cache_bytes"]
    assert target_cost("MMMMMM").kv_cache_ratio == 0.0
    assert target_cost("AAAAAA").kv_cache_ratio > target_cost("AMMMMM").kv_cache_ratio > 0
    assert target_cost("1A+5M") is target_cost("AMMMMM")  # cached on the compact spelling


def test_constraints_bound_the_ratios_and_reject_bad_values():
    cheap, dense = target_cost("AMMMMM"), target_cost("AAAAAA")
    bounds = Constraints(kv_cache_ratio_max=0.5)
    assert bounds.active and bounds.violation(cheap) is None
    assert "kv_cache_ratio" in bounds.violation(dense)
    assert "params_ratio" in Constraints(params_ratio_max=0.9).violation(cheap)
    assert not Constraints().active and Constraints().violation(dense) is None
    with pytest.raises(ConfigError, match="^kv_cache_ratio_max=-1 must be a positive number or null$"):
        Constraints(kv_cache_ratio_max=-1)
    with pytest.raises(ConfigError, match="^params_ratio_min=1.1 must be <= params_ratio_max=0.9$"):
        Constraints(params_ratio_min=1.1, params_ratio_max=0.9)


def test_bracket_weights_are_seeded_points_of_the_simplex():
    w = bracket_weights(0, 3)
    assert w.shape == (3,) and w.sum() == pytest.approx(1.0) and (w > 0).all()
    assert np.array_equal(w, bracket_weights(0, 3)) and not np.array_equal(w, bracket_weights(0, 4))


def test_scalarizer_normalises_each_objective_per_budget_then_applies_tchebycheff():
    """Min-max over results seen at the same budget: the first result scores 0, later ones by hand."""
    scalarize = Scalarizer(seed=0)
    assert scalarize(1.0, 0, [2.0, 1.0, 1.0]) == 0.0
    assert scalarize(3.0, 0, [9.0, 9.0, 9.0]) == 0.0  # another budget: its own ranges
    value = scalarize(1.0, 1, [1.0, 0.5, 2.0])  # ranges now loss [1, 2], kv [0.5, 1], flops [1, 2]
    w = bracket_weights(0, 1)
    assert value == pytest.approx(tchebycheff(np.array([0.0, 0.0, 1.0]), w))
    assert value == pytest.approx(w[2] + 0.05 * w[2])
