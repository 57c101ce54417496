"""Shared config plumbing: the user-facing error type and typed loading of config nodes.

Every stage has a dataclass config validated in ``__post_init__``; YAML and
command-line overrides reach it through :func:`to_dataclass`, which rejects
unknown keys and wrong types with one line naming the field.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """Bad user input: reported as one line, before any work starts."""


def to_dataclass(cls: type[T], node: Mapping[str, Any] | DictConfig | None, where: str) -> T:
    """Validate ``node`` against dataclass ``cls`` and build it (running ``__post_init__``).

    ``where`` is the dotted config path used in error messages (``search``, ``fidelity``).
    """
    schema = OmegaConf.structured(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    node = OmegaConf.create({}) if node is None else node
    if not isinstance(node, (Mapping, DictConfig)):
        raise ConfigError(f"{where} must be a mapping with keys {allowed}, got {node!r}")
    unknown = sorted(set(node.keys()) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; allowed: {allowed}")
    try:
        merged = OmegaConf.merge(schema, node)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or ""
        msg = str(err).splitlines()[0]
        raise ConfigError(f"{where}.{key}: {msg}" if key else f"{where}: {msg}") from None


def choice(value: str, allowed: Mapping[str, Any] | tuple[str, ...] | list[str], field: str) -> str:
    """Check that ``value`` is one of ``allowed``; raise a ConfigError naming both."""
    if value not in allowed:
        raise ConfigError(f"{field}={value!r} is not allowed; choose one of {sorted(allowed)}")
    return value
