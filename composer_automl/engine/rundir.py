"""Run directories: where a run writes, who may write there, and how a stopped run is continued.

A run directory belongs to one process at a time: :class:`RunLock` holds an exclusive
``flock`` on ``RUN_DIR/.lock`` for the life of the process. The operating system releases
it on any exit, ``kill -9`` included, so a lock is never stale after its holder died.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from composer_automl.config import ConfigError
from composer_automl.files import check_writable

LOCK_FILE = ".lock"


def default_run_dir(kind: str) -> Path:
    """``runs/<kind>-<time>``."""
    return Path("runs") / time.strftime(f"{kind}-%Y%m%d-%H%M%S")


def check_new_run_dir(run_dir: Path, key: str, command: str) -> None:
    """A new run needs an absent or empty, writable folder."""
    check_writable(run_dir, key)
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise ConfigError(f"={str(run_dir)!r} already holds a run; choose a new folder or continue it with "
                          f"composer-automl {command} resume={run_dir}", key=key)


class RunLock:
    """An exclusive lock on a run directory for as long as this process holds it (a context manager)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(f"run directory {str(self.path.parent)!r} is in use by {holder}; wait for it to "
                              "finish or stop it first (a run directory is used by one process at a time)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def stopped_message(err: BaseException, run_dir: Path, command: str, kept: str) -> str:
    """What to print when a run stops early: why, where its finished work is, how to continue it."""
    reason = "interrupted" if isinstance(err, KeyboardInterrupt) else f"stopped: {err}"
    return f"\n{reason}; {kept} are in {run_dir}; continue with: composer-automl {command} resume={run_dir}"
