"""End-of-search summary: best pattern per budget, incumbent trajectory, counts.

Pure functions of the trial records, so they also work on a killed run's
``trials.jsonl``. The incumbent is hpbandster's: the best loss at the *highest*
budget evaluated so far (losses of different budgets are never compared).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from composer_automl.search.results import SUMMARY_FILE, TrialRecord, ok_trials
from composer_automl.files import atomic_write_text

TRAJECTORY_CSV = "incumbents.csv"
BEST_CSV = "best_per_budget.csv"


@dataclass(frozen=True)
class IncumbentPoint:
    """The incumbent after one trial changed it."""

    trial_id: str
    pattern: str
    budget: float
    loss: float
    elapsed_s: float
    """Search wall time when it became the incumbent."""
    cumulative_budget: float
    """Sum of the budgets of every trial finished so far (failed ones included)."""


def incumbent_trajectory(records: Iterable[TrialRecord]) -> list[IncumbentPoint]:
    """Each change of incumbent, in finishing order."""
    points: list[IncumbentPoint] = []
    spent = 0.0
    best: TrialRecord | None = None
    for r in sorted(records, key=lambda r: r.elapsed_s):
        spent += r.budget
        if r.status != "ok":
            continue
        if best is None or r.budget > best.budget or (r.budget == best.budget and r.loss < best.loss):
            best = r
            points.append(IncumbentPoint(r.trial_id, r.pattern, r.budget, float(r.loss), r.elapsed_s, spent))
    return points


def best_per_budget(records: Iterable[TrialRecord]) -> dict[float, TrialRecord]:
    """Lowest-loss successful trial of each budget."""
    best: dict[float, TrialRecord] = {}
    for r in ok_trials(records):
        if r.budget not in best or r.loss < best[r.budget].loss:
            best[r.budget] = r
    return dict(sorted(best.items()))


def summarize(records: list[TrialRecord], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``summary.json`` content of a finished search."""
    per_budget = best_per_budget(records)
    top = per_budget[max(per_budget)] if per_budget else None
    counts = Counter(r.budget for r in records)
    failed = Counter(r.budget for r in records if r.status != "ok")
    return {
        "finished": True,
        "best_pattern": top.pattern if top else None,
        "best_loss": top.loss if top else None,
        "best_budget": top.budget if top else None,
        "best_rung": top.rung if top else None,
        "best_per_budget": [
            {"budget": b, "pattern": r.pattern, "loss": r.loss, "rung": r.rung, "trial_id": r.trial_id}
            for b, r in per_budget.items()
        ],
        "trials_per_budget": {f"{b:g}": counts[b] for b in sorted(counts)},
        "failures_per_budget": {f"{b:g}": failed[b] for b in sorted(failed)},
        "n_trials": len(records),
        "n_failed": sum(failed.values()),
        "trajectory": [vars(p) for p in incumbent_trajectory(records)],
        "sampling": sampling_counts(records),
        **(extra or {}),
    }


def sampling_counts(records: list[TrialRecord]) -> dict[str, int]:
    """How many configurations (and trials) came from the optimizer's model and how many were random draws.

    A configuration is counted once (at the first budget it ran); its promotions inherit its origin.
    """
    first: dict[str, TrialRecord] = {}
    for r in records:
        first.setdefault(r.trial_id.split("@")[0], r)
    return {
        "model_based_configs": sum(bool(r.model_based_pick) for r in first.values()),
        "random_configs": sum(not r.model_based_pick for r in first.values()),
        "model_based_trials": sum(bool(r.model_based_pick) for r in records),
        "random_trials": sum(not r.model_based_pick for r in records),
    }


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> None:
    """Write the CSVs, then ``summary.json`` last (its presence marks the run finished)."""
    run_dir = Path(run_dir)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["elapsed_s", "cumulative_budget", "budget", "loss", "pattern", "trial_id"])
    for p in summary["trajectory"]:
        writer.writerow([f"{p['elapsed_s']:.3f}", f"{p['cumulative_budget']:g}", f"{p['budget']:g}",
                         f"{p['loss']:.6g}", p["pattern"], p["trial_id"]])
    atomic_write_text(run_dir / TRAJECTORY_CSV, buf.getvalue())
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["budget", "rung", "loss", "pattern", "trial_id"])
    for row in summary["best_per_budget"]:
        writer.writerow([f"{row['budget']:g}", row["rung"], f"{row['loss']:.6g}", row["pattern"], row["trial_id"]])
    atomic_write_text(run_dir / BEST_CSV, buf.getvalue())
    atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2, sort_keys=True) + "\n")


def format_summary(summary: dict[str, Any], run_dir: str | Path) -> str:
    """Human-readable end-of-search report."""
    picks = summary["sampling"]
    lines = ["", "search finished: " + f"{summary['n_trials']} trials ({summary['n_failed']} failed); "
             f"configurations from the optimizer's model: {picks['model_based_configs']}, "
             f"random: {picks['random_configs']}"]
    lines += [f"  budget {row['budget']:g} ({row['rung']}): best {row['pattern']}  loss={row['loss']:.4f}"
              for row in summary["best_per_budget"]]
    if summary["best_pattern"]:
        lines.append(f"best pattern: {summary['best_pattern']} (loss {summary['best_loss']:.4f} "
                     f"at budget {summary['best_budget']:g})")
    else:
        lines.append("best pattern: none (every trial failed)")
    if summary.get("pareto_front"):
        lines.append(f"Pareto front (loss vs KV cache and FLOPs at {summary['target']}): "
                     f"{' '.join(summary['pareto_front'])}; knee {summary['pareto_knee']} (pareto.md, pareto.png)")
    lines.append(f"results: {Path(run_dir) / SUMMARY_FILE}, {Path(run_dir) / 'trials.jsonl'}")
    lines.append(f"tensorboard: tensorboard --logdir {Path(run_dir) / 'tb'}")
    return "\n".join(lines)
