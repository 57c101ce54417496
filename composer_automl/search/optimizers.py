"""The search's optimizers, as proposers the engine drives.

An optimizer is anything with the :class:`AskTell` interface: hpbandster's BOHB, Hyperband and
random search (:mod:`composer_automl.adapters.hpbandster`) and SMAC3's multi-fidelity facade
(:mod:`composer_automl.adapters.smac`). :class:`SearchProposer` wraps one with the search's
bookkeeping:

- every new configuration is drawn until its pattern satisfies the space's constraints and was not
  sampled at that budget before (a repeat would rerun the same seeded trial), converted to plain
  values;
- every ask is logged to ``configs.jsonl`` and every result to ``trials.jsonl`` under one event
  count; a resumed run replays both in that order — the optimizer asks again (drawing the same
  configurations from the same random state, the log's being the truth) and hears every result it
  heard before — so it continues in exactly the state it had, and asks whose trial never finished
  run first;
- each result is recorded (``trials.jsonl``, TensorBoard, a progress line) and told to the
  optimizer as the value it ranks by: the loss, or ParEGO's scalarized value.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from composer_automl.adapters.pyro import plain
from composer_automl.efficiency import COST_NAMES, Scalarizer
from composer_automl.engine.jobs import EvalJob, Evaluation, JobId
from composer_automl.search.results import Ask, TrialRecord, append_ask, append_trial
from composer_automl.spaces import SearchSpace

log = logging.getLogger("composer_automl.search")

SAMPLER_TRIES = 50
"""Optimizer proposals tried before falling back to uniform sampling of valid, unseen configurations."""
MAX_UNIFORM_DRAWS = 2000
"""Uniform draws tried for configurations not yet sampled at the budget before a repeat is allowed."""
MAX_STALE_DRAWS = 200
"""Consecutive uniform draws that find no new unseen configuration after which the search stops looking (a
constrained space with a handful of valid patterns would otherwise spend every draw on each proposal)."""
MAX_LISTED_PATTERNS = 4096
"""Spaces up to this size list their valid configurations once, so an exhausted budget is known at once."""
FALLBACK_CANDIDATES = 64
"""Unseen configurations the model ranks when its own proposals were all evaluated before."""

Draw = Callable[[float], tuple[dict[str, Any], dict[str, Any]]]
Sampler = Callable[[JobId, float, Draw], tuple[dict[str, Any], dict[str, Any]]]


class AskTell(Protocol):
    """An optimizer the search drives: it proposes (configuration id, configuration, budget) and hears results.
    New configurations go through the ``sampler`` hook it was built with."""

    def ask(self) -> tuple[JobId, dict[str, Any], float] | None:
        """The next run, or None when nothing can be proposed until a result arrives (or ever)."""

    def tell(self, config_id: JobId, config: dict[str, Any], budget: float, loss: float | None,
             exception: str | None = None) -> None:
        """A run's result (``loss`` None: it failed and counts as worst)."""

    @property
    def finished(self) -> bool:
        """Nothing will ever be asked again."""


OPTIMIZERS = ("bohb", "hyperband", "random", "smac")
"""hpbandster's BOHB (density-model sampling), Hyperband and random search; SMAC3's multi-fidelity facade."""


def make_optimizer(name: str, space: SearchSpace, budgets: list[float], eta: float, n_iterations: int, seed: int,
                   bohb: dict[str, Any], smac_dir: Path) -> Callable[[Sampler], AskTell]:
    """The optimizer ``name`` for ``n_iterations`` successive-halving brackets over ``budgets`` (SMAC: as many runs
    as BOHB would make), built around the search's sampler hook."""
    from composer_automl.adapters import hpbandster

    if name == "smac":
        from composer_automl.adapters.smac import SmacMultiFidelity

        n_trials = hpbandster.planned_runs("bohb", budgets, eta, n_iterations)
        return lambda sampler: SmacMultiFidelity(space.configspace, budgets, eta, n_trials, seed, smac_dir,
                                                 space.accepts, sampler)
    return lambda sampler: hpbandster.SuccessiveHalving(name, space.configspace, budgets, eta, n_iterations, sampler,
                                                        bohb if name == "bohb" else None)


def trial_id(config_id: JobId, budget: float) -> str:
    """``"<iteration>-<stage>-<index>@<budget>"``, the key of a trial in ``trials.jsonl``."""
    return "-".join(str(int(i)) for i in config_id) + f"@{float(budget):g}"


@dataclass
class History:
    """What a run has asked and finished, from its logs (empty for a new run)."""

    asks: list[Ask] = field(default_factory=list)
    trials: dict[str, TrialRecord] = field(default_factory=dict)
    """Finished trials by trial id."""

    @property
    def configs(self) -> dict[JobId, dict[str, Any]]:
        """The configurations sampled new, by config id."""
        return {a.config_id: a.config for a in self.asks if a.sampled}

    @property
    def elapsed_s(self) -> float:
        """Search time already spent (the clock a resumed run continues)."""
        return max((r.elapsed_s for r in self.trials.values()), default=0.0)

    @property
    def next_seq(self) -> int:
        seqs = [a.seq for a in self.asks if a.seq is not None] + [r.seq for r in self.trials.values() if r.seq is not None]
        return max(seqs, default=-1) + 1


class SearchProposer:
    """The search's optimizer as an engine proposer (see the module docstring).

    ``make_optimizer(sampler)`` builds the :class:`AskTell` optimizer around this proposer's sampler hook.
    """

    def __init__(self, make_optimizer: Callable[[Sampler], AskTell], space: SearchSpace, run_dir: Path, seed: int,
                 history: History, cost_of: Callable[[Any], Any], scalarize: bool,
                 on_record: Callable[[TrialRecord, bool], None]):
        self.space, self.run_dir, self.seed = space, Path(run_dir), seed
        self.history, self.cost_of, self.on_record = history, cost_of, on_record
        self.scalarizer = Scalarizer(seed) if scalarize else None
        self.optimizer = make_optimizer(self._sample)
        self.configs: dict[JobId, dict[str, Any]] = {}
        self.picks: dict[JobId, bool] = {}
        self.sampled: dict[float, set[tuple]] = {}
        """Budget → identities of the configurations sampled or promoted there (never sampled anew at that budget or
        a lower one)."""
        self.objectives: dict[JobId, float | None] = {}
        self.pending: list[tuple[JobId, dict[str, Any], float]] = []
        """Asks replayed from the log whose trial never finished: they run first."""
        self.seq = history.next_seq
        self.t0 = time.time()
        self._drawn: set[JobId] = set()
        self._replay()

    # -- the optimizer's new configurations ---------------------------------------------------------
    def _sample(self, config_id: JobId, budget: float, draw: Draw) -> tuple[dict[str, Any], dict[str, Any]]:
        config, info = self._draw_new(budget, draw)
        logged = self.history.configs.get(config_id)
        if logged is not None:  # replayed: the same draw as before, but the logged configuration is the truth
            if logged != config:
                log.warning("config %s: the resumed optimizer drew %s, the log says %s; keeping the log's",
                            config_id, config, logged)
            config = dict(logged)
        self.picks[config_id] = bool(info.get("model_based_pick", False))  # hyperband/random say nothing
        self._mark_run(config, budget)
        self._drawn.add(config_id)
        return config, plain(info)

    def _draw_new(self, budget: float, draw: Draw) -> tuple[dict[str, Any], dict[str, Any]]:
        """The optimizer's proposal, redrawn until it satisfies the constraints and has not run at this budget or a
        higher one. A model that keeps proposing what was already evaluated (it has converged on a small space) picks
        instead the best of :data:`FALLBACK_CANDIDATES` valid, unseen configurations by its own acquisition
        (without a model: the first of them); when the space has none left, a repeat."""
        # run at this budget or above: a new sample here could only repeat that run (or, promoted, re-run it)
        seen = set().union(*(ids for b, ids in self.sampled.items() if b >= float(budget)))
        for _ in range(SAMPLER_TRIES):
            config, info = draw(budget)
            config = plain(dict(config))
            if self.space.accepts(config):
                if self._identity(config) not in seen:
                    return config, info
                if info.get("model_based_pick"):
                    break  # the model's favourite was evaluated: rank the unseen ones (redraws would favour random)
        listed = self._valid_configs
        if listed is not None and all(self._identity(c) in seen for c in listed):
            return listed[0], {"model_based_pick": False, "fallback": "repeat: no unseen configuration left"}
        candidates: dict[tuple, dict[str, Any]] = {}
        stale = 0
        for _ in range(MAX_UNIFORM_DRAWS):
            config = plain(dict(self.space.sample(1)[0]))
            identity = self._identity(config)
            stale = 0 if identity not in seen and identity not in candidates else stale + 1
            if identity not in seen:
                candidates.setdefault(identity, config)
                if len(candidates) == FALLBACK_CANDIDATES:
                    break
            if stale == MAX_STALE_DRAWS:
                break
        if not candidates:
            return config, {"model_based_pick": False, "fallback": "repeat: no unseen configuration left"}
        pool = list(candidates.values())
        scores = self.optimizer.score(pool) if hasattr(self.optimizer, "score") else None
        if scores is None:
            return pool[0], {"model_based_pick": False, "fallback": "uniform unseen configuration"}
        return pool[min(range(len(pool)), key=scores.__getitem__)], {"model_based_pick": True,
                                                                     "fallback": "best unseen under the model"}

    @functools.cached_property
    def _valid_configs(self) -> list[dict[str, Any]] | None:
        """Every configuration satisfying the constraints, for a space of at most :data:`MAX_LISTED_PATTERNS`
        patterns that searches no width (None otherwise); listed on first use."""
        if self.space.config.width or self.space.n_searched_patterns > MAX_LISTED_PATTERNS:
            return None
        return [plain(dict(self.space.to_config(p))) for p in self.space.patterns()]

    def _mark_run(self, config: dict[str, Any], budget: float) -> None:
        """A configuration runs at ``budget`` (sampled there or promoted to it): never sample it anew there."""
        self.sampled.setdefault(float(budget), set()).add(self._identity(config))

    def _identity(self, config: dict[str, Any]) -> tuple:
        """What makes two configurations the same trial: the pattern and the searched width."""
        return (str(self.space.to_pattern(config)), *sorted(vars(self.space.width(config)).items()))

    # -- resume -------------------------------------------------------------------------------------
    def _replay(self) -> None:
        """Re-run a resumed run's asks and results in their logged order (logs of older versions have no event
        numbers: their finished trials are told as the optimizer asks for them, in :meth:`ask`)."""
        asks = [a for a in self.history.asks if a.seq is not None]
        told = [r for r in self.history.trials.values() if r.seq is not None]
        events = sorted([(a.seq, 0, a) for a in asks] + [(r.seq, 1, r) for r in told], key=lambda e: e[:2])
        asked: dict[str, tuple[JobId, dict[str, Any], float]] = {}
        for _, kind, item in events:
            if kind == 0:
                run = self.optimizer.ask()
                if run is not None:
                    run = (tuple(run[0]), plain(dict(run[1])), float(run[2]))
                    self._mark_run(run[1], run[2])
                    self.configs[run[0]] = run[1]
                    self._drawn.discard(run[0])
                    asked[trial_id(run[0], run[2])] = run
                if run is None or run[::2] != (tuple(item.config_id), float(item.budget)):
                    log.warning("resume: the optimizer asked for %s where the log has %s@%g; the rest of the log "
                                "is told as its trials come up", run and trial_id(run[0], run[2]), item.config_id,
                                item.budget)
                    break
            elif item.trial_id in asked:
                config_id, _, budget = asked.pop(item.trial_id)
                self._finish(config_id, budget, item, replayed=True)
        self.pending = list(asked.values())

    # -- proposer ------------------------------------------------------------------------------------
    def ask(self) -> EvalJob | None:
        """The next trial to run: a replayed ask that never finished, else the optimizer's next one (a trial an
        older-version log finished is told from the log on the way)."""
        while True:
            if self.pending:
                config_id, config, budget = self.pending.pop(0)
            else:
                run = self.optimizer.ask()
                if run is None:
                    return None
                config_id, config, budget = tuple(run[0]), plain(dict(run[1])), float(run[2])
                self._mark_run(config, budget)
                self._log_ask(config_id, config, budget)
            done = self.history.trials.get(trial_id(config_id, budget))
            if done is None:
                width = {k: int(v) for k, v in vars(self.space.width(config)).items()}
                return EvalJob(config_id, str(self.space.to_pattern(config)), width, budget, self.seed)
            self._finish(config_id, budget, done, replayed=True)

    def _log_ask(self, config_id: JobId, config: dict[str, Any], budget: float) -> None:
        self.configs[config_id] = config
        sampled = config_id in self._drawn
        self._drawn.discard(config_id)
        ask = Ask(config_id, config, str(self.space.to_pattern(config)), budget, sampled,
                  self.picks.get(config_id) if sampled else None, self._next_seq())
        append_ask(self.run_dir, ask)

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq - 1

    def record(self, result: Evaluation) -> None:
        """Record a trial the engine ran (its objective is kept for :meth:`tell`). An error while building the
        record fails the trial, with the traceback as its reason."""
        config_id = result.job.id
        self.objectives[config_id] = None  # unless recording succeeds
        try:
            record = self._with_objective(self._trial_record(result), config_id)
        except Exception:
            reason = "could not record the result: " + traceback.format_exc()
            log.error("trial %s: %s", config_id, reason)
            record = TrialRecord(trial_id=trial_id(config_id, result.job.budget), pattern=result.job.pattern,
                                 budget=result.job.budget, rung=result.rung, status="failed", loss=None,
                                 config=dict(self.configs[config_id]), error=reason, elapsed_s=self._elapsed(),
                                 worker=result.worker, code_version=result.code_version, seq=self._next_seq())
        append_trial(self.run_dir, record)
        self.on_record(record, False)

    def _trial_record(self, result: Evaluation) -> TrialRecord:
        config_id = result.job.id
        return TrialRecord(
            trial_id=trial_id(config_id, result.job.budget), pattern=result.job.pattern, budget=result.job.budget,
            rung=result.rung, config=dict(self.configs[config_id]), elapsed_s=self._elapsed(),
            cost=self.cost_of(result.job.pattern).as_dict(), model_based_pick=self.picks.get(config_id),
            seq=self._next_seq(), **result.outcome())

    def _elapsed(self) -> float:
        """Seconds since the search first started (a resumed run continues the clock)."""
        return self.history.elapsed_s + (time.time() - self.t0)

    def tell(self, result: Evaluation) -> None:
        config_id = result.job.id
        objective = self.objectives.pop(config_id, None)
        self.optimizer.tell(config_id, self.configs[config_id], result.job.budget,
                            objective if result.ok else None, result.error)

    def _finish(self, config_id: JobId, budget: float, record: TrialRecord, replayed: bool) -> None:
        """Tell a trial finished before the run was resumed, as it was recorded."""
        record = self._with_objective(record, config_id)
        self.on_record(record, replayed)
        objective = self.objectives.pop(config_id)
        self.optimizer.tell(config_id, self.configs[config_id], budget, objective if record.ok else None,
                            record.error)

    def _with_objective(self, record: TrialRecord, config_id: JobId) -> TrialRecord:
        """The record with the value the optimizer ranks by (``search.objective=scalarized``: ParEGO's)."""
        objective = record.loss
        if self.scalarizer is not None and record.status == "ok":
            objective = self.scalarizer(record.budget, int(config_id[0]),
                                        [record.loss, *(record.cost[n] for n in COST_NAMES)])
            record = dataclasses.replace(record, objective=objective)
        self.objectives[config_id] = objective
        return record

    @property
    def finished(self) -> bool:
        return not self.pending and self.optimizer.finished
