"""``composer-automl aggregate run_dir=… method=n0|nc select=topk|cluster top=…``.

Reads the search's ``trials.jsonl``, takes the results at the highest budget with
enough distinct patterns, selects the top set, merges it into one consensus
pattern and writes ``aggregate.json``, ``aggregate.md``, ``aggregate.png`` and a
TensorBoard image into the run directory. With ``extrapolate.target=1B`` (etc.) it
goes on to write ``model_<target>.yaml`` there as well. Everything is computed and
checked before the first file is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
from omegaconf import DictConfig

from composer_automl.aggregate.report import (
    heatmap_figure, log_to_tensorboard, markdown_summary, save_figure,
)
from composer_automl.aggregate.result import AggregateResult
from composer_automl.aggregate.select import (
    SELECTORS, candidates_by_budget, check_lengths, choose_budget,
)
from composer_automl.aggregate.vote import VOTERS
from composer_automl.config import ConfigError, choice, to_dataclass
from composer_automl.extrapolate.command import ScaleOptions, describe, spec_path, write_spec
from composer_automl.extrapolate.fit import DepthFit, cost_report, fit_depth
from composer_automl.search.results import SUMMARY_FILE, TRIALS_FILE, ok_trials, read_trials
from composer_automl.files import atomic_write_text, check_writable

OUTPUT_NAMES = {"json": "aggregate.json", "markdown": "aggregate.md", "image": "aggregate.png"}
"""Files written into the run directory."""
TENSORBOARD_SUBDIR = "tensorboard/aggregate"


@dataclass
class AggregateConfig:
    """The ``aggregate`` subcommand."""

    run_dir: str = ""
    """Search output directory holding ``trials.jsonl`` (and ``summary.json`` once finished)."""
    method: str = "n0"
    """Merge rule: ``n0`` (independent per-layer vote) or ``nc`` (vote among context matches)."""
    c: int = 1
    """Context length for ``nc``: previous layers a voter must share with the consensus."""
    select: str = "topk"
    """Top-set rule: ``topk`` (the ``top`` best) or ``cluster`` (best of ``clusters`` K-means groups)."""
    top: int = 5
    """Members of the top set for ``select=topk``."""
    clusters: int = 5
    """K-means clusters over the losses for ``select=cluster`` (the paper: 5)."""
    min_trials: int = 3
    """A budget needs this many distinct patterns to be aggregated (and ``top`` for topk)."""
    budget: Optional[float] = None
    """Aggregate at this budget instead of the highest one with enough patterns."""
    length: Optional[int] = None
    """Keep only patterns of this many layers (needed when the results mix lengths)."""
    allow_unfinished: bool = False
    """Aggregate a search that has not written ``summary.json`` yet."""
    max_rows: int = 40
    """Most members drawn in the heatmap."""
    tensorboard: bool = True
    """Also log the heatmap and summary to ``<run_dir>/tensorboard/aggregate``."""
    extrapolate: ScaleOptions = field(default_factory=lambda: ScaleOptions(target=None))
    """Chain into extrapolation when ``extrapolate.target`` is set (spec goes to the run dir)."""

    def __post_init__(self) -> None:
        if not self.run_dir:
            raise ConfigError("run_dir is required: the search's output directory (run_dir=path/to/run)")
        choice(self.method, VOTERS, "method")
        choice(self.select, SELECTORS, "select")
        for name in ("c", "top", "clusters", "min_trials", "max_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.length is not None and self.length < 1:
            raise ConfigError(f"length={self.length} must be >= 1 or null")


def aggregate(config: AggregateConfig) -> AggregateResult:
    """Select and merge; pure with respect to the run directory (reads only)."""
    run_dir = Path(config.run_dir)
    if not (run_dir / TRIALS_FILE).is_file():
        raise ConfigError(f"run_dir={run_dir} has no {TRIALS_FILE}; point run_dir at a search's output directory")
    if not config.allow_unfinished and not (run_dir / SUMMARY_FILE).is_file():
        raise ConfigError(
            f"run_dir={run_dir} is an unfinished search (no {SUMMARY_FILE}); wait for it to end "
            "or pass allow_unfinished=true"
        )
    records = ok_trials(read_trials(run_dir))
    if not records:
        raise ConfigError(f"run_dir={run_dir} has no successful trials in {TRIALS_FILE}")
    by_budget = candidates_by_budget(check_lengths(records, config.length))
    needed = max(config.min_trials, config.top) if config.select == "topk" else config.min_trials
    budget = choose_budget(by_budget, needed, config.budget)
    candidates = by_budget[budget]
    members = SELECTORS[config.select](candidates, config.top, config.clusters)
    vote = VOTERS[config.method]([m.pattern for m in members], config.c)
    return AggregateResult(
        str(run_dir), budget, len(candidates), config.select, config.method, config.c,
        tuple(members), vote, candidates[0],
    )


def write_report(result: AggregateResult, config: AggregateConfig) -> None:
    """Write JSON, markdown and PNG into the run dir (each via a temporary file) and log to TensorBoard."""
    run_dir = Path(result.run_dir)
    fig = heatmap_figure(result, config.max_rows)
    try:
        save_figure(fig, run_dir / OUTPUT_NAMES["image"])
        summary = markdown_summary(result, OUTPUT_NAMES["image"])
        atomic_write_text(run_dir / OUTPUT_NAMES["markdown"], summary)
        atomic_write_text(run_dir / OUTPUT_NAMES["json"], json.dumps(result.to_dict(), indent=2) + "\n")
        if config.tensorboard:
            log_to_tensorboard(fig, summary, run_dir / TENSORBOARD_SUBDIR)
    finally:
        plt.close(fig)


def run(config: AggregateConfig) -> tuple[AggregateResult, Optional[Path]]:
    """Aggregate, optionally fit the extrapolation, then write everything; returns the result and spec path."""
    check_writable(Path(config.run_dir), "run_dir")
    options = config.extrapolate
    out = spec_path(options, Path(config.run_dir), "extrapolate.out") if options.target is not None else None
    result = aggregate(config)
    fit: Optional[DepthFit] = None
    if options.target is not None:  # fit before writing anything, so a bad target leaves no files
        fit = fit_depth(result.vote.pattern, options.target, options.method, options.tolerance)
    write_report(result, config)
    vote = result.vote
    print(f"budget {result.budget:g}: {result.n_candidates} patterns, top set ({result.selection}) "
          f"{len(result.members)} members")
    print(f"consensus ({result.method}): {vote.pattern.run_length()}  [{vote.pattern}]")
    print("vote shares: " + " ".join(f"{k}:{s[k]:.2f}" for k, s in zip(vote.pattern, vote.shares)))
    print(f"single best: {result.best.pattern.run_length()} (loss {result.best.loss:.6g})")
    print(f"wrote {Path(result.run_dir) / OUTPUT_NAMES['markdown']}")
    if fit is None:
        return result, None
    info = cost_report(fit, options.seq_len, options.kv_dtype)
    write_spec(fit, info, out)
    print(describe(info))
    print(f"wrote {out}")
    return result, out


def task(cfg: DictConfig) -> None:
    run(to_dataclass(AggregateConfig, cfg))


def main(argv: list[str]) -> None:
    from composer_automl.cli import run_hydra_app

    run_hydra_app("aggregate", task, argv)
