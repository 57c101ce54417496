"""Fidelity rungs: one way of scoring a pattern at one cost (a MAD suite, a pretraining run).

A rung is a YAML file in ``fidelity/`` with a ``kind`` key naming its evaluator
(``mad``, ``pretrain``, ``simulated``, ``tabular``, ``blend``); the rest of the file is that kind's config
dataclass. The search's fidelity ladder maps BOHB budgets onto rungs by name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from composer_automl.config import ConfigError, choice, to_dataclass
from composer_automl.paths import find_option, group_options
from composer_automl.patterns import Pattern


@dataclass
class SearchWidth:
    """Model width used while searching (the pattern sets the depth)."""

    d_model: int = 128
    """Residual width (MAD's reference models use 128)."""
    n_heads: int = 4
    n_kv_heads: int = 2
    ffn_hidden: int = 256
    """SwiGLU hidden size."""

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "n_kv_heads", "ffn_hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"width.{name} must be a positive integer, got {getattr(self, name)}")
        if self.d_model % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"width: n_heads={self.n_heads} must divide d_model={self.d_model} "
                f"and n_kv_heads={self.n_kv_heads} must divide n_heads"
            )

    def narrowed(self, d_model: int | None, ffn_hidden: int | None) -> "SearchWidth":
        """This width with a rung's ``d_model`` / ``ffn_hidden`` overrides (None keeps the search's)."""
        return SearchWidth(d_model=d_model or self.d_model, n_heads=self.n_heads, n_kv_heads=self.n_kv_heads,
                           ffn_hidden=ffn_hidden or self.ffn_hidden)


@dataclass(frozen=True)
class RungResult:
    """What a rung returns for one pattern. Plain Python values only (they cross Pyro4)."""

    loss: float
    """The value BOHB minimises at this rung (1 − MAD score, or validation loss)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Extra per-rung figures (per-task accuracy, tokens/s, ...)."""
    wall_time_s: float = 0.0


Evaluate = Callable[[Pattern, Any, SearchWidth, Path, int], RungResult]
"""evaluate(pattern, rung_config, width, out_dir, seed) → RungResult."""

RUNG_KINDS: dict[str, str] = {  # each module: CONFIG, evaluate, metric(config) -> str
    "mad": "composer_automl.mad.rung",
    "pretrain": "composer_automl.pretrain.rung",
    "simulated": "composer_automl.search.simulated",
    "tabular": "composer_automl.calibrate.tabular",
    "blend": "composer_automl.blend",
}
"""Rung kind → module defining ``CONFIG`` (its dataclass), ``evaluate`` (an :data:`Evaluate`) and
``metric(config)`` (what its loss is); optionally ``prepare_inputs(config) -> str`` (one-off work the
search master does before any trial, e.g. tokenizing a corpus; returns a line saying what it did)."""


@dataclass(frozen=True)
class Rung:
    """A loaded rung: its name, kind, validated config and evaluator."""

    name: str
    kind: str
    config: Any
    evaluate: Evaluate
    metric: str = "loss"
    """What the loss is at this rung (``1 - mad_score``, ``val_loss``, ...): the module's ``metric(config)``."""
    cost_s: float | None = None
    """Measured median seconds per evaluation, as stated in the rung file (None: not measured)."""
    setup: Callable[[Any], str] | None = None
    """The kind's ``prepare_inputs`` (None: nothing to prepare)."""

    def __call__(self, pattern: Pattern, width: SearchWidth, out_dir: Path, seed: int) -> RungResult:
        return self.evaluate(pattern, self.config, width, out_dir, seed)

    def prepare_inputs(self) -> str | None:
        """Do the rung's one-off preparation (idempotent, cached); a line saying what it did, or None."""
        return self.setup(self.config) if self.setup else None


def rung_from_mapping(name: str, data: dict[str, Any]) -> Rung:
    """Validate a rung mapping (with its ``kind`` and optional ``cost_s`` keys) and attach its evaluator."""
    data = dict(data)
    kind = choice(str(data.pop("kind", "<missing>")), RUNG_KINDS, f"fidelity {name}: kind")
    cost_s = data.pop("cost_s", None)
    if cost_s is not None and not (isinstance(cost_s, (int, float)) and cost_s > 0):
        raise ConfigError(f"fidelity {name}: cost_s must be a positive number of seconds, got {cost_s!r}")
    module = importlib.import_module(RUNG_KINDS[kind])
    config = to_dataclass(module.CONFIG, data, f"fidelity {name}")
    return Rung(name, kind, config, module.evaluate, module.metric(config), None if cost_s is None else float(cost_s),
                getattr(module, "prepare_inputs", None))


def resolve_mapping(data: dict[str, Any]) -> dict[str, Any]:
    """A rung mapping made self-contained: a kind whose module defines ``resolve`` (a blend, which
    names other rung files) inlines what it refers to; other kinds are returned as they are."""
    kind = data.get("kind")
    if kind not in RUNG_KINDS:
        return data
    resolve = getattr(importlib.import_module(RUNG_KINDS[kind]), "resolve", None)
    return resolve(data) if resolve else data


def read_rung_file(name: str) -> dict[str, Any]:
    """The mapping of ``fidelity/<name>.yaml`` (the user's ``--config-dir`` first, then the shipped ones)
    or of a path to a YAML file; it must be a rung file."""
    path = find_option("fidelity", name)
    if path is None:
        raise ConfigError(f"unknown rung {name!r}; fidelity files: {group_options('fidelity')}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or data.get("kind") not in RUNG_KINDS:
        raise ConfigError(f"fidelity {name!r} is not a rung file (kind must be one of {sorted(RUNG_KINDS)})")
    return data


def rung_name(name: str) -> str:
    """The name a rung goes by: its file stem (``fidelity/mad-quick.yaml`` → ``mad-quick``)."""
    return name.rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")


def load_rung(name: str) -> Rung:
    """Load ``fidelity/<name>.yaml`` (or a path to a YAML file) as a :class:`Rung`."""
    return rung_from_mapping(rung_name(name), read_rung_file(name))
