"""What produced a result: the code revision and the machine (recorded beside measured data)."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from composer_automl.paths import PACKAGE_DIR


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``<package version>+g<commit>`` (``.dirty`` with uncommitted changes to the package) when the package sits
    in its own git checkout, else the version.

    Read-only git: ``GIT_OPTIONAL_LOCKS=0`` keeps ``git diff`` from refreshing (and locking) the index of a
    checkout someone may be using, and a repository whose top level is not the package's parent (a user's
    repository that happens to contain an installed copy) is never asked.
    """
    try:
        version = metadata.version("composer-automl")
    except metadata.PackageNotFoundError:
        version = "unknown"
    repo = PACKAGE_DIR.parent
    if not (repo / ".git").exists():
        return version
    try:
        if Path(_git(repo, "rev-parse", "--show-toplevel")).resolve() != repo.resolve():
            return version
        sha = _git(repo, "rev-parse", "--short=12", "HEAD")
        clean = subprocess.run(["git", "-C", str(repo), "diff", "--quiet", "HEAD", "--", "composer_automl"],
                               env=_READ_ONLY_GIT, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{sha}{'' if clean else '.dirty'}"


_READ_ONLY_GIT = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          timeout=10, env=_READ_ONLY_GIT).stdout.strip()


def machine() -> dict[str, Any]:
    """CPU model, core count, OS and the versions of the libraries that decide the numbers."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import numpy
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "lightning": metadata.version("lightning"),
    }
