"""Orchestration of one search: worker pool (nameserver, spec, local workers) → BOHB master.

The pool (:mod:`composer_automl.search.cluster`) starts the nameserver and publishes the
search's spec; the master starts its dispatcher; only then do local workers start.
Ctrl-C stops everything and leaves a resumable run directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np

from composer_automl.config import ConfigError, choice, to_dataclass
from composer_automl.efficiency import OBJECTIVES, Constraints, TargetCost, target_cost
from composer_automl.extrapolate.scale import STRATEGIES as EXTRAPOLATIONS
from composer_automl.presets import TARGET_SIZES
from composer_automl.files import atomic_write_text
from composer_automl.search.cluster import PoolSettings, RunAborted, WorkerPool, checked_secret
from composer_automl.search.front import write_front
from composer_automl.search.ladder import Ladder
from composer_automl.search.master import OPTIMIZERS, Replay, make_master, planned_trials
from composer_automl.search.results import SUMMARY_FILE, read_configs, read_picks, read_trials
from composer_automl.search.spaces import SearchSpace
from composer_automl.search.summary import format_summary, summarize, write_summary

log = logging.getLogger("composer_automl.search")

MAX_COUNTED_PATTERNS = 4096
"""Spaces up to this size are enumerated to say how many patterns meet the constraints."""
RUN_FILE = "search.json"
"""The resolved search (space, ladder, settings) saved in the run directory; resume reads it."""


@dataclass
class SearchSettings(PoolSettings):
    """The ``search:`` section of ``conf/search.yaml`` (worker-pool fields: :class:`PoolSettings`)."""

    section: ClassVar[str] = "search"

    optimizer: str = "bohb"
    """``bohb``, ``hyperband`` or ``random``."""
    n_iterations: int = 9
    """Successive-halving brackets to run (BOHB/Hyperband iterations)."""
    seed: int = 0
    """Seeds the optimizer's sampling and every trial."""
    run_dir: str | None = None
    """Where results go (default: ``runs/search-<time>``)."""
    target: str = "1B"
    """Size every pattern is costed at (``350M``, ``1B``, ``3B``): params, FLOPs/token, KV cache vs Llama."""
    extrapolate: str = "stack"
    """How a pattern grows to the target depth: ``stack`` or ``stretch``."""
    constraints: dict[str, Optional[float]] = field(default_factory=dict)
    """Bounds on the target-scale cost ratios (:class:`~composer_automl.efficiency.Constraints`);
    patterns outside them are never evaluated."""
    objective: str = "loss"
    """``loss`` (the rung's loss) or ``scalarized`` (ParEGO: loss and cost ratios, weights per bracket)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        choice(self.optimizer, OPTIMIZERS, "search.optimizer")
        if self.n_iterations < 1:
            raise ConfigError(f"search.n_iterations must be >= 1, got {self.n_iterations}")
        choice(self.target, TARGET_SIZES, "search.target")
        choice(self.extrapolate, EXTRAPOLATIONS, "search.extrapolate")
        choice(self.objective, OBJECTIVES, "search.objective")
        self.cost_bounds  # validates search.constraints

    @property
    def cost_bounds(self) -> Constraints:
        return to_dataclass(Constraints, dict(self.constraints or {}), "search.constraints")

    def cost_of(self, pattern) -> TargetCost:
        """``pattern`` at this search's target size."""
        return target_cost(pattern, self.target, self.extrapolate)


def default_run_dir() -> Path:
    return Path("runs") / time.strftime("search-%Y%m%d-%H%M%S")


def _spec(run_id: str, space: SearchSpace, ladder: Ladder, seed: int, run_dir: Path) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "search_space": space.resolved_mapping(),
        "fidelity_name": ladder.name,
        "ladder": ladder.mapping,
        "seed": seed,
        "run_dir": str(run_dir.resolve()),
    }


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """A fresh run needs an empty (or new) directory; a resume needs an unfinished run."""
    if resume:
        if not (run_dir / RUN_FILE).is_file():
            raise ConfigError(f"resume={str(run_dir)!r} is not a search run directory (no {RUN_FILE})")
        if (run_dir / SUMMARY_FILE).is_file():
            raise ConfigError(f"resume={str(run_dir)!r}: that search already finished ({SUMMARY_FILE} exists)")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(
            f"search.run_dir={str(run_dir)!r} already holds a run; choose a new directory or resume={run_dir}"
        )


def check_width_reaches_rungs(space: SearchSpace, ladder: Ladder) -> None:
    """Refuse a searched width that a rung replaces with its own (``d_model``/``ffn_hidden`` set in a MAD or
    pretraining rung, such as ``pretrain-narrow-b4``):
    every choice would be scored by the same model there, and BOHB would learn nothing from the field."""
    searched = set(space.config.width)
    for rung in ladder.rungs:
        fixed = sorted(f for f in searched if getattr(rung.config, f, None) is not None)
        if fixed:
            raise ConfigError(
                f"search_space.width searches {fixed}, but rung {rung.name} (kind {rung.kind}) sets its own "
                f"fidelity {rung.name}.{'/'.join(fixed)}, so the searched value never reaches it; "
                f"search only {sorted(searched - set(fixed)) or 'other fields'} or set the rung's {fixed} to null"
            )


def run_search(
    settings: SearchSettings,
    space: SearchSpace,
    ladder: Ladder,
    run_dir: Path,
    resume: bool = False,
) -> dict[str, Any]:
    """Run (or resume) a search to completion; returns the summary (also written to ``run_dir``)."""
    check_width_reaches_rungs(space, ladder)
    secret = checked_secret(settings)
    space = constrained_space(space, settings)
    prepare_run_dir(run_dir, resume)
    ladder.prepare_inputs()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    logging.getLogger("hpbandster").setLevel(logging.WARNING)

    if resume:
        saved = json.loads((run_dir / RUN_FILE).read_text())
        run_id = saved["run_id"]
        previous = read_trials(run_dir)
        replay = Replay(read_configs(run_dir), {r.trial_id: r for r in previous}, read_picks(run_dir))
        offset = max((r.elapsed_s for r in previous), default=0.0)
        print(f"resuming {run_dir}: {len(previous)} finished trials will not be run again", flush=True)
    else:
        run_id = settings.run_id or uuid.uuid4().hex[:8]
        replay, offset = Replay({}, {}), 0.0
        saved = {"run_id": run_id, "settings": _public(settings), "search_space": space.resolved_mapping(),
                 "fidelity_name": ladder.name, "ladder": ladder.mapping}
        atomic_write_text(run_dir / RUN_FILE, json.dumps(saved, indent=2, sort_keys=True))

    random.seed(settings.seed)
    np.random.seed(settings.seed)  # hpbandster's samplers use the global NumPy RNG
    space.configspace.seed(settings.seed)
    n_planned = planned_trials(settings.optimizer, ladder, settings.n_iterations)

    board = None
    try:
        with WorkerPool(settings, run_id, _spec(run_id, space, ladder, settings.seed, run_dir),
                        run_dir / "logs", secret) as pool:
            master = make_master(
                settings.optimizer,
                configspace=space.configspace,
                eta=ladder.eta,  # one source of truth: the ladder's budgets are built from it
                min_budget=ladder.min_budget,
                max_budget=ladder.max_budget,
                run_id=run_id,
                nameserver=pool.ns_host,
                nameserver_port=pool.ns_port,
                host=pool.ns_host,
                working_directory=str(run_dir),
                ping_interval=settings.ping_interval_s,
            )
            try:
                for warning in ladder.cost_warnings():
                    print(f"warning: {warning}", flush=True)
                print(f"search {run_id}: {settings.optimizer}, budgets {list(ladder.budgets)} "
                      f"({', '.join(r.name for r in ladder.rungs)}), {n_planned} trials planned, run dir {run_dir}",
                      flush=True)
                pool.start_workers()
                from composer_automl.search.tensorboard import SearchBoard  # imports torch: while workers start

                board = SearchBoard(run_dir)
                master.setup_hooks(space, ladder, str(run_dir), replay, n_planned, offset, board.add,
                                   settings.trial_timeout_s, pool.kill_worker, settings)
                pool.supervise(lambda: master.run(n_iterations=settings.n_iterations,
                                                  min_n_workers=settings.workers_needed),
                               waiting=lambda: master.time_ref is None)
            finally:
                master.stop_hooks()
                master.dispatcher.shutdown(shutdown_workers=True)
                master.dispatcher_thread.join(timeout=10)
    except (KeyboardInterrupt, RunAborted) as err:
        reason = "interrupted" if isinstance(err, KeyboardInterrupt) else f"stopped: {err}"
        print(f"\n{reason}; finished trials are in {run_dir}; continue with: "
              f"composer-automl search resume={run_dir}", flush=True)
        raise
    finally:
        if board is not None:
            board.close()

    records = read_trials(run_dir)
    front = write_front(run_dir, records, settings.target)
    summary = summarize(records, {"run_id": run_id, "optimizer": settings.optimizer,
                                  "budgets": list(ladder.budgets), "planned_trials": n_planned,
                                  "metrics": {f"{b:g}": ladder.metric(b) for b in ladder.budgets},
                                  "objective": settings.objective, "target": settings.target,
                                  "pareto_front": front["front"] if front else [],
                                  "pareto_knee": front["knee"] if front else None})
    write_summary(run_dir, summary)
    print(format_summary(summary, run_dir), flush=True)
    return summary


def constrained_space(space: SearchSpace, settings: SearchSettings) -> SearchSpace:
    """``space`` with ``search.constraints`` as an extra constraint; says how many patterns remain
    (a ConfigError when none does)."""
    bounds = settings.cost_bounds
    if not bounds.active:
        return space
    constrained = dataclasses.replace(space, cost_filter=lambda p: bounds.violation(settings.cost_of(p)))
    given = {k: v for k, v in settings.constraints.items() if v is not None}
    if space.n_searched_patterns <= MAX_COUNTED_PATTERNS:
        total, left = len(space.patterns()), len(constrained.patterns())
        if not left:
            raise ConfigError(f"search.constraints={given}: none of the space's {total} patterns "
                              f"meets them at {settings.target} ({settings.extrapolate})")
        print(f"constraints {given} at {settings.target}: {left} of {total} patterns remain",
              flush=True)
    return constrained


def _public(settings: SearchSettings) -> dict[str, Any]:
    """Settings without the secret (what is saved and shown)."""
    return {k: v for k, v in dataclasses.asdict(settings).items() if k != "secret"}
