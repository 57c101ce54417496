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


USER_CONFIG_DIRS: list[Path] = []
"""The user's config folders (``--config-dir DIR``), searched before the shipped groups; set by the CLI."""


def add_user_config_dir(path: str | Path) -> None:
    """Search ``path`` (a folder holding ``fidelity/``, ``search_space/``, … like ``conf/``) before the shipped groups."""
    path = Path(path).resolve()
    if path not in USER_CONFIG_DIRS:
        USER_CONFIG_DIRS.insert(0, path)


def group_dirs(group: str) -> list[Path]:
    """Folders holding a group's options, in lookup order: the user's config dirs, then the shipped one."""
    return [d / group for d in USER_CONFIG_DIRS if (d / group).is_dir()] + [group_dir(group)]


def find_option(group: str, name: str) -> Path | None:
    """``<group>/<name>.yaml`` from the user's config dirs first, then the shipped ones; a path to a
    ``.yaml`` file is taken as it is. None when nothing matches."""
    if name.endswith((".yaml", ".yml")):
        return Path(name) if Path(name).is_file() else None
    for folder in group_dirs(group):
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    return None


def group_options(group: str) -> list[str]:
    """Names of the YAML options of a config group (the user's config dirs and the shipped ones)."""
    return sorted({p.stem for folder in group_dirs(group) for p in folder.glob("*.yaml")})


CACHE_ENV = "COMPOSER_AUTOML_CACHE"
"""Environment variable naming the cache root (prepared corpora, generated MAD datasets)."""


def cache_dir(kind: str) -> Path:
    """``<root>/<kind>``: root ``$COMPOSER_AUTOML_CACHE``, else ``$XDG_CACHE_HOME/composer-automl``,
    else ``~/.cache/composer-automl``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / kind
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "composer-automl" / kind
