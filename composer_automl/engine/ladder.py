"""The fidelity ladder: one BOHB budget axis mapped onto ordered rungs.

A ladder file (``fidelity/<name>.yaml`` with ``kind: ladder``) lists rungs from
cheapest to most faithful, each with its budget. Lower budgets typically run MAD
rungs (loss = 1 − MAD score), upper budgets small-scale pretraining (loss =
validation loss). hpbandster derives its budgets as ``max_budget · eta^-k``, so the
ladder's budgets must be exactly that geometric sequence: strictly increasing, each
``eta`` times the previous one.

BOHB compares losses only *within* one budget (successive halving ranks the
configurations of a stage, and its KDE model is fitted per budget), so rungs may
return losses on different scales: 1 − MAD score at budget 1 is never compared with
a validation loss at budget 9.

A ladder's own ``overrides`` replace fields in every rung whose kind has them (a corpus and
tokenizer under ``data``, ``accelerator``, ``precision``): ``+fidelity.overrides.data.source=…``
points a whole ladder at the user's corpus without copying its rung files.

A plain rung file (any rung ``kind``) also works as a ladder of one rung at budget 1:
a single-fidelity search.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from omegaconf import DictConfig, OmegaConf

from composer_automl.config import ConfigError, join_key, load_yaml, to_dataclass
from composer_automl.paths import find_option, group_options
from composer_automl.rungs.base import Rung
from composer_automl.rungs.registry import (RUNG_KINDS, file_where, read_rung_file, resolve_mapping,
                                            rung_from_mapping, rung_kind, rung_name)

COST_TOLERANCE = 2.0
"""Adjacent rungs whose cost ratio is off ``eta`` by more than this factor get a warning."""

@dataclass
class RungEntry:
    """One step of the ladder."""

    budget: float
    """BOHB budget of this rung."""
    rung: str
    """Name of a rung file in ``fidelity/`` (``mad-quick``; the user's ``--config-dir`` first, then the
    shipped ones) or a path to one."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Fields of the rung's config replaced for this step."""
    metric: str | None = None
    """Optional check: what the loss is at this rung (must match the rung kind's metric)."""

    def __post_init__(self) -> None:
        if not self.budget > 0:
            raise ConfigError(f"must be positive, got {self.budget}", key="budget")


@dataclass
class LadderConfig:
    """A ``kind: ladder`` fidelity file (without its ``kind`` key)."""

    eta: float = 3.0
    """Successive-halving rate: 1/eta of the configurations advance to the next budget."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Fields replaced in every rung whose kind has them, before each step's own ``overrides``; a mapping
    (``data``) merges key by key into the rung's own."""
    rungs: list[RungEntry] = field(default_factory=list)
    """Rungs from cheapest to most faithful."""

    def __post_init__(self) -> None:
        if self.eta < 2:
            raise ConfigError(f"must be >= 2, got {self.eta}", key="eta")
        if not self.rungs:
            raise ConfigError("must list at least one rung", key="rungs")
        budgets = [r.budget for r in self.rungs]
        if any(b2 <= b1 for b1, b2 in zip(budgets, budgets[1:])):
            raise ConfigError(f": budgets must be strictly increasing, got {budgets}", key="rungs")
        expected = hpbandster_budgets(budgets[0], budgets[-1], self.eta)
        if len(expected) != len(budgets) or not np.allclose(expected, budgets, rtol=1e-6):
            raise ConfigError(f": budgets {budgets} are not consistent with eta={self.eta}; BOHB would run "
                              f"{[round(float(b), 6) for b in expected]} (each budget eta times the previous)",
                              key="rungs")


@dataclass(frozen=True)
class Ladder:
    """A validated ladder: budgets, eta, and the loaded rung of each budget."""

    name: str
    eta: float
    budgets: tuple[float, ...]
    rungs: tuple[Rung, ...]
    mapping: dict[str, Any] = field(compare=False, default_factory=dict)
    """The resolved ladder as plain data (every rung inlined): what workers receive."""
    origins: tuple[dict[str, str], ...] = field(compare=False, default=())
    """Per rung: top-level field → where the user set it when not in the rung file (``fidelity.overrides``),
    so that errors found later (a corpus that does not exist) name the key as typed."""

    @property
    def min_budget(self) -> float:
        return self.budgets[0]

    @property
    def max_budget(self) -> float:
        return self.budgets[-1]

    def index(self, budget: float) -> int:
        """Position of ``budget`` on the ladder (hpbandster's budgets are float products)."""
        for i, b in enumerate(self.budgets):
            if math.isclose(float(budget), b, rel_tol=1e-6):
                return i
        raise KeyError(f"budget {budget} is not on the ladder {list(self.budgets)}")

    def rung_for(self, budget: float) -> Rung:
        """The rung that evaluates ``budget``."""
        return self.rungs[self.index(budget)]

    def metric(self, budget: float) -> str:
        """What the loss means at ``budget``."""
        return self.rung_for(budget).metric

    def prepare_inputs(self) -> None:
        """Run every rung's one-off preparation once, here in the master, before any worker starts:
        input errors surface before any work, and each trial then finds the inputs cached in O(1)."""
        for i, rung in enumerate(self.rungs):
            try:
                line = rung.prepare_inputs()
            except ConfigError as err:
                raise self._located(i, err) from None
            if line:
                print(f"rung {rung.name}: {line}", flush=True)

    def check_devices(self) -> None:
        """Every rung's device and precision can run on this machine (before local workers start): ``accelerator:
        gpu`` without a visible CUDA device is one error naming where it was set, not a run of failed trials."""
        from composer_automl.devices import resolve

        for i, rung in enumerate(self.rungs):
            config = rung.config
            if not hasattr(config, "accelerator"):
                continue
            try:
                resolve(config.accelerator, config.precision, getattr(config, "devices", 1))
            except ConfigError as err:
                raise self._located(i, err, f"fidelity rung {rung.name}:") from None

    def _located(self, i: int, err: ConfigError, otherwise: str = "") -> ConfigError:
        """``err`` of rung ``i`` with its key under where the user set that field (``fidelity.overrides``), else
        under ``otherwise``."""
        origin = self.origins[i].get((err.key or "").split(".")[0]) if self.origins else None
        return err.at(origin or otherwise)

    def cost_warnings(self, tolerance: float = COST_TOLERANCE) -> list[str]:
        """Adjacent rungs whose stated costs (``cost_s``) are not about ``eta`` apart.

        Hyperband spends budget as if a rung cost ``eta`` times the one below; when the
        measured costs say otherwise its arithmetic (and every cumulative-budget plot) is off.
        """
        warnings = []
        for low, high in zip(self.rungs, self.rungs[1:]):
            if low.cost_s and high.cost_s:
                ratio = high.cost_s / low.cost_s
                if not self.eta / tolerance <= ratio <= self.eta * tolerance:
                    warnings.append(f"rungs {low.name} ({low.cost_s:g} s) → {high.name} ({high.cost_s:g} s) cost "
                                    f"{ratio:.2g}× apart, not about eta={self.eta:g}×: budgets do not mean cost here")
        unstated = [r.name for r in self.rungs if r.cost_s is None]
        if len(self.rungs) > 1 and unstated:
            warnings.append(f"rung(s) {unstated} state no measured cost (cost_s); budgets cannot be checked against "
                            "cost (measure with composer-automl calibrate)")
        return warnings


def hpbandster_budgets(min_budget: float, max_budget: float, eta: float) -> list[float]:
    """The budgets hpbandster's BOHB/Hyperband derive from (min, max, eta) — same formula."""
    n = -int(np.log(min_budget / max_budget) / np.log(eta)) + 1
    return [float(b) for b in max_budget * np.power(eta, -np.linspace(n - 1, 0, n))]


def _entry_name(entry: RungEntry) -> str:
    """A ladder step's rung name: the file's stem, with its overrides when it has any
    (``simulated[fidelity=0.1]``), so two steps on one rung file never share a name."""
    name = rung_name(entry.rung)
    if not entry.overrides:
        return name
    return name + "[" + ",".join(f"{k}={v}" for k, v in sorted(entry.overrides.items())) + "]"


def kind_fields(mapping: dict[str, Any]) -> set[str]:
    """The fields a rung mapping's kind accepts (none for an unknown kind: validation reports it)."""
    kind = mapping.get("kind")
    return {f.name for f in dataclasses.fields(rung_kind(kind).config)} if kind in RUNG_KINDS else set()


def with_shared(mapping: dict[str, Any], shared: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """``mapping`` with the ladder's ``overrides`` that its kind has (a mapping value merged key by key into the
    rung's own) → (the new mapping, the fields replaced)."""
    applied = {k: v for k, v in shared.items() if k in kind_fields(mapping)}
    merged = {k: {**mapping[k], **v} if isinstance(v, dict) and isinstance(mapping.get(k), dict) else v
              for k, v in applied.items()}
    return {**mapping, **merged}, set(applied)


def _entry_rung(entry: RungEntry, index: int, inlined: dict[str, Any] | None, where: str,
                shared: dict[str, Any]) -> tuple[Rung, dict, dict[str, str]]:
    """The rung of a ladder step, its resolved mapping and where its overridden fields were set. Errors name the
    key where the user wrote it: in the step's ``overrides`` (``fidelity.rungs.0.overrides.lr``), in the ladder's
    (``fidelity.overrides.data.source``) or in the rung file (``…/pretrain-tiny.yaml: lr``)."""
    step = f"{where}.rungs.{index}" if where else f"rungs.{index}"
    if inlined is not None:  # a resolved ladder (a worker's, a saved run's): one mapping, no file
        mapping = resolve_mapping(dict(inlined))
        return rung_from_mapping(_entry_name(entry), mapping, f"{step}.rung_config"), mapping, {}
    origins: dict[str, str] = {}
    try:
        file = read_rung_file(entry.rung)
        merged, from_ladder = with_shared(file, shared)
        origins = {**{k: join_key(where, "overrides") for k in from_ladder},
                   **{k: f"{step}.overrides" for k in entry.overrides}}
        mapping = resolve_mapping({**merged, **entry.overrides})
        rung = rung_from_mapping(_entry_name(entry), mapping)
    except ConfigError as err:
        if err.located:
            raise
        if not err.key:  # about the step's rung as a whole (no such rung file)
            raise err.at(f"{step}.rung") from None
        raise err.at(origins.get(err.key.split(".")[0], file_where(entry.rung))) from None
    return rung, mapping, origins


def ladder_from_mapping(name: str, node: Mapping[str, Any] | DictConfig, where: str = "fidelity") -> Ladder:
    """Validate a fidelity mapping: a ``kind: ladder`` file, a resolved ladder, or a single rung.

    ``where`` is what the user typed to reach the mapping (``fidelity``, the config group of search and
    calibrate; or a file prefix): errors name keys under it. A resolved ladder (what :attr:`Ladder.mapping`
    holds) has each rung inlined under ``rung_config`` and is what workers receive from the master.
    """
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    kind = data.get("kind")
    if kind in RUNG_KINDS:  # one rung: a single-fidelity ladder; its keys are the ladder's own
        mapping = resolve_mapping(data)
        rung = rung_from_mapping(name, mapping, where)
        resolved = {"kind": "ladder", "eta": 3.0, "rungs": [{"budget": 1.0, "rung": name, "rung_config": mapping}]}
        return Ladder(name, 3.0, (1.0,), (rung,), resolved)
    if kind != "ladder":
        allowed = ["ladder", *sorted(RUNG_KINDS)]
        raise ConfigError(f"={kind!r} is not allowed; choose one of {allowed}", key="kind").at(where)
    data = {k: v for k, v in data.items() if k != "kind"}
    data["rungs"] = [dict(r) if isinstance(r, dict) else r for r in data.get("rungs") or []]  # never mutate the input
    inline = [r.pop("rung_config", None) if isinstance(r, dict) else None for r in data["rungs"]]
    cfg = to_dataclass(LadderConfig, data, where)
    rungs, resolved, origins = [], [], []
    for i, (entry, inlined) in enumerate(zip(cfg.rungs, inline)):
        rung, mapping, origin = _entry_rung(entry, i, inlined, where, cfg.overrides)
        origins.append(origin)
        if entry.metric is not None and entry.metric != rung.metric:
            raise ConfigError(f"={entry.metric!r}, but rung {entry.rung!r} (kind {rung.kind}) returns {rung.metric!r}",
                              key=f"rungs.{i}.metric").at(where)
        rungs.append(rung)
        resolved.append({"budget": float(entry.budget), "rung": rung.name, "rung_config": mapping})
    unused = sorted(k for k in cfg.overrides if not any(k in o for o in origins))
    if unused and not any(inline):
        kinds = sorted({r.kind for r in rungs})
        raise ConfigError(f": no rung of this ladder (kinds {kinds}) has the field(s) {unused}",
                          key="overrides").at(where)
    mapping = {"kind": "ladder", "eta": float(cfg.eta), "rungs": resolved}
    return Ladder(name, float(cfg.eta), tuple(float(r.budget) for r in cfg.rungs), tuple(rungs), mapping,
                  tuple(origins))


def load_ladder(name: str) -> Ladder:
    """Load ``fidelity/<name>.yaml`` (a ladder, or a single rung) or a path to one; errors name the file."""
    path = find_option("fidelity", name)
    if path is None:
        raise ConfigError(f"unknown fidelity {name!r}; have: {group_options('fidelity')}")
    return ladder_from_mapping(path.stem, load_yaml(path, "a fidelity mapping"), f"{path}:")
