"""The quality/cost Pareto front of patterns: a loss against the target-scale cost ratios (KV cache, FLOPs/token).

The front is the non-dominated set (every objective minimised); the knee is the front member
nearest the ideal point once each objective is scaled to [0, 1]. Used by the search (loss at its
top budget) and the calibration report (the reference rung's seed-mean loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from composer_automl import pareto
from composer_automl.efficiency import COST_NAMES


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
