"""The quality/cost Pareto front of a search: loss at the top budget vs target-scale cost ratios.

Every pattern evaluated at the highest budget that has results is a point (mean loss over its
trials there, KV-cache ratio, FLOPs ratio at the search's target size; all minimised); see
:mod:`composer_automl.pattern_front`. Written as ``pareto.md``, ``pareto.json``, ``pareto.png`` and
to TensorBoard (``tb/``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from statistics import fmean
from typing import Iterable

from composer_automl.files import atomic_write, atomic_write_text
from composer_automl.pattern_front import FrontPoint, front_figure, front_markdown, front_of
from composer_automl.search.results import TrialRecord, ok_trials

FRONT_JSON, FRONT_MD, FRONT_PNG = "pareto.json", "pareto.md", "pareto.png"


def front_points(records: Iterable[TrialRecord]) -> tuple[float | None, list[FrontPoint]]:
    """(budget, points) at the highest budget with ok trials that carry costs; front flagged, best loss first."""
    ok = [r for r in ok_trials(records) if r.cost]
    if not ok:
        return None, []
    budget = max(r.budget for r in ok)
    by_pattern: dict[str, list[TrialRecord]] = defaultdict(list)
    for r in ok:
        if r.budget == budget:
            by_pattern[r.pattern].append(r)
    losses = {p: fmean(r.loss for r in rs) for p, rs in by_pattern.items()}
    return budget, front_of(losses, {p: rs[0].cost for p, rs in by_pattern.items()})


def write_front(run_dir: str | Path, records: Iterable[TrialRecord], target: str) -> dict | None:
    """Write the front's files into ``run_dir`` (and TensorBoard); None when no trial has costs."""
    from torch.utils.tensorboard import SummaryWriter

    run_dir = Path(run_dir)
    budget, points = front_points(records)
    if budget is None:
        return None
    data = {"budget": budget, "target": target, "points": [asdict(q) for q in points],
            "front": [q.pattern for q in points if q.on_front],
            "knee": next((q.pattern for q in points if q.knee), None)}
    markdown = front_markdown(budget, points, target)
    fig = front_figure(budget, points, target)
    atomic_write_text(run_dir / FRONT_JSON, json.dumps(data, indent=2) + "\n")
    atomic_write_text(run_dir / FRONT_MD, markdown)
    atomic_write(run_dir / FRONT_PNG, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    with SummaryWriter(log_dir=str(run_dir / "tb" / "pareto")) as writer:
        writer.add_figure("pareto/front", fig)  # closes the figure
        writer.add_text("pareto/front", markdown)
    return data
