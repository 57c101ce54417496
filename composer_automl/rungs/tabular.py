"""The ``tabular`` rung: replays a calibration table instead of training.

A search, a calibration or a benchmark on a tabular ladder runs in seconds on real
evaluations: the loss of (pattern, rung, seed) is the one a calibration recorded, and
the recorded wall time is its cost (reported as the trial's ``wall_time_s``; with
``time_scale > 0`` the evaluation also sleeps that long, scaled). Seeds beyond the
table's cycle through the recorded ones (seed ``s`` replays recorded seed number
``s mod n``). A pattern or rung the table lacks is a clear error, never a default.

``table`` is a path (a ``table.jsonl`` or a calibration run directory) or the name of
a table shipped with the package (``hybridbench6``: ``benchmarks/hybridbench6``).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

from composer_automl.config import ConfigError
from composer_automl.paths import PACKAGE_DIR
from composer_automl.patterns import Pattern
from composer_automl.rungs.base import RungKind, RungResult
from composer_automl.spec import SearchWidth
from composer_automl.table import TABLE_FILE, Row, ok_rows, read_rows

SHIPPED_TABLES = PACKAGE_DIR / "tables"
"""Folder of the tables shipped with the package (each ``<name>/table.jsonl``)."""


class MissingRow(LookupError):
    """The table has no row for a (pattern, rung): the pattern cannot be replayed."""


@dataclass
class TabularConfig:
    """A ``kind: tabular`` rung file."""

    table: str = "hybridbench6"
    """A shipped table's name, a ``table.jsonl`` file or a calibration run directory."""
    rung: str = ""
    """The table's rung whose rows are replayed (required)."""
    time_scale: float = 0.0
    """Sleep the recorded wall time × this per evaluation (0: answer at once, cost still reported)."""

    def __post_init__(self) -> None:
        if self.time_scale < 0:
            raise ConfigError(f"must be >= 0, got {self.time_scale}", key="time_scale")
        rungs = sorted(load_table(table_path(self.table)))
        if self.rung not in rungs:
            raise ConfigError(f"={self.rung!r} is not in table {self.table!r}; it has {rungs}", key="rung")


def table_path(table: str) -> Path:
    """The ``table.jsonl`` a ``table`` setting names (shipped name, file or run directory)."""
    path = Path(table).expanduser()
    if not path.exists() and (SHIPPED_TABLES / table / TABLE_FILE).is_file():
        path = SHIPPED_TABLES / table
    if path.is_dir():
        path = path / TABLE_FILE
    if not path.is_file():
        shipped = sorted(p.parent.name for p in SHIPPED_TABLES.glob(f"*/{TABLE_FILE}"))
        raise ConfigError(f"={table!r}: no such table file or run directory; shipped tables: {shipped}", key="table")
    return path


def load_table(path: Path) -> dict[str, dict[str, list[Row]]]:
    """rung → pattern → successful rows sorted by seed (cached per file and modification time)."""
    return _load(path.resolve(), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int) -> dict[str, dict[str, list[Row]]]:
    table: dict[str, dict[str, list[Row]]] = {}
    for row in ok_rows(read_rows(path)):
        table.setdefault(row.rung, {}).setdefault(row.pattern, []).append(row)
    for patterns in table.values():
        for rows in patterns.values():
            rows.sort(key=lambda r: r.seed)
    return table


def replay(config: TabularConfig, pattern: Pattern, seed: int) -> Row:
    """The recorded row for ``pattern`` at ``config.rung`` and (cycled) ``seed``."""
    rows = load_table(table_path(config.table))[config.rung].get(str(pattern))
    if not rows:
        raise MissingRow(f"pattern {pattern} has no successful row at rung {config.rung!r} in table "
                         f"{config.table!r}: a tabular rung replays only the patterns its table holds")
    return rows[seed % len(rows)]


class TabularRung(RungKind):
    """``kind: tabular``: the recorded rows of a calibration table, replayed."""

    config = TabularConfig

    def metric(self, config: TabularConfig) -> str:
        return f"recorded loss of {config.rung}"

    def evaluate(self, pattern: Pattern, config: TabularConfig, width: SearchWidth, out_dir: Path,
                 seed: int) -> RungResult:
        """Answer with the recorded loss and metrics; the recorded wall time is the evaluation's cost."""
        row = replay(config, pattern, seed)
        if config.time_scale:
            time.sleep(row.wall_time_s * config.time_scale)
        metrics = {**row.metrics, "recorded_seed": float(row.seed), "recorded_cpu_time_s": float(row.cpu_time_s)}
        return RungResult(loss=float(row.loss), metrics=metrics, wall_time_s=float(row.wall_time_s))
