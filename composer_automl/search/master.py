"""The search master: hpbandster's BOHB / Hyperband / random search, with our bookkeeping.

:class:`MasterHooks` is mixed in front of an hpbandster optimizer and adds:

- configuration sampling that (a) replays the configurations a resumed run had
  already sampled, under the same ids, (b) rejects patterns breaking the search
  space's constraints, (c) converts values to plain Python (the NumPy-2 fix) and
  logs each new configuration to ``configs.jsonl``;
- submission that answers already-finished trials (resume) from ``trials.jsonl``
  without dispatching them;
- a callback that records each finished trial to ``trials.jsonl``, prints a progress
  line and updates TensorBoard;
- a :class:`~composer_automl.search.cluster.Watchdog` that fails trials running longer than a timeout.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from hpbandster.core.dispatcher import Job
from hpbandster.optimizers import BOHB, HyperBand, RandomSearch

from composer_automl.efficiency import COST_NAMES, Scalarizer
from composer_automl.search import transport
from composer_automl.search.cluster import Watchdog
from composer_automl.search.ladder import Ladder
from composer_automl.search.results import TrialRecord, append_config, append_trial
from composer_automl.search.spaces import SearchSpace

if TYPE_CHECKING:
    from composer_automl.search.run import SearchSettings

log = logging.getLogger("composer_automl.search")

OPTIMIZERS: dict[str, type] = {"bohb": BOHB, "hyperband": HyperBand, "random": RandomSearch}
"""Optimizer name → hpbandster master class."""

SAMPLER_TRIES = 50
"""Optimizer proposals tried before falling back to uniform sampling of valid patterns."""


def trial_id(config_id: tuple[int, ...], budget: float) -> str:
    """``"<iteration>-<stage>-<index>@<budget>"``, the key of a trial in ``trials.jsonl``."""
    return "-".join(str(int(i)) for i in config_id) + f"@{float(budget):g}"


def planned_trials(optimizer: str, ladder: Ladder, n_iterations: int) -> int:
    """Number of (configuration, budget) evaluations an undisturbed run performs."""
    budgets, eta = list(ladder.budgets), ladder.eta
    n_stages = len(budgets)
    total = 0
    for it in range(n_iterations):
        if optimizer == "random":
            per_iter = sum(b * eta**i for i, b in enumerate(budgets[::-1]))
            total += int(per_iter // budgets[-1])
            continue
        s = n_stages - 1 - (it % n_stages)
        n0 = int(math.floor(n_stages / (s + 1)) * eta**s)
        total += sum(max(int(n0 * eta ** (-i)), 1) for i in range(s + 1))
    return total


@dataclass
class Replay:
    """What a run has sampled and finished: configs and their origin by config id, trials by trial id.

    A resumed run starts from its logs; a fresh one from empty mappings that fill as it goes.
    """

    configs: dict[tuple[int, ...], dict[str, Any]]
    trials: dict[str, TrialRecord]
    picks: dict[tuple[int, ...], bool] = field(default_factory=dict)
    """Whether each configuration came from BOHB's model (hpbandster's ``model_based_pick``)."""


class MasterHooks:
    """Mixin placed before an hpbandster optimizer class (see :func:`make_master`)."""

    def setup_hooks(
        self,
        space: SearchSpace,
        ladder: Ladder,
        run_dir: str,
        replay: Replay,
        n_planned: int,
        elapsed_offset: float,
        on_record: Callable[[TrialRecord], None],
        trial_timeout_s: float,
        kill_worker: Callable[[str], bool],
        settings: "SearchSettings",
    ) -> None:
        self.space, self.ladder, self.run_dir, self.settings = space, ladder, run_dir, settings
        self.scalarizer = Scalarizer(settings.seed) if settings.objective == "scalarized" else None
        self.replay, self.n_planned, self.on_record = replay, n_planned, on_record
        self.elapsed_offset, self.t0 = elapsed_offset, time.time()
        self.n_done = 0
        self.best: TrialRecord | None = None
        self.watchdog = Watchdog(self.dispatcher, trial_timeout_s, kill_worker)

    # -- sampling ---------------------------------------------------------------------------
    def get_next_iteration(self, iteration, iteration_kwargs={}):
        it = super().get_next_iteration(iteration, iteration_kwargs)
        it.config_sampler = partial(self._sample, it)
        return it

    def _sample(self, it, budget):
        config_id = (it.HPB_iter, it.stage, it.actual_num_configs[it.stage])
        if config_id in self.replay.configs:
            return dict(self.replay.configs[config_id]), {"replayed": True}
        info: dict[str, Any] = {}
        for _ in range(SAMPLER_TRIES):
            config, info = self.config_generator.get_config(budget)
            config = transport.plain(dict(config))
            if self.space.accepts(config):
                break
        else:
            config = transport.plain(dict(self.space.sample(1)[0]))
            info = {"model_based_pick": False, "fallback": "uniform valid pattern"}
        # hyperband/random samplers say nothing: their picks are random
        self.replay.picks[config_id] = bool(info.get("model_based_pick", False))
        append_config(self.run_dir, config_id, config, str(self.space.to_pattern(config)),
                      self.replay.picks[config_id])
        return config, transport.plain(info)

    # -- submission -------------------------------------------------------------------------
    def _submit_job(self, config_id, config, budget):
        config, budget = transport.plain(config), float(budget)
        done = self.replay.trials.get(trial_id(config_id, budget))
        if done is None:
            return super()._submit_job(config_id, config, budget)
        # Finished before the search was killed: answer from the log, do not run it again.
        job = Job(config_id, config=config, budget=budget, working_directory=self.working_directory)
        for stamp in ("submitted", "started", "finished"):
            job.time_it(stamp)
        ok = done.status == "ok"
        job.result = {"loss": done.loss, "info": {"replayed": True}} if ok else None
        job.exception = None if ok else (done.error or "failed")
        job.replayed = True
        with self.thread_cond:
            self.num_running_jobs += 1
            self.job_callback(job)

    # -- results ----------------------------------------------------------------------------
    def job_callback(self, job):
        """Record a finished job, then hand it to hpbandster; nothing here may raise.

        This runs in a Pyro oneway thread of the dispatcher, where an exception is lost and
        the job would never be released (the search hangs). Any error while recording fails
        the trial (with the traceback as its reason) and the job is still released.
        """
        if self.watchdog.answered_late(job):
            return  # a timed-out job's late answer: recorded and released when it timed out
        replayed = getattr(job, "replayed", False)
        try:
            record = self._scalarized(self._record(job), job)
        except Exception:
            reason = "could not record the result: " + traceback.format_exc()
            log.error("trial %s: %s", getattr(job, "id", "?"), reason)
            job.result, job.exception = None, reason
            record = self._failed_record(job, reason)
        try:
            if not replayed:
                append_trial(self.run_dir, record)
                self.on_record(record)
        except Exception:  # a full disk must not hang the search: report, go on
            log.exception("could not record trial %s", record.trial_id)
        try:
            self._progress(record, replayed)
        except Exception:
            log.exception("could not print the progress of trial %s", record.trial_id)
        self._release(job)

    def _scalarized(self, record: TrialRecord, job) -> TrialRecord:
        """With ``search.objective=scalarized``: the optimizer ranks by the scalarized value (``job.result``),
        the record keeps the rung's loss beside it."""
        if self.scalarizer is None or record.status != "ok":
            return record
        objective = self.scalarizer(record.budget, int(job.id[0]), [record.loss, *(record.cost[n] for n in COST_NAMES)])
        job.result = {**job.result, "loss": objective}
        return dataclasses.replace(record, objective=objective)

    def _release(self, job) -> None:
        """hpbandster's own bookkeeping of a finished job; if it breaks, count the job failed and done."""
        with self.thread_cond:  # re-entrant: hpbandster's callback takes it again
            running = self.num_running_jobs
            try:
                super().job_callback(job)
                return
            except Exception:
                log.error("trial %s: hpbandster could not register the result; counted as failed:\n%s",
                          getattr(job, "id", "?"), traceback.format_exc())
            job.result, job.exception = None, job.exception or "could not register the result"
            if self.num_running_jobs == running:
                self.num_running_jobs -= 1
            for step in (lambda: self.iterations[job.id[0]].register_result(job),
                         lambda: self.config_generator.new_result(job)):
                try:
                    step()
                except Exception:
                    log.exception("trial %s: could not release the job cleanly", getattr(job, "id", "?"))
            self.thread_cond.notify_all()

    def _failed_record(self, job, reason: str) -> TrialRecord:
        """A failed record built from as little as possible (used when :meth:`_record` raised)."""
        config = dict(job.kwargs.get("config") or {})
        budget = float(job.kwargs.get("budget", 0.0))
        try:
            pattern = str(self.space.to_pattern(config))
        except Exception:
            pattern = "?"
        try:
            rung = self.ladder.rung_for(budget).name
        except Exception:
            rung = "?"
        return TrialRecord(trial_id=trial_id(job.id, budget), pattern=pattern, budget=budget, rung=rung,
                           status="failed", loss=None, config=config, error=reason,
                           elapsed_s=self.elapsed_offset + (time.time() - self.t0),
                           worker=_short_worker_name(getattr(job, "worker_name", None)))

    def _record(self, job) -> TrialRecord:
        config, budget = job.kwargs["config"], float(job.kwargs["budget"])
        result = job.result
        loss = None if result is None else result.get("loss")
        info = (result or {}).get("info") or {}
        ok = loss is not None and math.isfinite(float(loss))
        error = None
        if not ok:
            error = self.watchdog.failure(job.id) or job.exception or f"non-finite loss {loss}"
        wall = float(info.get("wall_time_s", 0.0)) or _span(job)
        pattern = self.space.to_pattern(config)
        return TrialRecord(
            trial_id=trial_id(job.id, budget),
            pattern=str(pattern),
            budget=budget,
            rung=self.ladder.rung_for(budget).name,
            status="ok" if ok else "failed",
            loss=float(loss) if ok else None,
            config=dict(config),
            metrics=dict(info.get("metrics", {})),
            wall_time_s=wall,
            error=error,
            elapsed_s=self.elapsed_offset + (time.time() - self.t0),
            worker=_short_worker_name(job.worker_name),
            cost=self.settings.cost_of(pattern).as_dict(),
            model_based_pick=self.replay.picks.get(tuple(job.id)),
        )

    def _progress(self, r: TrialRecord, replayed: bool) -> None:
        self.n_done += 1
        if r.status == "ok" and (self.best is None or r.budget > self.best.budget or
                                 (r.budget == self.best.budget and r.loss < self.best.loss)):
            self.best = r
        best = f"{self.best.pattern}@{self.best.budget:g}={self.best.loss:.4f}" if self.best else "-"
        outcome = f"loss={r.loss:.4f}" if r.status == "ok" else "FAILED " + (r.error or "").strip().splitlines()[-1][:80]
        tag = " (from the log)" if replayed else f" ({r.wall_time_s:.1f} s)"
        print(f"[trial {self.n_done}/{self.n_planned}] budget={r.budget:g} {r.pattern} {outcome}{tag} best={best}",
              flush=True)

    def stop_hooks(self) -> None:
        """Stop the watchdog (safe before setup_hooks)."""
        if hasattr(self, "watchdog"):
            self.watchdog.stop()


def _short_worker_name(name: str | None) -> str | None:
    """``hpbandster.run_ID.worker.HOST.PID[.INDEX]`` → ``HOST.PID[.INDEX]``."""
    return name.split(".worker.", 1)[-1] if name else None


def _span(job) -> float:
    ts = job.timestamps
    return float(ts.get("finished", 0.0) - ts.get("started", 0.0)) if "started" in ts else 0.0


def make_master(optimizer: str, **kwargs: Any):
    """Build an hpbandster optimizer of kind ``optimizer`` with :class:`MasterHooks` mixed in."""
    base = OPTIMIZERS[optimizer]
    cls = type(f"Search{base.__name__}", (MasterHooks, base), {})
    return cls(**kwargs)
