"""The aggregation report: heatmap PNG of the top set, markdown summary, TensorBoard image.

The heatmap has one row per member (best first) and a consensus row at the bottom,
one column per layer; colour = layer kind, consensus cells show the winning vote
share. Its size in pixels is fixed by the numbers of rows and layers
(:func:`heatmap_size_px`), so large top sets stay legible.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from composer_automl.aggregate.result import AggregateResult  # noqa: E402
from composer_automl.patterns import PRIMITIVES  # noqa: E402
from composer_automl.files import atomic_write  # noqa: E402

DPI = 100
CELL_PX = 28
"""Side of one heatmap cell."""
LEFT_PX, RIGHT_PX, TOP_PX, BOTTOM_PX = 120, 110, 50, 40
"""Margins: row labels, legend, title, layer numbers."""
KIND_COLORS = {"A": "#1f5fa8", "M": "#f2b25c"}
"""Cell colour per layer kind (other registered kinds fall back to grey)."""


def heatmap_size_px(n_rows: int, n_layers: int) -> tuple[int, int]:
    """(width, height) in pixels of a heatmap with ``n_rows`` rows (members + consensus)."""
    return LEFT_PX + n_layers * CELL_PX + RIGHT_PX, TOP_PX + n_rows * CELL_PX + BOTTOM_PX


def heatmap_figure(result: AggregateResult, max_rows: int) -> Figure:
    """Draw the top set (at most ``max_rows`` members, best first) and the consensus row."""
    kinds = list(PRIMITIVES)
    members = result.members[:max_rows]
    patterns = [m.pattern for m in members] + [result.vote.pattern]
    n_rows, n_layers = len(patterns), len(patterns[0])
    width, height = heatmap_size_px(n_rows, n_layers)
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((
        LEFT_PX / width, BOTTOM_PX / height, n_layers * CELL_PX / width, n_rows * CELL_PX / height,
    ))
    grid = [[kinds.index(k) for k in p] for p in patterns]  # (rows, layers) kind indices
    cmap = ListedColormap([KIND_COLORS.get(k, "#999999") for k in kinds])
    ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=len(kinds) - 0.5, aspect="auto", interpolation="nearest")
    for layer, shares in enumerate(result.vote.shares):
        kind = result.vote.pattern[layer]
        ax.text(layer, n_rows - 1, format(shares[kind], ".2f").lstrip("0"), ha="center",  # ".80"
                va="center", fontsize=7, color="white" if kind == "A" else "black")
    ax.axhline(n_rows - 1.5, color="black", linewidth=2)  # separates the consensus row
    labels = [f"#{i + 1}  {m.loss:.4g}" for i, m in enumerate(members)] + [f"{result.method} consensus"]
    ax.set_yticks(range(n_rows), labels, fontsize=7)
    step = max(1, n_layers // 16)
    ax.set_xticks(range(0, n_layers, step), [str(i + 1) for i in range(0, n_layers, step)], fontsize=7)
    ax.set_xlabel("layer", fontsize=8)
    hidden = len(result.members) - len(members)
    fig.suptitle(
        f"top set at budget {result.budget:g} ({result.selection}, {len(result.members)} members"
        + (f", {hidden} not shown" if hidden else "") + ")",
        fontsize=8, x=0.01, ha="left",
    )
    handles = [Patch(color=KIND_COLORS.get(k, "#999999"), label=f"{k} {PRIMITIVES[k].name}") for k in kinds]
    fig.legend(handles=handles, loc="upper right", fontsize=7, frameon=False)
    return fig


def markdown_summary(result: AggregateResult, image_name: str) -> str:
    """A short markdown report: consensus, best single pattern, per-layer shares, members."""
    vote = result.vote
    lines = [
        "# Aggregation",
        "",
        f"- run: `{result.run_dir}`, budget **{result.budget:g}**, "
        f"{result.n_candidates} distinct patterns at that budget",
        f"- top set: `{result.selection}` → {len(result.members)} members; merge: `{result.method}`"
        + (f" (c={result.c})" if result.method == "nc" else ""),
        f"- **consensus: `{vote.pattern.run_length()}`** (`{vote.pattern}`, attention fraction "
        f"{vote.pattern.attention_fraction:.3f})",
        f"- single best: `{result.best.pattern.run_length()}` (loss {result.best.loss:.6g})",
        "",
        f"![top set]({image_name})",
        "",
        "| layer | chosen | share | voters | context |",
        "|---|---|---|---|---|",
    ]
    for i, (kind, shares) in enumerate(zip(vote.pattern, vote.shares)):
        lines.append(f"| {i + 1} | {kind} | {shares[kind]:.2f} | {vote.voters[i]} | {vote.context[i]} |")
    lines += ["", "| rank | pattern | loss | trials |", "|---|---|---|---|"]
    for i, m in enumerate(result.members):
        lines.append(f"| {i + 1} | `{m.pattern.run_length()}` | {m.loss:.6g} | {len(m.trial_ids)} |")
    return "\n".join(lines) + "\n"


def save_figure(fig: Figure, path: Path) -> None:
    """Write the figure as PNG at its own pixel size, via a temporary file renamed into place."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))


def log_to_tensorboard(fig: Figure, summary: str, log_dir: Path) -> None:
    """Add the heatmap as an image and the summary as text to TensorBoard under ``aggregate/``."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        writer.add_figure("aggregate/top_set", fig, global_step=0, close=False)
        writer.add_text("aggregate/summary", summary, global_step=0)
    finally:
        writer.close()
