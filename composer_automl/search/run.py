"""Orchestration of one search: nameserver → spec → master (dispatcher) → local workers.

The start order is explicit (hpbandster issue #52): the nameserver starts first, the
master publishes the search spec and starts its dispatcher, and only once the
dispatcher is registered are the local worker processes started (each limited to its
share of CPU threads). Remote workers may join at any time with the nameserver
address and run id. Ctrl-C stops everything and leaves a resumable run directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import Pyro4

from composer_automl.config import ConfigError, choice
from composer_automl.search import transport
from composer_automl.search.ladder import Ladder
from composer_automl.search.master import OPTIMIZERS, Replay, make_master, planned_trials
from composer_automl.search.results import SUMMARY_FILE, read_configs, read_trials
from composer_automl.search.spaces import SearchSpace
from composer_automl.search.summary import format_summary, summarize, write_summary
from composer_automl.search.worker import spec_name

log = logging.getLogger("composer_automl.search")

RUN_FILE = "search.json"
"""The resolved search (space, ladder, settings) saved in the run directory; resume reads it."""


@dataclass
class SearchSettings:
    """The ``search:`` section of ``conf/search.yaml``."""

    optimizer: str = "bohb"
    """``bohb``, ``hyperband`` or ``random``."""
    n_iterations: int = 3
    """Successive-halving brackets to run (BOHB/Hyperband iterations)."""
    n_workers: int = 2
    """Local worker processes; 0 = only remote workers (``composer-automl worker``)."""
    min_workers: int | None = None
    """Workers to wait for before starting (default: n_workers, at least 1)."""
    threads_per_worker: int | None = None
    """Torch CPU threads per local worker (default: CPU cores / n_workers)."""
    seed: int = 0
    """Seeds the optimizer's sampling and every trial."""
    run_id: str | None = None
    """Id remote workers join with (default: random); fix it when worker scripts must know it in advance."""
    run_dir: str | None = None
    """Where results go (default: ``runs/search-<time>``)."""
    host: str = "127.0.0.1"
    """Address the nameserver and master listen on; non-loopback needs a secret."""
    port: int = 0
    """Nameserver port (0 = a free one)."""
    secret: str | None = None
    """Shared secret for network mode (else ``$COMPOSER_AUTOML_SECRET``); never printed."""
    ping_interval_s: int = 5
    """How often the master checks that workers are alive."""
    trial_timeout_s: float = 0.0
    """Fail a trial running longer than this (0 = no limit)."""
    worker_wait_s: float = 120.0
    """How long to wait for min_workers before giving up."""
    eta: float | None = None
    """Override the ladder's eta (rarely needed)."""

    def __post_init__(self) -> None:
        choice(self.optimizer, OPTIMIZERS, "search.optimizer")
        if self.n_iterations < 1:
            raise ConfigError(f"search.n_iterations must be >= 1, got {self.n_iterations}")
        if self.n_workers < 0:
            raise ConfigError(f"search.n_workers must be >= 0, got {self.n_workers}")
        if self.min_workers is not None and self.min_workers < 1:
            raise ConfigError(f"search.min_workers must be >= 1, got {self.min_workers}")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise ConfigError(f"search.threads_per_worker must be >= 1, got {self.threads_per_worker}")
        if self.run_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.run_id):
            raise ConfigError(f"search.run_id={self.run_id!r} must be 1-64 letters, digits, '_' or '-'")
        if not 0 <= self.port < 65536 or self.ping_interval_s < 1 or self.trial_timeout_s < 0:
            raise ConfigError("search: port must be in [0, 65535], ping_interval_s >= 1, trial_timeout_s >= 0")


class LocalWorkers:
    """The master's own worker processes; restarts one that dies while the search runs."""

    def __init__(self, n: int, nameserver: str, run_id: str, threads: int, secret: str | None, log_dir: Path):
        self.nameserver, self.run_id, self.threads, self.secret = nameserver, run_id, threads, secret
        self.log_dir = log_dir
        self.procs: dict[int, subprocess.Popen] = {}
        self.restarts_left = 3 * max(n, 1)
        self._stopping = threading.Event()
        for i in range(n):
            self._spawn(i)
        self._thread = threading.Thread(target=self._supervise, name="local-workers", daemon=True)
        self._thread.start()

    def _spawn(self, i: int) -> None:
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        env.pop(transport.SECRET_ENV, None)
        if self.secret:
            env[transport.SECRET_ENV] = self.secret
        cmd = [sys.executable, "-m", "composer_automl.search.worker", "--nameserver", self.nameserver,
               "--run-id", self.run_id, "--threads", str(self.threads), "--id", str(i), "--parent-pid", str(os.getpid())]
        with (self.log_dir / f"worker-{i}.log").open("a") as out:
            # own session: a terminal Ctrl-C reaches only the master, which stops workers cleanly
            self.procs[i] = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)

    def _supervise(self) -> None:
        while not self._stopping.wait(1.0):
            for i, proc in list(self.procs.items()):
                if proc.poll() is not None and not self._stopping.is_set():
                    if self.restarts_left <= 0:
                        log.error("local worker %d exited (code %s); no restarts left", i, proc.returncode)
                        del self.procs[i]
                        continue
                    self.restarts_left -= 1
                    log.warning("local worker %d exited (code %s); restarting it (see %s)", i,
                                proc.returncode, self.log_dir / f"worker-{i}.log")
                    self._spawn(i)

    def kill_by_name(self, worker_name: str) -> bool:
        """Kill the local worker whose hpbandster name ends with its pid; False if not ours."""
        for proc in self.procs.values():
            if f".{proc.pid}." in worker_name + ".":  # names are hpbandster.run_ID.worker.HOST.PID.ID
                proc.kill()
                return True
        return False

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.procs.values())

    def stop(self, grace_s: float = 3.0) -> None:
        """Wait for workers to exit after the master's shutdown; terminate, then kill, stragglers."""
        self._stopping.set()
        for signal_name in ("wait", "terminate", "kill"):
            deadline = time.monotonic() + grace_s
            for proc in self.procs.values():
                if proc.poll() is None and signal_name != "wait":
                    getattr(proc, signal_name)()
            for proc in self.procs.values():
                try:
                    proc.wait(timeout=max(0.05, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            if all(p.poll() is not None for p in self.procs.values()):
                return


class SearchAborted(RuntimeError):
    """The search cannot go on (no workers); its run directory stays resumable."""


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


def _publish(ns_host: str, ns_port: int, spec: dict[str, Any]) -> None:
    """Put the spec in the nameserver's metadata, where workers read it."""
    with Pyro4.locateNS(host=ns_host, port=ns_port) as ns:
        ns.register(spec_name(spec["run_id"]), f"PYRO:spec@{ns_host}:{ns_port}", metadata={json.dumps(spec)})


def _wait_for_dispatcher(ns_host: str, ns_port: int, run_id: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with Pyro4.locateNS(host=ns_host, port=ns_port) as ns:
            if ns.list(prefix=f"hpbandster.run_{run_id}.dispatcher"):
                return
        time.sleep(0.05)
    raise RuntimeError("the master's dispatcher did not register with the nameserver")


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


def run_search(
    settings: SearchSettings,
    space: SearchSpace,
    ladder: Ladder,
    run_dir: Path,
    resume: bool = False,
) -> dict[str, Any]:
    """Run (or resume) a search to completion; returns the summary (also written to ``run_dir``)."""
    secret = transport.resolve_secret(settings.secret)
    transport.check_bind(settings.host, secret)
    prepare_run_dir(run_dir, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    transport.configure(secret)
    logging.getLogger("hpbandster").setLevel(logging.WARNING)

    if resume:
        saved = json.loads((run_dir / RUN_FILE).read_text())
        run_id = saved["run_id"]
        previous = read_trials(run_dir)
        replay = Replay(read_configs(run_dir), {r.trial_id: r for r in previous})
        offset = max((r.elapsed_s for r in previous), default=0.0)
        print(f"resuming {run_dir}: {len(previous)} finished trials will not be run again", flush=True)
    else:
        run_id = settings.run_id or uuid.uuid4().hex[:8]
        replay, offset = Replay({}, {}), 0.0
        saved = {"run_id": run_id, "settings": _public(settings), "search_space": space.resolved_mapping(),
                 "fidelity_name": ladder.name, "ladder": ladder.mapping}
        tmp = run_dir / (RUN_FILE + ".tmp")
        tmp.write_text(json.dumps(saved, indent=2, sort_keys=True))
        os.replace(tmp, run_dir / RUN_FILE)

    random.seed(settings.seed)
    np.random.seed(settings.seed)  # hpbandster's samplers use the global NumPy RNG
    space.configspace.seed(settings.seed)
    n_planned = planned_trials(settings.optimizer, ladder, settings.n_iterations)
    threads = settings.threads_per_worker or max(1, (os.cpu_count() or 1) // max(settings.n_workers, 1))
    min_workers = settings.min_workers or max(settings.n_workers, 1)

    ns = transport.NameServer(settings.host, settings.port)
    workers: LocalWorkers | None = None
    master = None
    board = None
    try:
        ns_host, ns_port = ns.start()
        _publish(ns_host, ns_port, _spec(run_id, space, ladder, settings.seed, run_dir))
        master = make_master(
            settings.optimizer,
            configspace=space.configspace,
            eta=settings.eta or ladder.eta,
            min_budget=ladder.min_budget,
            max_budget=ladder.max_budget,
            run_id=run_id,
            nameserver=ns_host,
            nameserver_port=ns_port,
            host=ns_host,
            working_directory=str(run_dir),
            ping_interval=settings.ping_interval_s,
        )
        _wait_for_dispatcher(ns_host, ns_port, run_id)
        address = f"{ns_host}:{ns_port}"
        print(f"search {run_id}: {settings.optimizer}, budgets {list(ladder.budgets)} "
              f"({', '.join(r.name for r in ladder.rungs)}), {n_planned} trials planned, run dir {run_dir}",
              flush=True)
        print(f"nameserver {address}; more workers: composer-automl worker nameserver={address} run_id={run_id}",
              flush=True)
        if settings.n_workers:
            workers = LocalWorkers(settings.n_workers, address, run_id, threads, secret, run_dir / "logs")
        else:
            print(f"no local workers (search.n_workers=0): waiting up to {settings.worker_wait_s:g} s for "
                  f"{min_workers} remote worker(s) to join; start each with the command above"
                  + (" and the same secret" if secret else ""), flush=True)
        from composer_automl.search.tensorboard import SearchBoard  # imports torch: while workers start

        board = SearchBoard(run_dir)
        master.setup_hooks(space, ladder, str(run_dir), replay, n_planned, offset, board.add,
                           settings.trial_timeout_s, lambda name: bool(workers and workers.kill_by_name(name)))
        _run_master(master, settings, min_workers, workers)
    except (KeyboardInterrupt, SearchAborted) as err:
        reason = "interrupted" if isinstance(err, KeyboardInterrupt) else f"stopped: {err}"
        print(f"\n{reason}; finished trials are in {run_dir}; continue with: "
              f"composer-automl search resume={run_dir}", flush=True)
        raise
    finally:
        if master is not None:
            master.stop_hooks()
            master.dispatcher.shutdown(shutdown_workers=True)
            master.dispatcher_thread.join(timeout=10)
        if workers is not None:
            workers.stop()
        ns.shutdown()
        if board is not None:
            board.close()

    records = read_trials(run_dir)
    summary = summarize(records, {"run_id": run_id, "optimizer": settings.optimizer,
                                  "budgets": list(ladder.budgets), "planned_trials": n_planned,
                                  "metrics": {f"{b:g}": ladder.metric(b) for b in ladder.budgets}})
    write_summary(run_dir, summary)
    print(format_summary(summary, run_dir), flush=True)
    return summary


def _run_master(master, settings: SearchSettings, min_workers: int, workers: LocalWorkers | None) -> None:
    """Run the master in a thread so Ctrl-C and dead-worker checks stay responsive here."""
    error: list[BaseException] = []

    def target() -> None:
        try:
            master.run(n_iterations=settings.n_iterations, min_n_workers=min_workers)
        except BaseException as err:  # surfaced in the main thread below
            error.append(err)

    thread = threading.Thread(target=target, name="hpbandster-master", daemon=True)
    started = time.monotonic()
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
        waiting = master.time_ref is None
        if waiting and time.monotonic() - started > settings.worker_wait_s:
            raise SearchAborted(f"fewer than {min_workers} worker(s) joined within {settings.worker_wait_s:g} s")
        if workers is not None and workers.alive() == 0 and workers.restarts_left <= 0:
            raise SearchAborted("every local worker died; see the worker logs in the run directory")
    if error:
        raise error[0]


def _public(settings: SearchSettings) -> dict[str, Any]:
    """Settings without the secret (what is saved and shown)."""
    return {k: v for k, v in dataclasses.asdict(settings).items() if k != "secret"}
