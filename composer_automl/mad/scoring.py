"""MAD scoring: best accuracy over the lr × wd sweep per setting → mean per task → mean over tasks."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from statistics import fmean
from typing import Iterable


@dataclass(frozen=True)
class RunAccuracy:
    """Test accuracy of one training run (one setting at one lr and weight decay)."""

    task: str
    setting: str
    """Setting name within the task (``base``, ``seq_len=256``, ...)."""
    lr: float
    weight_decay: float
    accuracy: float


def setting_scores(runs: Iterable[RunAccuracy]) -> dict[tuple[str, str], float]:
    """(task, setting) → best accuracy over its sweep runs."""
    best: dict[tuple[str, str], float] = {}
    for run in runs:
        key = (run.task, run.setting)
        best[key] = max(best.get(key, float("-inf")), run.accuracy)
    return best


def task_scores(runs: Iterable[RunAccuracy]) -> dict[str, float]:
    """Task → mean over its settings of the best-over-sweep accuracy (tasks in first-seen order)."""
    per_task: dict[str, list[float]] = defaultdict(list)
    for (task, _), acc in setting_scores(runs).items():
        per_task[task].append(acc)
    return {task: float(fmean(accs)) for task, accs in per_task.items()}


def mad_score(runs: Iterable[RunAccuracy]) -> float:
    """Mean over tasks of :func:`task_scores`; each task weighs the same whatever its setting count."""
    scores = task_scores(runs)
    if not scores:
        raise ValueError("mad_score needs at least one run")
    return float(fmean(scores.values()))
