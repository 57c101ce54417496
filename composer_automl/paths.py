"""Where shipped files live, resolved from the package (never the working directory)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE_DIR / "conf"
"""Hydra config root: primary configs per subcommand plus the shipped groups."""

GROUPS = {"search_space": "search_spaces", "fidelity": "fidelity", "launch": "launch"}
"""Hydra group name → top-level repository folder it is shipped from."""


def group_dir(group: str) -> Path:
    """Folder holding the YAML options of a config group (``fidelity``, ``search_space``, ``launch``)."""
    if group not in GROUPS:
        raise KeyError(f"unknown config group {group!r}; have {sorted(GROUPS)}")
    return CONFIG_DIR / group


def group_options(group: str) -> list[str]:
    """Names of the YAML options shipped in a config group."""
    return sorted(p.stem for p in group_dir(group).glob("*.yaml"))


CACHE_ENV = "COMPOSER_AUTOML_CACHE"
"""Environment variable naming the cache root (prepared corpora, generated MAD datasets)."""


def cache_dir(kind: str) -> Path:
    """``<root>/<kind>``: root ``$COMPOSER_AUTOML_CACHE``, else ``$XDG_CACHE_HOME/composer-automl``,
    else ``~/.cache/composer-automl``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / kind
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "composer-automl" / kind
