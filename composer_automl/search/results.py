"""The run directory's trial log: one JSON line per finished trial, appended as it ends.

``RUN_DIR/trials.jsonl`` is the contract between the search (writer) and the
aggregator, the summary and resume (readers). ``RUN_DIR/summary.json`` is written
when a search finishes; its absence marks an unfinished run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from composer_automl.config import ConfigError
from composer_automl.files import append_jsonl, read_jsonl
from composer_automl.table import Outcome

TRIALS_FILE = "trials.jsonl"
SUMMARY_FILE = "summary.json"
CONFIGS_FILE = "configs.jsonl"
"""Every trial the optimizer asked for, in order: config id, budget, configuration, whether it was newly sampled
(and from the model) and its event number (resume replays these with the trials' results, in event order)."""


@dataclass(frozen=True, kw_only=True)
class TrialRecord(Outcome):
    """One evaluated (configuration, budget) pair: a line of ``trials.jsonl``."""

    trial_id: str
    """hpbandster's config id and budget, e.g. ``"0-0-3@1"``."""
    pattern: str
    """Compact pattern string (``AMMAMM``)."""
    budget: float
    rung: str
    """Name of the fidelity rung that evaluated it (``mad-quick``)."""
    config: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    """Seconds since the search first started when this trial finished (resumes continue the clock)."""
    model_based_pick: bool | None = None
    """Whether the configuration came from BOHB's density model (False: random sampling; None: unknown)."""
    cost: dict[str, float] = field(default_factory=dict)
    """The pattern at the search's target size (:class:`~composer_automl.efficiency.TargetCost`: params,
    FLOPs/token, KV-cache bytes and their ratios to the Llama-style baseline)."""
    objective: float | None = None
    """What the optimizer minimised when it is not ``loss`` (``search.objective=scalarized``)."""
    seq: int | None = None
    """Event number of the result (asks and results share one count; None in logs of older versions)."""


def append_trial(run_dir: str | Path, record: TrialRecord) -> None:
    """Append one record and flush it to disk (safe to read while a search runs)."""
    append_jsonl(Path(run_dir) / TRIALS_FILE, dataclasses.asdict(record))


@dataclass(frozen=True)
class Ask:
    """One trial the optimizer asked for (a line of ``configs.jsonl``)."""

    config_id: tuple[int, ...]
    config: dict[str, Any]
    pattern: str
    budget: float | None = None
    """None in logs of older versions (which held sampled configurations only)."""
    sampled: bool = True
    """A configuration drawn new (not one promoted to a higher budget)."""
    model_based_pick: bool | None = None
    """Whether a sampled configuration came from the optimizer's model (False: random)."""
    seq: int | None = None
    """Event number (asks and results share one count; None in logs of older versions)."""


def append_ask(run_dir: str | Path, ask: Ask) -> None:
    """Log one ask before its trial runs."""
    append_jsonl(Path(run_dir) / CONFIGS_FILE, {**dataclasses.asdict(ask), "config_id": list(ask.config_id)})


def read_asks(run_dir: str | Path) -> list[Ask]:
    """The asks of a run directory, in order (a torn last line is ignored)."""
    fields = {f.name for f in dataclasses.fields(Ask)}
    return [Ask(**{**{k: v for k, v in row.items() if k in fields}, "config_id": tuple(row["config_id"])})
            for row in read_jsonl(Path(run_dir) / CONFIGS_FILE)]


def read_trials(run_dir: str | Path) -> list[TrialRecord]:
    """All records of a run directory, in the order they finished (a torn last line is ignored; a row that is not
    a trial record is one ConfigError naming the file)."""
    path = Path(run_dir) / TRIALS_FILE
    records = []
    for i, row in enumerate(read_jsonl(path), start=1):
        try:
            records.append(TrialRecord(**row))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{path}: record {i} is not a trial record ({err}); the log is corrupt there") from None
    return records


def ok_trials(records: Iterable[TrialRecord]) -> list[TrialRecord]:
    """Only the successful records."""
    return [r for r in records if r.status == "ok"]
