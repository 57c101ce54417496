"""The worker pool of one run: nameserver, published spec, local worker processes.

The start order is explicit (hpbandster issue #52): the nameserver starts first, the
run's spec is published in it, the engine starts its dispatcher, and only once the
dispatcher is registered are local worker processes started (each limited to its share
of CPU threads and given its own GPUs, or its share of one GPU). Remote workers may join at any time with the
nameserver address and run id.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import Pyro4

from composer_automl.adapters.hpbandster import dispatcher_name
from composer_automl.adapters.pyro import configure
from composer_automl.config import ConfigError
from composer_automl.engine import transport
from composer_automl.engine.spec import RunSpec

log = logging.getLogger("composer_automl.engine")


def spec_name(run_id: str) -> str:
    """Nameserver entry under which the master publishes the run's spec."""
    return f"composer_automl.run_{run_id}.spec"


@dataclass
class PoolSettings:
    """How a run spreads its evaluations over workers (the ``search.*`` and ``calibrate.*`` pool keys)."""

    n_workers: int = 2
    """Local worker processes; 0 = only remote workers (``composer-automl worker``)."""
    min_workers: int | None = None
    """Workers to wait for before starting (default: n_workers, at least 1)."""
    threads_per_worker: int | None = None
    """Torch CPU threads per local worker (default: CPU cores / n_workers)."""
    run_id: str | None = None
    """Id remote workers join with (default: random); fix it when worker scripts must know it in advance."""
    host: str = "127.0.0.1"
    """Address the nameserver and master listen on; non-loopback needs a secret."""
    port: int = 0
    """Nameserver port (0 = a free one)."""
    secret: str | None = None
    """Shared secret for network mode (else ``$COMPOSER_AUTOML_SECRET``); never printed."""
    ping_interval_s: int = 5
    """How often the master checks that workers are alive."""
    trial_timeout_s: float = 0.0
    """Fail an evaluation running longer than this (0 = no limit)."""
    worker_wait_s: float = 120.0
    """How long to wait for min_workers before giving up."""
    gpus: list[int] | None = None
    """GPU ids shared out among the local workers (null: every GPU this machine shows; none on a CPU machine)."""
    gpus_per_worker: int = 1
    """GPUs each local worker gets (its ``CUDA_VISIBLE_DEVICES``); a rung with ``devices: 1`` uses the first."""
    workers_per_gpu: int = 1
    """Local workers sharing one GPU (a trial at search width uses a fraction of it): worker i gets GPU
    i mod len(gpus) as its only ``CUDA_VISIBLE_DEVICES`` and at most 1/workers_per_gpu of its memory, so up to
    len(gpus) × workers_per_gpu workers fit."""

    def __post_init__(self) -> None:
        if self.n_workers < 0:
            raise ConfigError(f"must be >= 0, got {self.n_workers}", key="n_workers")
        for name in ("min_workers", "threads_per_worker"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1 or null, got {getattr(self, name)}", key=name)
        if self.run_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.run_id):
            raise ConfigError(f"={self.run_id!r} must be 1-64 letters, digits, '_' or '-'", key="run_id")
        if not 0 <= self.port < 65536:
            raise ConfigError(f"={self.port} must be in [0, 65535]", key="port")
        if self.ping_interval_s < 1:
            raise ConfigError(f"={self.ping_interval_s} must be >= 1", key="ping_interval_s")
        for name in ("trial_timeout_s", "worker_wait_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"={getattr(self, name)} must be >= 0", key=name)
        for name in ("gpus_per_worker", "workers_per_gpu"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", key=name)
        if self.gpus_per_worker > 1 and self.workers_per_gpu > 1:
            raise ConfigError(f"={self.workers_per_gpu} shares a GPU between workers, gpus_per_worker="
                              f"{self.gpus_per_worker} gives each several: set one of them to 1", key="workers_per_gpu")
        if self.gpus is not None and self.gpus_needed > len(self.gpus):
            raise ConfigError(f": n_workers{self._demand} needs {self.gpus_needed} GPUs; gpus lists {len(self.gpus)}",
                              key="gpus")
        transport.check_bind(self.host, self.resolved_secret)

    @property
    def resolved_secret(self) -> str | None:
        """The shared secret: the setting, else ``$COMPOSER_AUTOML_SECRET``."""
        return transport.resolve_secret(self.secret)

    @property
    def gpus_needed(self) -> int:
        """GPUs the local workers need: n_workers × gpus_per_worker, shared by workers_per_gpu."""
        return -(-self.n_workers * self.gpus_per_worker // self.workers_per_gpu)

    @property
    def gpu_memory_fraction(self) -> float | None:
        """The share of its GPU's memory each local worker may allocate (None: all of it, the GPU is its own)."""
        return 1.0 / self.workers_per_gpu if self.workers_per_gpu > 1 else None

    @property
    def _demand(self) -> str:
        """``=N x gpus_per_worker=G[ at workers_per_gpu=K]``: what the local workers ask for, after ``n_workers``."""
        shared = f" at workers_per_gpu={self.workers_per_gpu}" if self.workers_per_gpu > 1 else ""
        return f"={self.n_workers} x gpus_per_worker={self.gpus_per_worker}{shared}"

    def worker_gpus(self) -> list[str | None]:
        """Each local worker's ``CUDA_VISIBLE_DEVICES`` (None: left as it is, on a machine without GPUs)."""
        gpus = [str(g) for g in self.gpus] if self.gpus is not None else visible_gpus()
        if not gpus:
            return [None] * self.n_workers
        if self.gpus_needed > len(gpus):
            raise ConfigError(f"{self._demand} needs {self.gpus_needed} GPUs; this machine "
                              f"shows {len(gpus)} ({','.join(gpus)})", key="n_workers")
        if self.workers_per_gpu > 1:  # round robin: fewer workers than slots still spread over every GPU
            return [gpus[i % len(gpus)] for i in range(self.n_workers)]
        g = self.gpus_per_worker
        return [",".join(gpus[i * g:(i + 1) * g]) for i in range(self.n_workers)]

    @property
    def threads(self) -> int:
        """Torch threads of each local worker."""
        return self.threads_per_worker or max(1, (os.cpu_count() or 1) // max(self.n_workers, 1))

    @property
    def workers_needed(self) -> int:
        """Workers that must have joined before the run starts."""
        return self.min_workers or max(self.n_workers, 1)


def visible_gpus() -> list[str]:
    """GPU ids this process may use: ``$CUDA_VISIBLE_DEVICES`` when set, else every device CUDA counts."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


class RunAborted(RuntimeError):
    """The run cannot go on (no workers); its run directory stays resumable."""


GPU_MEMORY_FRACTION_ENV = "COMPOSER_AUTOML_GPU_MEMORY_FRACTION"
"""A local worker's share of its GPU's memory when it shares the GPU (``search.workers_per_gpu``)."""


def apply_gpu_memory_fraction() -> float | None:
    """Cap this process's CUDA allocations at ``$COMPOSER_AUTOML_GPU_MEMORY_FRACTION`` of its (first) GPU.

    Workers sharing a GPU each hold a caching allocator: without a cap one worker's cached blocks can starve
    the others, whose trials then fail at random; with it the allocator frees its cache and retries before
    a trial runs out of memory in its own share. Returns the fraction applied (None: unset, or no CUDA here).
    """
    text = os.environ.get(GPU_MEMORY_FRACTION_ENV)
    if not text:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    fraction = float(text)
    torch.cuda.set_per_process_memory_fraction(fraction, 0)
    return fraction


class LocalWorkers:
    """The master's own worker processes; restarts one that dies while the run goes on."""

    def __init__(self, n: int, nameserver: str, run_id: str, threads: int, secret: str | None, log_dir: Path,
                 gpus: list[str | None] | None = None, gpu_memory_fraction: float | None = None):
        self.nameserver, self.run_id, self.threads, self.secret = nameserver, run_id, threads, secret
        self.gpus = gpus or [None] * n
        self.gpu_memory_fraction = gpu_memory_fraction
        self.log_dir = log_dir
        self.procs: dict[int, subprocess.Popen] = {}
        self.restarts_left = 3 * max(n, 1)
        self._stopping = threading.Event()
        for i in range(n):
            self._spawn(i)
        self._thread = threading.Thread(target=self._supervise, name="local-workers", daemon=True)
        self._thread.start()

    def environment(self, i: int) -> dict[str, str]:
        """Worker ``i``'s environment: its CPU threads, its GPUs (and its share of a shared GPU's memory), the
        secret (never on its command line)."""
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        for name in (transport.SECRET_ENV, GPU_MEMORY_FRACTION_ENV):
            env.pop(name, None)
        if self.gpus[i] is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[i]
            if self.gpu_memory_fraction is not None:
                env[GPU_MEMORY_FRACTION_ENV] = f"{self.gpu_memory_fraction:.6g}"
        if self.secret:
            env[transport.SECRET_ENV] = self.secret
        return env

    def _spawn(self, i: int) -> None:
        cmd = [sys.executable, "-m", "composer_automl.engine.worker", "--nameserver", self.nameserver,
               "--run-id", self.run_id, "--threads", str(self.threads), "--id", str(i), "--parent-pid", str(os.getpid())]
        with (self.log_dir / f"worker-{i}.log").open("a") as out:
            # own session: a terminal Ctrl-C reaches only the master, which stops workers cleanly
            self.procs[i] = subprocess.Popen(cmd, env=self.environment(i), stdout=out, stderr=subprocess.STDOUT,
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


class WorkerPool:
    """Nameserver + published spec + local workers of one run; a context manager that stops them all.

    Usage: enter (starts the nameserver and publishes ``spec``), start a dispatcher on
    :attr:`ns_host`/:attr:`ns_port`, call :meth:`start_workers` (waits for the dispatcher to
    register first), then :meth:`supervise` the driving loop. Leaving the block stops local
    workers and the nameserver; the caller shuts its dispatcher down before that.
    """

    def __init__(self, settings: PoolSettings, spec: RunSpec, log_dir: Path):
        self.settings, self.run_id, self.spec, self.log_dir = settings, spec.run_id, spec, log_dir
        self.secret = settings.resolved_secret
        self.nameserver = transport.NameServer(settings.host, settings.port)
        self.workers: LocalWorkers | None = None
        self.ns_host, self.ns_port = "", 0

    @property
    def address(self) -> str:
        return f"{self.ns_host}:{self.ns_port}"

    def __enter__(self) -> "WorkerPool":
        configure(self.secret)
        try:
            self.ns_host, self.ns_port = self.nameserver.start()
            with Pyro4.locateNS(host=self.ns_host, port=self.ns_port) as ns:  # workers read the spec here
                ns.register(spec_name(self.run_id), f"PYRO:spec@{self.address}", metadata={self.spec.to_json()})
        except BaseException:
            self.nameserver.shutdown()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.workers is not None:
            self.workers.stop()
        self.nameserver.shutdown()

    def start_workers(self, what: str, section: str) -> None:
        """Once the dispatcher is registered: print how to join (at an address other machines reach), start the
        local workers. ``what`` names the run (``search``, ``calibration``), ``section`` its settings
        (``search``, ``calibrate``) in the messages."""
        self._wait_for_dispatcher()
        reachable = f"{transport.reachable_address(self.ns_host)}:{self.ns_port}"
        print(f"nameserver {reachable}; more workers: composer-automl worker nameserver={reachable} "
              f"run_id={self.run_id}", flush=True)
        s = self.settings
        if s.n_workers:
            self.workers = LocalWorkers(s.n_workers, self.address, self.run_id, s.threads, self.secret, self.log_dir,
                                        s.worker_gpus(), s.gpu_memory_fraction)
        else:
            print(f"no local workers ({section}.n_workers=0): waiting up to {s.worker_wait_s:g} s for {s.workers_needed} "
                  f"remote worker(s) to join this {what}; start each with the command above"
                  + (" and the same secret" if self.secret else ""), flush=True)

    def _wait_for_dispatcher(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with Pyro4.locateNS(host=self.ns_host, port=self.ns_port) as ns:
                if ns.list(prefix=dispatcher_name(self.run_id)):
                    return
            time.sleep(0.05)
        raise RuntimeError("the master's dispatcher did not register with the nameserver")

    def kill_worker(self, worker_name: str) -> bool:
        """Kill a local worker by its hpbandster name (False for remote workers)."""
        return bool(self.workers and self.workers.kill_by_name(worker_name))

    def supervise(self, target: Callable[[], None], waiting: Callable[[], bool]) -> None:
        """Run the driving loop ``target`` in a thread; Ctrl-C and dead-worker checks stay responsive here.

        Raises :class:`RunAborted` when ``waiting()`` (no work started yet) stays true past
        ``worker_wait_s``, or when every local worker died with no restarts left.
        """
        error: list[BaseException] = []

        def run() -> None:
            try:
                target()
            except BaseException as err:  # surfaced in the calling thread below
                error.append(err)

        thread = threading.Thread(target=run, name="driver", daemon=True)
        started = time.monotonic()
        thread.start()
        s = self.settings
        while thread.is_alive():
            thread.join(0.2)
            if waiting() and time.monotonic() - started > s.worker_wait_s:
                raise RunAborted(f"fewer than {s.workers_needed} worker(s) joined within {s.worker_wait_s:g} s")
            if self.workers is not None and self.workers.alive() == 0 and self.workers.restarts_left <= 0:
                raise RunAborted("every local worker died; see the worker logs in the run directory")
        if error:
            raise error[0]
