"""One search: the optimizer drives the engine's workers over the fidelity ladder; the run directory keeps it all.

Everything is checked before the first worker starts; the run directory is locked for
the life of the process. Ctrl-C stops everything and leaves a resumable run directory.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from composer_automl.adapters.hpbandster import planned_runs
from composer_automl.config import ConfigError, choice, to_dataclass
from composer_automl.efficiency import OBJECTIVES, Constraints, TargetCost, target_cost
from composer_automl.engine.ladder import Ladder
from composer_automl.engine.pool import PoolSettings, RunAborted
from composer_automl.engine.rundir import RunLock, check_new_run_dir, stopped_message
from composer_automl.engine.runner import Engine
from composer_automl.engine.spec import RunSpec
from composer_automl.extrapolate.scale import STRATEGIES as EXTRAPOLATIONS
from composer_automl.files import atomic_write_text, check_writable, repair_torn_tail
from composer_automl.presets import TARGET_SIZES
from composer_automl.search.front import write_front
from composer_automl.search.optimizers import OPTIMIZERS, History, SearchProposer, make_optimizer
from composer_automl.search.results import CONFIGS_FILE, SUMMARY_FILE, TRIALS_FILE, TrialRecord, read_asks, read_trials
from composer_automl.spaces import SearchSpace
from composer_automl.search.summary import format_summary, summarize, write_summary

log = logging.getLogger("composer_automl.search")

MAX_COUNTED_PATTERNS = 4096
"""Spaces up to this size are enumerated to say how many patterns meet the constraints."""
RUN_FILE = "search.json"
"""The resolved search (space, ladder, settings) saved in the run directory; resume reads it."""


@dataclass
class BOHBSettings:
    """``search.bohb.*``: BOHB's density model (hpbandster's config generator). Defaults: hpbandster's, except
    ``random_fraction`` (0.1, not 1/3), chosen on HybridBench-6 tuning seeds 1000-1009 (README: Optimizers
    compared), where it matched or beat 1/3 on every seed; ``top_n_percent=30`` and ``bandwidth_factor=1``
    changed nothing there."""

    min_points_in_model: Optional[int] = None
    """Results at a budget before its model is fitted (null: d + 1 for d searched hyperparameters, hpbandster's
    floor; the model also needs more than d good and more than d bad results, so about 2(d + 1) in all)."""
    top_n_percent: int = 15
    """Share of a budget's results (percent) the model counts as good."""
    num_samples: int = 64
    """Candidates drawn from the good density per proposal (the best ratio good/bad is proposed)."""
    random_fraction: float = 0.1
    """Share of proposals drawn uniformly at random once a model exists."""
    bandwidth_factor: float = 3.0
    """Widening of the good density's kernels when candidates are drawn."""
    min_bandwidth: float = 1e-3
    """Smallest kernel bandwidth (keeps candidates diverse when good results agree on a layer)."""

    def __post_init__(self) -> None:
        if self.min_points_in_model is not None and self.min_points_in_model < 1:
            raise ConfigError(f"must be >= 1 or null, got {self.min_points_in_model}", key="min_points_in_model")
        if not 1 <= self.top_n_percent <= 99:
            raise ConfigError(f"must be in [1, 99], got {self.top_n_percent}", key="top_n_percent")
        if self.num_samples < 1:
            raise ConfigError(f"must be >= 1, got {self.num_samples}", key="num_samples")
        if not 0 <= self.random_fraction <= 1:
            raise ConfigError(f"must be in [0, 1], got {self.random_fraction}", key="random_fraction")
        for name in ("bandwidth_factor", "min_bandwidth"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"must be > 0, got {getattr(self, name)}", key=name)


@dataclass
class SearchSettings(PoolSettings):
    """The ``search:`` section of ``conf/search.yaml`` (worker-pool fields: :class:`PoolSettings`)."""

    optimizer: str = "bohb"
    """``bohb``, ``hyperband``, ``random`` (hpbandster) or ``smac`` (SMAC3's multi-fidelity facade, the
    ``smac`` extra)."""
    n_iterations: int = 12
    """Successive-halving brackets to run (BOHB/Hyperband iterations). 12 on the default ladder: 30 trials, the
    fewest in which BOHB's model proposes (it needs 2·(d + 1) = 14 results at a budget for d = 6 layers)."""
    seed: int = 0
    """Seeds the optimizer's sampling and every trial."""
    run_dir: str | None = None
    """Where results go (default: ``runs/search-<time>``)."""
    target: str = "1B"
    """Size every pattern is costed at (``350M``, ``1B``, ``3B``): params, FLOPs/token, KV cache vs Llama."""
    extrapolate: str = "stack"
    """How a pattern grows to the target depth: ``stack`` or ``stretch``."""
    constraints: Constraints = field(default_factory=Constraints)
    """Bounds on the target-scale cost ratios (:class:`~composer_automl.efficiency.Constraints`);
    patterns outside them are never evaluated."""
    objective: str = "loss"
    """``loss`` (the rung's loss) or ``scalarized`` (ParEGO: loss and cost ratios, weights per bracket)."""
    bohb: BOHBSettings = field(default_factory=BOHBSettings)
    """BOHB's density-model knobs (``optimizer=bohb``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        choice(self.optimizer, OPTIMIZERS, "optimizer")
        if self.n_iterations < 1:
            raise ConfigError(f"must be >= 1, got {self.n_iterations}", key="n_iterations")
        if self.seed < 0:
            raise ConfigError(f"={self.seed} must be >= 0 (it seeds NumPy, which takes no negative seed)", key="seed")
        choice(self.target, TARGET_SIZES, "target")
        choice(self.extrapolate, EXTRAPOLATIONS, "extrapolate")
        choice(self.objective, OBJECTIVES, "objective")

    def cost_of(self, pattern) -> TargetCost:
        """``pattern`` at this search's target size."""
        return target_cost(pattern, self.target, self.extrapolate)


def check_search(settings: SearchSettings, space: SearchSpace, ladder: Ladder) -> SearchSpace:
    """Everything about a search that can be refused before it starts; returns the space with the
    ``search.constraints`` applied."""
    if settings.optimizer == "smac":
        from composer_automl.adapters.smac import require_smac

        require_smac()
    check_width_reaches_rungs(space, ladder)
    check_target_fit(space, settings)
    return constrained_space(space, settings)


def planned_trials(optimizer: str, ladder: Ladder, n_iterations: int) -> int:
    """(configuration, budget) trials an undisturbed search of ``n_iterations`` brackets runs (SMAC: as many as
    BOHB)."""
    return planned_runs("bohb" if optimizer == "smac" else optimizer, list(ladder.budgets), ladder.eta, n_iterations)


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run needs an absent or empty, writable folder; a resume an unfinished search run."""
    if not resume:
        check_new_run_dir(run_dir, "search.run_dir", "search")
        return
    check_writable(run_dir, "resume")
    if not (run_dir / RUN_FILE).is_file():
        raise ConfigError(f"resume={str(run_dir)!r} is not a search run directory (no {RUN_FILE})")
    if (run_dir / SUMMARY_FILE).is_file():
        raise ConfigError(f"resume={str(run_dir)!r}: that search already finished ({SUMMARY_FILE} exists)")


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


def run_search(settings: SearchSettings, space: SearchSpace, ladder: Ladder, run_dir: Path,
               resume: bool = False) -> dict[str, Any]:
    """Run (or resume) a search to completion; returns the summary (also written to ``run_dir``)."""
    space = check_search(settings, space, ladder)
    check_run_dir(run_dir, resume)
    if settings.n_workers:
        ladder.check_devices()  # what local workers will train on exists here
    ladder.prepare_inputs()  # input errors before the run directory exists
    with RunLock(run_dir):
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        if resume:
            for name in (TRIALS_FILE, CONFIGS_FILE):
                if line := repair_torn_tail(run_dir / name):
                    print(f"warning: {line}", flush=True)
            run_id = json.loads((run_dir / RUN_FILE).read_text())["run_id"]
            history = History(read_asks(run_dir), {r.trial_id: r for r in read_trials(run_dir)})
            print(f"resuming {run_dir}: {len(history.trials)} finished trials will not be run again", flush=True)
        else:
            run_id = settings.run_id or uuid.uuid4().hex[:8]
            history = History()
            saved = {"run_id": run_id, "settings": public_settings(settings), "search_space": space.resolved_mapping(),
                     "fidelity_name": ladder.name, "ladder": ladder.mapping}
            atomic_write_text(run_dir / RUN_FILE, json.dumps(saved, indent=2, sort_keys=True))
        return _search(settings, space, ladder, run_dir, run_id, history)


def _search(settings: SearchSettings, space: SearchSpace, ladder: Ladder, run_dir: Path, run_id: str,
            history: History) -> dict[str, Any]:
    random.seed(settings.seed)
    np.random.seed(settings.seed)  # hpbandster's samplers use the global NumPy RNG
    space.configspace.seed(settings.seed)
    n_planned = planned_trials(settings.optimizer, ladder, settings.n_iterations)
    for warning in ladder.cost_warnings():
        print(f"warning: {warning}", flush=True)
    print(f"search {run_id}: {settings.optimizer}, budgets {list(ladder.budgets)} "
          f"({', '.join(r.name for r in ladder.rungs)}), {n_planned} trials planned, run dir {run_dir}", flush=True)
    from composer_automl.search.tensorboard import SearchBoard  # imports torch

    board = SearchBoard(run_dir)
    progress = Progress(n_planned)

    def on_record(record: TrialRecord, replayed: bool) -> None:
        if not replayed:
            board.add(record)
        progress(record, replayed)

    optimizer = make_optimizer(settings.optimizer, space, list(ladder.budgets), ladder.eta, settings.n_iterations,
                               settings.seed, dataclasses.asdict(settings.bohb), run_dir / "smac")
    proposer = SearchProposer(optimizer, space, run_dir, settings.seed, history, settings.cost_of,
                              settings.objective == "scalarized", on_record)
    spec = RunSpec(run_id, ladder.name, ladder.mapping, str(run_dir.resolve()))
    try:
        Engine(settings, spec, ladder, run_dir / "logs", "search", "search").run(proposer, proposer.record)
    except (KeyboardInterrupt, RunAborted) as err:
        print(stopped_message(err, run_dir, "search", "finished trials"), flush=True)
        raise
    finally:
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


class Progress:
    """One line per finished trial: count, budget, pattern, outcome, and the incumbent (highest budget first)."""

    def __init__(self, n_planned: int):
        self.n_planned, self.n_done = n_planned, 0
        self.best: TrialRecord | None = None

    def __call__(self, r: TrialRecord, replayed: bool) -> None:
        self.n_done += 1
        if r.status == "ok" and (self.best is None or r.budget > self.best.budget or
                                 (r.budget == self.best.budget and r.loss < self.best.loss)):
            self.best = r
        best = f"{self.best.pattern}@{self.best.budget:g}={self.best.loss:.4f}" if self.best else "-"
        outcome = f"loss={r.loss:.4f} (from the log)" if replayed and r.ok else r.summary()
        print(f"[trial {self.n_done}/{self.n_planned}] budget={r.budget:g} {r.pattern} {outcome} best={best}", flush=True)


FIT_SAMPLE = 64
"""Patterns of a space too large to enumerate that are checked against the target before a search."""


def check_target_fit(space: SearchSpace, settings: SearchSettings) -> None:
    """Every trial is costed at ``search.target``: refuse, before the search, a space none of whose patterns can be
    extrapolated to it (every pattern of an enumerable space; a seeded sample of a larger one). A space where only
    some cannot (79 of one-shot-16's 65,534 at 1B) is searched: :func:`constrained_space` never proposes those."""
    if space.n_searched_patterns <= MAX_COUNTED_PATTERNS:
        patterns = space.patterns()
    else:
        sampler = dataclasses.replace(space, configspace=copy.deepcopy(space.configspace))
        sampler.configspace.seed(settings.seed)
        patterns = [space.to_pattern(c) for c in sampler.sample(FIT_SAMPLE)]
    first_error = None
    for pattern in patterns:
        try:
            settings.cost_of(pattern)
            return
        except ConfigError as err:
            first_error = first_error or (pattern, err)
    if first_error:
        pattern, err = first_error
        why = f"{pattern}: {err.message}" if len(pattern) <= 24 else \
            "a pattern that long does not fit the target's size at any depth"
        raise ConfigError(f"={settings.target}: the search space's {space.n_total}-layer patterns cannot be "
                          f"costed at it ({why}); choose another search.target or fewer search_space.n_layers",
                          key="search.target")


def constrained_space(space: SearchSpace, settings: SearchSettings) -> SearchSpace:
    """``space`` with ``search.constraints`` as an extra constraint; says how many patterns remain
    (a ConfigError when none does). A pattern that cannot be costed at ``search.target`` (a rare one of a space
    too large to check whole) is never proposed."""
    bounds = settings.constraints

    def cost_violation(pattern) -> str | None:
        try:
            cost = settings.cost_of(pattern)
        except ConfigError:
            return f"cannot be costed at {settings.target} ({settings.extrapolate})"
        return bounds.violation(cost)

    constrained = dataclasses.replace(space, cost_filter=cost_violation)
    if not bounds.active:
        return constrained
    given = {k: v for k, v in dataclasses.asdict(bounds).items() if v is not None}
    if space.n_searched_patterns <= MAX_COUNTED_PATTERNS:
        total, left = len(space.patterns()), len(constrained.patterns())
        if not left:
            raise ConfigError(f"search.constraints={given}: none of the space's {total} patterns "
                              f"meets them at {settings.target} ({settings.extrapolate})")
        print(f"constraints {given} at {settings.target}: {left} of {total} patterns remain",
              flush=True)
    return constrained


def public_settings(settings: SearchSettings) -> dict[str, Any]:
    """Settings without the secret (what is saved and shown)."""
    return {k: v for k, v in dataclasses.asdict(settings).items() if k != "secret"}
