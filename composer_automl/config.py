"""Shared config plumbing: the user-facing error type and typed loading of config nodes.

Every stage has a dataclass config validated in ``__post_init__``. A validator names
only the *field* it checks (``ConfigError("must be >= 1, got 0", key="n_workers")``);
the loader that knows where the values came from — a section of the command line
(``search``), the root of a command's config, a rung file, a ladder entry — adds that
path (:meth:`ConfigError.at`), so the one ``error:` line names the key exactly as the
user typed it: ``search.n_workers``, ``trainer.max_steps``, ``fidelity.accelerator``,
``fidelity/my-rung.yaml: lr``.

:func:`to_dataclass` validates a mapping against a dataclass and builds it, nested
dataclasses included, adding each level's path to the errors raised below it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Iterator, Mapping, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf, SCMode
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """Bad user input: reported as one line, before any work starts.

    ``key`` is the offending field relative to the config being validated; loaders
    prefix it with where that config came from (:meth:`at`). ``message`` says what is
    wrong; one starting with ``=`` or ``:`` continues the key (``key=value is …``, ``key: …``).
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.message, self.key = message, key
        self.located = False
        """True once a loader has put a file in front of the key (:meth:`at` then leaves it as it is)."""

    def __str__(self) -> str:
        if not self.key:
            return self.message
        return f"{self.key}{self.message}" if self.message.startswith(("=", ":")) else f"{self.key} {self.message}"

    def at(self, prefix: str) -> "ConfigError":
        """This error with ``prefix`` before its key: a dotted path (``search``, ``fidelity.rungs.0.overrides``;
        an outer loader may add more) or a file (``fidelity/x.yaml:``, ending in a colon: final). An error without
        a key gets the prefix as its key. An error already located in a file is returned as it is."""
        if not prefix or self.located:
            return self
        if prefix.endswith(":"):
            key = f"{prefix} {self.key}" if self.key else prefix
        else:
            key = f"{prefix}.{self.key}" if self.key else f"{prefix}:"
        error = ConfigError(self.message, key)
        error.located = prefix.endswith(":")
        return error


@contextlib.contextmanager
def located(where: str) -> Iterator[None]:
    """Errors raised inside name their key under ``where`` (what the user typed to reach the config)."""
    try:
        yield
    except ConfigError as err:
        raise err.at(where) from None


def join_key(prefix: str, key: str) -> str:
    """``prefix.key`` (``key`` alone at the root; ``prefix key`` after a file prefix ending in a colon)."""
    if not prefix:
        return key
    return f"{prefix} {key}" if prefix.endswith(":") else f"{prefix}.{key}"


def choice(value: Any, allowed: Mapping[str, Any] | tuple[str, ...] | list[str], key: str) -> Any:
    """Check that ``value`` is one of ``allowed``; a ConfigError naming the field ``key`` and the choices."""
    if value not in allowed:
        raise ConfigError(f"={value!r} is not allowed; choose one of {sorted(allowed)}", key=key)
    return value


def to_dataclass(cls: type[T], node: Mapping[str, Any] | DictConfig | None, where: str = "") -> T:
    """Validate ``node`` against dataclass ``cls`` and build it (running every ``__post_init__``).

    ``where`` is the path the user typed to reach ``node`` (``search``; ``""`` for a command's
    root config; ``fidelity/x.yaml:`` for a file): every error names ``where`` + the field.
    Unknown keys and wrong types are refused with the allowed keys / the expected type.
    """
    node = OmegaConf.create({}) if node is None else node
    if not isinstance(node, (Mapping, DictConfig)):
        allowed = [f.name for f in dataclasses.fields(cls)]
        raise ConfigError(f"must be a mapping with keys {allowed}, got {node!r}", key=where or None)
    _check_keys(cls, node, where)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), node)
        data = OmegaConf.to_container(merged, resolve=True, structured_config_mode=SCMode.DICT)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or None
        raise ConfigError((": " if key else "") + str(err).splitlines()[0], key=key).at(where) from None
    return _build(cls, data, where)


def _check_keys(cls: type, node: Mapping[str, Any] | DictConfig, where: str) -> None:
    """Unknown keys at any level of nested dataclasses: the error's key is the (first) unknown one."""
    allowed = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in node.keys() if k not in allowed)
    if unknown:
        also = f" (also unknown: {unknown[1:]})" if len(unknown) > 1 else ""
        raise ConfigError(f"is an unknown key{also}; allowed: {sorted(allowed)}", key=unknown[0]).at(where)
    hints = typing.get_type_hints(cls)
    for name, value in node.items():
        sub = _dataclass_of(hints[name])
        if sub is not None and isinstance(value, (Mapping, DictConfig)):
            _check_keys(sub, value, join_key(where, str(name)))
        elif sub is None and _list_item_dataclass(hints[name]) and isinstance(value, (list, tuple, ListConfig)):
            item = _list_item_dataclass(hints[name])
            for i, entry in enumerate(value):
                if isinstance(entry, (Mapping, DictConfig)):
                    _check_keys(item, entry, join_key(where, f"{name}.{i}"))


def _build(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """Construct ``cls`` from plain, type-checked data, nested dataclasses first; errors get ``where``."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name not in data:
            continue
        value, path = data[f.name], join_key(where, f.name)
        sub, item = _dataclass_of(hints[f.name]), _list_item_dataclass(hints[f.name])
        if sub is not None and isinstance(value, Mapping):
            value = _build(sub, value, path)
        elif item is not None and isinstance(value, list):
            value = [_build(item, v, f"{path}.{i}") if isinstance(v, Mapping) else v for i, v in enumerate(value)]
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise err.at(where) from None


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass a field holds (``X`` or ``X | None``), else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        found = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def _list_item_dataclass(hint: Any) -> type | None:
    """The dataclass of a ``list[X]`` field, else None."""
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (None,)
        return item if dataclasses.is_dataclass(item) else None
    return None


def load_yaml(path: str | Path, what: str = "a mapping") -> dict[str, Any]:
    """The mapping in a YAML file; a missing file, a syntax error or a non-mapping is one ConfigError.

    The one YAML reader of user files (rungs, ladders, search spaces, model specs): every such
    error names the file.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected {what}, got a YAML {type(data).__name__}")
    return data
