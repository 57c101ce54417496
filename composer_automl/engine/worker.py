"""Workers: processes that evaluate jobs on the ladder's rungs until the master shuts them down.

A worker needs only the nameserver address and the run id: it fetches the run's
:class:`~composer_automl.engine.spec.RunSpec` (the resolved fidelity ladder, as plain data)
that the master published in the nameserver, then serves jobs. Local workers are started by
the master as ``python -m composer_automl.engine.worker``; remote ones with
``composer-automl worker nameserver=HOST:PORT run_id=…``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import Pyro4

from composer_automl.adapters.hpbandster import ServingWorker
from composer_automl.adapters.pyro import configure, plain
from composer_automl.config import ConfigError
from composer_automl.engine import transport
from composer_automl.engine.ladder import Ladder, ladder_from_mapping
from composer_automl.engine.pool import apply_gpu_memory_fraction, spec_name
from composer_automl.engine.spec import RunSpec
from composer_automl.patterns import Pattern
from composer_automl.provenance import code_version
from composer_automl.spec import SearchWidth

log = logging.getLogger("composer_automl.engine.worker")


def trial_dirname(pattern: str, budget: float, job_id: Any) -> str:
    """``<pattern>_b<budget>_<id>``: the evaluation's TensorBoard folder name."""
    return f"{pattern}_b{float(budget):g}_" + "-".join(str(int(i)) for i in job_id)


class TrialFailed(RuntimeError):
    """An evaluation that finished without a usable loss (NaN or infinite)."""


class Evaluator:
    """Runs one job on the ladder's rung for its budget and reports plain data (what crosses the wire)."""

    def __init__(self, ladder: Ladder, out_root: Path):
        self.ladder, self.out_root = ladder, Path(out_root)

    def __call__(self, job_id: tuple[int, ...], pattern: str, width: dict[str, int], budget: float,
                 seed: int, **_: Any) -> dict[str, Any]:
        """Run the rung; NaN/inf losses and exceptions become failures (the master gets the traceback)."""
        rung = self.ladder.rung_for(budget)
        out_dir = self.out_root / "tb" / trial_dirname(pattern, budget, job_id)
        cpu_start = time.process_time()
        try:
            result = rung(Pattern.parse(pattern), SearchWidth(**width), out_dir, int(seed))
            if not math.isfinite(result.loss):
                raise TrialFailed(f"rung {rung.name} returned a non-finite loss ({result.loss}) for {pattern}")
        except Exception:
            log.error("job %s %s at budget %g failed:\n%s", job_id, pattern, budget, traceback.format_exc())
            raise
        metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        info = {"pattern": pattern, "rung": rung.name, "metrics": metrics, "wall_time_s": float(result.wall_time_s),
                "cpu_time_s": time.process_time() - cpu_start, "seed": int(seed), "code_version": code_version()}
        return {"loss": float(result.loss), "info": plain(info)}


def fetch_spec(ns_host: str, ns_port: int, run_id: str, wait_s: float = 60.0) -> RunSpec:
    """The spec the master published for ``run_id``; waits up to ``wait_s`` for it to appear."""
    deadline = time.monotonic() + wait_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with Pyro4.locateNS(host=ns_host, port=ns_port) as ns:
                found = ns.list(prefix=spec_name(run_id), return_metadata=True)
            if found:
                _, metadata = next(iter(found.values()))
                return RunSpec.from_json(next(iter(metadata)))
        except Pyro4.errors.PyroError as err:
            last_error = err
            if isinstance(err, Pyro4.errors.SecurityError) or _hmac_refused(err):
                raise ConfigError(
                    f"nameserver {ns_host}:{ns_port} refused this worker: the shared secret is missing or wrong "
                    f"(set ${transport.SECRET_ENV} or secret= to the master's)"
                ) from None
        time.sleep(0.5)
    raise ConfigError(
        f"no run {run_id!r} at nameserver {ns_host}:{ns_port} within {wait_s:g} s"
        + (f" ({type(last_error).__name__}: {last_error})" if last_error else "; is the address right and the run "
           "still going?")
    )


def _hmac_refused(err: BaseException) -> bool:
    """Whether a Pyro error (or its cause) is the HMAC handshake failing: a missing or wrong secret."""
    while err is not None:
        if "hmac" in str(err).lower():
            return True
        err = err.__cause__
    return False


def serve(nameserver: str, run_id: str, secret: str | None = None, threads: int | None = None,
          out_dir: str | None = None, host: str | None = None, worker_id: str | None = None,
          wait_s: float = 60.0) -> bool:
    """Join run ``run_id`` at ``nameserver`` (``HOST:PORT``) and evaluate jobs until shut down.

    Returns True when the master ended the run, False when serving stopped otherwise
    (Pyro's request loop ends quietly on Ctrl-C).
    """
    ns_host, ns_port = transport.parse_address(nameserver, "nameserver")
    secret = transport.resolve_secret(secret)
    bind = host or transport.local_address_towards(ns_host)
    transport.check_bind(bind, secret)
    configure(secret)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    spec = fetch_spec(ns_host, ns_port, run_id, wait_s)
    ladder = ladder_from_mapping(spec.fidelity_name, spec.ladder)
    worker = ServingWorker(Evaluator(ladder, Path(out_dir or spec.out_dir)), run_id=run_id, nameserver=ns_host,
                           nameserver_port=ns_port, host=bind, id=worker_id)
    log.info("worker %s joined run %s at %s:%d", worker.worker_id, run_id, ns_host, ns_port)
    try:
        worker.run(background=False)
    except Pyro4.errors.PyroError:
        # After its shutdown call the master stops the nameserver too: unregistering may fail.
        if not worker.shut_down_by_master:
            raise
    return worker.shut_down_by_master


def _exit_with_parent(parent_pid: int) -> None:
    """Exit when the master process is gone (killed with SIGKILL, it cannot stop us)."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the local worker processes the master starts (secret via the environment)."""
    parser = argparse.ArgumentParser(prog="python -m composer_automl.engine.worker")
    parser.add_argument("--nameserver", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--id", default=None)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    from composer_automl.quiet import install_cli_warning_filters

    install_cli_warning_filters()  # a local worker is part of the console script: same filters
    if args.parent_pid:
        threading.Thread(target=_exit_with_parent, args=(args.parent_pid,), daemon=True).start()
    # The master stops local workers itself; a terminal Ctrl-C must not kill them mid-report.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    apply_gpu_memory_fraction()  # a GPU shared with other local workers: this worker's share of its memory
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(process)d %(levelname)s %(message)s")
    logging.getLogger("hpbandster").setLevel(logging.WARNING)
    try:
        serve(args.nameserver, args.run_id, threads=args.threads, worker_id=_safe_id(args.id) if args.id else None)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    os._exit(0)


if __name__ == "__main__":
    main()
