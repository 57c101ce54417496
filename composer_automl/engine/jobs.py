"""What the engine runs and what comes back: one job type, one evaluation record, one progress text.

A worker receives a job as plain data — a pattern, a width, a budget (which picks the
rung) and a seed — never an optimizer's configuration object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from composer_automl.adapters.hpbandster import Finished
from composer_automl.table import Outcome

JobId = tuple[int, ...]


@dataclass(frozen=True)
class EvalJob:
    """Evaluate ``pattern`` at ``width`` on the ladder's rung for ``budget``, with ``seed``."""

    id: JobId
    """The caller's id of the job (a search's config id; a calibration's (rung, pattern, seed) indices)."""
    pattern: str
    width: dict[str, int]
    """Searched width fields (``SearchWidth`` keyword arguments)."""
    budget: float
    seed: int

    def kwargs(self) -> dict[str, Any]:
        """What travels to the worker besides the id."""
        return {"pattern": self.pattern, "width": dict(self.width), "budget": float(self.budget), "seed": int(self.seed)}


@dataclass(frozen=True, kw_only=True)
class Evaluation(Outcome):
    """A finished job: what the worker reported (or why it failed), for the job it ran on its rung."""

    job: EvalJob
    rung: str


def evaluation(job: EvalJob, rung: str, finished: Finished, reason: str | None = None) -> Evaluation:
    """The :class:`Evaluation` of a finished job; a missing or non-finite loss is a failure (with ``reason``
    or the worker's traceback)."""
    result = finished.result or {}
    info = result.get("info") or {}
    loss = result.get("loss")
    ok = loss is not None and math.isfinite(float(loss))
    error = None
    if not ok:
        why = reason or finished.exception or f"non-finite loss {loss}"
        error = "\n".join(str(why).strip().splitlines()[-20:])
    span = (finished.finished or 0.0) - (finished.started or 0.0) if finished.started else 0.0
    return Evaluation(job=job, rung=rung, status="ok" if ok else "failed", loss=float(loss) if ok else None,
                      metrics=dict(info.get("metrics", {})), wall_time_s=float(info.get("wall_time_s", 0.0)) or span,
                      cpu_time_s=float(info.get("cpu_time_s", 0.0)), code_version=str(info.get("code_version", "")),
                      worker=short_worker_name(finished.worker), error=error)


def short_worker_name(name: str | None) -> str | None:
    """``hpbandster.run_ID.worker.HOST.PID[.INDEX]`` → ``HOST.PID[.INDEX]``."""
    return name.split(".worker.", 1)[-1] if name else None


def duration(seconds: float) -> str:
    """``1h05m`` or ``4m07s``: a time left in a progress line."""
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds % 60):02d}s"
