"""Typed config loading: unknown keys and wrong types fail with one line naming the field."""

from dataclasses import dataclass

import pytest
from omegaconf import OmegaConf

from composer_automl.config import ConfigError, choice, to_dataclass
from composer_automl.lightning_module import OptimConfig
from composer_automl.rungs import SearchWidth, load_rung


@dataclass
class Example:
    steps: int = 3
    name: str = "x"


def test_valid_mapping_builds_dataclass_and_runs_post_init():
    """Values are merged over defaults and __post_init__ validation runs."""
    assert to_dataclass(Example, {"steps": 5}, "ex") == Example(steps=5)
    assert to_dataclass(OptimConfig, OmegaConf.create({"lr": 0.5}), "optim").lr == 0.5
    with pytest.raises(ConfigError, match="optim.lr"):
        to_dataclass(OptimConfig, {"lr": -1.0}, "optim")


def test_unknown_key_names_key_and_allowed_fields():
    """An unknown key lists the allowed ones."""
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['stpes'\] in ex; allowed: \['steps', 'name'\]"):
        to_dataclass(Example, {"stpes": 5}, "ex")


def test_wrong_type_names_the_field():
    """A value of the wrong type is reported with its dotted path."""
    with pytest.raises(ConfigError, match=r"^ex\.steps: Value 'many' of type 'str' could not be converted to Integer"):
        to_dataclass(Example, {"steps": "many"}, "ex")
    with pytest.raises(ConfigError, match="must be a mapping"):
        to_dataclass(Example, [1, 2], "ex")


def test_choice_lists_allowed_values():
    """choice() accepts allowed values and names the rest."""
    assert choice("a", ("a", "b"), "method") == "a"
    with pytest.raises(ConfigError, match=r"method='c' is not allowed; choose one of \['a', 'b'\]"):
        choice("c", ("a", "b"), "method")


def test_search_width_validation():
    """Widths whose heads do not divide are rejected."""
    with pytest.raises(ConfigError, match="n_heads=3 must divide d_model=128"):
        SearchWidth(n_heads=3, n_kv_heads=1)


def test_unknown_rung_lists_shipped_rungs():
    """Loading an unknown rung names the shipped ones."""
    with pytest.raises(ConfigError, match="unknown rung 'nope'; fidelity files: .*mad-quick"):
        load_rung("nope")
