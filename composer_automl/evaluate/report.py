"""The side-by-side report: one column per model, and for two models their difference.

Rows come in three sections — held-out (loss, perplexity, bits per byte), tasks (every lm-eval
metric with its standard error) and efficiency (params, FLOPs/token, KV cache, prefill and decode
latency). With two models A and B a quality row shows ``Δ = A − B ± σ``, where σ combines the two
standard errors as independent (√(σ_A² + σ_B²); the items are shared, so this is conservative), and
names the better model, ``(n.s.)`` when |Δ| < 2σ; an efficiency row shows the ratio B / A.

Written as ``report.json`` (every number), ``report.md`` (the tables), ``report.png`` (bars with
error bars) and TensorBoard (``tb/<model>``: one run per model, scalars at step 0, so TensorBoard
overlays them; ``tb/report``: the tables and the figure).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

SECTIONS = ("held-out", "tasks", "efficiency")


@dataclass
class Row:
    """One measured quantity across the models."""

    section: str
    name: str
    values: list[Optional[float]]
    stderr: list[Optional[float]] = field(default_factory=list)
    higher_is_better: Optional[bool] = None
    """None: neither direction is better (e.g. token counts)."""
    comparable: bool = True
    """False when the models measured it on different units (per-token loss across tokenizers)."""

    def difference(self) -> Optional[tuple[float, Optional[float]]]:
        """(A − B, its standard error or None) of two models' values."""
        if len(self.values) != 2 or None in self.values or not self.comparable:
            return None
        errs = self.stderr if len(self.stderr) == 2 else [None, None]
        sigma = math.hypot(*errs) if None not in errs else None
        return self.values[0] - self.values[1], sigma

    def better(self, names: list[str]) -> str:
        """The better model's name (``(n.s.)`` within 2σ), or ``""`` when no direction is better."""
        diff = self.difference()
        if diff is None or self.higher_is_better is None or diff[0] == 0:
            return ""
        delta, sigma = diff
        winner = names[0] if (delta > 0) == self.higher_is_better else names[1]
        return winner + (" (n.s.)" if sigma is not None and abs(delta) < 2 * sigma else "")


@dataclass
class Report:
    """Everything ``evaluate`` measured, and how."""

    models: list[dict[str, Any]]
    """Per model: name, folder, format, pattern, tokenizer."""
    runtime: str
    settings: dict[str, Any]
    rows: list[Row]
    wall_s: float

    @property
    def names(self) -> list[str]:
        return [m["name"] for m in self.models]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def _fmt(value: Optional[float], stderr: Optional[float] = None) -> str:
    if value is None:
        return "–"
    text = f"{value:,.0f}" if abs(value) >= 1e4 and float(value).is_integer() else f"{value:.4g}"
    return text + (f" ± {stderr:.2g}" if stderr is not None else "")


def markdown(report: Report, image: str | None = "report.png") -> str:
    """The report's tables (one per section), with Δ / ratio columns for two models."""
    names = report.names
    two = len(names) == 2
    lines = [f"# Evaluation: {' vs '.join(names)}", "",
             f"Device: {report.runtime}. Wall time: {report.wall_s:.1f} s.", ""]
    for m in report.models:
        lines.append(f"- **{m['name']}**: `{m['folder']}` ({m['format']}), pattern `{m['pattern']}`, "
                     f"tokenizer {m['tokenizer']}")
    for section in SECTIONS:
        rows = [r for r in report.rows if r.section == section]
        if not rows:
            continue
        if section == "efficiency":
            extra = [f"ratio {names[1]} / {names[0]}", "better"] if two else []
        else:
            extra = [f"Δ {names[0]} − {names[1]}", "better"] if two else []
        header = ["", *names, *extra]
        lines += ["", f"## {section}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in rows:
            errs = row.stderr or [None] * len(row.values)
            cells = [row.name, *(_fmt(v, e) for v, e in zip(row.values, errs))]
            if two:
                cells += [_comparison(row, section), row.better(names)]
            lines.append("| " + " | ".join(cells) + " |")
    if image:
        lines += ["", f"![report]({image})"]
    return "\n".join(lines) + "\n"


def _comparison(row: Row, section: str) -> str:
    if section == "efficiency":
        a, b = row.values
        return f"{b / a:.3g}×" if a and b is not None else "–"
    diff = row.difference()
    if diff is None:
        return "–" if row.comparable else "– (different tokens)"
    delta, sigma = diff
    return f"{delta:+.4g}" + (f" ± {sigma:.2g}" if sigma is not None else "")


def figure(report: Report) -> Figure:
    """Bars per model: held-out bits per byte, each task metric (± standard error), efficiency relative to the first model."""
    panels = [(s, [r for r in report.rows if r.section == s and _plotted(r)]) for s in SECTIONS]
    panels = [(s, rows) for s, rows in panels if rows]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5 * max(len(panels), 1), 4), squeeze=False)
    names = report.names
    width = 0.8 / len(names)
    for ax, (section, rows) in zip(axes[0], panels):
        for m, name in enumerate(names):
            if section == "efficiency":  # relative to the first model: 1 = equal, < 1 = cheaper
                values = [r.values[m] / r.values[0] if r.values[0] else float("nan") for r in rows]
                errs = None
            else:
                values = [r.values[m] if r.values[m] is not None else float("nan") for r in rows]
                errs = [r.stderr[m] or 0.0 for r in rows] if any(r.stderr for r in rows) else None
            xs = [i + (m - (len(names) - 1) / 2) * width for i in range(len(rows))]
            ax.bar(xs, values, width, yerr=errs, capsize=3, label=name)
        ax.set_xticks(range(len(rows)), [r.name for r in rows], rotation=30, ha="right", fontsize=8)
        ax.set_title({"efficiency": f"efficiency (÷ {names[0]})"}.get(section, section))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _plotted(row: Row) -> bool:
    if row.section == "held-out":
        return row.name == "bits_per_byte"
    if row.section == "efficiency":
        return row.name in ("flops_per_token", "kv_cache_bytes", "prefill_s", "decode_ms_per_token")
    return True


def write(report: Report, folder: Path) -> None:
    """``report.json``, ``report.md``, ``report.png`` and ``tb/`` into ``folder`` (the caller renames it into place)."""
    from torch.utils.tensorboard import SummaryWriter

    (folder / "report.json").write_text(report.to_json())
    text = markdown(report)
    (folder / "report.md").write_text(text)
    fig = figure(report)
    fig.savefig(folder / "report.png", dpi=100)
    for m, name in enumerate(report.names):
        with SummaryWriter(log_dir=str(folder / "tb" / name)) as writer:
            for row in report.rows:
                if row.values[m] is not None:
                    writer.add_scalar(f"{row.section}/{row.name}", row.values[m], global_step=0)
    with SummaryWriter(log_dir=str(folder / "tb" / "report")) as writer:
        writer.add_text("evaluate/report", markdown(report, image=None), global_step=0)
        writer.add_figure("evaluate/report", fig, global_step=0)  # closes the figure
