"""MAD scoring: best run over the lr × wd sweep per setting → mean per task → mean over tasks.

Two scores are kept side by side. ``accuracy`` is MAD's own (the best test accuracy over
the sweep). ``loss`` is the lowest test loss over the sweep, divided by ``ln(vocab_size)``
so that tasks of different vocabularies weigh alike (1.0 ≈ a uniform guess); it keeps
ranking patterns where accuracy sits at chance.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from statistics import fmean
from typing import Iterable

SCORES = ("accuracy", "loss")
"""What a MAD rung returns as its loss: ``1 − accuracy score`` or the normalized ``loss`` score."""


@dataclass(frozen=True)
class RunResult:
    """One training run (one setting at one lr and weight decay), at its lowest-test-loss evaluation."""

    task: str
    setting: str
    """Setting name within the task (``base``, ``seq_len=256``, ...)."""
    lr: float
    weight_decay: float
    accuracy: float
    loss: float
    """Test loss on the scored positions (nats per token)."""
    vocab_size: int
    steps: int = 0
    """Optimizer steps the run took (early stop may end it before its budget)."""
    seconds: float = 0.0
    """Wall seconds of the run (training and its evaluations)."""

    @property
    def normalized_loss(self) -> float:
        return self.loss / math.log(self.vocab_size)


def setting_scores(runs: Iterable[RunResult], score: str = "accuracy") -> dict[tuple[str, str], float]:
    """(task, setting) → best over its sweep runs: highest accuracy, or lowest normalized loss."""
    best: dict[tuple[str, str], float] = {}
    for run in runs:
        key = (run.task, run.setting)
        if score == "accuracy":
            best[key] = max(best.get(key, -math.inf), run.accuracy)
        else:
            best[key] = min(best.get(key, math.inf), run.normalized_loss)
    return best


def task_scores(runs: Iterable[RunResult], score: str = "accuracy") -> dict[str, float]:
    """Task → mean over its settings of :func:`setting_scores` (tasks in first-seen order)."""
    per_task: dict[str, list[float]] = defaultdict(list)
    for (task, _), value in setting_scores(runs, score).items():
        per_task[task].append(value)
    return {task: float(fmean(values)) for task, values in per_task.items()}


def task_seconds(runs: Iterable[RunResult]) -> dict[str, float]:
    """Task → wall seconds of all its runs (where a rung's time goes)."""
    total: dict[str, float] = defaultdict(float)
    for run in runs:
        total[run.task] += run.seconds
    return dict(total)


def mad_score(runs: Iterable[RunResult], score: str = "accuracy") -> float:
    """Mean over tasks of :func:`task_scores`; each task weighs the same whatever its setting count."""
    scores = task_scores(runs, score)
    if not scores:
        raise ValueError("mad_score needs at least one run")
    return float(fmean(scores.values()))
