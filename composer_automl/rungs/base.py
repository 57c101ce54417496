"""What a rung kind is, and a loaded rung.

A rung file (``fidelity/<name>.yaml``) has a ``kind`` key naming a :class:`RungKind`
registered in :data:`composer_automl.rungs.registry.RUNG_KINDS`, an optional ``cost_s``
(measured median seconds per evaluation) and the fields of that kind's config dataclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from composer_automl.patterns import Pattern
from composer_automl.spec import SearchWidth


@dataclass(frozen=True)
class RungResult:
    """What a rung returns for one pattern. Plain Python values only (they cross the wire to the master)."""

    loss: float
    """The value the optimizer minimises at this rung (1 − MAD score, validation loss, ...)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Extra per-rung figures (per-task accuracy, tokens/s, ...)."""
    wall_time_s: float = 0.0


class RungKind(ABC):
    """A way of scoring a pattern at one cost; one stateless instance per kind.

    Subclasses set :attr:`config` and implement :meth:`evaluate` and :meth:`metric`;
    :meth:`prepare_inputs` and :meth:`resolve` are optional.
    """

    config: ClassVar[type]
    """The dataclass a rung file of this kind is validated into (the file minus ``kind`` and ``cost_s``)."""

    @abstractmethod
    def evaluate(self, pattern: Pattern, config: Any, width: SearchWidth, out_dir: Path, seed: int) -> RungResult:
        """Score ``pattern`` at ``width`` (the rung may narrow it) with ``seed``; logs go to ``out_dir``."""

    @abstractmethod
    def metric(self, config: Any) -> str:
        """What the loss is at this rung (``val_loss``, ``1 - mad_score``, ...)."""

    def prepare_inputs(self, config: Any) -> str | None:
        """One-off work the master does before any evaluation (tokenizing a corpus); idempotent and cached.
        Returns a line saying what it did, or None when there is nothing to prepare."""
        return None

    def resolve(self, mapping: dict[str, Any]) -> dict[str, Any]:
        """The rung mapping made self-contained (a blend inlines the rung files it names), so that its config
        hash covers everything it computes and a remote worker needs no files of its own."""
        return mapping


@dataclass(frozen=True)
class Rung:
    """A loaded rung: its name, kind, validated config and the kind that evaluates it."""

    name: str
    kind: str
    config: Any
    implementation: RungKind
    cost_s: float | None = None
    """Measured median seconds per evaluation, as stated in the rung file (None: not measured)."""

    @property
    def metric(self) -> str:
        """What the loss is at this rung."""
        return self.implementation.metric(self.config)

    def __call__(self, pattern: Pattern, width: SearchWidth, out_dir: Path, seed: int) -> RungResult:
        return self.implementation.evaluate(pattern, self.config, width, out_dir, seed)

    def prepare_inputs(self) -> str | None:
        """The kind's one-off preparation (see :meth:`RungKind.prepare_inputs`)."""
        return self.implementation.prepare_inputs(self.config)
