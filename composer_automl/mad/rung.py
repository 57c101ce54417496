"""The ``mad`` fidelity rung: ``loss = 1 − MAD score`` of a pattern under a :class:`MADConfig`."""

from __future__ import annotations

from pathlib import Path

from composer_automl.mad.evaluate import MADConfig, evaluate_pattern
from composer_automl.patterns import Pattern
from composer_automl.rungs import RungResult, SearchWidth

CONFIG = MADConfig
"""The rung's config dataclass (``fidelity/mad-*.yaml`` minus ``kind``)."""


def evaluate(pattern: Pattern, config: MADConfig, width: SearchWidth, out_dir: Path, seed: int) -> RungResult:
    """Score ``pattern`` on MAD; metrics are the per-task accuracies and ``mad_score`` (plain floats)."""
    result = evaluate_pattern(pattern, config, width, Path(out_dir), seed)
    metrics = {task: float(acc) for task, acc in result.task_scores.items()}
    metrics["mad_score"] = float(result.score)
    return RungResult(loss=float(1.0 - result.score), metrics=metrics, wall_time_s=float(result.wall_time_s))
