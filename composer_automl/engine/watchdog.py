"""Fails evaluations that run longer than a timeout."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from composer_automl.adapters.hpbandster import Dispatch, JobId

log = logging.getLogger("composer_automl.engine")


class Watchdog:
    """Checks a dispatch's running jobs every second (a thread, stopped by :meth:`stop`).

    A local worker running a late job is killed (the dispatcher then fails its job as
    crashed). A remote worker cannot be killed from here: its job is failed at once, the
    still-busy worker gets no new job until it reports back, and that late answer is dropped.
    """

    def __init__(self, dispatch: Dispatch, timeout_s: float, kill_worker: Callable[[str], bool]):
        self.dispatch, self.timeout_s, self.kill_worker = dispatch, timeout_s, kill_worker
        self.reasons: dict[JobId, str] = {}
        """Timed-out jobs → the reason recorded for them."""
        self._stop = threading.Event()
        if timeout_s > 0:
            threading.Thread(target=self._run, name="trial-watchdog", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._check()
            except Exception:  # a dead watchdog would let every later hang last forever
                log.exception("trial watchdog: check failed; trying again")

    def _check(self) -> None:
        now = time.time()
        late = [(job_id, worker, started) for job_id, worker, started in self.dispatch.running()
                if now - (started or now) > self.timeout_s and job_id not in self.reasons]
        for job_id, worker, started in late:
            log.warning("evaluation %s exceeded %g s on %s; stopping it", job_id, self.timeout_s, worker)
            if self.kill_worker(worker or ""):
                self.reasons[job_id] = f"timed out after {self.timeout_s:g} s; its worker was stopped"
                self.dispatch.discover_workers()  # the dispatcher notices the dead worker and fails its job
            else:
                reason = f"timed out after {self.timeout_s:g} s; its remote worker is out of the pool until it answers"
                self.reasons[job_id] = reason
                log.warning("remote worker %s keeps no new jobs until it reports back", worker)
                self.dispatch.fail(job_id, worker, started, reason)

    def reason(self, job_id: JobId) -> str | None:
        """Why a job this watchdog stopped failed (None for other jobs)."""
        return self.reasons.get(tuple(job_id))

    def stop(self) -> None:
        self._stop.set()
