"""The engine: evaluations on a worker pool, driven by a proposer — an optimizer or a calibration plan.

The proposer says what to evaluate next (:meth:`Proposer.ask`) and hears every result
(:meth:`Proposer.tell`); the engine keeps every worker busy with one job, records each
result through the caller's ``record`` and never lets a failure while recording stall
the run. Finished jobs arrive from the dispatcher's threads on a queue and are handled
in the driving loop, one at a time.
"""

from __future__ import annotations

import logging
import queue
import time
import traceback
from pathlib import Path
from typing import Callable, Protocol

from composer_automl.adapters.hpbandster import Dispatch, Finished
from composer_automl.engine.jobs import EvalJob, Evaluation, JobId, evaluation
from composer_automl.engine.ladder import Ladder
from composer_automl.engine.pool import PoolSettings, WorkerPool
from composer_automl.engine.spec import RunSpec
from composer_automl.engine.watchdog import Watchdog

log = logging.getLogger("composer_automl.engine")


class Proposer(Protocol):
    """What drives the engine (ask/tell)."""

    def ask(self) -> EvalJob | None:
        """The next job, or None when nothing can be proposed until a result arrives (or ever)."""

    def tell(self, result: Evaluation) -> None:
        """A job has finished (or failed)."""

    @property
    def finished(self) -> bool:
        """Nothing will ever be asked again."""


class Engine:
    """Runs a proposer's jobs on the pool described by ``settings`` (see :meth:`run`)."""

    def __init__(self, settings: PoolSettings, spec: RunSpec, ladder: Ladder, log_dir: Path, what: str, section: str):
        """``what`` names the run in messages (``search``), ``section`` where its settings are typed (``search``)."""
        self.settings, self.spec, self.ladder, self.log_dir = settings, spec, ladder, log_dir
        self.what, self.section = what, section
        self._finished: queue.Queue[Finished] = queue.Queue()
        self.started = False
        """True once enough workers joined and the first job went out."""

    def run(self, proposer: Proposer, record: Callable[[Evaluation], None]) -> None:
        """Evaluate everything the proposer asks for until it is finished; ``record`` gets each evaluation
        before the proposer does. Ctrl-C (KeyboardInterrupt) and :class:`RunAborted` propagate after the
        workers and the nameserver are stopped."""
        s = self.settings
        with WorkerPool(s, self.spec, self.log_dir) as pool:
            dispatch = Dispatch(self._finished.put, self.spec.run_id, pool.ns_host, pool.ns_port, s.ping_interval_s)
            dispatch.start()
            watchdog = Watchdog(dispatch, s.trial_timeout_s, pool.kill_worker)
            try:
                pool.start_workers(self.what, self.section)
                pool.supervise(lambda: self._drive(dispatch, watchdog, proposer, record),
                               waiting=lambda: not self.started)
            finally:
                watchdog.stop()
                dispatch.shutdown()

    def _drive(self, dispatch: Dispatch, watchdog: Watchdog, proposer: Proposer,
               record: Callable[[Evaluation], None]) -> None:
        self._wait_for_workers(dispatch)
        running: dict[JobId, EvalJob] = {}
        while True:
            while len(running) < dispatch.n_workers():
                job = proposer.ask()
                if job is None:
                    break
                running[job.id] = job
                dispatch.submit(job.id, **job.kwargs())
                self.started = True
            if not running:
                if proposer.finished:
                    return
                if dispatch.n_workers() == 0:
                    time.sleep(0.2)  # every worker is gone for now: the pool restarts local ones
                    continue
                raise RuntimeError("the proposer has nothing to run and waits for no result")
            try:
                finished = self._finished.get(timeout=0.5)
            except queue.Empty:
                continue
            job = running.pop(finished.job_id, None)
            if job is None:
                log.warning("a result for job %s, which is not running, was dropped", finished.job_id)
                continue
            result = evaluation(job, self.ladder.rung_for(job.budget).name, finished, watchdog.reason(job.id))
            try:
                record(result)
            except Exception:  # a full disk must not stall the run: report, go on
                log.error("could not record job %s:\n%s", job.id, traceback.format_exc())
            proposer.tell(result)

    def _wait_for_workers(self, dispatch: Dispatch) -> None:
        """Hold the first job until ``min_workers`` joined (the pool gives up after ``worker_wait_s``)."""
        while dispatch.n_workers() < self.settings.workers_needed:
            dispatch.discover_workers()
            time.sleep(0.5)
