"""Hydra internals the CLI needs (pinned by ``tests/adapters/test_hydra.py``).

Hydra 1.3 has no public API for three things the CLI does before a run starts: parsing its
own command line (``--config-dir``, ``-m``), composing on the same search path as the real
run, and expanding a sweep into jobs the way its basic sweeper will.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_config_search_path, get_args_parser
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Hydra's own command-line parser (``overrides``, ``config_dir``, ``multirun``, ...)."""
    return get_args_parser().parse_args(argv)


@contextmanager
def composing(config_dir: Path, user_dir: str | None) -> Iterator[None]:
    """Hydra's compose API on the real run's search path: the user's ``--config-dir`` before ``config_dir``."""
    search_path = create_config_search_path(f"file://{config_dir}")
    if user_dir is not None:
        search_path.prepend(provider="command-line", path=f"file://{Path(user_dir).resolve()}",
                            anchor=SearchPathQuery(provider="schema"))
    previous = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    Hydra.create_main_hydra2(task_name="composer-automl", config_search_path=search_path)  # sets GlobalHydra
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        if previous is not None:
            GlobalHydra.instance().initialize(previous)


@contextmanager
def as_running_job(cfg: DictConfig) -> Iterator[DictConfig]:
    """A config composed with its ``hydra`` node (``return_hydra_config=True``) made to look like a running job:
    ``HydraConfig.get()`` answers from it inside the block, which yields the config without the ``hydra`` node
    (what a task receives)."""
    HydraConfig.instance().set_config(cfg)
    try:
        yield OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    finally:
        HydraConfig.instance().cfg = None


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The override list of each job of a ``-m`` sweep (the basic sweeper's own expansion:
    ``a=1,2 b=x,y`` gives four jobs). Raises Hydra's error for an unparsable override."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def typed_keys(overrides: list[str]) -> set[str]:
    """The keys and groups set on the command line (``calibrate.seeds=3`` → ``calibrate.seeds``,
    ``fidelity=x`` → ``fidelity``, ``+a.b=1`` → ``a.b``), by Hydra's own override parser."""
    return {o.key_or_group for o in OverridesParser.create().parse_overrides(overrides)}


def override_key(override: str) -> str:
    """The key (or group) of one override, by Hydra's parser."""
    return OverridesParser.create().parse_override(override).key_or_group
