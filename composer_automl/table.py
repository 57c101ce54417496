"""The calibration table: one row per evaluated (pattern, rung, seed), appended as evaluations end.

``RUN/table.jsonl`` is append-only; a row is never rewritten. A rung's config hash
ties each row to the exact rung definition that produced it, so a table never mixes
two versions of a rung under one name.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from composer_automl.config import ConfigError
from composer_automl.files import append_jsonl, read_jsonl

TABLE_FILE = "table.jsonl"
METADATA_KEYS = ("cost_s",)
"""Top-level rung-file keys that describe a rung without changing what it computes (not hashed)."""


def rung_hash(mapping: dict[str, Any]) -> str:
    """Short stable hash of a resolved rung mapping (``kind`` included, metadata keys excluded)."""
    payload = {k: v for k, v in mapping.items() if k not in METADATA_KEYS}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What one evaluation of a pattern gave: the rung's loss and figures, or why it failed.

    The one record of an evaluation: the engine's results, a calibration table's rows and a
    search's trial records extend it with what identifies them.
    """

    status: str
    """``ok`` or ``failed``."""
    loss: float | None
    """The rung's loss (what the search minimises at that rung); None when failed."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Per-task figures and the rung's other outputs (plain floats)."""
    wall_time_s: float = 0.0
    """Wall time of the evaluation on its worker (the rung's own clock)."""
    cpu_time_s: float = 0.0
    """CPU time of the worker process during the evaluation (robust to a busy machine)."""
    code_version: str = ""
    """``composer_automl.provenance.code_version()`` of the worker that ran it."""
    worker: str | None = None
    """``HOST.PID[.INDEX]`` of the worker that ran it."""
    error: str | None = None
    """The last lines of the traceback, or the reason, when failed."""

    def __post_init__(self) -> None:
        if self.status not in ("ok", "failed"):
            raise ValueError(f"status must be 'ok' or 'failed', got {self.status!r}")
        if self.status == "ok" and (self.loss is None or not math.isfinite(self.loss)):
            raise ValueError(f"an ok evaluation needs a finite loss, got {self.loss}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def outcome(self) -> dict[str, Any]:
        """The :class:`Outcome` fields alone, as keyword arguments for another record of the same evaluation."""
        return {f.name: getattr(self, f.name) for f in fields(Outcome)}

    def summary(self) -> str:
        """``loss=1.2345 (12.3 s)`` or ``FAILED <last line of the reason>``: the end of a progress line."""
        if self.ok:
            return f"loss={self.loss:.4f} ({self.wall_time_s:.1f} s)"
        return ("FAILED " + self.error.strip().splitlines()[-1][:80]) if self.error else "FAILED"


@dataclass(frozen=True, kw_only=True)
class Row(Outcome):
    """One evaluation of a pattern at a rung with a seed: a line of ``table.jsonl``."""

    pattern: str
    rung: str
    seed: int
    rung_hash: str = ""
    """:func:`rung_hash` of the rung config that produced the row."""

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.pattern, self.rung, self.seed)


REQUIRED_COLUMNS = ("pattern", "rung", "seed", "status", "loss", "wall_time_s")
"""Columns a table must have to be replayed or reported."""


def append_row(run_dir: str | Path, row: Row) -> None:
    append_jsonl(Path(run_dir) / TABLE_FILE, asdict(row))


def read_rows(path: str | Path) -> list[Row]:
    """Rows of a table file (or of ``DIR/table.jsonl``); a missing column is one clear error."""
    path = Path(path)
    if path.is_dir():
        path = path / TABLE_FILE
    rows = []
    for i, data in enumerate(read_jsonl(path), start=1):
        missing = [c for c in REQUIRED_COLUMNS if c not in data]
        if missing:
            raise ConfigError(f"table {path}: row {i} lacks column(s) {missing}; a table needs {list(REQUIRED_COLUMNS)}")
        known = {f for f in Row.__dataclass_fields__}
        rows.append(Row(**{k: v for k, v in data.items() if k in known}))
    return rows


def ok_rows(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r.status == "ok"]
