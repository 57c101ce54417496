"""``composer-automl search``: multi-fidelity architecture search (BOHB over a fidelity ladder).

Every input — search space, fidelity ladder, settings — is validated before the
nameserver starts or any file is written. ``resume=RUN_DIR`` continues a killed search
with the settings, search space and ladder saved in that directory; a setting typed on
the command line replaces the saved one, which for a search is allowed only for the
operational (worker-pool) keys — the others define the search being continued.

Exit status: 0 when the search finished (``summary.json`` written); 2 for an
invalid input (one ``error:`` line); 1 when it stopped without workers; 130
(128 + SIGINT, the shell convention) on Ctrl-C. In the last two cases the master
has stopped its workers and nameserver, ``trials.jsonl`` holds every finished
trial, no ``summary.json`` is written, and ``resume=RUN_DIR`` continues the run.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from composer_automl.adapters.hydra import typed_keys
from composer_automl.cli import run_hydra_app
from composer_automl.config import ConfigError, to_dataclass
from composer_automl.engine.ladder import Ladder, ladder_from_mapping
from composer_automl.engine.pool import PoolSettings, RunAborted
from composer_automl.engine.rundir import default_run_dir
from composer_automl.search.run import RUN_FILE, SearchSettings, check_run_dir, check_search, run_search
from composer_automl.spaces import SearchSpace, command_line_sources_win, space_from_mapping

OPERATIONAL = frozenset(f.name for f in dataclasses.fields(PoolSettings))
"""Settings a resume may change (how the work is spread); the others define the search being continued."""
TOP_LEVEL_KEYS = {"search", "search_space", "fidelity", "resume"}


def read_saved(run_dir: Path) -> dict:
    """The run's ``search.json`` (a corrupt one is one error line)."""
    try:
        return json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"resume={str(run_dir)!r}: {RUN_FILE} cannot be read ({err}); the run cannot be "
                          "resumed") from None


def task(cfg: DictConfig) -> None:
    settings, space, ladder, run_dir = prepare(cfg)
    try:
        run_search(settings, space, ladder, run_dir, resume=bool(cfg.resume))
    except RunAborted as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def prepare(cfg: DictConfig) -> tuple[SearchSettings, SearchSpace, Ladder, Path | None]:
    """The validated settings, space, ladder and run directory of a search (no side effects; the run directory
    is None for a job of a sweep being pre-checked, whose folder Hydra makes later)."""
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in search config; allowed: {sorted(TOP_LEVEL_KEYS)}")
    given = typed_keys(list(HydraConfig.get().overrides.task))
    if cfg.resume:
        run_dir = Path(str(cfg.resume))
        check_run_dir(run_dir, resume=True)
        saved = read_saved(run_dir)
        typed = {k.split(".", 1)[1] for k in given if k.startswith("search.")}
        frozen = sorted({f"search.{k}" for k in typed - OPERATIONAL} | {k for k in given if k.split(".")[0] in
                                                                          ("search_space", "fidelity")})
        if frozen:
            raise ConfigError(f"resume={str(run_dir)!r}: {frozen} define the search being continued and cannot "
                              f"change; a resume may change only search.{{{', '.join(sorted(OPERATIONAL))}}}")
        saved_settings = {k: v for k, v in saved["settings"].items() if k != "eta"}  # older runs saved an eta
        settings = to_dataclass(SearchSettings, {**saved_settings, **{k: cfg.search[k] for k in typed}}, "search")
        space = space_from_mapping(saved["search_space"], seed=settings.seed)
        ladder = ladder_from_mapping(saved["fidelity_name"], saved["ladder"])
    else:
        settings = to_dataclass(SearchSettings, cfg.search, "search")
        space_node = command_line_sources_win(cfg.search_space, list(HydraConfig.get().overrides.task))
        space = space_from_mapping(space_node, seed=settings.seed)
        name = HydraConfig.get().runtime.choices.get("fidelity") or "fidelity"
        ladder = ladder_from_mapping(str(name), cfg.fidelity)
        run_dir = Path(settings.run_dir) if settings.run_dir else _default_run_dir()
        settings = dataclasses.replace(settings, run_dir=str(run_dir) if run_dir else None)
    return settings, space, ladder, run_dir


def validate(cfg: DictConfig) -> None:
    """A sweep job's checks before any job starts: its config and everything the search refuses up front."""
    settings, space, ladder, _ = prepare(cfg)
    check_search(settings, space, ladder)


def _default_run_dir() -> Path | None:
    """``runs/search-<time>``; in a ``-m`` sweep, the job's own folder (``hydra.sweep.dir/<job number>``; None
    before Hydra made it)."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return Path(hydra_cfg.runtime.output_dir) if hydra_cfg.runtime.output_dir else None
    return default_run_dir("search")


def main(argv: list[str]) -> None:
    try:
        run_hydra_app("search", task, argv, validate=validate)
    except KeyboardInterrupt:  # run_search has printed where the run is and how to resume it
        sys.exit(130)
