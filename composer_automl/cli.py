"""The ``composer-automl`` console script: one Hydra app per subcommand.

``composer-automl SUBCOMMAND [hydra overrides...]``. Each subcommand's primary
config is ``composer_automl/conf/SUBCOMMAND.yaml``; the config groups
``search_space``, ``fidelity`` and ``launch`` are the top-level folders of the
repository, shipped inside the package.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

import hydra
import yaml
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from composer_automl.adapters.hydra import as_running_job, composing, override_key, parse_args, sweep_jobs
from composer_automl.conf import register_schemas
from composer_automl.config import ConfigError
from composer_automl.files import check_writable
from composer_automl.paths import CONFIG_DIR, add_user_config_dir
from composer_automl.quiet import install_cli_warning_filters

COMMANDS: dict[str, tuple[str, str]] = {
    "search": ("composer_automl.search.command", "run multi-fidelity architecture search (BOHB)"),
    "worker": ("composer_automl.engine.command", "join a running search or calibration as a worker"),
    "calibrate": ("composer_automl.calibrate.command", "measure how well a fidelity ladder's rungs rank patterns"),
    "mad": ("composer_automl.mad.command", "score a pattern on the MAD synthetic tasks"),
    "data": ("composer_automl.data.command", "tokenize a corpus into megatron indexed datasets"),
    "pretrain": ("composer_automl.pretrain.command", "small-scale pretraining of a pattern"),
    "aggregate": ("composer_automl.aggregate.command", "merge a search's top patterns into one"),
    "extrapolate": ("composer_automl.extrapolate.command", "scale a pattern to a 350M/1B/3B spec"),
    "train": ("composer_automl.train.command", "train a model spec (tensor parallel, multi-node)"),
    "generate": ("composer_automl.generate.command", "continue a prompt with a trained model (KV-cached)"),
    "export": ("composer_automl.export.command", "write a training checkpoint as one HybridLM (native or hf)"),
    "evaluate": ("composer_automl.evaluate.command", "compare exported models: held-out loss, lm-eval tasks, latency"),
}
"""Subcommand → (module defining ``main(argv)``, one-line help)."""


def usage() -> str:
    lines = ["usage: composer-automl SUBCOMMAND [key=value ...] [--help | --cfg job]", "", "subcommands:"]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Dispatch to a subcommand; an unknown one exits 2 with the allowed list."""
    install_cli_warning_filters()  # third-party deprecation noise around the progress bars
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        if not argv:
            print(f"error: give a subcommand; choose one of {list(COMMANDS)}", file=sys.stderr)
        sys.exit(0 if argv else 2)
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown subcommand {name!r}; choose one of {list(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(COMMANDS[name][0])
    module.main(rest)


def run_hydra_app(config_name: str, task: Callable[[DictConfig], Any], argv: list[str],
                  validate: Callable[[DictConfig], Any] | None = None) -> None:
    """Run ``task`` as the Hydra app ``conf/<config_name>.yaml`` with ``argv`` as Hydra's command line.

    ``argv`` may hold Hydra's own flags: ``--config-dir DIR`` (the user's folder of group options,
    searched before the shipped ones, by Hydra and by our rung lookup alike) and ``-m`` (a sweep:
    every job is composed, and checked by ``validate`` — the task's own checks, without side
    effects — before the first one starts). A :class:`ConfigError` from the pre-check or the task
    is printed as one ``error:`` line and exits with status 2.
    """

    def guarded(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except ConfigError as err:
            remove_hydra_leftovers()
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    guarded.__module__ = __name__  # config_path below resolves relative to this module
    register_schemas(config_name)
    args = parse_args(argv)
    try:
        if args.config_dir is not None:
            if not Path(args.config_dir).is_dir():
                raise ConfigError(f"--config-dir {args.config_dir!r} is not a folder")
            add_user_config_dir(args.config_dir)  # rungs named in a ladder resolve there first
        check_overrides(config_name, args.overrides, args.config_dir, multirun=bool(args.multirun),
                        validate=validate)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    saved = sys.argv
    sys.argv = [f"composer-automl {config_name}", *argv]
    try:
        hydra.main(config_path="conf", config_name=config_name, version_base="1.3")(guarded)()
    finally:
        sys.argv = saved


def remove_hydra_leftovers() -> None:
    """A job refused on a bad value leaves nothing behind: remove its Hydra run folder when it holds only what
    Hydra itself wrote there (``.hydra/``, ``<job>.log``), and the folders above it that are left empty."""
    hydra_cfg = HydraConfig.get()
    out, cwd = Path(hydra_cfg.runtime.output_dir).resolve(), Path.cwd().resolve()
    own = {hydra_cfg.output_subdir, f"{hydra_cfg.job.name}.log"}
    if out == cwd or cwd not in out.parents or not out.is_dir() or not set(os.listdir(out)) <= own:
        return
    shutil.rmtree(out)
    for parent in out.parents:
        if parent == cwd or any(parent.iterdir()):
            break
        parent.rmdir()


def check_overrides(config_name: str, overrides: list[str], config_dir: str | None = None,
                    multirun: bool = False, validate: Callable[[DictConfig], Any] | None = None) -> None:
    """Compose ``conf/<config_name>.yaml`` with ``overrides`` one at a time, for every job of a sweep.

    The first override Hydra rejects becomes one :class:`ConfigError` line: an
    unknown key names the keys allowed at that level, an unknown group option
    the options there are. ``hydra.*`` overrides are Hydra's own and pass through.
    In a sweep, ``validate`` then checks each job's whole config.
    """
    ours = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    try:
        jobs = sweep_jobs(ours) if multirun else [ours]
    except HydraException as err:
        raise ConfigError(" ".join(str(err).split())) from None
    with composing(CONFIG_DIR, config_dir):
        checked: set[tuple[str, ...]] = set()
        for job in jobs:
            accepted: list[str] = []
            for override in job:
                if tuple([*accepted, override]) not in checked:
                    try:
                        compose(config_name, overrides=[*accepted, override])
                    except (HydraException, OmegaConfBaseException, yaml.YAMLError) as err:
                        raise ConfigError(_override_error(config_name, accepted, override, err)) from None
                    checked.add(tuple([*accepted, override]))
                accepted.append(override)
            if multirun and validate is not None:
                with as_running_job(compose(config_name, overrides=job, return_hydra_config=True)) as cfg:
                    try:
                        validate(cfg)
                    except ConfigError as err:
                        raise ConfigError(f"sweep job {jobs.index(job)} ({' '.join(job)}): {err}") from None
        _check_output_dir(config_name, [*jobs[0], *(o for o in overrides if o not in ours)], multirun)


def _check_output_dir(config_name: str, overrides: list[str], multirun: bool) -> None:
    """Hydra's run (sweep) folder, where it is not the working directory itself, can be created: a read-only
    working directory is one error line instead of Hydra's PermissionError."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    try:
        folder = OmegaConf.select(compose(config_name, overrides=overrides, return_hydra_config=True), key)
    except (HydraException, OmegaConfBaseException):
        return  # resolvable only inside the run (job fields): Hydra reports its own problems
    if folder and Path(folder) != Path("."):
        check_writable(Path(folder), key)


def _override_error(config_name: str, accepted: list[str], override: str, err: Exception) -> str:
    where = f"composer-automl {config_name}"
    if isinstance(err, yaml.YAMLError):  # a config file it selects (under --config-dir) does not parse
        return f"{override!r} for {where}: a config file it selects is not valid YAML: " + " ".join(str(err).split())
    try:
        key = override_key(override)
    except HydraException:
        return f"cannot parse override {override!r} for {where}; write key=value"
    base = compose(config_name, overrides=accepted)
    parts = key.split(".")
    # the deepest level that exists: ``widht.d_model`` is unknown at the top level (``widht``)
    depth = next(i for i in range(len(parts) - 1, -1, -1)
                 if i == 0 or isinstance(OmegaConf.select(base, ".".join(parts[:i])), DictConfig))
    parent_path, leaf = ".".join(parts[:depth]), parts[depth]
    parent = OmegaConf.select(base, parent_path) if parent_path else base
    if isinstance(parent, DictConfig) and leaf not in parent and "Could not override" in str(err):
        level = f"under {parent_path!r}" if parent_path else "at the top level"
        new = f"; a fidelity file has no schema, so add a key with +{override.lstrip('+')}" if parts[0] == "fidelity" else ""
        return f"unknown config key {key!r} for {where}; keys {level}: {sorted(parent.keys())}{new}"
    message = str(err).split("Config search path:")[0]
    if err.__cause__ is not None and str(err.__cause__).strip():  # Hydra's "Error merging override": why it failed
        message += ": " + str(err.__cause__).strip().splitlines()[0]
    return f"{override!r} for {where}: " + " ".join(message.split())
