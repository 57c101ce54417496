"""The calibration report: per rung its cost, noise ceiling and agreement with the reference.

Written to the run directory as ``report.json`` (every figure), ``report.md`` (the
tables), ``report.png`` (each rung's seed-mean loss against the reference's) and
TensorBoard (``tb/``: the same figures, the plot and the markdown).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from composer_automl.calibrate import stats
from composer_automl.table import Row
from composer_automl.efficiency import target_cost
from composer_automl.pattern_front import FrontPoint, front_markdown, front_of
from composer_automl.files import atomic_write, atomic_write_text
from composer_automl.patterns import ATTENTION, Pattern
from composer_automl.engine.ladder import COST_TOLERANCE

REPORT_JSON, REPORT_MD, REPORT_PNG = "report.json", "report.md", "report.png"
FRONT_TARGET = "1B"
"""Size at which the report's quality/cost Pareto front costs the patterns (stacked, vs Llama 3.2 1B)."""
TOP_PREFERRED = 5
"""How many of the reference's best patterns the report describes."""


def rung_figures(rows: Sequence[Row], rung: str, reference: str, n_boot: int) -> dict[str, Any]:
    """Cost, noise ceiling and agreement with the reference of one rung."""
    figures: dict[str, Any] = {
        "n_rows": sum(r.rung == rung and r.status == "ok" for r in rows),
        "n_failed": sum(r.rung == rung and r.status != "ok" for r in rows),
        "seeds": len(stats.losses_by_seed(rows, rung)),
        "median_wall_s": stats.median_cost(rows, rung, "wall_time_s"),
        "median_cpu_s": stats.median_cost(rows, rung, "cpu_time_s"),
        "noise_ceiling": stats.noise_ceiling(rows, rung),
    }
    figures.update(stats.agreement(rows, rung, reference, n_boot))
    figures["metrics_vs_reference"] = stats.metric_agreement(rows, rung, reference) if rung != reference else {}
    return figures


def ladder_figures(rows: Sequence[Row], rungs: list[str], eta: float | None) -> list[dict[str, Any]]:
    """Adjacent pairs of a ladder: rank agreement of seed means and the cost ratio (CPU seconds)."""
    out = []
    for low, high in zip(rungs, rungs[1:]):
        _, x, y = stats.paired(stats.seed_means(rows, low), stats.seed_means(rows, high))
        cost_low, cost_high = stats.median_cost(rows, low, "cpu_time_s"), stats.median_cost(rows, high, "cpu_time_s")
        ratio = cost_high / cost_low if cost_low and not math.isnan(cost_low) else math.nan
        out.append({"low": low, "high": high, "n_patterns": len(x), "spearman": stats.spearman(x, y),
                    "kendall": stats.kendall(x, y), "cost_ratio": ratio,
                    "cost_warning": bool(eta and not math.isnan(ratio)
                                         and not eta / COST_TOLERANCE <= ratio <= eta * COST_TOLERANCE)})
    return out


def preferred_patterns(rows: Sequence[Row], rung: str, k: int = TOP_PREFERRED) -> list[dict[str, Any]]:
    """The ``k`` best patterns of ``rung`` (seed means): attention fraction and attention positions."""
    means = stats.seed_means(rows, rung)
    best = sorted(means, key=means.get)[:k]
    out = []
    for name in best:
        pattern = Pattern.parse(name)
        positions = [i for i, kind in enumerate(pattern) if kind == ATTENTION.symbol]
        out.append({"pattern": name, "run_length": pattern.run_length(), "loss": means[name],
                    "attention_fraction": pattern.attention_fraction, "attention_positions": positions})
    return out


def build_report(spec: dict[str, Any], rows: Sequence[Row], n_boot: int = 2000) -> dict[str, Any]:
    """Every figure of the report as plain data (what ``report.json`` holds)."""
    reference = spec["reference"]
    rungs = {name: rung_figures(rows, name, reference, n_boot) for name in spec["rungs"]}
    rungs = dict(sorted(rungs.items(), key=lambda kv: (math.isnan(kv[1]["median_cpu_s"]), kv[1]["median_cpu_s"])))
    ref_cost = rungs[reference]["median_cpu_s"] if reference in rungs else math.nan
    for figures in rungs.values():
        figures["cost_vs_reference"] = figures["median_cpu_s"] / ref_cost if ref_cost else math.nan
    ladders = {}
    for name, ladder in spec["ladders"].items():
        names = ladder["rungs"] if ladder["rungs"][-1] == reference else [*ladder["rungs"], reference]
        ladders[name] = ladder_figures(rows, names, ladder["eta"])
    failures = [{"pattern": r.pattern, "rung": r.rung, "seed": r.seed, "error": (r.error or "").splitlines()[-1:]}
                for r in rows if r.status != "ok"]
    ref_means = stats.seed_means(rows, reference)
    front = front_of(ref_means, {p: target_cost(p, FRONT_TARGET).as_dict() for p in ref_means})
    return {"reference": reference, "patterns": len(spec["patterns"]), "rows": len(rows), "bootstrap": n_boot,
            "rungs": rungs, "pareto_target": FRONT_TARGET, "pareto_front": [asdict(q) for q in front if q.on_front],
            "ladders": ladders, "reference_prefers": preferred_patterns(rows, reference), "failures": failures}


def _num(x: float, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _interval(f: dict[str, Any], name: str) -> str:
    return f"{_num(f[name])} [{_num(f[name + '_lo'], 2)}, {_num(f[name + '_hi'], 2)}]"


def format_markdown(report: dict[str, Any]) -> str:
    """The report's tables as markdown."""
    ref = report["reference"]
    lines = [f"# Calibration report: {report['patterns']} patterns, reference rung `{ref}`", "",
             "Agreement is over patterns, on each rung's seed-mean loss; intervals are 95 % bootstrap intervals "
             "over patterns. Noise ceiling: mean Spearman between two seeds of the same rung. Cost: median per "
             "evaluation on one worker (CPU seconds; wall seconds beside).", "",
             "| rung | seeds | cost (CPU s) | wall s | × reference | noise ceiling | Spearman vs ref | "
             "Kendall vs ref | top-10% overlap |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, f in report["rungs"].items():
        lines.append(f"| `{name}` | {f['seeds']} | {_num(f['median_cpu_s'], 1)} | {_num(f['median_wall_s'], 1)} | "
                     f"{_num(f['cost_vs_reference'], 3)} | {_num(f['noise_ceiling'])} | {_interval(f, 'spearman')} | "
                     f"{_interval(f, 'kendall')} | {_num(f['top10_overlap'], 2)} |")
    for ladder, pairs in report["ladders"].items():
        if not pairs:
            continue
        lines += ["", f"## Ladder `{ladder}` (adjacent rungs)", "",
                  "| lower → higher | Spearman | Kendall | cost ratio |", "|---|---|---|---|"]
        for p in pairs:
            warn = " ⚠ far from eta" if p["cost_warning"] else ""
            lines.append(f"| `{p['low']}` → `{p['high']}` | {_num(p['spearman'])} | {_num(p['kendall'])} | "
                         f"{_num(p['cost_ratio'], 2)}{warn} |")
    diagnostics = {name: f["metrics_vs_reference"] for name, f in report["rungs"].items() if f["metrics_vs_reference"]}
    if diagnostics:
        lines += ["", "## Which of a rung's figures rank like the reference (Spearman vs its loss)", "",
                  "Per-task and other figures the rung records, seed means; accuracies are negated, so a "
                  "positive value always means 'ranks like the reference'.", "",
                  "| rung | figure | Spearman vs ref |", "|---|---|---|"]
        for name, figures in diagnostics.items():
            lines += [f"| `{name}` | {metric} | {_num(rho)} |" for metric, rho in figures.items()]
    if report["pareto_front"]:
        points = [FrontPoint(**q) for q in report["pareto_front"]]
        lines += ["", front_markdown(f"`{ref}`", points, report["pareto_target"], report["patterns"],
                                     heading="##").rstrip("\n")]
    lines += ["", f"## What `{ref}` prefers (its {len(report['reference_prefers'])} best patterns)", "",
              "| pattern | run-length | loss | attention fraction | attention at layers |", "|---|---|---|---|---|"]
    for p in report["reference_prefers"]:
        lines.append(f"| `{p['pattern']}` | {p['run_length']} | {_num(p['loss'], 4)} | "
                     f"{_num(p['attention_fraction'], 2)} | {p['attention_positions']} |")
    if report["failures"]:
        lines += ["", f"## Failed evaluations ({len(report['failures'])})", ""]
        lines += [f"- `{f['pattern']}` at `{f['rung']}` seed {f['seed']}: {' '.join(f['error'])}"
                  for f in report["failures"]]
    return "\n".join(lines) + "\n"


def scatter_figure(rows: Sequence[Row], report: dict[str, Any]):
    """One panel per rung: its seed-mean loss (x) against the reference's (y), with Spearman in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = report["reference"]
    others = [name for name in report["rungs"] if name != ref]
    n = max(1, len(others))
    cols = min(3, n)
    fig, axes = plt.subplots(math.ceil(n / cols), cols, figsize=(4.2 * cols, 3.6 * math.ceil(n / cols)), squeeze=False)
    ref_means = stats.seed_means(rows, ref)
    for ax, name in zip(axes.flat, others):
        names, x, y = stats.paired(stats.seed_means(rows, name), ref_means)
        frac = [Pattern.parse(p).attention_fraction for p in names]
        points = ax.scatter(x, y, c=frac, cmap="viridis", vmin=0, vmax=1, s=18)
        ax.set_title(f"{name}: ρ={_num(report['rungs'][name]['spearman'], 2)}", fontsize=10)
        ax.set_xlabel(f"{name} loss (seed mean)", fontsize=8)
        ax.set_ylabel(f"{ref} loss", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(others):]:
        ax.axis("off")
    if others:
        fig.colorbar(points, ax=axes, shrink=0.8, label="attention fraction")
    return fig


def write_report(run_dir: Path, spec: dict[str, Any], rows: Sequence[Row], n_boot: int = 2000) -> dict[str, Any]:
    """Write ``report.{json,md,png}`` and the TensorBoard view; print the markdown table; return the figures."""
    from torch.utils.tensorboard import SummaryWriter

    report = build_report(spec, rows, n_boot)
    markdown = format_markdown(report)
    atomic_write_text(run_dir / REPORT_JSON, json.dumps(json_safe(report), indent=2, sort_keys=True))
    atomic_write_text(run_dir / REPORT_MD, markdown)
    fig = scatter_figure(rows, report)
    atomic_write(run_dir / REPORT_PNG, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    with SummaryWriter(log_dir=str(run_dir / "tb")) as writer:
        writer.add_figure("calibration/scatter_vs_reference", fig)
        writer.add_text("calibration/report", markdown)
        for name, f in report["rungs"].items():
            for key in ("spearman", "kendall", "noise_ceiling", "median_cpu_s", "top10_overlap"):
                if not math.isnan(f[key]):
                    writer.add_scalar(f"{key}/{name}", f[key], 0)
    print(markdown, flush=True)
    print(f"report: {run_dir / REPORT_MD}; tensorboard --logdir {run_dir / 'tb'}", flush=True)
    return report


def json_safe(value: Any) -> Any:
    """``value`` with every NaN replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
