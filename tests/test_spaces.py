"""Search spaces: Configuration ⇄ Pattern for every strategy, constraints, bad input."""

from __future__ import annotations

import itertools
import json

import pytest

from composer_automl.config import ConfigError
from composer_automl.patterns import Pattern, PatternError
from composer_automl.spec import SearchWidth
from composer_automl.spaces import STRATEGIES, load_space, space_from_mapping

SHIPPED = ["one-shot-6", "one-shot-16", "end-incremental", "middle-incremental"]


@pytest.mark.parametrize("name", SHIPPED)
def test_round_trip_on_samples(name):
    """Every sampled configuration maps to a pattern that maps back to the same configuration."""
    space = load_space(name, seed=1)
    for config in space.sample(200):
        pattern = space.to_pattern(config)
        assert len(pattern) == space.n_total
        assert space.to_config(pattern) == config
        assert space.to_pattern(space.to_config(str(pattern))) == pattern


def test_every_strategy_has_a_shipped_preset():
    """Each registered strategy is exercised by at least one shipped search space."""
    assert {load_space(n).config.strategy for n in SHIPPED} == set(STRATEGIES)


def test_one_shot_covers_all_patterns():
    """one-shot over 3 layers reaches all 2^3 patterns, each round-tripping exactly."""
    space = space_from_mapping({"strategy": "one-shot", "n_layers": 3})
    patterns = ["".join(p) for p in itertools.product("AM", repeat=3)]
    assert sorted(str(space.to_pattern(space.to_config(p))) for p in patterns) == sorted(patterns)
    assert len({str(space.to_pattern(c)) for c in space.sample(400)}) == 8


def test_end_incremental_keeps_prefix():
    """end-incremental appends the searched layers after the fixed prefix."""
    space = space_from_mapping({"strategy": "end-incremental", "n_layers": 2, "prefix": "2A+1M"})
    assert space.to_pattern({"layer_00": "M", "layer_01": "A"}) == Pattern.parse("AAMMA")
    with pytest.raises(PatternError, match="fixed layers"):
        space.to_config("MAMMA")


def test_middle_incremental_splits_base():
    """middle-incremental inserts the searched layers at the middle of the base pattern."""
    space = space_from_mapping({"strategy": "middle-incremental", "n_layers": 2, "base": "AAMMMM"})
    assert space.to_pattern({"layer_00": "A", "layer_01": "A"}) == Pattern.parse("AAMAAMMM")
    assert space.to_config("AAMMAMMM")["layer_01"] == "A"


def test_prefix_from_previous_run(tmp_path):
    """prefix_from reads the best pattern of a finished run; an unfinished run is a clear error."""
    with pytest.raises(ConfigError, match="no finished search"):
        space_from_mapping({"strategy": "end-incremental", "prefix_from": str(tmp_path)})
    (tmp_path / "summary.json").write_text(json.dumps({"best_pattern": "AMMAMM"}))
    space = space_from_mapping({"strategy": "end-incremental", "n_layers": 2, "prefix_from": str(tmp_path)})
    assert space.head == tuple("AMMAMM")
    assert space.resolved_mapping()["prefix"] == "AMMAMM"


def test_constraints_hold_on_thousands_of_samples():
    """Attention-fraction bounds (rejection) and a required first layer (forbidden clause) always hold."""
    space = space_from_mapping({"strategy": "one-shot", "n_layers": 8, "first_layer": "A",
                                "min_attention_fraction": 0.25, "max_attention_fraction": 0.5}, seed=3)
    samples = space.sample(3000)
    for config in samples:
        pattern = space.to_pattern(config)
        assert pattern.layers[0] == "A"
        assert 0.25 <= pattern.attention_fraction <= 0.5
    assert all(c["layer_00"] == "A" for c in space.configspace.sample_configuration(1000))
    assert len({str(space.to_pattern(c)) for c in samples}) > 30


def test_constraints_count_fixed_layers():
    """Fractions are measured on the full pattern, prefix included."""
    space = space_from_mapping({"strategy": "end-incremental", "n_layers": 4, "prefix": "AAAA",
                                "max_attention_fraction": 0.5})
    assert all(space.to_pattern(c) == Pattern.parse("AAAAMMMM") for c in space.sample(50))


def test_width_hyperparameters():
    """Searched widths appear in the configuration and in the SearchWidth handed to rungs."""
    space = space_from_mapping({"strategy": "one-shot", "n_layers": 2, "width": {"d_model": [64, 128]},
                                "fixed_width": {"ffn_hidden": 96}})
    widths = {space.width(c).d_model for c in space.sample(100)}
    assert widths == {64, 128}
    config = space.to_config("AM", SearchWidth(d_model=64, ffn_hidden=96))
    assert space.width(config) == SearchWidth(d_model=64, ffn_hidden=96)


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"strategy": "zig-zag"}, "^search_space.strategy='zig-zag' is not allowed"),
        ({"n_layers": 0}, "^search_space.n_layers must be >= 1, got 0$"),
        ({"primitives": ["A", "X"]}, "^search_space.primitives='X' is not allowed"),
        ({"min_attention_fraction": 0.8, "max_attention_fraction": 0.2}, "^search_space.min_attention_fraction=0.8: need"),
        ({"n_layers": 3, "min_attention_fraction": 0.4, "max_attention_fraction": 0.6},
         r"^search_space.min_attention_fraction: no 3-layer pattern meets attention fraction \[0.4, 0.6\]"),
        ({"strategy": "end-incremental"}, r"^search_space.prefix \(or prefix_from\) is required for this strategy$"),
        ({"strategy": "end-incremental", "prefix": "AXM"}, "^search_space.prefix: unknown layer kind"),
        ({"strategy": "end-incremental", "prefix": "MA", "first_layer": "A"}, "^search_space.first_layer='A' contradicts"),
        ({"width": {"d_model": [30]}}, r"^search_space.width=\{'d_model': 30\} gives no valid model width: n_heads=4 must divide"),
        ({"width": {"depth": [3]}}, "^search_space.width='depth' is not allowed"),
        ({"colour": "red"}, r"^search_space.colour is an unknown key; allowed: \['base', "),
    ],
)
def test_bad_space_is_one_clear_error(mapping, message):
    """Invalid search spaces raise one ConfigError naming the key as typed (``search_space.<key>``)."""
    with pytest.raises(ConfigError, match=message):
        space_from_mapping(mapping)
