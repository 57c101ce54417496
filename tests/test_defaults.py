"""Every default is written once: in the dataclass, with the YAML only setting what differs (or, for root keys
outside any dataclass section, in the YAML with the dataclass having none)."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from composer_automl.conf import COMMAND_SCHEMAS, SCHEMAS, register_schemas
from composer_automl.paths import CONFIG_DIR


def schema_class(name: str):
    module, cls = SCHEMAS[name][0].split(":")
    return getattr(importlib.import_module(module), cls)


def defaults_of(cls) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cls), resolve=False)


def repeats(values: dict, defaults: dict, path: str = "") -> list[str]:
    """Keys whose value equals the schema's default (recursively)."""
    out = []
    for key, value in values.items():
        if key not in defaults:
            continue
        if isinstance(value, dict) and isinstance(defaults[key], dict) and defaults[key]:
            out += repeats(value, defaults[key], f"{path}{key}.")
        elif value == defaults[key]:
            out.append(path + key)
    return out


@pytest.mark.parametrize("command", sorted(COMMAND_SCHEMAS))
def test_a_commands_yaml_repeats_no_default_of_its_schemas(command):
    data = yaml.safe_load((CONFIG_DIR / f"{command}.yaml").read_text()) or {}
    for name in COMMAND_SCHEMAS[command]:
        _, group, package = SCHEMAS[name]
        if group:
            continue
        section = data if package == "_global_" else data.get(package, {})
        assert repeats(section, defaults_of(schema_class(name))) == [], (command, name)


@pytest.mark.parametrize("name", ["data/base", "search_space/base"])
def test_group_options_repeat_no_default(name):
    group = SCHEMAS[name][1]
    defaults = defaults_of(schema_class(name))
    for path in (CONFIG_DIR / group).glob("*.yaml"):
        data = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "defaults"}
        assert repeats(data, defaults) == [], path


@pytest.mark.parametrize("command", sorted(COMMAND_SCHEMAS))
def test_the_composed_config_holds_every_dataclass_field_at_its_default_or_the_yamls_value(command):
    """The schema fills every key the YAML does not set (so --cfg job shows them all and they override
    without '+')."""
    register_schemas(command)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        overrides = ["+subcommand=prepare"] if command == "data" else []
        cfg = compose(command, overrides=overrides, return_hydra_config=False)
    for name in COMMAND_SCHEMAS[command]:
        _, group, package = SCHEMAS[name]
        if group:
            continue
        node = cfg if package == "_global_" else OmegaConf.select(cfg, package)
        assert {f.name for f in dataclasses.fields(schema_class(name))} <= set(node.keys()), (command, name)
