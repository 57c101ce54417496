"""The search's optimizers, as proposers the engine drives: hpbandster's BOHB, Hyperband and random search.

:class:`SearchProposer` wraps an ask/tell optimizer with the search's bookkeeping:

- every new configuration is drawn until its pattern satisfies the space's constraints and was not
  sampled at that budget before (a repeat would rerun the same seeded trial), converted to plain
  values and logged to ``configs.jsonl`` with its origin (model or random);
- a resumed run replays its logs: each logged configuration is drawn again under the same
  id (so the optimizer's random state continues where it was) and replaced by the logged
  one, and every finished trial is told from ``trials.jsonl`` instead of being run again;
- each result is recorded (``trials.jsonl``, TensorBoard, a progress line) and told to the
  optimizer as the value it ranks by: the loss, or ParEGO's scalarized value.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from composer_automl.adapters.hpbandster import SuccessiveHalving
from composer_automl.adapters.pyro import plain
from composer_automl.efficiency import COST_NAMES, Scalarizer
from composer_automl.engine.jobs import EvalJob, Evaluation, JobId
from composer_automl.engine.ladder import Ladder
from composer_automl.search.results import TrialRecord, append_config, append_trial
from composer_automl.spaces import SearchSpace

log = logging.getLogger("composer_automl.search")

SAMPLER_TRIES = 50
"""Optimizer proposals tried before falling back to uniform sampling of valid, unseen configurations."""
MAX_UNIFORM_DRAWS = 2000
"""Uniform draws tried for a configuration not yet sampled at the budget before a repeat is allowed."""


def trial_id(config_id: JobId, budget: float) -> str:
    """``"<iteration>-<stage>-<index>@<budget>"``, the key of a trial in ``trials.jsonl``."""
    return "-".join(str(int(i)) for i in config_id) + f"@{float(budget):g}"


@dataclass
class History:
    """What a run has sampled and finished, from its logs (empty for a new run)."""

    configs: dict[JobId, dict[str, Any]] = field(default_factory=dict)
    picks: dict[JobId, bool] = field(default_factory=dict)
    """Whether each configuration came from the optimizer's model."""
    trials: dict[str, TrialRecord] = field(default_factory=dict)
    """Finished trials by trial id."""

    @property
    def elapsed_s(self) -> float:
        """Search time already spent (the clock a resumed run continues)."""
        return max((r.elapsed_s for r in self.trials.values()), default=0.0)


class SearchProposer:
    """The search's optimizer as an engine proposer (see the module docstring)."""

    def __init__(self, optimizer: str, n_iterations: int, space: SearchSpace, ladder: Ladder, run_dir: Path,
                 seed: int, history: History, cost_of: Callable[[Any], Any], scalarize: bool,
                 on_record: Callable[[TrialRecord, bool], None], bohb: dict[str, Any] | None = None):
        self.space, self.ladder, self.run_dir, self.seed = space, ladder, Path(run_dir), seed
        self.history, self.cost_of, self.on_record = history, cost_of, on_record
        self.scalarizer = Scalarizer(seed) if scalarize else None
        self.optimizer = SuccessiveHalving(optimizer, space.configspace, list(ladder.budgets), ladder.eta,
                                           n_iterations, self._sample, bohb)
        self.configs: dict[JobId, dict[str, Any]] = {}
        self.sampled: dict[float, set[tuple]] = {}
        """Budget → identities of the configurations sampled there (never proposed again at that budget)."""
        self.picks: dict[JobId, bool] = dict(history.picks)
        self.objectives: dict[JobId, float | None] = {}
        self.t0 = time.time()

    # -- the optimizer's new configurations ---------------------------------------------------------
    def _sample(self, config_id: JobId, budget: float, draw) -> tuple[dict[str, Any], dict[str, Any]]:
        config, info = self._draw_new(budget, draw)
        logged = self.history.configs.get(config_id)
        if logged is not None:  # resumed: the same draw as before, but the logged configuration is the truth
            if logged != config:
                log.warning("config %s: the resumed optimizer drew %s, the log says %s; keeping the log's",
                            config_id, config, logged)
            config, info = dict(logged), {"replayed": True}
        else:
            self.picks[config_id] = bool(info.get("model_based_pick", False))  # hyperband/random say nothing
            append_config(self.run_dir, config_id, config, str(self.space.to_pattern(config)), self.picks[config_id])
        self.configs[config_id] = config
        self.sampled.setdefault(float(budget), set()).add(self._identity(config))
        return config, plain(info)

    def _draw_new(self, budget: float, draw) -> tuple[dict[str, Any], dict[str, Any]]:
        """The optimizer's proposal, redrawn until it satisfies the constraints and was not sampled at this budget
        before; then uniform draws of such configurations; when the space has none left, a repeat."""
        seen = self.sampled.get(float(budget), set())
        for _ in range(SAMPLER_TRIES):
            config, info = draw(budget)
            config = plain(dict(config))
            if self.space.accepts(config) and self._identity(config) not in seen:
                return config, info
        fallback = {"model_based_pick": False, "fallback": "uniform valid configuration"}
        for _ in range(MAX_UNIFORM_DRAWS):
            config = plain(dict(self.space.sample(1)[0]))
            if self._identity(config) not in seen:
                return config, fallback
        return config, {**fallback, "repeat": True}

    def _identity(self, config: dict[str, Any]) -> tuple:
        """What makes two configurations the same trial: the pattern and the searched width."""
        return (str(self.space.to_pattern(config)), *sorted(vars(self.space.width(config)).items()))

    # -- proposer ------------------------------------------------------------------------------------
    def ask(self) -> EvalJob | None:
        """The next trial to run; trials a resumed run already finished are told from the log on the way."""
        while True:
            run = self.optimizer.ask()
            if run is None:
                return None
            config_id, config, budget = run
            done = self.history.trials.get(trial_id(config_id, budget))
            if done is None:
                pattern = str(self.space.to_pattern(config))
                width = {k: int(v) for k, v in vars(self.space.width(config)).items()}
                return EvalJob(config_id, pattern, width, budget, self.seed)
            self._finish(config_id, budget, done, replayed=True)

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
                                 worker=result.worker, code_version=result.code_version)
        append_trial(self.run_dir, record)
        self.on_record(record, False)

    def _trial_record(self, result: Evaluation) -> TrialRecord:
        config_id = result.job.id
        return TrialRecord(
            trial_id=trial_id(config_id, result.job.budget), pattern=result.job.pattern, budget=result.job.budget,
            rung=result.rung, config=dict(self.configs[config_id]), elapsed_s=self._elapsed(),
            cost=self.cost_of(result.job.pattern).as_dict(), model_based_pick=self.picks.get(config_id),
            **result.outcome())

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
        self.optimizer.tell(config_id, self.configs[config_id], budget, objective if record.status == "ok" else None,
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
        return self.optimizer.finished
