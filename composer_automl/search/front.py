"""The quality/cost Pareto front of a search: loss at the top budget vs target-scale cost ratios.

Every pattern evaluated at the highest budget that has results is a point (mean loss over its
trials there, KV-cache ratio, FLOPs ratio at the search's target size; all minimised). The
front is its non-dominated set; the knee is the front member nearest the ideal point once each
objective is scaled to [0, 1]. Written as ``pareto.md``, ``pareto.json``, ``pareto.png`` and to
TensorBoard (``tb/``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import fmean
from typing import Iterable, Sequence

from composer_automl import pareto
from composer_automl.efficiency import COST_NAMES
from composer_automl.files import atomic_write, atomic_write_text
from composer_automl.search.results import TrialRecord, ok_trials

FRONT_JSON, FRONT_MD, FRONT_PNG = "pareto.json", "pareto.md", "pareto.png"


@dataclass(frozen=True)
class FrontPoint:
    """One pattern at the front's budget."""

    pattern: str
    loss: float
    kv_cache_ratio: float
    flops_ratio: float
    params_ratio: float
    on_front: bool
    knee: bool = False

    @property
    def objectives(self) -> tuple[float, ...]:
        return (self.loss, *(getattr(self, n) for n in COST_NAMES))


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


def front_of(losses: dict[str, float], costs: dict[str, dict]) -> list[FrontPoint]:
    """Points of patterns with a loss and a cost (``TargetCost.as_dict()``); front and knee flagged, best
    loss first."""
    raw = [(p, losses[p], costs[p]) for p in sorted(losses)]
    objectives = [(loss, *(cost[n] for n in COST_NAMES)) for _, loss, cost in raw]
    front = sorted(pareto.non_dominated(objectives))
    knee = front[pareto.knee([objectives[i] for i in front])] if front else None
    points = [FrontPoint(p, loss, cost["kv_cache_ratio"], cost["flops_ratio"], cost["params_ratio"], i in front,
                         i == knee) for i, (p, loss, cost) in enumerate(raw)]
    return sorted(points, key=lambda q: (q.loss, q.pattern))


def front_markdown(budget: float | str, points: Sequence[FrontPoint], target: str, n_points: int | None = None,
                   heading: str = "#") -> str:
    """The front's members as a markdown table (``budget``: a number, or the name of what the loss is;
    ``n_points``: how many patterns the front was taken over, when ``points`` holds only its members;
    ``heading``: the title's markdown level)."""
    members = [q for q in points if q.on_front]
    where = f"budget {budget:g}" if isinstance(budget, (int, float)) else budget
    lines = [f"{heading} Pareto front at {where}: {len(members)} of {n_points or len(points)} patterns", "",
             f"Minimised: loss at {where}, KV cache and training FLOPs/token at {target} relative to "
             "the Llama-style baseline (seq 2048). ★ = knee (nearest the ideal point, objectives scaled to [0, 1]).",
             "", "| pattern | loss | KV-cache ratio | FLOPs ratio | params ratio |", "|---|---|---|---|---|"]
    for q in members:
        star = " ★" if q.knee else ""
        lines.append(f"| `{q.pattern}`{star} | {q.loss:.4f} | {q.kv_cache_ratio:.3f} | {q.flops_ratio:.3f} | "
                     f"{q.params_ratio:.3f} |")
    return "\n".join(lines) + "\n"


def front_figure(budget: float, points: Sequence[FrontPoint], target: str):
    """Loss against KV-cache ratio (colour: FLOPs ratio), the front's members ringed and joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    dots = ax.scatter([q.kv_cache_ratio for q in points], [q.loss for q in points],
                      c=[q.flops_ratio for q in points], cmap="viridis", s=22)
    members = sorted((q for q in points if q.on_front), key=lambda q: q.kv_cache_ratio)
    ax.plot([q.kv_cache_ratio for q in members], [q.loss for q in members], color="crimson", lw=1, zorder=0)
    ax.scatter([q.kv_cache_ratio for q in members], [q.loss for q in members], facecolors="none",
               edgecolors="crimson", s=70, label="Pareto front")
    for q in members:
        ax.annotate(q.pattern + (" ★" if q.knee else ""), (q.kv_cache_ratio, q.loss), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"KV cache at {target} / Llama baseline")
    ax.set_ylabel(f"loss at budget {budget:g}")
    fig.colorbar(dots, ax=ax, label="FLOPs/token ratio")
    ax.legend(fontsize=8)
    return fig


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
