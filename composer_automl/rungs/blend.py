"""The ``blend`` rung: a weighted mean of other rungs' losses, each averaged over seeds.

Two tools for a cheap rung that must rank like an expensive one. Averaging seeds inside
a rung (a part with ``seeds: k`` is evaluated with k seeds and its losses averaged) buys
less noise for k× the cost. Mixing rungs of different kinds (a few MAD tasks and a short
pretraining run) lets each contribute what it measures. Part losses are combined as
given, so choose weights that put them on one scale (a MAD loss score near 0.6 beside a
validation loss near 2.5).

A blend's file names its parts (``rung: mad-quick``); loading inlines each part's rung
file under ``config`` (:func:`resolve`), so the blend's config hash covers its parts and a
remote worker needs no rung files of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer_automl.config import ConfigError
from composer_automl.patterns import Pattern
from composer_automl.rungs.base import Rung, RungKind, RungResult
from composer_automl.rungs.registry import file_where, read_rung_file, rung_from_mapping, rung_name
from composer_automl.spec import SearchWidth


@dataclass
class BlendPart:
    """One rung of a blend."""

    rung: str
    """Name of the part's rung file (``mad-quick``) or a path to one."""
    weight: float = 1.0
    """Weight of the part's loss in the blend (> 0)."""
    seeds: int = 1
    """Seeds the part is evaluated with; its loss is their mean (seed s of the blend uses s·k … s·k+k−1)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The part's rung mapping; filled from its rung file when empty."""


@dataclass
class BlendConfig:
    """A ``kind: blend`` rung file."""

    parts: list[BlendPart] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.parts:
            raise ConfigError("must list at least one rung", key="parts")
        for i, part in enumerate(self.parts):
            if not part.weight > 0:
                raise ConfigError(f"={part.weight} must be > 0", key=f"parts.{i}.weight")
            if part.seeds < 1:
                raise ConfigError(f"={part.seeds} must be >= 1", key=f"parts.{i}.seeds")
        self.rungs = [load_part(part, i) for i, part in enumerate(self.parts)]


def load_part(part: BlendPart, index: int) -> Rung:
    """The part's rung, from its inlined config (errors under ``parts.<index>.config``) or its rung file."""
    if part.config:
        return rung_from_mapping(rung_name(part.rung), part.config, f"parts.{index}.config")
    return rung_from_mapping(rung_name(part.rung), read_rung_file(part.rung), file_where(part.rung))


class BlendRung(RungKind):
    """``kind: blend``: the weighted mean of other rungs' losses, each averaged over its seeds."""

    config = BlendConfig

    def resolve(self, mapping: dict[str, Any]) -> dict[str, Any]:
        """Every part's rung file inlined under ``config``."""
        parts = []
        for part in mapping.get("parts") or []:
            if isinstance(part, dict) and not part.get("config") and part.get("rung"):
                part = {**part, "config": read_rung_file(str(part["rung"]))}
            parts.append(part)
        return {**mapping, "parts": parts}

    def prepare_inputs(self, config: BlendConfig) -> str | None:
        """Each part's one-off preparation."""
        lines = [f"{rung.name}: {line}" for rung in config.rungs if (line := rung.prepare_inputs())]
        return "; ".join(lines) or None

    def metric(self, config: BlendConfig) -> str:
        terms = " + ".join(f"{p.weight:g}·{rung.metric}" for p, rung in zip(config.parts, config.rungs))
        return f"blend({terms})"

    def evaluate(self, pattern: Pattern, config: BlendConfig, width: SearchWidth, out_dir: Path,
                 seed: int) -> RungResult:
        """Evaluate every part with its seeds; loss = Σ weight · mean part loss / Σ weight.

        Metrics: each part's mean loss (``<part>/loss``) and the mean of its own metrics (``<part>/<metric>``).
        """
        total, weights, wall = 0.0, 0.0, 0.0
        metrics: dict[str, float] = {}
        for part, rung in zip(config.parts, config.rungs):
            results = [rung(pattern, width, Path(out_dir) / f"{rung.name}-s{s}", s)
                       for s in range(seed * part.seeds, (seed + 1) * part.seeds)]
            loss = sum(r.loss for r in results) / len(results)
            total += part.weight * loss
            weights += part.weight
            wall += sum(r.wall_time_s for r in results)
            metrics[f"{rung.name}/loss"] = loss
            for key in results[0].metrics:
                metrics[f"{rung.name}/{key}"] = sum(r.metrics[key] for r in results) / len(results)
        return RungResult(loss=total / weights, metrics=metrics, wall_time_s=wall)
