"""``composer-automl calibrate``: how well the rungs of a fidelity ladder rank patterns, measured.

Every input is validated before the nameserver starts or any file is written.
``resume=RUN_DIR`` continues a killed calibration with the settings, search space and
ladder saved in ``RUN_DIR``; any of them given again on the command line replaces the
saved one, which is how a table is extended with more seeds, patterns or rungs (rows
already in the table are not evaluated again).

Exit status: 0 when the report is written; 2 for invalid input (one ``error:`` line);
1 when no worker joined or all died; 130 on Ctrl-C (resumable).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from composer_automl.adapters.hydra import typed_keys
from composer_automl.calibrate.run import CalibrateSettings, make_plan, run_calibration, saved_spec
from composer_automl.cli import run_hydra_app
from composer_automl.config import ConfigError, located, to_dataclass
from composer_automl.engine.ladder import ladder_from_mapping
from composer_automl.engine.pool import RunAborted
from composer_automl.engine.rundir import default_run_dir
from composer_automl.rungs.registry import read_rung_file, resolve_mapping
from composer_automl.spaces import command_line_sources_win, space_from_mapping

TOP_LEVEL_KEYS = {"calibrate", "search_space", "fidelity", "resume"}


def task(cfg: DictConfig) -> None:
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in calibrate config; allowed: {sorted(TOP_LEVEL_KEYS)}")
    overrides = list(HydraConfig.get().overrides.task)
    node = OmegaConf.to_container(cfg.calibrate, resolve=True)
    space_node, fidelity_node = cfg.search_space, cfg.fidelity
    fidelity_name = str(HydraConfig.get().runtime.choices.get("fidelity") or "fidelity")
    run_dir = None
    if cfg.resume:
        run_dir = Path(str(cfg.resume))
        saved = saved_spec(run_dir).get("last", {})
        given = typed_keys(overrides)
        typed = {k.split(".", 1)[1] for k in given if k.startswith("calibrate.")}
        node = {**saved.get("settings", {}), **{k: v for k, v in node.items() if k in typed}}
        if not _typed_under(given, "search_space") and saved.get("search_space"):
            space_node = saved["search_space"]
        if not _typed_under(given, "fidelity") and saved.get("fidelity"):
            fidelity_name, fidelity_node = saved["fidelity"]["name"], saved["fidelity"]["mapping"]
    settings = to_dataclass(CalibrateSettings, node, "calibrate")
    space = space_from_mapping(command_line_sources_win(space_node, overrides))
    ladder = ladder_from_mapping(fidelity_name, fidelity_node)
    reference = None
    if settings.reference:
        with located("calibrate.reference"):
            reference = resolve_mapping(read_rung_file(settings.reference))
    plan = make_plan(space, ladder, settings, reference)
    if run_dir is None:
        run_dir = Path(settings.run_dir) if settings.run_dir else default_run_dir("calibrate")
        settings = dataclasses.replace(settings, run_dir=str(run_dir))
    command = "composer-automl calibrate " + " ".join(overrides)
    try:
        run_calibration(settings, plan, run_dir, resume=bool(cfg.resume), command=command)
    except RunAborted as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def _typed_under(given: set[str], group: str) -> bool:
    """Whether the command line set ``group`` or a key under it."""
    return any(k == group or k.startswith(group + ".") for k in given)


def main(argv: list[str]) -> None:
    try:
        run_hydra_app("calibrate", task, argv)
    except KeyboardInterrupt:  # run_calibration has printed how to resume
        sys.exit(130)
