"""``composer-automl worker nameserver=HOST:PORT run_id=ID``: join a running search or calibration.

The fidelity ladder comes from the master. In network mode the
shared secret must match the master's (``$COMPOSER_AUTOML_SECRET`` or ``secret=``).

Exit status: 0 when the master finished the search (and shut this worker down);
2 with one ``error:`` line for invalid input, a search that does not appear
within ``wait_s``, or a wrong secret; 130 on Ctrl-C (the master records the
trial this worker was running as failed and goes on with its other workers).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass

from omegaconf import DictConfig

from composer_automl.cli import run_hydra_app
from composer_automl.config import ConfigError, to_dataclass
from composer_automl.engine.transport import parse_address
from composer_automl.engine.worker import serve


@dataclass
class WorkerConfig:
    """``conf/worker.yaml``."""

    nameserver: str | None = None
    """HOST:PORT of the run's nameserver (printed by ``composer-automl search`` / ``calibrate``)."""
    run_id: str | None = None
    """The run's id (printed beside the nameserver)."""
    secret: str | None = None
    """Shared secret of network mode (default ``$COMPOSER_AUTOML_SECRET``)."""
    threads: int | None = None
    """Torch CPU threads for this worker."""
    host: str | None = None
    """Address this worker listens on (default: this machine's address towards the nameserver)."""
    out_dir: str | None = None
    """Where trial logs go (default: the master's run directory)."""
    wait_s: float = 60.0
    """How long to wait for the run to appear in the nameserver."""
    gpus: str | None = None
    """GPU ids this worker trains on (``0`` or ``2,3``: its ``CUDA_VISIBLE_DEVICES``); null keeps the environment's."""

    def __post_init__(self) -> None:
        for name in ("nameserver", "run_id"):
            if not getattr(self, name):
                raise ConfigError("is required (composer-automl worker nameserver=HOST:PORT run_id=ID)", key=name)
        parse_address(self.nameserver, "nameserver")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"must be >= 1, got {self.threads}", key="threads")
        if self.wait_s < 0:
            raise ConfigError(f"must be >= 0, got {self.wait_s}", key="wait_s")
        if self.gpus is not None and not re.fullmatch(r"\d+(,\d+)*", str(self.gpus)):
            raise ConfigError(f"={self.gpus!r} must be GPU ids separated by commas (0 or 2,3)", key="gpus")


def task(cfg: DictConfig) -> None:
    wc = to_dataclass(WorkerConfig, cfg)
    if wc.gpus is not None:  # before anything initialises CUDA
        os.environ["CUDA_VISIBLE_DEVICES"] = str(wc.gpus)
    logging.getLogger("hpbandster").setLevel(logging.WARNING)
    if not serve(wc.nameserver, wc.run_id, wc.secret, wc.threads, wc.out_dir, wc.host, wait_s=wc.wait_s):
        raise KeyboardInterrupt  # Pyro's request loop swallowed the Ctrl-C
    print(f"run {wc.run_id} finished; worker exits", flush=True)


def main(argv: list[str]) -> None:
    try:
        run_hydra_app("worker", task, argv)
    except KeyboardInterrupt:
        print("\ninterrupted: worker left the run", flush=True)
        sys.exit(130)
