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

from composer_automl.calibrate.run import CalibrateSettings, default_run_dir, make_plan, run_calibration, saved_spec
from composer_automl.cli import run_hydra_app
from composer_automl.config import ConfigError, to_dataclass
from composer_automl.rungs import read_rung_file, resolve_mapping
from composer_automl.search.cluster import RunAborted
from composer_automl.search.ladder import ladder_from_mapping
from composer_automl.search.spaces import command_line_sources_win, space_from_mapping

TOP_LEVEL_KEYS = {"calibrate", "search_space", "fidelity", "resume"}


def _given(overrides: list[str]) -> set[str]:
    """Keys set on the command line (``calibrate.seeds=3`` → ``calibrate.seeds``; ``fidelity=x`` → ``fidelity``)."""
    keys = set()
    for text in overrides:
        key = text.split("=", 1)[0].lstrip("+~")
        keys.add(key)
        keys.add(key.split(".", 1)[0] if not key.startswith("calibrate.") else key)
    return keys


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
        given = _given(overrides)
        node = {**saved.get("settings", {}), **{k: v for k, v in node.items() if f"calibrate.{k}" in given}}
        if "search_space" not in given and saved.get("search_space"):
            space_node = saved["search_space"]
        if "fidelity" not in given and saved.get("fidelity"):
            fidelity_name, fidelity_node = saved["fidelity"]["name"], saved["fidelity"]["mapping"]
    settings = to_dataclass(CalibrateSettings, node, "calibrate")
    space = space_from_mapping(command_line_sources_win(space_node, overrides))
    ladder = ladder_from_mapping(fidelity_name, fidelity_node)
    reference = resolve_mapping(read_rung_file(settings.reference)) if settings.reference else None
    plan = make_plan(space, ladder, settings, reference)
    if run_dir is None:
        run_dir = Path(settings.run_dir) if settings.run_dir else default_run_dir()
        settings = dataclasses.replace(settings, run_dir=str(run_dir))
    command = "composer-automl calibrate " + " ".join(overrides)
    try:
        run_calibration(settings, plan, run_dir, resume=bool(cfg.resume), command=command)
    except RunAborted as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str]) -> None:
    try:
        run_hydra_app("calibrate", task, argv)
    except KeyboardInterrupt:  # run_calibration has printed how to resume
        sys.exit(130)
