"""The ``mad`` rung kind: a pattern's MAD score under a :class:`MADConfig` (1 − accuracy score, or the loss score)."""

from __future__ import annotations

from pathlib import Path

from composer_automl.mad.evaluate import MADConfig, evaluate_pattern
from composer_automl.patterns import Pattern
from composer_automl.rungs.base import RungKind, RungResult
from composer_automl.spec import SearchWidth


class MADRung(RungKind):
    """``kind: mad``: train fresh models on MAD's synthetic tasks (``fidelity/mad-*.yaml``)."""

    config = MADConfig

    def metric(self, config: MADConfig) -> str:
        return "1 - mad_score" if config.score == "accuracy" else "mad_loss"

    def evaluate(self, pattern: Pattern, config: MADConfig, width: SearchWidth, out_dir: Path, seed: int) -> RungResult:
        """Loss per ``config.score``; metrics per task (``<task>/acc``, ``<task>/loss``, ``<task>/seconds``) and
        overall (``mad_score``, ``mad_loss``), plain floats."""
        result = evaluate_pattern(pattern, config, width, Path(out_dir), seed)
        metrics = {f"{task}/acc": float(acc) for task, acc in result.task_scores.items()}
        metrics.update({f"{task}/loss": float(loss) for task, loss in result.task_losses.items()})
        metrics.update({f"{task}/seconds": float(t) for task, t in result.task_seconds.items()})
        metrics.update(mad_score=float(result.score), mad_loss=float(result.loss_score))
        return RungResult(loss=float(result.rung_loss(config.score)), metrics=metrics,
                          wall_time_s=float(result.wall_time_s))
