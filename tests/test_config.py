"""Typed config loading: unknown keys and wrong types fail with one line naming the field."""

from dataclasses import dataclass, field

import pytest
from omegaconf import OmegaConf

from composer_automl.config import ConfigError, choice, to_dataclass
from composer_automl.optim import OptimConfig
from composer_automl.spec import SearchWidth
from composer_automl.rungs.registry import load_rung


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
    with pytest.raises(ConfigError, match=r"^ex.stpes is an unknown key; allowed: \['name', 'steps'\]$"):
        to_dataclass(Example, {"stpes": 5}, "ex")
    with pytest.raises(ConfigError, match=r"^inner.stpes is an unknown key \(also unknown: \['zz'\]\); allowed"):
        to_dataclass(Outer, {"inner": {"stpes": 5, "zz": 1}})


@dataclass
class Outer:
    """A root config with a nested section and a list of entries (like train's and a ladder's)."""

    inner: Example = field(default_factory=Example)
    items: list[Example] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.items) > 2:
            raise ConfigError(f"has {len(self.items)} entries; at most 2", key="items")


@dataclass
class Checked:
    steps: int = 3

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"={self.steps} must be >= 1", key="steps")


@dataclass
class Root:
    inner: Checked = field(default_factory=Checked)
    items: list[Checked] = field(default_factory=list)


def test_a_validator_names_its_field_and_the_loader_adds_the_path():
    """Validators name only their field; to_dataclass adds the path the user typed: a section, nested sections,
    list entries (Hydra's ``items.1``), a file."""
    with pytest.raises(ConfigError, match=r"^steps=0 must be >= 1$"):
        Checked(steps=0)
    with pytest.raises(ConfigError, match=r"^inner.steps=0 must be >= 1$"):
        to_dataclass(Root, {"inner": {"steps": 0}})
    with pytest.raises(ConfigError, match=r"^sec.inner.steps=0 must be >= 1$"):
        to_dataclass(Root, {"inner": {"steps": 0}}, "sec")
    with pytest.raises(ConfigError, match=r"^items.1.steps=-2 must be >= 1$"):
        to_dataclass(Root, {"items": [{"steps": 1}, {"steps": -2}]})
    with pytest.raises(ConfigError, match=r"^conf/x.yaml: inner.steps=0 must be >= 1$"):
        to_dataclass(Root, {"inner": {"steps": 0}}, "conf/x.yaml:")
    with pytest.raises(ConfigError, match=r"^items has 3 entries; at most 2$"):
        to_dataclass(Outer, {"items": [{}, {}, {}]})


def test_a_file_located_error_keeps_its_file():
    """An error a deeper loader located in a file is not re-prefixed by an outer loader."""
    err = ConfigError("=0 must be >= 1", key="steps").at("rungs/a.yaml:")
    assert str(err) == "rungs/a.yaml: steps=0 must be >= 1" and err.located
    assert err.at("fidelity") is err
    nested = ConfigError("must be > 0", key="lr").at("rungs.0.overrides")
    assert str(nested.at("fidelity")) == "fidelity.rungs.0.overrides.lr must be > 0"


def test_wrong_type_names_the_field():
    """A value of the wrong type is reported with its dotted path."""
    with pytest.raises(ConfigError, match=r"^ex\.steps: Value 'many' of type 'str' could not be converted to Integer"):
        to_dataclass(Example, {"steps": "many"}, "ex")
    with pytest.raises(ConfigError, match="must be a mapping"):
        to_dataclass(Example, [1, 2], "ex")


def test_choice_lists_allowed_values():
    """choice() accepts allowed values and names the rest."""
    assert choice("a", ("a", "b"), "method") == "a"
    with pytest.raises(ConfigError, match=r"^method='c' is not allowed; choose one of \['a', 'b'\]$"):
        choice("c", ("a", "b"), "method")


def test_search_width_validation():
    """Widths whose heads do not divide are rejected."""
    with pytest.raises(ConfigError, match="^n_heads=3 must divide d_model=128$"):
        SearchWidth(n_heads=3, n_kv_heads=1)


def test_unknown_rung_lists_shipped_rungs():
    """Loading an unknown rung names the shipped ones."""
    with pytest.raises(ConfigError, match="unknown rung 'nope'; fidelity files: .*mad-quick"):
        load_rung("nope")
