"""hpbandster, all of it that we use (pinned by ``tests/adapters/test_hpbandster.py``).

Two parts of hpbandster 0.7.4 serve us, and both lean on its internals:

- **The transport.** Its ``Dispatcher`` finds workers through a Pyro4 nameserver, hands
  them jobs and calls back with results; its ``Worker`` serves jobs. :class:`Dispatch`
  runs a dispatcher and turns finished hpbandster jobs into :class:`Finished` records
  (and fails a stuck job for the watchdog); :class:`ServingWorker` serves one job at a
  time with whatever function it is given.
- **The optimizers.** BOHB, Hyperband and random search are hpbandster ``Master``
  subclasses that own a dispatcher and a blocking loop. We use their parts instead — the
  successive-halving iterations and the config generators — behind an ask/tell interface
  (:class:`SuccessiveHalving`) that follows ``Master.run``'s scheduling, so any loop (ours)
  can drive them and resume them.
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import ConfigSpace as CS
import numpy as np
import Pyro4
from hpbandster.core.base_config_generator import base_config_generator
from hpbandster.core.dispatcher import Dispatcher, Job
from hpbandster.core.worker import Worker
from hpbandster.optimizers.config_generators.bohb import BOHB as BOHBGenerator
from hpbandster.optimizers.config_generators.random_sampling import RandomSampling
from hpbandster.optimizers.iterations import SuccessiveHalving as SHIteration

log = logging.getLogger("composer_automl.engine")

JobId = tuple[int, ...]


# -- transport --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """A job the dispatcher has finished (or failed), as plain data."""

    job_id: JobId
    result: dict[str, Any] | None
    """What the worker's function returned (None when it raised or the worker died)."""
    exception: str | None
    """Traceback or reason when it failed."""
    worker: str | None
    """hpbandster's worker name, ``hpbandster.run_ID.worker.HOST.PID[.ID]``."""
    started: float | None
    finished: float | None


def dispatcher_name(run_id: str) -> str:
    """Nameserver entry prefix under which the dispatcher of ``run_id`` registers."""
    return f"hpbandster.run_{run_id}.dispatcher"


class Dispatch:
    """An hpbandster dispatcher in a thread: submit jobs, get :class:`Finished` records through ``on_finished``."""

    def __init__(self, on_finished: Callable[[Finished], None], run_id: str, ns_host: str, ns_port: int,
                 ping_interval_s: int):
        self.on_finished = on_finished
        self._stand_ins: dict[JobId, Job] = {}
        logging.getLogger("hpbandster").setLevel(logging.WARNING)  # its INFO lines are about its own bookkeeping
        self.dispatcher = Dispatcher(self._callback, run_id=run_id, ping_interval=ping_interval_s,
                                     nameserver=ns_host, nameserver_port=ns_port, host=ns_host,
                                     logger=logging.getLogger("hpbandster"))
        self.thread = threading.Thread(target=self.dispatcher.run, name="dispatcher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _callback(self, job: Job) -> None:
        """Runs in a Pyro thread: hand the record over, never raise (the job would never be released)."""
        try:
            stand_in = self._stand_ins.get(tuple(job.id))
            if stand_in is not None and job is not stand_in:
                log.warning("evaluation %s answered after its timeout (dropped); worker %s is back in the pool",
                            job.id, job.worker_name)
                return
            ts = job.timestamps
            self.on_finished(Finished(tuple(int(i) for i in job.id), job.result, job.exception, job.worker_name,
                                      ts.get("started"), ts.get("finished")))
        except Exception:
            log.error("could not hand over finished job %s:\n%s", getattr(job, "id", "?"), traceback.format_exc())

    def submit(self, job_id: JobId, **kwargs: Any) -> None:
        self.dispatcher.submit_job(tuple(job_id), **kwargs)

    def n_workers(self) -> int:
        """Workers the dispatcher knows (busy or idle)."""
        return self.dispatcher.number_of_workers()

    def discover_workers(self) -> None:
        self.dispatcher.trigger_discover_worker()

    def running(self) -> list[tuple[JobId, str | None, float | None]]:
        """(job id, worker name, start time) of every job a worker is running now."""
        with self.dispatcher.runner_cond:
            return [(tuple(j.id), j.worker_name, j.timestamps.get("started"))
                    for j in self.dispatcher.running_jobs.values()]

    def fail(self, job_id: JobId, worker: str | None, started: float | None, reason: str) -> None:
        """Finish a job as failed for the caller while its worker keeps it (a remote worker cannot be killed):
        the worker stays out of the pool until it answers, and that late answer is dropped."""
        stand_in = Job(job_id)
        stand_in.worker_name, stand_in.timestamps = worker, {"started": started}
        stand_in.time_it("finished")
        stand_in.exception = reason
        self._stand_ins[tuple(job_id)] = stand_in
        self._callback(stand_in)

    def shutdown(self) -> None:
        """Stop the dispatcher and the workers it knows."""
        self.dispatcher.shutdown(shutdown_workers=True)
        self.thread.join(timeout=10)


class ServingWorker(Worker):
    """An hpbandster worker that runs ``evaluate(job_id, **kwargs)`` for each job, one at a time."""

    def __init__(self, evaluate: Callable[..., dict[str, Any]], **kwargs: Any):
        super().__init__(logger=logging.getLogger("composer_automl.engine.worker"), **kwargs)
        self.evaluate = evaluate
        self.shut_down_by_master = False

    def compute(self, config_id, **kwargs):
        return self.evaluate(tuple(int(i) for i in config_id), **kwargs)

    @Pyro4.expose
    @Pyro4.oneway
    def shutdown(self):
        """The master ends the run: stop serving (``serve`` then returns)."""
        self.shut_down_by_master = True
        super().shutdown()

    @Pyro4.expose
    @Pyro4.oneway
    def start_computation(self, callback, id, *args, **kwargs):
        # hpbandster runs this oneway: an error reporting the result would vanish (logged at DEBUG by
        # Pyro) and the master would wait forever. Surface it.
        try:
            return super().start_computation(callback, id, *args, **kwargs)
        except Exception:
            log.error("job %s: could not report its result to the master:\n%s", id, traceback.format_exc())
            raise


# -- optimizers as ask/tell -------------------------------------------------------------------------

OPTIMIZERS = ("bohb", "hyperband", "random")
"""hpbandster's three optimizers: BOHB (density-model sampling), Hyperband and random search (uniform sampling)."""

BOHB_DEFAULTS = {"min_points_in_model": None, "top_n_percent": 15, "num_samples": 64, "random_fraction": 1 / 3,
                 "bandwidth_factor": 3.0, "min_bandwidth": 1e-3}
"""hpbandster's own defaults of the BOHB config generator's knobs."""

Draw = Callable[[float], tuple[dict[str, Any], dict[str, Any]]]
"""The generator's draw at a budget: (config, info) with info's ``model_based_pick``."""
Sampler = Callable[[JobId, float, Draw], tuple[dict[str, Any], dict[str, Any]]]
"""Our hook around every new configuration: (config id, budget, the generator's draw) → (config, info)."""


def config_generator(kind: str, configspace: Any, bohb: dict[str, Any] | None = None) -> base_config_generator:
    """The config generator of optimizer ``kind``: BOHB's density model, or Hyperband's / random search's
    uniform sampling."""
    if kind == "bohb":
        return BOHBGenerator(configspace=configspace, **{**BOHB_DEFAULTS, **(bohb or {})})
    return RandomSampling(configspace)


def bracket(kind: str, iteration: int, budgets: list[float], eta: float) -> tuple[list[int], list[float]]:
    """(configurations per stage, budgets per stage) of bracket ``iteration``: hpbandster's ``get_next_iteration``.

    BOHB and Hyperband cycle through the successive-halving brackets; random search spends each bracket's
    total budget on the top budget only.
    """
    n_stages = len(budgets)
    if kind == "random":
        per_iteration = sum(b * eta**i for i, b in enumerate(budgets[::-1]))
        return [int(per_iteration // budgets[-1])], [budgets[-1]]
    s = n_stages - 1 - (iteration % n_stages)
    n0 = int(np.floor(n_stages / (s + 1)) * eta**s)
    return [max(int(n0 * eta ** (-i)), 1) for i in range(s + 1)], list(budgets[-s - 1:])


class SuccessiveHalving:
    """BOHB / Hyperband / random search over ``n_iterations`` brackets, as ask/tell.

    :meth:`ask` follows ``Master.run``: the next run of the oldest bracket that has one, else a new bracket
    while brackets are left, else None (wait for results). Every new configuration goes through ``sampler``
    (our hook: replay, constraints, logging) with the generator's draw.
    """

    def __init__(self, kind: str, configspace: Any, budgets: list[float], eta: float, n_iterations: int,
                 sampler: Sampler, bohb: dict[str, Any] | None = None):
        self.kind, self.budgets, self.eta, self.n_iterations = kind, [float(b) for b in budgets], eta, n_iterations
        self.generator = config_generator(kind, configspace, bohb)
        self.sampler = sampler
        self.iterations: list[SHIteration] = []

    def ask(self) -> tuple[JobId, dict[str, Any], float] | None:
        while True:
            for it in self.iterations:
                if not it.is_finished:
                    run = it.get_next_run()
                    if run is not None:
                        config_id, config, budget = run
                        return tuple(int(i) for i in config_id), config, float(budget)
            if len(self.iterations) >= self.n_iterations:
                return None
            self._new_iteration()

    def _new_iteration(self) -> None:
        index = len(self.iterations)
        n_configs, budgets = bracket(self.kind, index, self.budgets, self.eta)
        holder: list[SHIteration] = []

        def sample(budget: float):
            it = holder[0]
            config_id = (it.HPB_iter, it.stage, it.actual_num_configs[it.stage])
            return self.sampler(config_id, float(budget), self.generator.get_config)

        it = SHIteration(HPB_iter=index, num_configs=n_configs, budgets=budgets, config_sampler=sample)
        holder.append(it)
        self.iterations.append(it)

    def tell(self, config_id: JobId, config: dict[str, Any], budget: float, loss: float | None,
             exception: str | None = None) -> None:
        """Register a finished run (``loss`` None: failed, counts as worst)."""
        job = Job(tuple(config_id), config=config, budget=float(budget))
        job.result = None if loss is None else {"loss": float(loss)}
        job.exception = exception
        self.iterations[config_id[0]].register_result(job)
        self.generator.new_result(job)

    @property
    def finished(self) -> bool:
        """No run will ever be asked again."""
        return len(self.iterations) >= self.n_iterations and all(it.is_finished for it in self.iterations)

    def score(self, configs: list[dict[str, Any]]) -> list[float] | None:
        """BOHB's acquisition of each configuration, lower is better: the bad density over the good one, under the
        model of the largest budget that has one (None before any model, and for Hyperband / random search)."""
        models = getattr(self.generator, "kde_models", None)
        if not models:
            return None
        model = models[max(models)]
        vectors = [CS.Configuration(self.generator.configspace, values=c).get_array() for c in configs]
        return [max(1e-32, float(model["bad"].pdf(v))) / max(float(model["good"].pdf(v)), 1e-32) for v in vectors]

    def running(self, config_id: JobId) -> bool:
        """Whether ``config_id`` is asked and waits for its result."""
        datum = self.iterations[config_id[0]].data.get(tuple(config_id)) if config_id[0] < len(self.iterations) else None
        return datum is not None and datum.status == "RUNNING"


def planned_runs(kind: str, budgets: list[float], eta: float, n_iterations: int) -> int:
    """(configuration, budget) runs of an undisturbed search."""
    return sum(sum(bracket(kind, i, budgets, eta)[0]) for i in range(n_iterations))
