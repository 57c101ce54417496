"""The rung kinds, registered in one place, and loading rung files.

Kinds are imported only when a rung of that kind is loaded, so a search over a table
never imports torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from composer_automl.config import ConfigError, choice, load_yaml, located, to_dataclass
from composer_automl.paths import find_option, group_options
from composer_automl.rungs.base import Rung, RungKind

RUNG_KINDS: dict[str, str] = {
    "mad": "composer_automl.mad.rung:MADRung",
    "pretrain": "composer_automl.pretrain.rung:PretrainRung",
    "blend": "composer_automl.rungs.blend:BlendRung",
    "tabular": "composer_automl.rungs.tabular:TabularRung",
    "surrogate": "composer_automl.rungs.surrogate:SurrogateRung",
    "simulated": "composer_automl.rungs.simulated:SimulatedRung",
}
"""Rung kind (the ``kind`` key of a rung file) → ``module:class`` of its :class:`RungKind`."""


def rung_kind(kind: str, key: str = "kind") -> RungKind:
    """The registered kind ``kind`` (a ConfigError naming ``key`` and the kinds otherwise)."""
    choice(kind, RUNG_KINDS, key)
    module, name = RUNG_KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)()


def rung_from_mapping(name: str, data: dict[str, Any], where: str = "") -> Rung:
    """Validate a rung mapping (``kind``, optional ``cost_s``, the kind's fields) into a :class:`Rung`.

    Errors name each key under ``where`` (what the user typed to reach the mapping).
    """
    data = dict(data)
    kind_key = str(data.pop("kind", "<missing>"))
    cost_s = data.pop("cost_s", None)
    with located(where):
        kind = rung_kind(kind_key)
        if cost_s is not None and not (isinstance(cost_s, (int, float)) and cost_s > 0):
            raise ConfigError(f"must be a positive number of seconds, got {cost_s!r}", key="cost_s")
    config = to_dataclass(kind.config, data, where)
    return Rung(name, kind_key, config, kind, None if cost_s is None else float(cost_s))


def resolve_mapping(data: dict[str, Any]) -> dict[str, Any]:
    """A rung mapping made self-contained (:meth:`RungKind.resolve`); an unknown kind is left for validation."""
    kind = data.get("kind")
    return rung_kind(kind).resolve(data) if kind in RUNG_KINDS else data


def rung_file(name: str) -> Path:
    """The file of rung ``name``: ``fidelity/<name>.yaml`` (the user's ``--config-dir`` first, then the shipped
    ones) or a path to a YAML file."""
    path = find_option("fidelity", name)
    if path is None:
        raise ConfigError(f"unknown rung {name!r}; fidelity files: {group_options('fidelity')}")
    return path


def read_rung_file(name: str) -> dict[str, Any]:
    """The mapping of a rung file (see :func:`rung_file`); it must be one (``kind`` a registered rung kind)."""
    path = rung_file(name)
    data = load_yaml(path, "a rung mapping")
    if data.get("kind") not in RUNG_KINDS:
        raise ConfigError(f"fidelity {name!r} ({path}) is not a rung file (kind must be one of {sorted(RUNG_KINDS)})")
    return data


def file_where(name: str) -> str:
    """The error prefix of keys written in rung ``name``'s file (``/…/fidelity/mad-quick.yaml:``)."""
    return f"{rung_file(name)}:"


def rung_name(name: str) -> str:
    """The name a rung goes by: its file stem (``fidelity/mad-quick.yaml`` → ``mad-quick``)."""
    return name.rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")


def load_rung(name: str) -> Rung:
    """Load a rung file as a :class:`Rung` (errors name the file)."""
    return rung_from_mapping(rung_name(name), resolve_mapping(read_rung_file(name)), file_where(name))
